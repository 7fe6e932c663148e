// Symbols in real profiles: a -O2 -g program (programs/sym_program.cc) runs
// with the agent, and `go tool pprof`, readelf and the protobuf classes check
// what the agent's profiles say: source lines with values (-list), inlined
// calls as their own lines (-lines), build ids, a dlopen'ed library before
// and after dlclose, and the two routes for a profile without symbols:
// remote (/debug/pprof/symbol) and offline (the binary at hand).
#include <signal.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/integration_util.h"
#include "tests/suites/symbols/symbols_util.h"

namespace pprof_agent::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

#define SKIP_WITHOUT_GO()                                        \
  if (*GoBinaryPath() == '\0') GTEST_SKIP() << "go not found at configure time"

const std::string kProgramSource = PA_SYM_PROGRAM_SOURCE;
const std::string kDlSource = PA_SYM_DL_SOURCE;
const std::string kDlLibrary = PA_SYM_DL_LIB;

// Values are exact: PPROF_AGENT_HEAP_RATE=1 records every allocation.
constexpr char kRetainedBytes[] = "4MB";  // RetainBlocks: 64 x 64 KiB
constexpr char kInlinedBytes[] = "2MB";   // CallsInlined: 64 x 32 KiB
constexpr char kDlBytes[] = "1.50MB";     // AllocateInLibrary: 32 x 48 KiB

// The line of `text` that contains `needle`, "" if none.
std::string LineWith(const std::string& text, const std::string& needle) {
  for (const std::string& line : SplitLines(text)) {
    if (line.find(needle) != std::string::npos) return line;
  }
  return "";
}

class Symbols : public ::testing::Test {
 protected:
  void SetUp() override {
    retain_line_ = MarkerLine(kProgramSource, "MARK:retain");
    inlined_line_ = MarkerLine(kProgramSource, "MARK:inlined");
    caller_line_ = MarkerLine(kProgramSource, "MARK:caller");
    dl_line_ = MarkerLine(kDlSource, "MARK:dl");
    ASSERT_GT(retain_line_ * inlined_line_ * caller_line_ * dl_line_, 0)
        << "marker comments missing from the test program's sources";
  }

  // Starts sym_program with every allocation recorded.
  void Start(Flavour flavour) {
    std::string error;
    EnvChanges env;
    env.set["PPROF_AGENT_HEAP_RATE"] = "1";
    auto program =
        StartProgram("sym_program", flavour, {kDlLibrary}, env, true, &error);
    ASSERT_TRUE(program.has_value()) << error;
    program_ = std::move(*program);
  }

  std::string Url(const std::string& profile) const {
    return program_.BaseUrl() + "/debug/pprof/" + profile;
  }

  // `go tool pprof ARGS`; fails the test when pprof fails.
  std::string Pprof(const std::vector<std::string>& args) {
    const CommandResult r = GoPprof(tmp_, args);
    EXPECT_TRUE(r.ok()) << r.status.Describe() << "\n" << r.err;
    return r.out;
  }

  std::optional<pb::Profile> FetchProto(const std::string& profile,
                                        std::string* gz = nullptr) {
    const HttpResult r = HttpGet(program_.port, "/debug/pprof/" + profile);
    EXPECT_EQ(r.status, 200) << r.error << r.body;
    std::string error;
    auto p = ParseProfileGz(r.body, &error);
    EXPECT_TRUE(p.has_value()) << error;
    if (gz != nullptr) *gz = r.body;
    return p;
  }

  TempDir tmp_;
  AgentProgram program_;
  int retain_line_ = 0;
  int inlined_line_ = 0;
  int caller_line_ = 0;
  int dl_line_ = 0;
};

const pb::Mapping* MappingNamed(const pb::Profile& p, const std::string& path) {
  for (const pb::Mapping& m : p.mapping()) {
    if (Str(p, m.filename()) == path) return &m;
  }
  return nullptr;
}

const pb::Function* FunctionById(const pb::Profile& p, uint64_t id) {
  for (const pb::Function& f : p.function()) {
    if (f.id() == id) return &f;
  }
  return nullptr;
}

