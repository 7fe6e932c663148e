// Tests of the cold-path symbolizer: /proc/self/maps parsing, build-id notes
// (against the loader's view of this very binary and against hostile input),
// name resolution in the executable, libc, the vdso and an unloaded library,
// and source lines with inlined frames from DWARF (this binary's, libc's
// from libc6-dbg, and the fixture library's in its stripped variants).
#include "profiler/symbols/symbolizer.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/suites/symbols/fixtures/dwarf_fixture.h"

namespace pa_symbolizer_test {

volatile int g_sink = 0;

// Returns the address of the call instruction in its caller (return address
// minus one, as the profile builder adjusts it).
[[gnu::noinline]] uint64_t CallerPc() {
  const auto pc = reinterpret_cast<uint64_t>(__builtin_return_address(0)) - 1;
  g_sink = g_sink + 1;
  return pc;
}

// A function whose own body holds the PC returned: the store after the call
// keeps the call from becoming a tail jump.
constexpr int kKnownFunctionDeclLine = __LINE__ + 2;
constexpr int kKnownFunctionCallLine = __LINE__ + 2;
[[gnu::noinline]] uint64_t KnownFunction(int x) {
  const uint64_t pc = CallerPc();
  g_sink = g_sink + x;
  return pc;
}

}  // namespace pa_symbolizer_test

namespace pprof_agent::internal {
namespace {

using ::testing::AnyOf;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<uint8_t> ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::string SelfExePath() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// An implementation independent of the one under test: the build id of the
// main program as the loader mapped it (its PT_NOTE in memory).
std::string LoadedMainBuildId() {
  std::string id;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* arg) {
        auto* out = static_cast<std::string*>(arg);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_NOTE) continue;
          const auto* p =
              reinterpret_cast<const uint8_t*>(info->dlpi_addr + ph.p_vaddr);
          const size_t align = ph.p_align == 8 ? 8 : 4;
          size_t pos = 0;
          while (pos + sizeof(ElfW(Nhdr)) <= ph.p_memsz) {
            ElfW(Nhdr) nh;
            std::memcpy(&nh, p + pos, sizeof(nh));
            const size_t name = pos + sizeof(nh);
            const size_t desc = (name + nh.n_namesz + align - 1) & ~(align - 1);
            if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
                std::memcmp(p + name, "GNU", 4) == 0) {
              static const char kHex[] = "0123456789abcdef";
              for (size_t j = 0; j < nh.n_descsz; ++j) {
                out->push_back(kHex[p[desc + j] >> 4]);
                out->push_back(kHex[p[desc + j] & 15]);
              }
              return 1;
            }
            pos = (desc + nh.n_descsz + align - 1) & ~(align - 1);
          }
        }
        return 1;  // the first object is the main program
      },
      &id);
  return id;
}

// --- ParseProcMaps -----------------------------------------------------------

constexpr char kSampleMaps[] =
    "55d0c0a00000-55d0c0a04000 r--p 00000000 fe:00 1234   /usr/bin/server\n"
    "55d0c0a04000-55d0c0a80000 r-xp 00004000 fe:00 1234   /usr/bin/server\n"
    "55d0c0a80000-55d0c0a90000 r--p 00080000 fe:00 1234   /usr/bin/server\n"
    "55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0      [heap]\n"
    "7f0000000000-7f0000100000 rwxp 00000000 00:00 0 \n"
    "7fcc839bf000-7fcc83b15000 r-xp 00026000 fe:00 332835 "
    "/usr/lib/x86_64-linux-gnu/libc.so.6\n"
    "7fcc83b20000-7fcc83b30000 r-xp 00001000 fe:00 4242 "
    "/opt/my lib/libsp ace.so (deleted)\n"
    "7fcc83c28000-7fcc83c2a000 r-xp 00000000 00:00 0 [vdso]\n"
    "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]\n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]\n";

