// DWARF lookups with libdw: which file holds an object's DWARF, and for an
// address the chain of (inlined) functions with their source positions.
//
// Lookup cost: the compile units' address ranges are indexed once per file
// (a pass over the CU headers and root DIEs only); the out-of-line functions
// of a CU once per CU, on its first lookup. An address then costs two binary
// searches, one line-table search (libdw parses a CU's table once) and a
// descent through the DIEs that contain it. The symbolizer caches results
// per object, so a warm lookup never gets here.
#include "profiler/symbols/dwarf_reader.h"

#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_map>
#include <utility>

namespace pprof_agent::internal {
namespace {

// Bounds on nesting, against malformed (or adversarial) DWARF: real code
// nests namespaces and classes a few levels and inlines a few dozen deep.
constexpr int kMaxScopeDepth = 64;
constexpr int kMaxInlineDepth = 256;

// libdw and libelf are loaded when the first object is opened, not with the
// agent: most hosts are never asked to symbolize, and mapping and relocating
// them cost every preloaded process about 0.8 ms at start-up. Every use of
// them below goes through this table (the macros after it); the headers
// give the types only. Nothing reaches a libelf or libdw call without an
// ElfFile that Open() made, and Open() starts with InitLibelf().
#define PA_LIBDW_FUNCTIONS(X) \
  X(dwarf_attr) \
  X(dwarf_attr_integrate) \
  X(dwarf_begin_elf) \
  X(dwarf_child) \
  X(dwarf_decl_file) \
  X(dwarf_decl_line) \
  X(dwarf_dieoffset) \
  X(dwarf_end) \
  X(dwarf_filesrc) \
  X(dwarf_formstring) \
  X(dwarf_formudata) \
  X(dwarf_get_units) \
  X(dwarf_getsrc_die) \
  X(dwarf_getsrcfiles) \
  X(dwarf_haspc) \
  X(dwarf_linecol) \
  X(dwarf_lineno) \
  X(dwarf_linesrc) \
  X(dwarf_offdie) \
  X(dwarf_ranges) \
  X(dwarf_siblingof) \
  X(dwarf_tag) \
  X(dwelf_elf_gnu_build_id) \
  X(dwelf_elf_gnu_debuglink) \
  X(elf_begin) \
  X(elf_cntl) \
  X(elf_end) \
  X(elf_getshdrstrndx) \
  X(elf_kind) \
  X(elf_nextscn) \
  X(elf_rawfile) \
  X(elf_strptr) \
  X(elf_version) \
  X(gelf_getshdr)

struct LibdwApi {
#define PA_LIBDW_MEMBER(name) decltype(&::name) name = nullptr;
  PA_LIBDW_FUNCTIONS(PA_LIBDW_MEMBER)
#undef PA_LIBDW_MEMBER
};

LibdwApi g_libdw;

// Loads libdw.so.1 (which brings libelf.so.1) and every function above;
// false if any is missing. Never unloaded.
bool LoadLibdw() {
  void* handle = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return false;
  LibdwApi api;
  bool complete = true;
#define PA_LIBDW_LOAD(name)                                          \
  api.name = reinterpret_cast<decltype(&::name)>(dlsym(handle, #name)); \
  complete = complete && api.name != nullptr;
  PA_LIBDW_FUNCTIONS(PA_LIBDW_LOAD)
#undef PA_LIBDW_LOAD
  if (!complete) return false;
  g_libdw = api;
  return true;
}

bool InitLibelf() {
  // A function-local static: thread-safe, loaded once.
  static const bool ok =
      LoadLibdw() && g_libdw.elf_version(EV_CURRENT) != EV_NONE;
  return ok;
}

}  // namespace

// From here on, the library's names are the table's entries.
#define PA_LIBDW_REDIRECT(name) (g_libdw.name)
#define dwarf_attr PA_LIBDW_REDIRECT(dwarf_attr)
#define dwarf_attr_integrate PA_LIBDW_REDIRECT(dwarf_attr_integrate)
#define dwarf_begin_elf PA_LIBDW_REDIRECT(dwarf_begin_elf)
#define dwarf_child PA_LIBDW_REDIRECT(dwarf_child)
#define dwarf_decl_file PA_LIBDW_REDIRECT(dwarf_decl_file)
#define dwarf_decl_line PA_LIBDW_REDIRECT(dwarf_decl_line)
#define dwarf_dieoffset PA_LIBDW_REDIRECT(dwarf_dieoffset)
#define dwarf_end PA_LIBDW_REDIRECT(dwarf_end)
#define dwarf_filesrc PA_LIBDW_REDIRECT(dwarf_filesrc)
#define dwarf_formstring PA_LIBDW_REDIRECT(dwarf_formstring)
#define dwarf_formudata PA_LIBDW_REDIRECT(dwarf_formudata)
#define dwarf_get_units PA_LIBDW_REDIRECT(dwarf_get_units)
#define dwarf_getsrc_die PA_LIBDW_REDIRECT(dwarf_getsrc_die)
#define dwarf_getsrcfiles PA_LIBDW_REDIRECT(dwarf_getsrcfiles)
#define dwarf_haspc PA_LIBDW_REDIRECT(dwarf_haspc)
#define dwarf_linecol PA_LIBDW_REDIRECT(dwarf_linecol)
#define dwarf_lineno PA_LIBDW_REDIRECT(dwarf_lineno)
#define dwarf_linesrc PA_LIBDW_REDIRECT(dwarf_linesrc)
#define dwarf_offdie PA_LIBDW_REDIRECT(dwarf_offdie)
#define dwarf_ranges PA_LIBDW_REDIRECT(dwarf_ranges)
#define dwarf_siblingof PA_LIBDW_REDIRECT(dwarf_siblingof)
#define dwarf_tag PA_LIBDW_REDIRECT(dwarf_tag)
#define dwelf_elf_gnu_build_id PA_LIBDW_REDIRECT(dwelf_elf_gnu_build_id)
#define dwelf_elf_gnu_debuglink PA_LIBDW_REDIRECT(dwelf_elf_gnu_debuglink)
#define elf_begin PA_LIBDW_REDIRECT(elf_begin)
#define elf_cntl PA_LIBDW_REDIRECT(elf_cntl)
#define elf_end PA_LIBDW_REDIRECT(elf_end)
#define elf_getshdrstrndx PA_LIBDW_REDIRECT(elf_getshdrstrndx)
#define elf_kind PA_LIBDW_REDIRECT(elf_kind)
#define elf_nextscn PA_LIBDW_REDIRECT(elf_nextscn)
#define elf_rawfile PA_LIBDW_REDIRECT(elf_rawfile)
#define elf_strptr PA_LIBDW_REDIRECT(elf_strptr)
#define elf_version PA_LIBDW_REDIRECT(elf_version)
#define gelf_getshdr PA_LIBDW_REDIRECT(gelf_getshdr)

namespace {

std::string Hex(const uint8_t* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 0xf];
  }
  return out;
}

// An ELF file opened through libelf: libelf's mapping of it, and the
// descriptor until ReleaseDescriptor(); both end with the object.
class ElfFile {
 public:
  ElfFile() = default;
  ~ElfFile() { Reset(); }
  ElfFile(ElfFile&& other) noexcept { *this = std::move(other); }
  ElfFile& operator=(ElfFile&& other) noexcept {
    if (this != &other) {
      Reset();
      std::swap(fd_, other.fd_);
      std::swap(elf_, other.elf_);
    }
    return *this;
  }