// Locations whose outermost line is in function `name`.
std::vector<const pb::Location*> LocationsIn(const pb::Profile& p,
                                             const std::string& name) {
  std::vector<const pb::Location*> out;
  for (const pb::Location& loc : p.location()) {
    if (loc.line_size() == 0) continue;
    const pb::Function* f =
        FunctionById(p, loc.line(loc.line_size() - 1).function_id());
    if (f != nullptr && Str(p, f->name()) == name) out.push_back(&loc);
  }
  return out;
}

TEST_F(Symbols, ListShowsTheFunctionsSourceLinesWithValues) {
  SKIP_WITHOUT_GO();
  Start(Flavour::kPreloaded);
  // pprof finds the source by the Function's file name, after guessing a
  // prefix to trim from the name of its working directory (ctest runs us in
  // build/tests, and "/tests/" is in the name): -source_path settles it.
  const std::string source_dir =
      kProgramSource.substr(0, kProgramSource.rfind('/'));
  const std::string out =
      Pprof({"-list", "sym::RetainBlocks", "-sample_index=inuse_space",
             "-source_path", source_dir, Url("heap")});
  EXPECT_THAT(LineWith(out, "ROUTINE ======================== sym::RetainBlocks() in "),
              HasSubstr("sym_program.cc"))
      << out;
  // "      4MB        4MB     29:    char* p = ...  // MARK:retain"
  const std::regex row(R"(^\s*(\S+)\s+(\S+)\s+(\d+):(.*)$)");
  std::smatch m;
  const std::string site = LineWith(out, "MARK:retain");
  ASSERT_TRUE(std::regex_match(site, m, row)) << out;
  EXPECT_EQ(m[1].str(), kRetainedBytes) << site;
  EXPECT_EQ(m[2].str(), kRetainedBytes) << site;
  EXPECT_EQ(m[3].str(), std::to_string(retain_line_)) << site;
  // The lines around it are there, without values.
  const std::string store = LineWith(out, "g_retained[i] = p;");
  ASSERT_TRUE(std::regex_match(store, m, row)) << out;
  EXPECT_EQ(m[1].str(), ".");
  EXPECT_EQ(m[3].str(), std::to_string(retain_line_ + 2));
}

TEST_F(Symbols, LinesShowAnInlinedCalleeAsItsOwnLineUnderItsCaller) {
  SKIP_WITHOUT_GO();
  Start(Flavour::kPreloaded);
  const std::string inlined = "sym::InlinedAllocate(unsigned long) " +
                              kProgramSource + ":" +
                              std::to_string(inlined_line_) + " (inline)";
  const std::string caller = "sym::CallsInlined() " + kProgramSource + ":" +
                             std::to_string(caller_line_);
  const std::string traces = Pprof(
      {"-traces", "-lines", "-sample_index=inuse_space", Url("heap")});
  const std::vector<std::string> lines = SplitLines(traces);
  // Every trace through the site has the callee's line right above the
  // caller's; the one of the live blocks (others may split off by labels,
  // with no in-use bytes) carries their bytes.
  bool found = false;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    if (lines[i].find(inlined) == std::string::npos) continue;
    found = found || lines[i].find(kInlinedBytes) != std::string::npos;
    EXPECT_THAT(lines[i + 1], HasSubstr(caller)) << traces;
  }
  EXPECT_TRUE(found) << "no '" << kInlinedBytes << " " << inlined << "' in\n"
                     << traces;

  // -top -lines gives the inlined callee its own row, with the bytes.
  const std::string top =
      Pprof({"-top", "-lines", "-sample_index=inuse_space", Url("heap")});
  const std::string row = LineWith(
      top, "sym::InlinedAllocate(unsigned long) " + kProgramSource + ":" +
               std::to_string(inlined_line_));
  EXPECT_THAT(row, HasSubstr(kInlinedBytes)) << top;

  // In the proto: one location, two lines, the callee first.
  auto p = FetchProto("heap");
  ASSERT_TRUE(p.has_value());
  const auto locations = LocationsIn(*p, "sym::CallsInlined()");
  bool two_lines = false;
  for (const pb::Location* loc : locations) {
    if (loc->line_size() != 2) continue;
    const pb::Function* inner = FunctionById(*p, loc->line(0).function_id());
    ASSERT_NE(inner, nullptr);
    if (Str(*p, inner->name()) != "sym::InlinedAllocate(unsigned long)") continue;
    two_lines = true;
    EXPECT_EQ(loc->line(0).line(), inlined_line_);
    EXPECT_EQ(loc->line(1).line(), caller_line_);
    EXPECT_EQ(Str(*p, inner->system_name()), "_ZN3sym15InlinedAllocateEm");
    EXPECT_EQ(Str(*p, inner->filename()), kProgramSource);
    EXPECT_EQ(inner->start_line(), inlined_line_ - 1);
  }
  EXPECT_TRUE(two_lines);
  ASSERT_GT(p->mapping_size(), 0);
  EXPECT_TRUE(p->mapping(0).has_inline_frames());
  EXPECT_TRUE(p->mapping(0).has_line_numbers());
  EXPECT_TRUE(p->mapping(0).has_filenames());
}

