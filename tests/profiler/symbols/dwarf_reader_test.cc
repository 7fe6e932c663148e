// Tests of profiler/symbols/dwarf_reader: where an object's DWARF is found (the
// object, the build-id tree, .gnu_debuglink; wrong builds refused) and what
// a lookup returns (file, line, column, inline chain innermost first), on the
// fixture library of tests/suites/symbols/fixtures in its stripped variants.
#include "profiler/symbols/dwarf_reader.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "profiler/symbols/symbolizer.h"
#include "tests/suites/symbols/fixtures/dwarf_fixture.h"

namespace pprof_agent::internal {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string Fixture(const std::string& name) {
  return std::string(PA_SYM_FIXTURE_DIR) + "/" + name;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The build id of an ELF file, through the symbolizer's own reader (tested
// against the loader's view in symbolizer_test).
std::string BuildIdOf(const std::string& path) {
  const std::string bytes = ReadAll(path);
  return ReadBuildId(reinterpret_cast<const uint8_t*>(bytes.data()),
                     bytes.size());
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "pa_dwarf.XXXXXX").string();
    path_ = mkdtemp(pattern.data()) != nullptr ? pattern : "";
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The fixture's site as it ran, with `pc` made a link-time address of the
// file it came from (what the symbolizer hands the reader).
struct Site {
  PaDwarfFixtureSite site{};
  uint64_t vaddr = 0;
};

// dlopens `path` (RTLD_LOCAL, so that each variant is its own object), runs
// the fixture and closes it again.
Site RunFixture(const std::string& path) {
  Site out;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  EXPECT_NE(handle, nullptr) << dlerror();
  if (handle == nullptr) return out;
  auto fn = reinterpret_cast<PaDwarfFixtureSiteFn>(
      dlsym(handle, "pa_dwarf_fixture_site"));
  EXPECT_NE(fn, nullptr);
  if (fn != nullptr) {
    fn(&out.site);
    Dl_info info;
    EXPECT_NE(dladdr(reinterpret_cast<void*>(out.site.pc), &info), 0);
    // A shared library's first segment is at vaddr 0: base = load bias.
    out.vaddr = out.site.pc - reinterpret_cast<uint64_t>(info.dli_fbase);
  }
  dlclose(handle);
  return out;
}

// The three frames of the fixture's site, innermost first.
void ExpectFixtureFrames(const std::vector<FrameInfo>& frames,
                         const PaDwarfFixtureSite& site) {
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].name, "pa_fixture::FixtureLeaf(PaDwarfFixtureSite*)");
  EXPECT_EQ(frames[0].system_name, "_ZN10pa_fixture11FixtureLeafEP18PaDwarfFixtureSite");
  EXPECT_EQ(frames[0].line, site.leaf_line);
  EXPECT_GT(frames[0].column, 0);
  EXPECT_EQ(frames[0].start_line, site.leaf_decl_line);
  EXPECT_EQ(frames[1].name, "pa_fixture::FixtureMiddle(PaDwarfFixtureSite*)");
  EXPECT_EQ(frames[1].line, site.middle_line);
  EXPECT_GT(frames[1].column, 0);
  EXPECT_EQ(frames[1].start_line, site.middle_decl_line);
  EXPECT_EQ(frames[2].name, "pa_fixture::FixtureOuter(PaDwarfFixtureSite*)");
  EXPECT_EQ(frames[2].line, site.outer_line);
  EXPECT_EQ(frames[2].start_line, site.outer_decl_line);
  for (const FrameInfo& f : frames) {
    EXPECT_THAT(f.file, EndsWith("tests/suites/symbols/fixtures/dwarf_fixture.cc"));
    EXPECT_EQ(f.file[0], '/') << "CMake compiles with absolute paths";
  }
}

// --- paths and CRC -------------------------------------------------------------

TEST(BuildIdDebugPath, SplitsTheFirstByteIntoADirectory) {
  EXPECT_EQ(BuildIdDebugPath("/usr/lib/debug", "93ac61ec5a8e"),
            "/usr/lib/debug/.build-id/93/ac61ec5a8e.debug");
  EXPECT_EQ(BuildIdDebugPath("/root/", "abcd"), "/root/.build-id/ab/cd.debug");
}