  bool Open(const std::string& path) {
    Reset();
    if (path.empty() || !InitLibelf()) return false;
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return false;
    struct stat st;
    if (fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      Reset();
      return false;
    }
    elf_ = elf_begin(fd_, ELF_C_READ_MMAP, nullptr);
    if (elf_ == nullptr || elf_kind(elf_) != ELF_K_ELF) {
      Reset();
      return false;
    }
    return true;
  }

  Elf* elf() const { return elf_; }

  // Makes libelf hold the whole file in memory (its mapping, normally) and
  // closes the descriptor: a reader keeps no file descriptor, whatever the
  // number of objects, and still reads a file deleted or replaced since.
  void ReleaseDescriptor() {
    size_t size = 0;
    if (elf_ == nullptr || fd_ < 0 || elf_rawfile(elf_, &size) == nullptr ||
        elf_cntl(elf_, ELF_C_FDDONE) != 0) {
      return;  // keep the descriptor: libelf may still read through it
    }
    close(fd_);
    fd_ = -1;
  }

 private:
  void Reset() {
    if (elf_ != nullptr) elf_end(elf_);
    if (fd_ >= 0) close(fd_);
    elf_ = nullptr;
    fd_ = -1;
  }

  int fd_ = -1;
  Elf* elf_ = nullptr;
};

// What the search needs to know of a candidate file.
struct ElfFacts {
  std::string build_id;
  bool has_dwarf = false;  // .debug_info and .debug_line with contents
  std::string debuglink;
  uint32_t debuglink_crc = 0;
};

ElfFacts Inspect(Elf* elf) {
  ElfFacts facts;
  const void* id = nullptr;
  const ssize_t id_size = dwelf_elf_gnu_build_id(elf, &id);
  if (id_size > 0 && id != nullptr) {
    facts.build_id = Hex(static_cast<const uint8_t*>(id), id_size);
  }
  size_t shstrndx = 0;
  bool info = false, line = false;
  if (elf_getshdrstrndx(elf, &shstrndx) == 0) {
    for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr;
         scn = elf_nextscn(elf, scn)) {
      GElf_Shdr shdr;
      if (gelf_getshdr(scn, &shdr) == nullptr) continue;
      const char* name = elf_strptr(elf, shstrndx, shdr.sh_name);
      if (name == nullptr) continue;
      // A stripped file keeps the headers of some sections as NOBITS.
      const bool present = shdr.sh_type != SHT_NOBITS && shdr.sh_size > 0;
      if (strcmp(name, ".debug_info") == 0 || strcmp(name, ".zdebug_info") == 0) {
        info = info || present;
      } else if (strcmp(name, ".debug_line") == 0 ||
                 strcmp(name, ".zdebug_line") == 0) {
        line = line || present;
      }
    }
  }
  facts.has_dwarf = info && line;
  GElf_Word crc = 0;
  if (const char* link = dwelf_elf_gnu_debuglink(elf, &crc)) {
    facts.debuglink = link;
    facts.debuglink_crc = crc;
  }
  return facts;
}

uint32_t FileCrc(Elf* elf) {
  size_t size = 0;
  const char* data = elf_rawfile(elf, &size);
  if (data == nullptr) return 0;
  return DebugLinkCrc32(0, reinterpret_cast<const uint8_t*>(data), size);
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// A source position: file name (owned by libdw), line, column.
struct Position {
  const char* file = nullptr;
  int line = 0;
  int column = 0;
};

const char* AttrString(Dwarf_Die* die, unsigned int name) {
  Dwarf_Attribute attr;
  // _integrate follows DW_AT_abstract_origin and DW_AT_specification: an
  // inlined instance or an out-of-line definition names nothing itself.
  if (dwarf_attr_integrate(die, name, &attr) == nullptr) return nullptr;
  return dwarf_formstring(&attr);
}

bool AttrUnsigned(Dwarf_Die* die, unsigned int name, Dwarf_Word* out) {
  Dwarf_Attribute attr;
  if (dwarf_attr(die, name, &attr) == nullptr) return false;
  return dwarf_formudata(&attr, out) == 0;
}

// The function a subprogram or inlined-subroutine DIE is an instance of,
// placed at `pos` (where its code at the address is, or where it calls the
// next frame in).
FrameInfo FunctionFrame(Dwarf_Die* die, const Position& pos) {
  FrameInfo frame;
  const char* linkage = AttrString(die, DW_AT_linkage_name);
  if (linkage == nullptr) linkage = AttrString(die, DW_AT_MIPS_linkage_name);
  const char* name = AttrString(die, DW_AT_name);
  if (linkage != nullptr && linkage[0] != '\0') {
    frame.system_name = linkage;
    frame.name = DemangleSymbol(linkage);
  } else if (name != nullptr) {
    frame.system_name = name;
    frame.name = name;
  }
  const char* decl_file = dwarf_decl_file(die);
  frame.file = pos.file != nullptr ? pos.file : decl_file != nullptr ? decl_file : "";
  frame.line = pos.line;
  frame.column = pos.column;
  int decl_line = 0;
  if (dwarf_decl_line(die, &decl_line) == 0) frame.start_line = decl_line;
  return frame;
}

// Where an inlined-subroutine DIE was called from, in its CU's file table.
Position CallSite(Dwarf_Die* inlined, Dwarf_Files* files, size_t nfiles) {
  Position pos;
  Dwarf_Word value = 0;
  if (files != nullptr && AttrUnsigned(inlined, DW_AT_call_file, &value) &&
      value < nfiles) {
    pos.file = dwarf_filesrc(files, value, nullptr, nullptr);
  }
  if (AttrUnsigned(inlined, DW_AT_call_line, &value) && value <= INT_MAX) {
    pos.line = static_cast<int>(value);
  }
  if (AttrUnsigned(inlined, DW_AT_call_column, &value) && value <= INT_MAX) {
    pos.column = static_cast<int>(value);
  }
  return pos;
}

// Tags of the DIEs inside a function that may cover addresses and hold
// inlined calls.
bool IsCodeScope(int tag) {
  switch (tag) {
    case DW_TAG_inlined_subroutine:
    case DW_TAG_lexical_block:
    case DW_TAG_try_block:
    case DW_TAG_catch_block:
    case DW_TAG_with_stmt:
    case DW_TAG_entry_point:
      return true;
    default:
      return false;
  }
}

// Tags that hold no code themselves but may hold function definitions.
bool IsContainerScope(int tag) {
  switch (tag) {
    case DW_TAG_namespace:
    case DW_TAG_module:
    case DW_TAG_class_type:
    case DW_TAG_structure_type:
    case DW_TAG_union_type:
    case DW_TAG_interface_type:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::string BuildIdDebugPath(std::string_view root, std::string_view build_id) {
  if (build_id.size() < 4 || root.empty()) return "";
  for (char c : build_id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return "";
  }
  std::string path(root);
  if (path.back() != '/') path.push_back('/');
  path.append(".build-id/");
  path.append(build_id.substr(0, 2));
  path.push_back('/');
  path.append(build_id.substr(2));
  path.append(".debug");
  return path;
}

std::vector<std::string> DebugLinkCandidates(std::string_view root,
                                             const std::string& object_path,
                                             const std::string& link) {
  std::vector<std::string> out;
  if (link.empty() || link == "." || link == ".." ||
      link.find('/') != std::string::npos) {
    return out;
  }
  const std::string dir = Dirname(object_path);
  out.push_back(dir + "/" + link);
  out.push_back(dir + "/.debug/" + link);
  if (!root.empty() && dir[0] == '/') {
    std::string under_root(root);
    while (!under_root.empty() && under_root.back() == '/') under_root.pop_back();
    out.push_back(under_root + (dir == "/" ? "" : dir) + "/" + link);
  }
  return out;
}

uint32_t DebugLinkCrc32(uint32_t crc, const uint8_t* data, size_t size) {
  static const std::array<uint32_t, 256> kTable = [] {
    std::array<uint32_t, 256> table{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return table;
  }();
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) {
    crc = kTable[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
  }
  return ~crc;
}

// ---------------------------------------------------------------------------

struct DwarfReader::Impl {
  struct Range {
    uint64_t lo;
    uint64_t hi;
    Dwarf_Off die;  // the CU's or the subprogram's DIE
  };

  ~Impl() {
    if (dwarf != nullptr) dwarf_end(dwarf);
  }

  bool EnsureIndex();
  // The CU or function range holding `pc` in a list sorted by `lo`.
  static const Range* Find(const std::vector<Range>& ranges, uint64_t pc);
  const std::vector<Range>& FunctionsOf(Dwarf_Die* cudie);
  void IndexFunctions(Dwarf_Die* scope, int depth, std::vector<Range>* out);

  ElfFile file;
  Dwarf* dwarf = nullptr;
  bool index_built = false;
  bool unusable = false;
  std::vector<Range> cus;  // sorted by lo
  std::unordered_map<Dwarf_Off, std::vector<Range>> functions;  // per CU
};

namespace {

// Appends the address ranges of `die` (low/high pc or DW_AT_ranges) that
// are non-empty and not at 0, where the linker puts code it discarded.
template <typename Range>
void AppendRanges(Dwarf_Die* die, std::vector<Range>* out) {
  Dwarf_Addr base = 0, start = 0, end = 0;
  ptrdiff_t offset = 0;
  while ((offset = dwarf_ranges(die, offset, &base, &start, &end)) > 0) {
    if (start != 0 && start < end) {
      out->push_back({start, end, dwarf_dieoffset(die)});
    }
  }
}

}  // namespace

bool DwarfReader::Impl::EnsureIndex() {
  if (index_built) return !unusable;
  index_built = true;
  dwarf = dwarf_begin_elf(file.elf(), DWARF_C_READ, nullptr);
  if (dwarf == nullptr) {
    unusable = true;
    return false;
  }
  Dwarf_CU* cu = nullptr;
  Dwarf_CU* next = nullptr;
  Dwarf_Half version = 0;
  uint8_t unit_type = 0;
  Dwarf_Die cudie, subdie;
  while (dwarf_get_units(dwarf, cu, &next, &version, &unit_type, &cudie,
                         &subdie) == 0) {
    cu = next;
    // Partial units (dwz) and type units hold no code of their own;
    // skeleton units point to split DWARF (.dwo), which is not read.
    if (unit_type != DW_UT_compile) continue;
    AppendRanges(&cudie, &cus);
  }
  std::sort(cus.begin(), cus.end(),
            [](const Range& a, const Range& b) { return a.lo < b.lo; });
  return true;
}

const DwarfReader::Impl::Range* DwarfReader::Impl::Find(
    const std::vector<Range>& ranges, uint64_t pc) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), pc,
                             [](uint64_t a, const Range& r) { return a < r.lo; });
  // Ranges rarely overlap (a CU's ranges may enclose another's hole); look
  // back a little for one that holds `pc`, nearest start first.
  for (int i = 0; i < 8 && it != ranges.begin(); ++i) {
    --it;
    if (pc < it->hi) return &*it;
  }
  return nullptr;
}

void DwarfReader::Impl::IndexFunctions(Dwarf_Die* scope, int depth,
                                       std::vector<Range>* out) {
  Dwarf_Die child;
  if (dwarf_child(scope, &child) != 0) return;
  do {
    const int tag = dwarf_tag(&child);
    if (tag == DW_TAG_subprogram) {
      // Its own code only: functions nested in functions (GNU C) are not
      // indexed, their addresses fall back to the ELF symbol name.
      AppendRanges(&child, out);
    } else if (IsContainerScope(tag) && depth < kMaxScopeDepth) {
      IndexFunctions(&child, depth + 1, out);
    }
  } while (dwarf_siblingof(&child, &child) == 0);
}

const std::vector<DwarfReader::Impl::Range>& DwarfReader::Impl::FunctionsOf(
    Dwarf_Die* cudie) {
  const Dwarf_Off key = dwarf_dieoffset(cudie);
  auto [it, inserted] = functions.try_emplace(key);
  if (inserted) {
    IndexFunctions(cudie, 0, &it->second);
    std::sort(it->second.begin(), it->second.end(),
              [](const Range& a, const Range& b) { return a.lo < b.lo; });
    it->second.shrink_to_fit();
  }
  return it->second;
}

DwarfReader::DwarfReader() : impl_(std::make_unique<Impl>()) {}

DwarfReader::~DwarfReader() = default;

bool DwarfReader::LoadLibraries() { return InitLibelf(); }

std::unique_ptr<DwarfReader> DwarfReader::Open(const std::string& object_path,
                                               const std::string& build_id,
                                               const std::string& debug_root) {
  if (!InitLibelf()) return nullptr;
  auto make = [](ElfFile file, DebugInfoSource source, std::string path) {
    file.ReleaseDescriptor();
    auto reader = std::unique_ptr<DwarfReader>(new DwarfReader());
    reader->impl_->file = std::move(file);
    reader->source_ = source;
    reader->path_ = std::move(path);
    return reader;
  };

  ElfFile object;
  ElfFacts object_facts;
  bool object_ok = object.Open(object_path);
  if (object_ok) {
    object_facts = Inspect(object.elf());
    // Another build now at this path (replaced on disk): neither its DWARF
    // nor its debuglink describes the code that is loaded.
    if (!build_id.empty() && object_facts.build_id != build_id) {
      object_ok = false;
    } else if (object_facts.has_dwarf) {
      return make(std::move(object), DebugInfoSource::kObject, object_path);
    }
  }

  if (!build_id.empty()) {
    const std::string path = BuildIdDebugPath(debug_root, build_id);
    ElfFile debug;
    if (!path.empty() && debug.Open(path)) {
      const ElfFacts facts = Inspect(debug.elf());
      if (facts.has_dwarf && facts.build_id == build_id) {
        return make(std::move(debug), DebugInfoSource::kBuildIdDir, path);
      }
    }
  }

  if (object_ok && !object_facts.debuglink.empty()) {
    // The link is relative to the object's directory as named and, when it
    // differs (symlinks, merged /usr), as resolved.
    std::vector<std::string> candidates =
        DebugLinkCandidates(debug_root, object_path, object_facts.debuglink);
    char resolved[PATH_MAX];
    if (realpath(object_path.c_str(), resolved) != nullptr &&
        object_path != resolved) {
      for (std::string& c :
           DebugLinkCandidates(debug_root, resolved, object_facts.debuglink)) {
        candidates.push_back(std::move(c));
      }
    }
    const std::string& want =
        build_id.empty() ? object_facts.build_id : build_id;
    for (const std::string& candidate : candidates) {
      if (candidate == object_path) continue;
      ElfFile debug;
      if (!debug.Open(candidate)) continue;
      const ElfFacts facts = Inspect(debug.elf());
      if (!facts.has_dwarf) continue;
      // Build ids identify the build; without them, the CRC the linker
      // recorded of the whole debug file does (as GDB checks it).
      const bool match = !want.empty() && !facts.build_id.empty()
                             ? facts.build_id == want
                             : FileCrc(debug.elf()) == object_facts.debuglink_crc;
      if (match) {
        return make(std::move(debug), DebugInfoSource::kDebugLink, candidate);
      }
    }
  }
  return nullptr;
}

const uint8_t* DwarfReader::Image(size_t* size) const {
  *size = 0;
  if (impl_->file.elf() == nullptr) return nullptr;
  const char* data = elf_rawfile(impl_->file.elf(), size);
  return reinterpret_cast<const uint8_t*>(data);
}

bool DwarfReader::Lookup(uint64_t vaddr, std::vector<FrameInfo>* frames) {
  ++lookups_;
  if (!impl_->EnsureIndex()) return false;
  const Impl::Range* cu = Impl::Find(impl_->cus, vaddr);
  Dwarf_Die cudie;
  if (cu == nullptr || dwarf_offdie(impl_->dwarf, cu->die, &cudie) == nullptr) {
    return false;
  }

  // The innermost position: what the line table says of the address.
  Position leaf;
  if (Dwarf_Line* line = dwarf_getsrc_die(&cudie, vaddr)) {
    leaf.file = dwarf_linesrc(line, nullptr, nullptr);
    dwarf_lineno(line, &leaf.line);
    dwarf_linecol(line, &leaf.column);
  }

  // The out-of-line function, then the inlined calls inside it that hold
  // the address, outermost first. Lexical blocks are descended through but
  // are not frames.
  std::vector<Dwarf_Die> chain;
  if (const Impl::Range* fn = Impl::Find(impl_->FunctionsOf(&cudie), vaddr)) {
    Dwarf_Die die;
    if (dwarf_offdie(impl_->dwarf, fn->die, &die) != nullptr) {
      chain.push_back(die);
      for (int depth = 0; depth < kMaxInlineDepth; ++depth) {
        Dwarf_Die child;
        bool found = false;
        if (dwarf_child(&die, &child) == 0) {
          do {
            if (IsCodeScope(dwarf_tag(&child)) &&
                dwarf_haspc(&child, vaddr) == 1) {
              found = true;
              break;
            }
          } while (dwarf_siblingof(&child, &child) == 0);
        }
        if (!found) break;
        die = child;
        if (dwarf_tag(&die) == DW_TAG_inlined_subroutine) chain.push_back(die);
      }
    }
  }

  if (chain.empty()) {
    if (leaf.file == nullptr) return false;
    FrameInfo frame;
    frame.file = leaf.file;
    frame.line = leaf.line;
    frame.column = leaf.column;
    frames->push_back(std::move(frame));
    return true;
  }

  Dwarf_Files* files = nullptr;
  size_t nfiles = 0;
  if (dwarf_getsrcfiles(&cudie, &files, &nfiles) != 0) files = nullptr;
  // Innermost first: each frame sits where the next inner one was called.
  Position pos = leaf;
  for (size_t i = chain.size(); i-- > 0;) {
    frames->push_back(FunctionFrame(&chain[i], pos));
    if (i > 0) pos = CallSite(&chain[i], files, nfiles);
  }
  return true;
}

}  // namespace pprof_agent::internal