TEST_F(Symbols, BuildIdsMatchReadelf) {
  const std::string readelf = PA_SYM_READELF;
  if (readelf.empty()) GTEST_SKIP() << "readelf not found at configure time";
  Start(Flavour::kLinked);
  auto p = FetchProto("heap");
  ASSERT_TRUE(p.has_value());
  ASSERT_GT(p->mapping_size(), 0);
  EXPECT_EQ(Str(*p, p->mapping(0).filename()),
            ProgramPath("sym_program_linked"));
  std::set<std::string> checked;
  for (const pb::Mapping& m : p->mapping()) {
    const std::string file = Str(*p, m.filename());
    if (file.empty() || file[0] != '/') continue;  // [vdso]
    std::string error;
    const std::string expected = ReadelfBuildId(readelf, file, &error);
    ASSERT_TRUE(error.empty()) << error;
    EXPECT_FALSE(expected.empty()) << file;
    EXPECT_EQ(Str(*p, m.build_id()), expected) << file;
    checked.insert(file);
  }
  EXPECT_TRUE(checked.count(ProgramPath("sym_program_linked")));
  EXPECT_TRUE(checked.count(kDlLibrary));
  EXPECT_TRUE(checked.count(AgentLibraryPath()));
  EXPECT_GE(checked.size(), 4u);  // + libc, libstdc++, ...
}