TEST(BuildIdDebugPath, RejectsWhatCouldNotBeABuildId) {
  EXPECT_EQ(BuildIdDebugPath("/r", ""), "");
  EXPECT_EQ(BuildIdDebugPath("/r", "abc"), "");
  EXPECT_EQ(BuildIdDebugPath("/r", "ab/../../etc"), "");
  EXPECT_EQ(BuildIdDebugPath("/r", "ABCDEF"), "");  // we only write lowercase
  EXPECT_EQ(BuildIdDebugPath("", "abcdef"), "");
}

TEST(DebugLinkCandidates, LooksBesideInDotDebugAndUnderTheRoot) {
  EXPECT_THAT(DebugLinkCandidates("/usr/lib/debug", "/usr/lib/x/libfoo.so.1",
                                  "libfoo.so.1.debug"),
              ElementsAre("/usr/lib/x/libfoo.so.1.debug",
                          "/usr/lib/x/.debug/libfoo.so.1.debug",
                          "/usr/lib/debug/usr/lib/x/libfoo.so.1.debug"));
  EXPECT_THAT(DebugLinkCandidates("/d", "relative.so", "r.debug"),
              ElementsAre("./r.debug", "./.debug/r.debug"));
}

TEST(DebugLinkCandidates, RefusesLinksThatAreNotPlainFileNames) {
  EXPECT_THAT(DebugLinkCandidates("/d", "/a/b.so", ""), IsEmpty());
  EXPECT_THAT(DebugLinkCandidates("/d", "/a/b.so", ".."), IsEmpty());
  EXPECT_THAT(DebugLinkCandidates("/d", "/a/b.so", "../../etc/passwd"), IsEmpty());
  EXPECT_THAT(DebugLinkCandidates("/d", "/a/b.so", "/etc/passwd"), IsEmpty());
}

TEST(DebugLinkCrc32, IsTheIeeeCrc) {
  const std::string check = "123456789";
  EXPECT_EQ(DebugLinkCrc32(0, reinterpret_cast<const uint8_t*>(check.data()),
                           check.size()),
            0xcbf43926u);
  // Incremental use gives the same answer.
  const auto* p = reinterpret_cast<const uint8_t*>(check.data());
  EXPECT_EQ(DebugLinkCrc32(DebugLinkCrc32(0, p, 4), p + 4, 5), 0xcbf43926u);
  EXPECT_EQ(DebugLinkCrc32(0, nullptr, 0), 0u);
}

// --- finding the DWARF ---------------------------------------------------------

TEST(DwarfReader, ReadsTheObjectsOwnDwarf) {
  const std::string path = Fixture("libpa_dwarf_fixture.so");
  const std::string id = BuildIdOf(path);
  ASSERT_FALSE(id.empty());
  auto reader = DwarfReader::Open(path, id);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->source(), DebugInfoSource::kObject);
  EXPECT_EQ(reader->path(), path);

  const Site site = RunFixture(path);
  std::vector<FrameInfo> frames;
  ASSERT_TRUE(reader->Lookup(site.vaddr, &frames));
  ExpectFixtureFrames(frames, site.site);
}

TEST(DwarfReader, FollowsGnuDebugLinkOfAStrippedObject) {
  const std::string path = Fixture("libpa_dwarf_fixture_debuglink.so");
  auto reader = DwarfReader::Open(path, BuildIdOf(path));
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->source(), DebugInfoSource::kDebugLink);
  EXPECT_EQ(reader->path(), Fixture(".debug/libpa_dwarf_fixture_debuglink.so.debug"));
  size_t size = 0;
  EXPECT_NE(reader->Image(&size), nullptr);
  EXPECT_GT(size, 0u);

  const Site site = RunFixture(path);
  std::vector<FrameInfo> frames;
  ASSERT_TRUE(reader->Lookup(site.vaddr, &frames));
  ExpectFixtureFrames(frames, site.site);
}