TEST(ParseProcMaps, KeepsExecutableMappingsWithMainFirst) {
  const std::vector<MappingInfo> maps = ParseProcMaps(kSampleMaps);
  ASSERT_EQ(maps.size(), 4u);
  EXPECT_EQ(maps[0].path, "/usr/bin/server");
  EXPECT_EQ(maps[0].start, 0x55d0c0a04000u);
  EXPECT_EQ(maps[0].limit, 0x55d0c0a80000u);
  EXPECT_EQ(maps[0].offset, 0x4000u);
  EXPECT_EQ(maps[1].path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
  EXPECT_EQ(maps[1].offset, 0x26000u);
  // Spaces inside the path survive; the kernel's " (deleted)" does not.
  EXPECT_EQ(maps[2].path, "/opt/my lib/libsp ace.so");
  EXPECT_EQ(maps[3].path, "[vdso]");
  for (const MappingInfo& m : maps) {
    EXPECT_TRUE(m.build_id.empty());
    EXPECT_FALSE(m.has_functions);
  }
}

TEST(ParseProcMaps, MovesFirstFileMappingToFrontWhenPseudoComesFirst) {
  const std::vector<MappingInfo> maps = ParseProcMaps(
      "1000-2000 r-xp 00000000 00:00 0 [vdso]\n"
      "3000-4000 r-xp 00001000 08:01 7 /bin/app\n"
      "5000-6000 r-xp 00001000 08:01 8 /lib/libx.so\n"
      "7000-8000 r-xp 00009000 08:01 7 /bin/app\n");
  ASSERT_EQ(maps.size(), 4u);
  EXPECT_EQ(maps[0].start, 0x3000u);
  EXPECT_EQ(maps[1].start, 0x7000u);
  EXPECT_EQ(maps[2].path, "[vdso]");
  EXPECT_EQ(maps[3].path, "/lib/libx.so");
}

TEST(ParseProcMaps, SkipsMalformedLines) {
  const std::vector<MappingInfo> maps = ParseProcMaps(
      "\n"
      "garbage\n"
      "zzzz-2000 r-xp 00000000 08:01 7 /bad/start\n"
      "1000-zzzz r-xp 00000000 08:01 7 /bad/end\n"
      "2000-1000 r-xp 00000000 08:01 7 /bad/reversed\n"
      "1000-1000 r-xp 00000000 08:01 7 /bad/empty\n"
      "10000000000000000-10000000000000001 r-xp 0 08:01 7 /bad/overflow\n"
      "1000-2000 r-x 00000000 08:01 7 /bad/perms\n"
      "1000-2000 rqxp 00000000 08:01 7 /bad/perms2\n"
      "1000-2000 r-xp 00000000 0801 7 /bad/dev\n"
      "1000-2000 r-xp 00000000 08:01 /bad/inode\n"
      "1000-2000 r-xp 00000000 08:01 7x /bad/inode2\n"
      "1000-2000 r-xp\n"
      "1000-2000\n"
      "-\n"
      "1000-2000 r-xp 00000000 08:01 7 /good/one\r\n"
      "3000-4000 r-xp 00000000 08:01 7 /good/last-without-newline");
  ASSERT_EQ(maps.size(), 2u);
  EXPECT_EQ(maps[0].path, "/good/one");
  EXPECT_EQ(maps[1].path, "/good/last-without-newline");
}

TEST(ParseProcMaps, SurvivesRandomAndMutatedInput) {
  std::mt19937 rng(12345);
  const std::string base = kSampleMaps;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string text = base;
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % text.size();
      switch (rng() % 3) {
        case 0:
          text[pos] = static_cast<char>(rng());
          break;
        case 1:
          text.erase(pos, rng() % 16);
          break;
        default:
          text.insert(pos, 1, "0123456789abcdef-: \n/[]x"[rng() % 24]);
      }
      if (text.empty()) text = "x";
    }
    const std::vector<MappingInfo> maps = ParseProcMaps(text);
    for (const MappingInfo& m : maps) {
      EXPECT_LT(m.start, m.limit);
      EXPECT_FALSE(m.path.empty());
    }
  }
  std::string noise(4096, '\0');
  for (int iter = 0; iter < 200; ++iter) {
    for (char& c : noise) c = static_cast<char>(rng());
    ParseProcMaps(noise);
  }
}

// --- ReadBuildId -------------------------------------------------------------

// A minimal ELF64 image whose build id sits after another note, in a PT_NOTE
// segment or (with `as_section`) only in a SHT_NOTE section.
std::vector<uint8_t> MakeElf(const std::vector<uint8_t>& id, bool as_section,
                             uint32_t align) {
  std::vector<uint8_t> notes;
  auto put32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i)
      notes.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  auto pad = [&] {
    while (notes.size() % align != 0) notes.push_back(0);
  };
  // An unrelated GNU note first (ABI tag), so the walker must skip one.
  put32(4), put32(16), put32(NT_GNU_ABI_TAG);
  notes.insert(notes.end(), {'G', 'N', 'U', 0});
  pad();
  for (int i = 0; i < 16; ++i) notes.push_back(static_cast<uint8_t>(i));
  pad();
  put32(4), put32(static_cast<uint32_t>(id.size())), put32(NT_GNU_BUILD_ID);
  notes.insert(notes.end(), {'G', 'N', 'U', 0});
  pad();
  notes.insert(notes.end(), id.begin(), id.end());
  pad();

  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_DYN;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  const uint64_t notes_off = 0x100;
  std::vector<uint8_t> out(notes_off + notes.size());
  std::memcpy(out.data() + notes_off, notes.data(), notes.size());
  if (as_section) {
    eh.e_shoff = out.size();
    eh.e_shentsize = sizeof(Elf64_Shdr);
    eh.e_shnum = 2;
    Elf64_Shdr sh[2] = {};
    sh[1].sh_type = SHT_NOTE;
    sh[1].sh_offset = notes_off;
    sh[1].sh_size = notes.size();
    sh[1].sh_addralign = align;
    const auto* b = reinterpret_cast<const uint8_t*>(sh);
    out.insert(out.end(), b, b + sizeof(sh));
  } else {
    eh.e_phoff = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 1;
    Elf64_Phdr ph{};
    ph.p_type = PT_NOTE;
    ph.p_offset = notes_off;
    ph.p_filesz = ph.p_memsz = notes.size();
    ph.p_align = align;
    std::memcpy(out.data() + eh.e_phoff, &ph, sizeof(ph));
  }
  std::memcpy(out.data(), &eh, sizeof(eh));
  return out;
}