TEST_F(Symbols, DlopenedLibraryIsSymbolizedWhileLoadedAndAfterDlclose) {
  SKIP_WITHOUT_GO();
  Start(Flavour::kPreloaded);
  const std::string site = "sym_dl::AllocateInLibrary(int) " + kDlSource +
                           ":" + std::to_string(dl_line_);

  auto loaded = FetchProto("heap");
  ASSERT_TRUE(loaded.has_value());
  const pb::Mapping* lib = MappingNamed(*loaded, kDlLibrary);
  ASSERT_NE(lib, nullptr);
  EXPECT_TRUE(lib->has_functions() && lib->has_line_numbers());
  const std::string build_id = Str(*loaded, lib->build_id());
  EXPECT_FALSE(build_id.empty());
  const auto in_lib = LocationsIn(*loaded, "sym_dl::AllocateInLibrary(int)");
  ASSERT_FALSE(in_lib.empty());
  const uint64_t address = in_lib[0]->address();
  EXPECT_THAT(Pprof({"-traces", "-lines", "-sample_index=inuse_space",
                     Url("heap")}),
              HasSubstr(site));

  // Unload it; the program checks that the loader really unmapped it.
  ASSERT_EQ(kill(program_.process->pid(), SIGUSR1), 0);
  ASSERT_TRUE(program_.process->WaitForStdoutLine("DLCLOSED", kStartTimeout))
      << program_.process->out();
  // No code of it is mapped any more. (The agent's DWARF reader keeps a
  // read-only mapping of the file, which is not code and not in profiles.)
  std::ifstream maps("/proc/" + std::to_string(program_.process->pid()) + "/maps");
  const std::string maps_text((std::istreambuf_iterator<char>(maps)), {});
  for (const std::string& line : SplitLines(maps_text)) {
    if (line.find(kDlLibrary) == std::string::npos) continue;
    const std::string perms = line.substr(line.find(' ') + 1, 4);
    EXPECT_EQ(perms.find('x'), std::string::npos) << line;
  }

  // The blocks it allocated are still live; their stacks point into the
  // unloaded code and keep the library's mapping, file, build id and lines.
  std::string gz;
  auto unloaded = FetchProto("heap", &gz);
  ASSERT_TRUE(unloaded.has_value());
  const pb::Mapping* gone = MappingNamed(*unloaded, kDlLibrary);
  ASSERT_NE(gone, nullptr);
  EXPECT_EQ(Str(*unloaded, gone->build_id()), build_id);
  EXPECT_EQ(gone->memory_start(), lib->memory_start());
  EXPECT_EQ(gone->file_offset(), lib->file_offset());
  const auto still = LocationsIn(*unloaded, "sym_dl::AllocateInLibrary(int)");
  ASSERT_FALSE(still.empty());
  EXPECT_EQ(still[0]->address(), address);
  ASSERT_TRUE(WriteFile(tmp_.File("unloaded.pb.gz"), gz));
  const std::string top = Pprof({"-top", "-lines", "-sample_index=inuse_space",
                                 tmp_.File("unloaded.pb.gz")});
  EXPECT_THAT(LineWith(top, site), HasSubstr(kDlBytes)) << top;

  // /debug/pprof/symbol answers for it too, from the same symbolizer.
  char hex[32];
  std::snprintf(hex, sizeof(hex), "0x%llx", static_cast<unsigned long long>(address));
  const HttpResult symbol = HttpPost(program_.port, "/debug/pprof/symbol", hex);
  EXPECT_EQ(symbol.status, 200);
  EXPECT_THAT(symbol.body,
              HasSubstr(std::string(hex) + " sym_dl::AllocateInLibrary(int)\n"));

  // And the server is still up.
  EXPECT_EQ(HttpGet(program_.port, "/debug/pprof/").status, 200);
}

TEST_F(Symbols, RemoteSymbolizationNamesAProfileWithoutFunctions) {
  SKIP_WITHOUT_GO();
  Start(Flavour::kPreloaded);
  auto full = FetchProto("heap");
  ASSERT_TRUE(full.has_value());
  const pb::Profile stripped = WithoutSymbols(*full);
  ASSERT_EQ(stripped.function_size(), 0);
  SymbolProxy proxy(GzipBytes(stripped.SerializeAsString()), program_.port);
  ASSERT_GT(proxy.port(), 0);
  const std::string url =
      "http://127.0.0.1:" + std::to_string(proxy.port()) + "/debug/pprof/heap";

  // Without symbolization the stripped profile names nothing of ours.
  const std::string bare =
      Pprof({"-symbolize=none", "-traces", "-sample_index=inuse_space", url});
  EXPECT_THAT(bare, Not(HasSubstr("RetainBlocks"))) << bare;
  EXPECT_EQ(proxy.symbol_posts(), 0);

  // pprof POSTs the addresses to <profile URL>/../symbol, which reaches the
  // agent's /debug/pprof/symbol.
  const std::string named =
      Pprof({"-symbolize=remote", "-traces", "-sample_index=inuse_space", url});
  EXPECT_GT(proxy.symbol_posts(), 0);
  EXPECT_THAT(proxy.last_symbol_request(), HasSubstr("0x"));
  // Names only (the symbol endpoint's protocol has no lines), which pprof
  // shows without their parameter lists.
  EXPECT_THAT(named, HasSubstr("4MB   sym::RetainBlocks\n")) << named;
  EXPECT_THAT(named, HasSubstr("2MB   sym::CallsInlined\n")) << named;
  EXPECT_THAT(named, HasSubstr("sym_dl::AllocateInLibrary\n")) << named;
  EXPECT_THAT(named, HasSubstr(" main\n")) << named;
  EXPECT_THAT(proxy.last_symbol_response(), HasSubstr("num_symbols: 1\n"));
}