TEST(DwarfReader, ChecksTheDebugLinkCrcWhenThereIsNoBuildId) {
  const std::string path = Fixture("libpa_dwarf_fixture_noid_debuglink.so");
  ASSERT_EQ(BuildIdOf(path), "");
  auto reader = DwarfReader::Open(path, "");
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->source(), DebugInfoSource::kDebugLink);

  // The same debug file with one byte more no longer has the recorded CRC.
  TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  fs::copy_file(path, tmp.path() + "/lib.so");
  fs::create_directory(tmp.path() + "/.debug");
  const std::string debug_name =
      tmp.path() + "/.debug/libpa_dwarf_fixture_noid_debuglink.so.debug";
  fs::copy_file(Fixture(".debug/libpa_dwarf_fixture_noid_debuglink.so.debug"),
                debug_name);
  EXPECT_NE(DwarfReader::Open(tmp.path() + "/lib.so", ""), nullptr);
  std::ofstream(debug_name, std::ios::app) << '\n';
  EXPECT_EQ(DwarfReader::Open(tmp.path() + "/lib.so", "", tmp.path()), nullptr);
}

TEST(DwarfReader, RefusesADebugLinkTargetOfAnotherBuild) {
  // libc's debug file under the fixture's link name: DWARF, but another
  // build id, so its lines would describe other code.
  const std::string libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
  const std::string libc_debug = BuildIdDebugPath(kDefaultDebugRoot, BuildIdOf(libc));
  if (libc_debug.empty() || !fs::exists(libc_debug)) {
    GTEST_SKIP() << "libc6-dbg not installed";
  }
  TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  const std::string lib = tmp.path() + "/lib.so";
  fs::copy_file(Fixture("libpa_dwarf_fixture_debuglink.so"), lib);
  fs::create_directory(tmp.path() + "/.debug");
  fs::copy_file(libc_debug,
                tmp.path() + "/.debug/libpa_dwarf_fixture_debuglink.so.debug");
  EXPECT_EQ(DwarfReader::Open(lib, BuildIdOf(lib), tmp.path()), nullptr);
}

TEST(DwarfReader, FindsTheBuildIdDebugFileUnderTheRoot) {
  const std::string path = Fixture("libpa_dwarf_fixture_nodebug.so");
  const std::string id = BuildIdOf(path);
  ASSERT_FALSE(id.empty());
  TempDir root;
  ASSERT_FALSE(root.path().empty());
  // Without the debug file there is no DWARF to find.
  EXPECT_EQ(DwarfReader::Open(path, id, root.path()), nullptr);

  const std::string debug = BuildIdDebugPath(root.path(), id);
  fs::create_directories(fs::path(debug).parent_path());
  fs::copy_file(Fixture("libpa_dwarf_fixture.debug"), debug);
  auto reader = DwarfReader::Open(path, id, root.path());
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->source(), DebugInfoSource::kBuildIdDir);
  EXPECT_EQ(reader->path(), debug);

  const Site site = RunFixture(path);
  std::vector<FrameInfo> frames;
  ASSERT_TRUE(reader->Lookup(site.vaddr, &frames));
  ExpectFixtureFrames(frames, site.site);

  // Asked for another build id, the same file is not taken.
  std::string other = id;
  other[0] = other[0] == '0' ? '1' : '0';
  EXPECT_EQ(DwarfReader::Open(path, other, root.path()), nullptr);
}

TEST(DwarfReader, FindsLibcDebugInfoFromLibc6Dbg) {
  const std::string libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
  const std::string id = BuildIdOf(libc);
  if (id.empty() || !fs::exists(BuildIdDebugPath(kDefaultDebugRoot, id))) {
    GTEST_SKIP() << "libc6-dbg not installed";
  }
  auto reader = DwarfReader::Open(libc, id);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->source(), DebugInfoSource::kBuildIdDir);
}