const std::vector<uint8_t> kId = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x23, 0x45,
                                  0x67, 0x89, 0xab, 0xcd, 0xef, 0x00, 0x11,
                                  0x22, 0x33, 0x44, 0x55, 0x66, 0x77};
constexpr char kIdHex[] = "deadbeef0123456789abcdef0011223344556677";

TEST(ReadBuildId, ReadsNoteFromProgramHeaders) {
  const std::vector<uint8_t> elf = MakeElf(kId, /*as_section=*/false, 4);
  EXPECT_EQ(ReadBuildId(elf.data(), elf.size()), kIdHex);
}

TEST(ReadBuildId, ReadsEightByteAlignedNotes) {
  const std::vector<uint8_t> elf = MakeElf(kId, /*as_section=*/false, 8);
  EXPECT_EQ(ReadBuildId(elf.data(), elf.size()), kIdHex);
}

TEST(ReadBuildId, ReadsNoteSectionWithoutProgramHeaders) {
  const std::vector<uint8_t> elf = MakeElf(kId, /*as_section=*/true, 4);
  EXPECT_EQ(ReadBuildId(elf.data(), elf.size()), kIdHex);
}

TEST(ReadBuildId, RejectsAnythingButLittleEndianElf64) {
  EXPECT_EQ(ReadBuildId(nullptr, 0), "");
  EXPECT_EQ(ReadBuildId(nullptr, 100), "");
  const std::vector<uint8_t> good = MakeElf(kId, false, 4);
  std::vector<uint8_t> bad = good;
  bad[0] = 0x7e;
  EXPECT_EQ(ReadBuildId(bad.data(), bad.size()), "");
  bad = good;
  bad[EI_CLASS] = ELFCLASS32;
  EXPECT_EQ(ReadBuildId(bad.data(), bad.size()), "");
  bad = good;
  bad[EI_DATA] = ELFDATA2MSB;
  EXPECT_EQ(ReadBuildId(bad.data(), bad.size()), "");
  const std::string text = "#!/bin/sh\necho not an elf file at all, honest\n";
  EXPECT_EQ(
      ReadBuildId(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
      "");
}

TEST(ReadBuildId, SurvivesCorruptedImages) {
  std::mt19937 rng(777);
  for (bool as_section : {false, true}) {
    const std::vector<uint8_t> good = MakeElf(kId, as_section, 4);
    for (int iter = 0; iter < 20000; ++iter) {
      std::vector<uint8_t> elf = good;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        // Favour 0xff and 0x00 bytes: they make sizes and offsets extreme.
        const uint32_t r = rng();
        elf[rng() % elf.size()] = r % 3 == 0   ? 0xff
                                  : r % 3 == 1 ? 0x00
                                               : static_cast<uint8_t>(r >> 8);
      }
      // Exact-size heap copy so that a sanitizer sees any overrun.
      const size_t n = rng() % 4 == 0 ? rng() % (elf.size() + 1) : elf.size();
      std::vector<uint8_t> exact(elf.begin(), elf.begin() + n);
      const std::string id = ReadBuildId(exact.data(), exact.size());
      EXPECT_LE(id.size(), 2048u);
    }
  }
}

TEST(ReadBuildId, MatchesLoadedNoteOfOwnExecutable) {
  const std::string loaded = LoadedMainBuildId();
  ASSERT_FALSE(loaded.empty()) << "test binary linked without --build-id?";
  const std::vector<uint8_t> file = ReadFileBytes("/proc/self/exe");
  ASSERT_FALSE(file.empty());
  EXPECT_EQ(ReadBuildId(file.data(), file.size()), loaded);
}