TEST_F(Symbols, OfflineSymbolizationFindsLinesWithTheBinaryAtHand) {
  SKIP_WITHOUT_GO();
  Start(Flavour::kPreloaded);
  auto full = FetchProto("heap");
  ASSERT_TRUE(full.has_value());
  const std::string file = tmp_.File("stripped.pb.gz");
  ASSERT_TRUE(WriteFile(file, GzipBytes(WithoutSymbols(*full).SerializeAsString())));
  // Offline: the program is gone; only its files remain.
  program_.process->CloseStdin();
  EXPECT_TRUE(program_.process->Wait(kExitTimeout).exited);

  const std::string bare =
      Pprof({"-symbolize=none", "-traces", "-lines", "-sample_index=inuse_space", file});
  EXPECT_THAT(bare, Not(HasSubstr(kProgramSource))) << bare;

  // pprof reads the files named by the mappings, at the offsets the
  // mappings give: right file names, offsets and bias make right lines.
  // (Go's own `go tool pprof` reads ELF files with Go's debug/dwarf, not
  // addr2line: names only where a subprogram DIE carries DW_AT_name itself
  // (not RetainBlocks, whose definition refers to its declaration), and no
  // inlined frames. Lines are what it does read.)
  const std::string forced = Pprof(
      {"-symbolize=force", "-traces", "-lines", "-sample_index=inuse_space", file});
  EXPECT_THAT(forced, HasSubstr(kProgramSource + ":" + std::to_string(retain_line_)))
      << forced;
  EXPECT_THAT(forced, HasSubstr(kProgramSource + ":" + std::to_string(inlined_line_)))
      << forced;
  EXPECT_THAT(forced, HasSubstr(kDlSource + ":" + std::to_string(dl_line_)))
      << forced;
  EXPECT_THAT(forced, HasSubstr("pa_sym_dl_allocate " + kDlSource + ":")) << forced;
}

// Not a test of size (no bound asserted): prints what file:line and inlined
// frames cost in the gzip bytes of one heap profile, for the issue's
// report. "Without lines" is the same profile as the agent wrote it before
// it read DWARF (symbols_util.h: WithoutLines), re-encoded and gzipped the
// same way (level 1) as the version with lines.
TEST_F(Symbols, ReportsProfileSizeWithAndWithoutLines) {
  Start(Flavour::kPreloaded);
  std::string served;
  auto p = FetchProto("allocs", &served);
  ASSERT_TRUE(p.has_value());
  const pb::Profile names_only = WithoutLines(*p);
  const std::string with_lines = GzipBytes(p->SerializeAsString());
  const std::string without_lines = GzipBytes(names_only.SerializeAsString());
  int inlined = 0;
  for (const pb::Location& loc : p->location()) inlined += loc.line_size() - 1;
  std::printf(
      "[ SIZE     ] allocs profile, %d samples, %d locations (%d inlined "
      "frames), %d functions: served %zu gzip bytes; re-encoded with lines "
      "%zu, without lines %zu (%d functions)\n",
      p->sample_size(), p->location_size(), inlined, p->function_size(),
      served.size(), with_lines.size(), without_lines.size(),
      names_only.function_size());
  RecordProperty("gzip_bytes_with_lines", std::to_string(with_lines.size()));
  RecordProperty("gzip_bytes_without_lines", std::to_string(without_lines.size()));
  EXPECT_GE(with_lines.size(), without_lines.size());
  if (*GoBinaryPath() != '\0') {
    // The stripped-down copy is still a profile pprof reads.
    ASSERT_TRUE(WriteFile(tmp_.File("names.pb.gz"), without_lines));
    EXPECT_THAT(Pprof({"-top", "-sample_index=alloc_space", tmp_.File("names.pb.gz")}),
                HasSubstr("sym::RetainBlocks"));
  }
}

}  // namespace
}  // namespace pprof_agent::integration