TEST(DwarfReader, ObjectReplacedOnDiskIsNotReadForTheLoadedBuild) {
  const std::string path = Fixture("libpa_dwarf_fixture.so");
  std::string other = BuildIdOf(path);
  other[0] = other[0] == '0' ? '1' : '0';
  TempDir root;  // an empty root: no build-id file either
  EXPECT_EQ(DwarfReader::Open(path, other, root.path()), nullptr);
}

TEST(DwarfReader, NoDwarfAnywhereIsNull) {
  TempDir root;
  const std::string path = Fixture("libpa_dwarf_fixture_nodebug.so");
  EXPECT_EQ(DwarfReader::Open(path, BuildIdOf(path), root.path()), nullptr);
  EXPECT_EQ(DwarfReader::Open("/nonexistent/lib.so", "", root.path()), nullptr);
  EXPECT_EQ(DwarfReader::Open("/proc/self/maps", "", root.path()), nullptr);
  EXPECT_EQ(DwarfReader::Open("", "", root.path()), nullptr);
}

// --- lookups -------------------------------------------------------------------

TEST(DwarfReader, AddressOutsideEveryCompileUnitIsNotFound) {
  const std::string path = Fixture("libpa_dwarf_fixture.so");
  auto reader = DwarfReader::Open(path, BuildIdOf(path));
  ASSERT_NE(reader, nullptr);
  std::vector<FrameInfo> frames;
  for (uint64_t vaddr : {uint64_t{0}, uint64_t{1}, uint64_t{0x40}, ~uint64_t{0}}) {
    EXPECT_FALSE(reader->Lookup(vaddr, &frames)) << vaddr;
  }
  EXPECT_THAT(frames, IsEmpty());
  EXPECT_EQ(reader->lookups(), 4u);
}

TEST(DwarfReader, KeepsReadingAfterTheFileIsDeleted) {
  TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  const std::string path = tmp.path() + "/libcopy.so";
  fs::copy_file(Fixture("libpa_dwarf_fixture.so"), path);
  const Site site = RunFixture(path);
  auto reader = DwarfReader::Open(path, BuildIdOf(path));
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(fs::remove(path));
  // The DWARF was not read yet: the first lookup reads it from the file
  // mapped since Open().
  std::vector<FrameInfo> frames;
  ASSERT_TRUE(reader->Lookup(site.vaddr, &frames));
  ExpectFixtureFrames(frames, site.site);
}

TEST(DwarfReader, KeepsNoFileDescriptor) {
  auto open_fds = [] {
    return std::distance(fs::directory_iterator("/proc/self/fd"),
                         fs::directory_iterator());
  };
  const auto before = open_fds();
  std::vector<std::unique_ptr<DwarfReader>> readers;
  for (const char* variant :
       {"libpa_dwarf_fixture.so", "libpa_dwarf_fixture_debuglink.so",
        "libpa_dwarf_fixture_noid_debuglink.so"}) {
    const std::string path = Fixture(variant);
    readers.push_back(DwarfReader::Open(path, BuildIdOf(path)));
    ASSERT_NE(readers.back(), nullptr) << variant;
    std::vector<FrameInfo> frames;
    readers.back()->Lookup(0x1000, &frames);  // parses the DWARF
  }
  EXPECT_EQ(open_fds(), before);
}

TEST(DwarfReader, EveryAddressOfTheFixtureResolvesWithoutCrashing) {
  const std::string path = Fixture("libpa_dwarf_fixture.so");
  auto reader = DwarfReader::Open(path, BuildIdOf(path));
  ASSERT_NE(reader, nullptr);
  const Site site = RunFixture(path);
  int found = 0;
  for (uint64_t a = site.vaddr & ~uint64_t{0xfff}; a < (site.vaddr | 0xfff); ++a) {
    std::vector<FrameInfo> frames;
    if (reader->Lookup(a, &frames)) {
      ++found;
      ASSERT_FALSE(frames.empty());
      EXPECT_GE(frames.back().line, 0);
    }
  }
  EXPECT_GT(found, 16);
}

}  // namespace
}  // namespace pprof_agent::internal