TEST(ReadBuildId, TruncatedImageYieldsEmptyOrTheFullId) {
  const std::string expected = LoadedMainBuildId();
  const std::vector<uint8_t> file = ReadFileBytes("/proc/self/exe");
  ASSERT_FALSE(file.empty());
  std::vector<size_t> sizes;
  for (size_t n = 0; n <= std::min<size_t>(file.size(), 4096); ++n) {
    sizes.push_back(n);
  }
  for (int i = 0; i <= 64; ++i) sizes.push_back(file.size() * i / 64);
  for (size_t n : sizes) {
    std::vector<uint8_t> exact(file.begin(), file.begin() + n);
    const std::string id = ReadBuildId(exact.data(), exact.size());
    EXPECT_THAT(id, AnyOf("", expected)) << "size " << n;
  }
}

// --- Symbolizer --------------------------------------------------------------

TEST(Symbolizer, MainExecutableIsFirstMappingWithItsBuildId) {
  Symbolizer symbolizer;
  const std::vector<MappingInfo> maps = symbolizer.Mappings();
  ASSERT_FALSE(maps.empty());
  EXPECT_EQ(maps[0].path, SelfExePath());
  EXPECT_EQ(maps[0].build_id, LoadedMainBuildId());
  EXPECT_TRUE(maps[0].has_functions);
  // Built with -g (tests/suites/symbols.cmake).
  EXPECT_TRUE(maps[0].has_filenames);
  EXPECT_TRUE(maps[0].has_line_numbers);
  EXPECT_TRUE(maps[0].has_inline_frames);
  for (const MappingInfo& m : maps) EXPECT_NE(m.path, "[vsyscall]");
}

TEST(Symbolizer, ResolvesOwnFunctionByNameFileAndLine) {
  Symbolizer symbolizer;
  const uint64_t pc = pa_symbolizer_test::KnownFunction(1);
  const auto entry =
      reinterpret_cast<uint64_t>(&pa_symbolizer_test::KnownFunction);
  ASSERT_GT(pc, entry);  // an interior address, not the symbol's start

  for (uint64_t address : {entry, pc}) {
    const LocationInfo loc = symbolizer.Symbolize(address);
    EXPECT_EQ(loc.mapping, 0);
    ASSERT_EQ(loc.frames.size(), 1u);
    EXPECT_EQ(loc.frames[0].name, "pa_symbolizer_test::KnownFunction(int)");
    EXPECT_EQ(loc.frames[0].system_name,
              "_ZN18pa_symbolizer_test13KnownFunctionEi");
    EXPECT_THAT(loc.frames[0].file, EndsWith("tests/profiler/symbols/symbolizer_test.cc"));
    EXPECT_EQ(loc.frames[0].start_line, pa_symbolizer_test::kKnownFunctionDeclLine);
  }
  // The entry is on the declaration's line (or the next, the prologue's);
  // the call on its own.
  EXPECT_THAT(symbolizer.Symbolize(entry).frames[0].line,
              AnyOf(pa_symbolizer_test::kKnownFunctionDeclLine,
                    pa_symbolizer_test::kKnownFunctionDeclLine + 1));
  EXPECT_EQ(symbolizer.Symbolize(pc).frames[0].line,
            pa_symbolizer_test::kKnownFunctionCallLine);
  EXPECT_GT(symbolizer.Symbolize(pc).frames[0].column, 0);
}

TEST(Symbolizer, ResolvesLibcFunction) {
  Symbolizer symbolizer;
  const auto address = reinterpret_cast<uint64_t>(&getpid);
  const LocationInfo loc = symbolizer.Symbolize(address + 1);
  ASSERT_GE(loc.mapping, 0);
  const std::vector<MappingInfo> maps = symbolizer.Mappings();
  ASSERT_LT(static_cast<size_t>(loc.mapping), maps.size());
  EXPECT_THAT(maps[loc.mapping].path, HasSubstr("libc.so"));
  EXPECT_FALSE(maps[loc.mapping].build_id.empty());
  EXPECT_TRUE(maps[loc.mapping].has_functions);
  ASSERT_EQ(loc.frames.size(), 1u);
  // glibc defines getpid as a weak alias of __getpid; the plainer name wins.
  EXPECT_EQ(loc.frames[0].system_name, "getpid");
  EXPECT_EQ(loc.frames[0].name, "getpid");
}

TEST(Symbolizer, DropsSymbolVersionFromNames) {
  // With libc6-dbg installed libc's names come from its debug file, whose
  // .symtab spells this one "fclose@@GLIBC_2.2.5" (next to _IO_fclose).
  Symbolizer symbolizer;
  const LocationInfo loc =
      symbolizer.Symbolize(reinterpret_cast<uint64_t>(&fclose) + 1);
  ASSERT_EQ(loc.frames.size(), 1u);
  EXPECT_EQ(loc.frames[0].system_name, "fclose");
  EXPECT_EQ(loc.frames[0].name, "fclose");
}

TEST(Symbolizer, DemanglesStandardLibraryFunctions) {
  Symbolizer symbolizer;
  // A non-inline libstdc++ function, reached through its mangled name.
  void* sym = dlsym(RTLD_DEFAULT, "_ZSt9terminatev");
  ASSERT_NE(sym, nullptr);
  const LocationInfo loc =
      symbolizer.Symbolize(reinterpret_cast<uint64_t>(sym));
  ASSERT_EQ(loc.frames.size(), 1u);
  EXPECT_EQ(loc.frames[0].system_name, "_ZSt9terminatev");
  EXPECT_EQ(loc.frames[0].name, "std::terminate()");
}

TEST(Symbolizer, AddressOutsideAnyMappingIsUnknown) {
  Symbolizer symbolizer;
  int on_stack = 0;
  for (uint64_t address :
       {uint64_t{0}, uint64_t{8}, reinterpret_cast<uint64_t>(&on_stack),
        ~uint64_t{0}}) {
    const LocationInfo loc = symbolizer.Symbolize(address);
    EXPECT_EQ(loc.mapping, -1);
    EXPECT_TRUE(loc.frames.empty());
  }
}

TEST(Symbolizer, ResolvesVdsoFunctions) {
  Symbolizer symbolizer;
  const uint64_t base = getauxval(AT_SYSINFO_EHDR);
  if (base == 0) GTEST_SKIP() << "no vdso";
  const std::vector<MappingInfo> maps = symbolizer.Mappings();
  auto vdso = std::find_if(maps.begin(), maps.end(), [](const MappingInfo& m) {
    return m.path == "[vdso]";
  });
  ASSERT_NE(vdso, maps.end());
  EXPECT_EQ(vdso->start, base);
  EXPECT_TRUE(vdso->has_functions);
  std::vector<std::string> names;
  for (uint64_t a = vdso->start; a < vdso->limit; a += 4) {
    const LocationInfo loc = symbolizer.Symbolize(a);
    EXPECT_EQ(loc.mapping, vdso - maps.begin());
    for (const FrameInfo& f : loc.frames) names.push_back(f.system_name);
  }
  EXPECT_THAT(names, ::testing::Contains(HasSubstr("clock_gettime")));
}

// --- the fixture library (tests/suites/symbols/fixtures) ----------------------

std::string Fixture(const std::string& name) {
  return std::string(PA_SYM_FIXTURE_DIR) + "/" + name;
}

// A private copy of a fixture variant in a temporary directory: each test
// loads its own file, so no test sees another's object (the symbolizer
// caches objects by path and build id) and files may be deleted.
class FixtureCopy {
 public:
  explicit FixtureCopy(const std::string& variant) {
    std::string pattern = "/tmp/pa_symbolizer_test.XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) return;
    dir_ = pattern;
    path_ = dir_ + "/" + variant;
    std::filesystem::copy_file(Fixture(variant), path_);
    const std::string debug = Fixture(".debug/" + variant + ".debug");
    if (std::filesystem::exists(debug)) {
      std::filesystem::create_directory(dir_ + "/.debug");
      std::filesystem::copy_file(debug, dir_ + "/.debug/" + variant + ".debug");
    }
  }
  ~FixtureCopy() {
    if (handle_ != nullptr) dlclose(handle_);
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  const std::string& path() const { return path_; }
  const std::string& dir() const { return dir_; }

  // dlopens the copy and runs its site; false on failure.
  bool LoadAndRun(PaDwarfFixtureSite* site) {
    handle_ = dlopen(path_.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) return false;
    auto fn = reinterpret_cast<PaDwarfFixtureSiteFn>(
        dlsym(handle_, "pa_dwarf_fixture_site"));
    if (fn == nullptr) return false;
    entry_ = reinterpret_cast<uint64_t>(fn);
    fn(site);
    return true;
  }
  uint64_t entry() const { return entry_; }

  // dlcloses it; true when the loader really unmapped it.
  bool Unload() {
    if (handle_ == nullptr || dlclose(handle_) != 0) return false;
    handle_ = nullptr;
    return dlopen(path_.c_str(), RTLD_NOW | RTLD_NOLOAD) == nullptr;
  }

 private:
  std::string dir_;
  std::string path_;
  void* handle_ = nullptr;
  uint64_t entry_ = 0;
};

void ExpectFixtureFrames(const std::vector<FrameInfo>& frames,
                         const PaDwarfFixtureSite& site) {
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].name, "pa_fixture::FixtureLeaf(PaDwarfFixtureSite*)");
  EXPECT_EQ(frames[0].line, site.leaf_line);
  EXPECT_EQ(frames[0].start_line, site.leaf_decl_line);
  EXPECT_EQ(frames[1].name, "pa_fixture::FixtureMiddle(PaDwarfFixtureSite*)");
  EXPECT_EQ(frames[1].line, site.middle_line);
  EXPECT_EQ(frames[1].start_line, site.middle_decl_line);
  EXPECT_EQ(frames[2].name, "pa_fixture::FixtureOuter(PaDwarfFixtureSite*)");
  EXPECT_EQ(frames[2].system_name,
            "_ZN10pa_fixture12FixtureOuterEP18PaDwarfFixtureSite");
  EXPECT_EQ(frames[2].line, site.outer_line);
  EXPECT_EQ(frames[2].start_line, site.outer_decl_line);
  for (const FrameInfo& f : frames) {
    EXPECT_THAT(f.file, EndsWith("tests/suites/symbols/fixtures/dwarf_fixture.cc"));
  }
}

TEST(Symbolizer, InlinedCallsAreFramesInnermostFirst) {
  FixtureCopy lib("libpa_dwarf_fixture.so");
  PaDwarfFixtureSite site{};
  ASSERT_TRUE(lib.LoadAndRun(&site)) << dlerror();
  Symbolizer symbolizer;
  const LocationInfo loc = symbolizer.Symbolize(site.pc);
  ASSERT_GE(loc.mapping, 0);
  ExpectFixtureFrames(loc.frames, site);
  const MappingInfo m = symbolizer.Mappings()[loc.mapping];
  EXPECT_EQ(m.path, lib.path());
  EXPECT_TRUE(m.has_functions && m.has_filenames && m.has_line_numbers &&
              m.has_inline_frames);
}

TEST(Symbolizer, StrippedLibraryGetsLinesThroughItsDebugLink) {
  FixtureCopy lib("libpa_dwarf_fixture_debuglink.so");
  PaDwarfFixtureSite site{};
  ASSERT_TRUE(lib.LoadAndRun(&site)) << dlerror();
  Symbolizer symbolizer;
  const LocationInfo loc = symbolizer.Symbolize(site.pc);
  ASSERT_GE(loc.mapping, 0);
  ExpectFixtureFrames(loc.frames, site);
  EXPECT_TRUE(symbolizer.Mappings()[loc.mapping].has_line_numbers);
}

TEST(Symbolizer, LibraryWithoutDebugInfoGetsNamesOnly) {
  FixtureCopy lib("libpa_dwarf_fixture_nodebug.so");
  PaDwarfFixtureSite site{};
  ASSERT_TRUE(lib.LoadAndRun(&site)) << dlerror();
  Symbolizer symbolizer;
  const LocationInfo loc = symbolizer.Symbolize(site.pc);
  ASSERT_GE(loc.mapping, 0);
  ASSERT_EQ(loc.frames.size(), 1u);
  EXPECT_EQ(loc.frames[0].name, "pa_fixture::FixtureOuter(PaDwarfFixtureSite*)");
  EXPECT_THAT(loc.frames[0].file, IsEmpty());
  EXPECT_EQ(loc.frames[0].line, 0);
  const MappingInfo m = symbolizer.Mappings()[loc.mapping];
  EXPECT_TRUE(m.has_functions);
  EXPECT_FALSE(m.has_filenames || m.has_line_numbers || m.has_inline_frames);
}

// libc's own definition of `name`: under a sanitizer &fclose is the
// sanitizer's interceptor, in another library.
uint64_t LibcFunction(const char* name) {
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  return libc == nullptr ? 0 : reinterpret_cast<uint64_t>(dlsym(libc, name));
}

TEST(Symbolizer, LibcGetsLinesFromLibc6Dbg) {
  Symbolizer symbolizer;
  const uint64_t fclose_address = LibcFunction("fclose");
  ASSERT_NE(fclose_address, 0u);
  const LocationInfo loc = symbolizer.Symbolize(fclose_address + 1);
  ASSERT_GE(loc.mapping, 0);
  const MappingInfo m = symbolizer.Mappings()[loc.mapping];
  if (!m.has_line_numbers) GTEST_SKIP() << "libc6-dbg not installed";
  EXPECT_TRUE(m.has_filenames && m.has_inline_frames);
  ASSERT_FALSE(loc.frames.empty());
  EXPECT_EQ(loc.frames.back().name, "fclose");
  EXPECT_THAT(loc.frames.back().file, HasSubstr("iofclose.c"));
  EXPECT_GT(loc.frames.back().line, 0);
  EXPECT_GT(loc.frames.back().start_line, 0);
}

TEST(Symbolizer, UnloadedLibraryKeepsMappingNamesAndLines) {
  FixtureCopy lib("libpa_dwarf_fixture.so");
  Symbolizer symbolizer;
  const size_t before = symbolizer.Mappings().size();
  PaDwarfFixtureSite site{};
  ASSERT_TRUE(lib.LoadAndRun(&site)) << dlerror();

  symbolizer.Refresh();
  const LocationInfo loaded = symbolizer.Symbolize(site.pc);
  ASSERT_GE(loaded.mapping, 0);
  ExpectFixtureFrames(loaded.frames, site);
  const std::vector<MappingInfo> with_library = symbolizer.Mappings();
  EXPECT_GT(with_library.size(), before);
  const MappingInfo library = with_library[loaded.mapping];
  EXPECT_EQ(library.path, lib.path());
  EXPECT_FALSE(library.build_id.empty());

  ASSERT_TRUE(lib.Unload()) << "the fixture stayed loaded after dlclose";
  // Deleted too, as when a deployment replaces the file: the DWARF was
  // found while the library was loaded, and its file stays mapped.
  ASSERT_TRUE(std::filesystem::remove(lib.path()));
  symbolizer.Refresh();
  const std::vector<MappingInfo> after = symbolizer.Mappings();
  ASSERT_GT(after.size(), static_cast<size_t>(loaded.mapping));
  EXPECT_EQ(after[loaded.mapping].path, library.path);
  EXPECT_EQ(after[loaded.mapping].start, library.start);
  EXPECT_EQ(after[loaded.mapping].build_id, library.build_id);
  EXPECT_TRUE(after[loaded.mapping].has_line_numbers);
  // Nothing is read from the (now unmapped) address range: the cached site
  // and an address never looked up before both resolve.
  const LocationInfo unloaded = symbolizer.Symbolize(site.pc);
  EXPECT_EQ(unloaded.mapping, loaded.mapping);
  ExpectFixtureFrames(unloaded.frames, site);
  const LocationInfo entry = symbolizer.Symbolize(lib.entry());
  EXPECT_EQ(entry.mapping, loaded.mapping);
  ASSERT_FALSE(entry.frames.empty());
  EXPECT_EQ(entry.frames.back().name, "pa_dwarf_fixture_site");
  EXPECT_THAT(entry.frames.back().file, EndsWith("dwarf_fixture.cc"));
  EXPECT_GT(entry.frames.back().line, 0);
}

TEST(Symbolizer, SecondRequestAfterLoaderChangeDoesNoDwarfWork) {
  Symbolizer symbolizer;
  std::vector<uint64_t> addresses;
  const uint64_t own = pa_symbolizer_test::KnownFunction(2);
  for (uint64_t a : {own, own - 4, reinterpret_cast<uint64_t>(&fclose) + 9,
                     reinterpret_cast<uint64_t>(&getpid) + 1}) {
    addresses.push_back(a);
  }
  std::vector<LocationInfo> first;
  for (uint64_t a : addresses) first.push_back(symbolizer.Symbolize(a));
  const uint64_t cold = symbolizer.Stats().dwarf_lookups;
  EXPECT_GE(cold, 2u);  // this binary's addresses at least

  // A loader change empties the per-address cache; the per-object caches
  // (keyed by path and build id) answer instead.
  {
    FixtureCopy lib("libpa_dwarf_fixture_nodebug.so");
    PaDwarfFixtureSite site{};
    ASSERT_TRUE(lib.LoadAndRun(&site));
    symbolizer.Refresh();
  }
  symbolizer.Refresh();
  for (size_t i = 0; i < addresses.size(); ++i) {
    const LocationInfo again = symbolizer.Symbolize(addresses[i]);
    EXPECT_EQ(again.mapping, first[i].mapping);
    ASSERT_EQ(again.frames.size(), first[i].frames.size());
    for (size_t f = 0; f < again.frames.size(); ++f) {
      EXPECT_EQ(again.frames[f].name, first[i].frames[f].name);
      EXPECT_EQ(again.frames[f].line, first[i].frames[f].line);
    }
  }
  EXPECT_EQ(symbolizer.Stats().dwarf_lookups, cold);
}

// Not a test of speed (no assertion on time): prints what 10k distinct PCs
// cost cold (fresh symbolizer: files opened, DWARF indexed and read), warm
// (the per-address cache) and warm after a loader change (per-object
// caches), for the report. The PCs are spread evenly over libc's
// code, whose DWARF comes from libc6-dbg when installed.
TEST(Symbolizer, TimesTenThousandPcsColdAndWarm) {
  using Clock = std::chrono::steady_clock;
  Symbolizer symbolizer;
  const uint64_t libc_pc = LibcFunction("fclose");
  ASSERT_NE(libc_pc, 0u);
  const int libc = symbolizer.Symbolize(libc_pc).mapping;
  ASSERT_GE(libc, 0);
  // A fresh symbolizer for the cold pass: the lookup above opened libc.
  Symbolizer cold_symbolizer;
  const MappingInfo m = cold_symbolizer.Mappings()[libc];
  ASSERT_LE(m.start, libc_pc);
  constexpr int kPcs = 10000;
  std::vector<uint64_t> pcs;
  const uint64_t step = (m.limit - m.start) / kPcs;
  ASSERT_GT(step, 0u);
  for (int i = 0; i < kPcs; ++i) pcs.push_back(m.start + i * step + (i % 7));

  double first_ms = 0;  // of the cold pass: opens and indexes the DWARF
  auto pass = [&](int* with_lines, int* frames) {
    *with_lines = 0;
    *frames = 0;
    const auto start = Clock::now();
    for (uint64_t pc : pcs) {
      const LocationInfo loc = cold_symbolizer.Symbolize(pc);
      if (first_ms == 0) {
        first_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      }
      if (!loc.frames.empty() && loc.frames[0].line > 0) ++*with_lines;
      *frames += static_cast<int>(loc.frames.size());
    }
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  };
  int with_lines = 0, frames = 0;
  const double cold_ms = pass(&with_lines, &frames);
  const uint64_t dwarf_lookups = cold_symbolizer.Stats().dwarf_lookups;
  int warm_lines = 0, warm_frames = 0;
  const double warm_ms = pass(&warm_lines, &warm_frames);
  {
    FixtureCopy lib("libpa_dwarf_fixture_nodebug.so");
    PaDwarfFixtureSite site{};
    ASSERT_TRUE(lib.LoadAndRun(&site));
    cold_symbolizer.Refresh();
  }
  cold_symbolizer.Refresh();  // the address cache is emptied
  const double object_warm_ms = pass(&warm_lines, &warm_frames);
  EXPECT_EQ(cold_symbolizer.Stats().dwarf_lookups, dwarf_lookups);
  EXPECT_EQ(warm_lines, with_lines);
  EXPECT_EQ(warm_frames, frames);

  std::printf(
      "[ TIMING   ] 10000 distinct PCs in %s (%s): cold %.1f ms (first "
      "lookup, opening the DWARF, %.1f ms), warm %.2f ms, warm after a "
      "loader change %.2f ms; %d with a line, %d frames (%d inlined)\n",
      m.path.c_str(), m.has_line_numbers ? "DWARF" : "symbols only", cold_ms,
      first_ms, warm_ms, object_warm_ms, with_lines, frames, frames - kPcs);
  RecordProperty("cold_ms", std::to_string(cold_ms));
  RecordProperty("warm_ms", std::to_string(warm_ms));
  RecordProperty("warm_after_loader_change_ms", std::to_string(object_warm_ms));
  if (m.has_line_numbers) {
    EXPECT_GT(with_lines, kPcs / 2);
  }
}

TEST(Symbolizer, RefreshWithoutLoaderChangesKeepsMappings) {
  Symbolizer symbolizer;
  const std::vector<MappingInfo> first = symbolizer.Mappings();
  symbolizer.Refresh();
  symbolizer.Refresh();
  const std::vector<MappingInfo> second = symbolizer.Mappings();
  ASSERT_EQ(first.size(), second.size());
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(first[i].start, second[i].start);
    EXPECT_EQ(first[i].path, second[i].path);
  }
}

TEST(Symbolizer, RepeatedLookupsGiveIdenticalResults) {
  Symbolizer symbolizer;
  const auto entry =
      reinterpret_cast<uint64_t>(&pa_symbolizer_test::KnownFunction);
  const LocationInfo first = symbolizer.Symbolize(entry);
  for (int i = 0; i < 1000; ++i) {
    const LocationInfo again = symbolizer.Symbolize(entry);
    EXPECT_EQ(again.mapping, first.mapping);
    ASSERT_EQ(again.frames.size(), first.frames.size());
    EXPECT_EQ(again.frames[0].name, first.frames[0].name);
  }
}

TEST(Symbolizer, ConcurrentCallersAreSerialised) {
  Symbolizer symbolizer;
  const auto own =
      reinterpret_cast<uint64_t>(&pa_symbolizer_test::KnownFunction);
  const auto libc = reinterpret_cast<uint64_t>(&getpid);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        if (i % 50 == 0) symbolizer.Refresh();
        const LocationInfo a = symbolizer.Symbolize(own + (i % 4));
        const LocationInfo b = symbolizer.Symbolize(libc + t);
        if (a.frames.empty() || b.frames.empty()) ++failures;
        if (i % 100 == 0 && symbolizer.Mappings().empty()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(Symbolizer, GlobalIsOneInstance) {
  EXPECT_EQ(&Symbolizer::Global(), &Symbolizer::Global());
  const auto entry =
      reinterpret_cast<uint64_t>(&pa_symbolizer_test::KnownFunction);
  const LocationInfo loc = Symbolizer::Global().Symbolize(entry);
  ASSERT_EQ(loc.frames.size(), 1u);
  EXPECT_EQ(loc.frames[0].name, "pa_symbolizer_test::KnownFunction(int)");
}

}  // namespace
}  // namespace pprof_agent::internal
