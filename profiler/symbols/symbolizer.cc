// Cold-path symbolizer: /proc/self/maps parsing, ELF build ids, function
// symbols of the loaded objects and (through dwarf_reader) their source
// lines and inlined frames, cached per file and per address.
#include "profiler/symbols/symbolizer.h"

#include <cxxabi.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "profiler/symbols/dwarf_reader.h"

namespace pprof_agent::internal {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the ELF reader assumes a little-endian host");

// A build id longer than this is treated as malformed (real ones are 16-32
// bytes); it keeps a hostile note from producing megabytes of hex.
constexpr uint32_t kMaxBuildIdBytes = 1024;
// Bounds the per-address cache; past it the cache is simply emptied (rare:
// distinct code addresses of a real process stay far below this).
constexpr size_t kMaxCachedAddresses = size_t{1} << 20;
// /proc/self/maps of even a huge process is a few MiB.
constexpr size_t kMaxMapsBytes = size_t{64} << 20;
constexpr std::string_view kDeletedSuffix = " (deleted)";
constexpr char kDebugBuildIdDir[] = "/usr/lib/debug/.build-id/";

// ---------------------------------------------------------------------------
// ELF image access. Every read goes through Range(), which checks bounds with
// overflow-safe arithmetic: the bytes may be fuzzer input or a file truncated
// on disk. Headers are memcpy'd out because the image need not be aligned.

class ElfImage {
 public:
  ElfImage(const uint8_t* data, size_t size) : data_(data), size_(size) {
    if (data_ == nullptr || size_ < sizeof(Elf64_Ehdr)) return;
    std::memcpy(&ehdr_, data_, sizeof(ehdr_));
    if (std::memcmp(ehdr_.e_ident, ELFMAG, SELFMAG) != 0 ||
        ehdr_.e_ident[EI_CLASS] != ELFCLASS64 ||
        ehdr_.e_ident[EI_DATA] != ELFDATA2LSB) {
      return;
    }
    valid_ = true;
    shnum_ = TableCount(ehdr_.e_shoff, ehdr_.e_shentsize, sizeof(Elf64_Shdr),
                        ehdr_.e_shnum);
    // Extended numbering: more than 0xff00 sections put the count in
    // section 0's sh_size, more than 0xfffe segments in its sh_info.
    Elf64_Shdr first;
    const bool have_first = ehdr_.e_shoff != 0 &&
                            ehdr_.e_shentsize >= sizeof(Elf64_Shdr) &&
                            Read(ehdr_.e_shoff, &first);
    if (ehdr_.e_shnum == 0 && have_first) {
      shnum_ = TableCount(ehdr_.e_shoff, ehdr_.e_shentsize, sizeof(Elf64_Shdr),
                          first.sh_size);
    }
    uint64_t phnum = ehdr_.e_phnum;
    if (phnum == PN_XNUM && have_first) phnum = first.sh_info;
    phnum_ =
        TableCount(ehdr_.e_phoff, ehdr_.e_phentsize, sizeof(Elf64_Phdr), phnum);
  }

  bool valid() const { return valid_; }
  size_t phnum() const { return phnum_; }
  size_t shnum() const { return shnum_; }

  bool Phdr(size_t i, Elf64_Phdr* out) const {
    return i < phnum_ && Read(ehdr_.e_phoff + i * ehdr_.e_phentsize, out);
  }
  bool Shdr(size_t i, Elf64_Shdr* out) const {
    return i < shnum_ && Read(ehdr_.e_shoff + i * ehdr_.e_shentsize, out);
  }

  // [offset, offset+len) of the image, or nullptr when any of it is outside.
  const uint8_t* Range(uint64_t offset, uint64_t len) const {
    if (offset > size_ || len > size_ - offset) return nullptr;
    return data_ + offset;
  }

 private:
  template <typename T>
  bool Read(uint64_t offset, T* out) const {
    const uint8_t* p = Range(offset, sizeof(T));
    if (p == nullptr) return false;
    std::memcpy(out, p, sizeof(T));
    return true;
  }

  // How many of `count` table entries lie wholly inside the image; 0 when
  // the entry size is too small to hold the struct we read.
  size_t TableCount(uint64_t offset, uint64_t entsize, size_t min_entsize,
                    uint64_t count) const {
    if (offset == 0 || count == 0 || entsize < min_entsize || offset > size_) {
      return 0;
    }
    const uint64_t avail = size_ - offset;
    if (avail < min_entsize) return 0;
    // The last entry needs only min_entsize bytes; earlier ones a full stride.
    const uint64_t fit = (avail - min_entsize) / entsize + 1;
    return static_cast<size_t>(std::min(count, fit));
  }

  const uint8_t* data_;
  size_t size_;
  Elf64_Ehdr ehdr_{};
  bool valid_ = false;
  size_t phnum_ = 0;
  size_t shnum_ = 0;
};

std::string Hex(const uint8_t* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 0xf];
  }
  return out;
}

uint64_t AlignUp(uint64_t v, uint64_t align) {
  return (v + align - 1) & ~(align - 1);
}

// Walks the notes in [p, p+n) and returns the GNU build id as hex, "" if none
// or the notes are malformed. Padding is computed on offsets from `p` (which
// the segment or section aligns), so 8-byte aligned notes work too.
std::string FindBuildIdInNotes(const uint8_t* p, uint64_t n, uint64_t align) {
  align = align == 8 ? 8 : 4;
  uint64_t pos = 0;
  while (n - pos >= 12) {
    uint32_t namesz, descsz, type;
    std::memcpy(&namesz, p + pos, 4);
    std::memcpy(&descsz, p + pos + 4, 4);
    std::memcpy(&type, p + pos + 8, 4);
    const uint64_t name_pos = pos + 12;
    if (namesz > n - name_pos) return "";
    const uint64_t desc_pos = AlignUp(name_pos + namesz, align);
    if (desc_pos > n || descsz > n - desc_pos) return "";
    if (type == NT_GNU_BUILD_ID && namesz == 4 &&
        std::memcmp(p + name_pos, "GNU", 4) == 0) {
      if (descsz == 0 || descsz > kMaxBuildIdBytes) return "";
      return Hex(p + desc_pos, descsz);
    }
    pos = AlignUp(desc_pos + descsz, align);
    if (pos > n) return "";
  }
  return "";
}

std::string BuildIdOfImage(const ElfImage& elf) {
  if (!elf.valid()) return "";
  for (size_t i = 0; i < elf.phnum(); ++i) {
    Elf64_Phdr ph;
    if (!elf.Phdr(i, &ph) || ph.p_type != PT_NOTE) continue;
    if (const uint8_t* notes = elf.Range(ph.p_offset, ph.p_filesz)) {
      std::string id = FindBuildIdInNotes(notes, ph.p_filesz, ph.p_align);
      if (!id.empty()) return id;
    }
  }
  // Images without program headers (separate debug files, objects) still
  // carry the note as a section.
  for (size_t i = 0; i < elf.shnum(); ++i) {
    Elf64_Shdr sh;
    if (!elf.Shdr(i, &sh) || sh.sh_type != SHT_NOTE) continue;
    if (const uint8_t* notes = elf.Range(sh.sh_offset, sh.sh_size)) {
      std::string id = FindBuildIdInNotes(notes, sh.sh_size, sh.sh_addralign);
      if (!id.empty()) return id;
    }
  }
  return "";
}

// A read-only private mapping of a whole regular file; empty on any failure.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
      void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ,
                     MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
        data_ = static_cast<const uint8_t*>(p);
        size_ = static_cast<size_t>(st.st_size);
      }
    }
    close(fd);
  }
  ~MappedFile() {
    if (data_ != nullptr) munmap(const_cast<uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// ---------------------------------------------------------------------------
// ObjectFile: what the symbolizer keeps of one ELF file. It outlives the
// mapping (a dlclose'd library keeps resolving): the symbols are copied out,
// and the DWARF reader holds its debug file open.

// Bounds each object's cache of resolved addresses; past it the cache is
// emptied (a real process has far fewer distinct code addresses).
constexpr size_t kMaxCachedFramesPerObject = size_t{1} << 18;

class ObjectFile {
 public:
  // Reads `path` from disk. `expected_build_id` is the build id of the code
  // actually loaded ("" if unknown): a file on disk with another build id
  // is not this object any more, and null is returned. Names come from
  // .symtab, else the separate debug file's .symtab, else .dynsym; the DWARF
  // is found (itself, build-id tree, .gnu_debuglink) but read only on use.
  static std::unique_ptr<ObjectFile> Load(const std::string& path,
                                          const std::string& expected_build_id) {
    MappedFile file(path);
    if (file.data() == nullptr) return nullptr;
    ElfImage elf(file.data(), file.size());
    if (!elf.valid()) return nullptr;
    auto obj = std::unique_ptr<ObjectFile>(new ObjectFile(path));
    obj->build_id_ = BuildIdOfImage(elf);
    if (!expected_build_id.empty() && obj->build_id_ != expected_build_id) {
      return nullptr;
    }
    obj->ReadSegments(elf);
    obj->dwarf_ = DwarfReader::Open(path, obj->build_id_);
    if (!obj->ReadSymbols(elf, SHT_SYMTAB) && !obj->ReadDebugFileSymbols()) {
      obj->ReadSymbols(elf, SHT_DYNSYM);
    }
    return obj;
  }

  // Parses an ELF image already mapped in memory (the vdso). The image's
  // file offsets are offsets from `data`. Its DWARF, if any, can only be a
  // build-id debug file (the kernel's vdso*.so.dbg).
  static std::unique_ptr<ObjectFile> FromImage(const uint8_t* data, size_t size,
                                               std::string name) {
    ElfImage elf(data, size);
    if (!elf.valid()) return nullptr;
    auto obj = std::unique_ptr<ObjectFile>(new ObjectFile(std::move(name)));
    obj->ReadSegments(elf);
    obj->build_id_ = BuildIdOfImage(elf);
    if (!obj->build_id_.empty()) obj->dwarf_ = DwarfReader::Open("", obj->build_id_);
    if (!obj->ReadSymbols(elf, SHT_SYMTAB)) obj->ReadSymbols(elf, SHT_DYNSYM);
    return obj;
  }

  const std::string& path() const { return path_; }
  const std::string& build_id() const { return build_id_; }
  bool has_symbols() const { return !symbols_.empty(); }
  // Whether DWARF was found: then lookups give files, lines and inlined
  // frames wherever a compile unit covers the address.
  bool has_dwarf() const { return dwarf_ != nullptr; }
  uint64_t dwarf_lookups() const {
    return dwarf_ != nullptr ? dwarf_->lookups() : 0;
  }

  // Finds the PT_LOAD segment a mapping at file offset `offset` comes from
  // and returns its (p_offset, p_vaddr). Mapping offsets are the segment's
  // offset rounded down to a page, so the segment is the one whose
  // [page_down(p_offset), p_offset + p_filesz) holds `offset`; executable
  // segments are preferred because only those are in our mappings.
  bool FindSegment(uint64_t offset, uint64_t* p_offset,
                   uint64_t* p_vaddr) const {
    const uint64_t page = static_cast<uint64_t>(getpagesize());
    for (int pass = 0; pass < 2; ++pass) {
      for (const Segment& s : segments_) {
        if (pass == 0 && !s.executable) continue;
        const uint64_t lo = s.offset & ~(page - 1);
        if (offset >= lo &&
            (offset < s.offset || offset - s.offset < s.filesz)) {
          *p_offset = s.offset;
          *p_vaddr = s.vaddr;
          return true;
        }
      }
    }
    return false;
  }

  // Appends the frames for the ELF virtual address `vaddr`, innermost first;
  // nothing when neither DWARF nor a function symbol covers it. Results are
  // cached per object, so a profile requested again costs no DWARF work
  // even after a loader change emptied the symbolizer's address cache.
  void Lookup(uint64_t vaddr, std::vector<FrameInfo>* frames) {
    auto it = cache_.find(vaddr);
    if (it == cache_.end()) {
      if (cache_.size() >= kMaxCachedFramesPerObject) cache_.clear();
      it = cache_.emplace(vaddr, Resolve(vaddr)).first;
    }
    frames->insert(frames->end(), it->second.begin(), it->second.end());
  }

 private:
  // The function symbol covering `vaddr`, or null.
  const char* SymbolAt(uint64_t vaddr) const {
    auto it = std::upper_bound(
        symbols_.begin(), symbols_.end(), vaddr,
        [](uint64_t a, const Symbol& s) { return a < s.addr; });
    if (it == symbols_.begin()) return nullptr;
    --it;
    // Sized symbols are exact; a size of 0 (hand-written assembly, some
    // stripped tables) only says "starts here", so the nearest one is the
    // best guess available.
    if (it->size > 0 && vaddr - it->addr >= it->size) return nullptr;
    return names_.data() + it->name;
  }

  std::vector<FrameInfo> Resolve(uint64_t vaddr) {
    std::vector<FrameInfo> frames;
    const char* symbol = SymbolAt(vaddr);
    if (dwarf_ != nullptr && dwarf_->Lookup(vaddr, &frames) && !frames.empty()) {
      // The out-of-line function: DWARF's linkage name when it has one (a
      // C++ name, the same the symbol table has, minus clone suffixes such
      // as ".cold"); otherwise the symbol table's name, which for C is the
      // name callers use (getpid, where DWARF says __getpid).
      FrameInfo& outer = frames.back();
      const bool mangled = outer.system_name.rfind("_Z", 0) == 0;
      if (symbol != nullptr && (!mangled || outer.name.empty())) {
        outer.name = DemangleSymbol(symbol);
        outer.system_name = symbol;
      }
      return frames;
    }
    frames.clear();
    if (symbol != nullptr) {
      FrameInfo frame;
      frame.name = DemangleSymbol(symbol);
      frame.system_name = symbol;
      frames.push_back(std::move(frame));
    }
    return frames;
  }

  struct Segment {
    uint64_t offset;
    uint64_t vaddr;
    uint64_t filesz;
    bool executable;
  };
  struct Symbol {
    uint64_t addr;
    uint64_t size;
    size_t name;  // offset of a NUL-terminated string in names_
  };

  explicit ObjectFile(std::string path) : path_(std::move(path)) {}

  void ReadSegments(const ElfImage& elf) {
    for (size_t i = 0; i < elf.phnum(); ++i) {
      Elf64_Phdr ph;
      if (elf.Phdr(i, &ph) && ph.p_type == PT_LOAD) {
        segments_.push_back(
            {ph.p_offset, ph.p_vaddr, ph.p_filesz, (ph.p_flags & PF_X) != 0});
      }
    }
  }

  bool ReadDebugFileSymbols() {
    // The file that holds the DWARF (build-id tree or .gnu_debuglink) has
    // the full symbol table too. Its segments are empty (NOBITS), so the
    // addresses are translated with the original file's segments.
    size_t size = 0;
    if (const uint8_t* image = dwarf_ != nullptr ? dwarf_->Image(&size) : nullptr) {
      if (ReadSymbols(ElfImage(image, size), SHT_SYMTAB)) return true;
    }
    if (build_id_.size() < 4) return false;
    const std::string debug_path = std::string(kDebugBuildIdDir) +
                                   build_id_.substr(0, 2) + "/" +
                                   build_id_.substr(2) + ".debug";
    MappedFile file(debug_path);
    ElfImage elf(file.data(), file.size());
    // The debug file's segments are empty (NOBITS), so the addresses are
    // translated with the original file's segments read above.
    if (!elf.valid() || BuildIdOfImage(elf) != build_id_) return false;
    return ReadSymbols(elf, SHT_SYMTAB);
  }

  // Copies the function symbols of the first section of `type` (SHT_SYMTAB
  // or SHT_DYNSYM) into symbols_, sorted by address with aliases merged.
  // Returns whether any function symbol was found.
  bool ReadSymbols(const ElfImage& elf, uint32_t type) {
    for (size_t i = 0; i < elf.shnum(); ++i) {
      Elf64_Shdr sh, strtab;
      if (!elf.Shdr(i, &sh) || sh.sh_type != type) continue;
      if (sh.sh_entsize < sizeof(Elf64_Sym) || !elf.Shdr(sh.sh_link, &strtab)) {
        continue;
      }
      const uint8_t* syms = elf.Range(sh.sh_offset, sh.sh_size);
      const uint8_t* strs = elf.Range(strtab.sh_offset, strtab.sh_size);
      if (syms == nullptr || strs == nullptr) continue;
      CopyFunctionSymbols(syms, sh.sh_size / sh.sh_entsize, sh.sh_entsize,
                          reinterpret_cast<const char*>(strs), strtab.sh_size);
      return !symbols_.empty();
    }
    return false;
  }

  void CopyFunctionSymbols(const uint8_t* syms, uint64_t count,
                           uint64_t entsize, const char* strs,
                           uint64_t strs_size) {
    struct Candidate {
      uint64_t addr;
      uint64_t size;
      std::string_view name;
      int binding_rank;
    };
    std::vector<Candidate> candidates;
    for (uint64_t i = 0; i < count; ++i) {
      Elf64_Sym sym;
      std::memcpy(&sym, syms + i * entsize, sizeof(sym));
      const int sym_type = ELF64_ST_TYPE(sym.st_info);
      if ((sym_type != STT_FUNC && sym_type != STT_GNU_IFUNC) ||
          sym.st_shndx == SHN_UNDEF || sym.st_value == 0 ||
          sym.st_name >= strs_size) {
        continue;
      }
      const char* name = strs + sym.st_name;
      const void* nul = std::memchr(name, '\0', strs_size - sym.st_name);
      if (nul == nullptr || nul == name) continue;
      std::string_view view(name, static_cast<const char*>(nul) - name);
      // Symbol tables written from versioned objects (glibc's debug files)
      // spell names "fclose@@GLIBC_2.2.5"; the version is not part of what a
      // user calls the function. Mangled C++ names never contain '@'.
      const size_t at = view.find('@');
      if (at == 0) continue;
      if (at != std::string_view::npos) view = view.substr(0, at);
      const int binding = ELF64_ST_BIND(sym.st_info);
      candidates.push_back({sym.st_value, sym.st_size, view,
                            binding == STB_GLOBAL ? 0
                            : binding == STB_WEAK ? 1
                                                  : 2});
    }
    // Several names often share one address (getpid, __getpid, __GI_getpid).
    // Keep the one a user would write: fewest leading underscores, then
    // global over weak over local, then the shortest; ties broken by name so
    // the choice is deterministic.
    auto underscores = [](std::string_view s) {
      return s.find_first_not_of('_');
    };
    std::sort(candidates.begin(), candidates.end(),
              [&](const Candidate& a, const Candidate& b) {
                return std::make_tuple(a.addr, underscores(a.name),
                                       a.binding_rank, a.name.size(), a.name) <
                       std::make_tuple(b.addr, underscores(b.name),
                                       b.binding_rank, b.name.size(), b.name);
              });
    symbols_.clear();
    names_.clear();
    for (const Candidate& c : candidates) {
      if (!symbols_.empty() && symbols_.back().addr == c.addr) {
        // An alias with a larger size must not make the address unknown.
        symbols_.back().size = std::max(symbols_.back().size, c.size);
        continue;
      }
      symbols_.push_back({c.addr, c.size, names_.size()});
      names_.append(c.name);
      names_.push_back('\0');
    }
    symbols_.shrink_to_fit();
    names_.shrink_to_fit();
  }

  std::string path_;
  std::string build_id_;
  std::vector<Segment> segments_;
  std::vector<Symbol> symbols_;  // sorted by addr, unique addrs
  std::string names_;
  std::unique_ptr<DwarfReader> dwarf_;  // null: no DWARF found
  std::unordered_map<uint64_t, std::vector<FrameInfo>> cache_;  // by vaddr
};

// ---------------------------------------------------------------------------
// Process inspection helpers.

bool ReadWholeFile(const char* path, std::string* out) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buf[64 * 1024];
  bool ok = true;
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ok = false;
      break;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > kMaxMapsBytes) {
      ok = false;
      break;
    }
  }
  close(fd);
  return ok;
}

std::string StripDeleted(std::string path) {
  if (path.size() > kDeletedSuffix.size() &&
      std::string_view(path).substr(path.size() - kDeletedSuffix.size()) ==
          kDeletedSuffix) {
    path.resize(path.size() - kDeletedSuffix.size());
  }
  return path;
}

std::string ExecutablePath() {
  char buf[PATH_MAX + 1];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  return StripDeleted(std::string(buf, static_cast<size_t>(n)));
}

struct LoaderCounters {
  unsigned long long adds = 0;
  unsigned long long subs = 0;
  bool valid = false;
};

// The counters are global to the loader, so the first object is enough.
int ReadCountersCallback(dl_phdr_info* info, size_t size, void* arg) {
  auto* counters = static_cast<LoaderCounters*>(arg);
  if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
    counters->adds = info->dlpi_adds;
    counters->subs = info->dlpi_subs;
    counters->valid = true;
  }
  return 1;
}

LoaderCounters ReadLoaderCounters() {
  LoaderCounters counters;
  dl_iterate_phdr(ReadCountersCallback, &counters);
  return counters;
}

// What the loader knows of one loaded object: where its segments are and the
// build id read from its mapped PT_NOTE (the bytes actually running, even if
// the file on disk has been replaced since).
struct LoadedObject {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [start, end)
  std::string build_id;
};

int CollectObjectCallback(dl_phdr_info* info, size_t, void* arg) {
  auto* objects = static_cast<std::vector<LoadedObject>*>(arg);
  LoadedObject obj;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && ph.p_memsz > 0) {
      const uint64_t start = info->dlpi_addr + ph.p_vaddr;
      obj.ranges.emplace_back(start, start + ph.p_memsz);
    }
  }
  // The loader lock held during this callback keeps the object mapped; a
  // note is read only if a loaded segment covers it entirely.
  for (int i = 0; i < info->dlpi_phnum && obj.build_id.empty(); ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const uint64_t start = info->dlpi_addr + ph.p_vaddr;
    const bool covered =
        std::any_of(obj.ranges.begin(), obj.ranges.end(), [&](const auto& r) {
          return start >= r.first && start <= r.second &&
                 ph.p_memsz <= r.second - start;
        });
    if (covered) {
      obj.build_id = FindBuildIdInNotes(reinterpret_cast<const uint8_t*>(start),
                                        ph.p_memsz, ph.p_align);
    }
  }
  objects->push_back(std::move(obj));
  return 0;
}

// Build id of the loaded object a mapping belongs to, "" if none does.
std::string LoadedBuildId(const std::vector<LoadedObject>& objects,
                          const MappingInfo& m) {
  const uint64_t page = static_cast<uint64_t>(getpagesize());
  for (const LoadedObject& obj : objects) {
    for (const auto& [start, end] : obj.ranges) {
      if (m.start < end && m.limit > (start & ~(page - 1))) return obj.build_id;
    }
  }
  return "";
}

// ---------------------------------------------------------------------------
// /proc/<pid>/maps parsing. One line:
//   start-end perms offset dev:dev inode [spaces path]
// Every field is checked; a line that does not match is skipped whole.

class LineParser {
 public:
  explicit LineParser(std::string_view s) : s_(s) {}

  bool Hex(uint64_t* out) {
    uint64_t v = 0;
    size_t digits = 0;
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      int d;
      if (c >= '0' && c <= '9') {
        d = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        d = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        d = c - 'A' + 10;
      } else {
        break;
      }
      if (++digits > 16) return false;  // would overflow 64 bits
      v = (v << 4) | static_cast<uint64_t>(d);
      ++pos_;
    }
    *out = v;
    return digits > 0;
  }

  bool Decimal() {
    size_t digits = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      ++pos_;
      ++digits;
    }
    return digits > 0 && digits <= 20;
  }

  bool Char(char c) {
    if (pos_ >= s_.size() || s_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  // One or more blanks.
  bool Blanks() {
    const size_t start = pos_;
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
    return pos_ > start;
  }

  bool Perms(std::string_view* out) {
    if (s_.size() - pos_ < 4) return false;
    *out = s_.substr(pos_, 4);
    for (char c : *out) {
      if (std::string_view("rwxsp-").find(c) == std::string_view::npos) {
        return false;
      }
    }
    pos_ += 4;
    return true;
  }

  bool AtEnd() const { return pos_ == s_.size(); }
  std::string_view Rest() const { return s_.substr(pos_); }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

bool ParseMapsLine(std::string_view line, MappingInfo* out) {
  LineParser p(line);
  uint64_t start, end, offset, dev;
  std::string_view perms;
  if (!p.Hex(&start) || !p.Char('-') || !p.Hex(&end) || !p.Blanks() ||
      !p.Perms(&perms) || !p.Blanks() || !p.Hex(&offset) || !p.Blanks() ||
      !p.Hex(&dev) || !p.Char(':') || !p.Hex(&dev) || !p.Blanks() ||
      !p.Decimal()) {
    return false;
  }
  if (!p.AtEnd() && !p.Blanks()) return false;  // junk glued to the inode
  if (start >= end) return false;
  std::string_view path = p.Rest();
  while (!path.empty() && (path.back() == ' ' || path.back() == '\r')) {
    path.remove_suffix(1);
  }
  out->start = start;
  out->limit = end;
  out->offset = offset;
  out->path = StripDeleted(std::string(path));
  return perms[2] == 'x';
}

}  // namespace

std::vector<MappingInfo> ParseProcMaps(const std::string& text) {
  std::vector<MappingInfo> out;
  std::string_view rest(text);
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest =
        nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    MappingInfo m;
    if (!ParseMapsLine(line, &m)) continue;
    // Anonymous executable memory (JIT code) has no file to read symbols
    // from and comes and goes without the loader noticing, so the
    // dlpi_adds/subs refresh could not track it anyway. [vsyscall] is a
    // fixed legacy page outside any object that pprof tools do not expect.
    if (m.path.empty() || m.path == "[vsyscall]") continue;
    out.push_back(std::move(m));
  }
  // Main executable first: the first file-backed mapping, plus any further
  // executable mappings of the same file, in their original order.
  auto first_file = std::find_if(
      out.begin(), out.end(), [](const auto& m) { return m.path[0] == '/'; });
  if (first_file != out.end()) {
    const std::string main_path = first_file->path;
    std::stable_partition(out.begin(), out.end(), [&](const MappingInfo& m) {
      return m.path == main_path;
    });
  }
  return out;
}

std::string ReadBuildId(const uint8_t* data, size_t size) {
  return BuildIdOfImage(ElfImage(data, size));
}

std::string DemangleSymbol(const char* raw) {
  // Only Itanium-mangled names: __cxa_demangle also decodes bare type names,
  // and would turn a C function called "f" into "float".
  if (raw[0] != '_' || raw[1] != 'Z') return raw;
  int status = 0;
  char* demangled = abi::__cxa_demangle(raw, nullptr, nullptr, &status);
  std::string out = (status == 0 && demangled != nullptr) ? demangled : raw;
  std::free(demangled);
  return out;
}

// ---------------------------------------------------------------------------

struct Symbolizer::Impl {
  // One accumulated mapping. Entries are only ever appended, so an index
  // handed out in LocationInfo::mapping stays valid for the process's life.
  struct Entry {
    MappingInfo info;
    ObjectFile* object = nullptr;  // owned by objects; may be null
    uint64_t bias = 0;                   // ELF vaddr = address - bias
    uint64_t last_seen = 0;              // generation of the last maps read
  };

  // Returns true when /proc/self/maps was re-read (and the cache cleared).
  bool RefreshLocked();
  int FindMapping(uint64_t address) const;
  LocationInfo Resolve(uint64_t address);
  size_t AddEntry(MappingInfo m, const std::string& loaded_build_id);
  ObjectFile* ObjectFor(const MappingInfo& m,
                              const std::string& loaded_build_id);

  bool initialized = false;
  LoaderCounters counters;
  uint64_t generation = 0;
  std::vector<Entry> entries;
  // Identity of an entry: the mapping's range, offset, file and build id.
  std::map<std::tuple<uint64_t, uint64_t, uint64_t, std::string, std::string>,
           size_t>
      entry_index;
  std::vector<size_t> live;  // mapped now, sorted by start (non-overlapping)
  std::vector<size_t> gone;  // unmapped since, most recently seen first
  // Per-file cache keyed by path + '\0' + build id. A null value records a
  // file that could not be read (or no longer matches what is loaded), so
  // it is not retried on every refresh.
  std::map<std::string, std::unique_ptr<ObjectFile>> objects;
  std::unique_ptr<ObjectFile> vdso;
  bool vdso_loaded = false;
  std::unordered_map<uint64_t, LocationInfo> cache;
};

bool Symbolizer::Impl::RefreshLocked() {
  const LoaderCounters now = ReadLoaderCounters();
  if (initialized && now.valid && counters.valid && now.adds == counters.adds &&
      now.subs == counters.subs) {
    return false;
  }
  // Loaded objects are listed before maps is read: an object loaded in
  // between gets its build id from its file instead, and the counters
  // recorded (from before) make the next refresh read maps again.
  // libdw is loaded on first use; load it now, not after the maps below
  // were read, or the next refresh would see it as a loader change.
  (void)DwarfReader::LoadLibraries();
  std::vector<LoadedObject> loaded;
  dl_iterate_phdr(CollectObjectCallback, &loaded);
  std::string text;
  // thread-self: once the main thread has exited (pthread_exit), the
  // process-level /proc/self/maps reads empty; the calling thread's view
  // is the same address space and stays readable.
  if (!ReadWholeFile("/proc/thread-self/maps", &text) &&
      !ReadWholeFile("/proc/self/maps", &text)) {
    return false;
  }
  std::vector<MappingInfo> parsed = ParseProcMaps(text);
  // In the live process we know the executable for certain.
  const std::string exe = ExecutablePath();
  if (!exe.empty()) {
    std::stable_partition(parsed.begin(), parsed.end(),
                          [&](const MappingInfo& m) { return m.path == exe; });
  }

  ++generation;
  live.clear();
  for (MappingInfo& m : parsed) {
    const std::string build_id = LoadedBuildId(loaded, m);
    auto key = std::make_tuple(m.start, m.limit, m.offset, m.path, build_id);
    auto it = entry_index.find(key);
    size_t index;
    if (it != entry_index.end()) {
      index = it->second;
    } else {
      index = AddEntry(std::move(m), build_id);
      entry_index.emplace(std::move(key), index);
    }
    entries[index].last_seen = generation;
    live.push_back(index);
  }
  std::sort(live.begin(), live.end(), [&](size_t a, size_t b) {
    return entries[a].info.start < entries[b].info.start;
  });
  gone.clear();
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].last_seen != generation) gone.push_back(i);
  }
  std::stable_sort(gone.begin(), gone.end(), [&](size_t a, size_t b) {
    return entries[a].last_seen > entries[b].last_seen;
  });
  counters = now;
  initialized = true;
  // Cached answers may be stale: a miss may now hit, and an address of an
  // unloaded library may now belong to a new one.
  cache.clear();
  return true;
}

ObjectFile* Symbolizer::Impl::ObjectFor(
    const MappingInfo& m, const std::string& loaded_build_id) {
  if (m.path == "[vdso]") {
    // The vdso is an ELF image the kernel maps into every process; its
    // symbols are read in place, and it is never unmapped.
    const uint64_t base = getauxval(AT_SYSINFO_EHDR);
    if (base != m.start) return nullptr;
    if (!vdso_loaded) {
      vdso_loaded = true;
      vdso = ObjectFile::FromImage(reinterpret_cast<const uint8_t*>(base),
                                   m.limit - m.start, m.path);
    }
    return vdso.get();
  }
  if (m.path[0] != '/') return nullptr;
  const auto key = [&](const std::string& id) { return m.path + '\0' + id; };
  if (!loaded_build_id.empty()) {
    auto it = objects.find(key(loaded_build_id));
    if (it != objects.end()) return it->second.get();
  }
  std::unique_ptr<ObjectFile> obj = ObjectFile::Load(m.path, loaded_build_id);
  if (obj == nullptr) {
    // Unreadable, or replaced on disk since it was loaded: its symbols
    // would be those of another build.
    objects[key(loaded_build_id)] = nullptr;
    return nullptr;
  }
  auto [it, inserted] = objects.try_emplace(key(obj->build_id()), nullptr);
  if (inserted || it->second == nullptr) it->second = std::move(obj);
  return it->second.get();
}

size_t Symbolizer::Impl::AddEntry(MappingInfo m,
                                  const std::string& loaded_build_id) {
  Entry e;
  e.object = ObjectFor(m, loaded_build_id);
  uint64_t p_offset = 0, p_vaddr = 0;
  if (e.object != nullptr &&
      !e.object->FindSegment(m.offset, &p_offset, &p_vaddr)) {
    e.object = nullptr;  // no segment: addresses cannot be translated
  }
  if (e.object != nullptr) {
    // address - start + offset is a file offset; file offset P is at
    // vaddr V, so vaddr = address - (start - offset + P - V). Unsigned
    // wrap-around is intended (vaddr may be above start - offset).
    e.bias = m.start - m.offset + p_offset - p_vaddr;
  }
  m.build_id = !loaded_build_id.empty() ? loaded_build_id
               : e.object != nullptr    ? e.object->build_id()
                                        : "";
  m.has_functions =
      e.object != nullptr && (e.object->has_symbols() || e.object->has_dwarf());
  // pprof reads these as "the locations of this mapping are complete in
  // this respect": with DWARF every covered address gets its file, line
  // and inlined calls.
  const bool dwarf = e.object != nullptr && e.object->has_dwarf();
  m.has_filenames = dwarf;
  m.has_line_numbers = dwarf;
  m.has_inline_frames = dwarf;
  e.info = std::move(m);
  entries.push_back(std::move(e));
  return entries.size() - 1;
}

int Symbolizer::Impl::FindMapping(uint64_t address) const {
  auto it = std::upper_bound(
      live.begin(), live.end(), address,
      [&](uint64_t a, size_t i) { return a < entries[i].info.start; });
  if (it != live.begin() && address < entries[*(it - 1)].info.limit) {
    return static_cast<int>(*(it - 1));
  }
  // An unloaded library's address: the most recently seen holder wins.
  for (size_t i : gone) {
    if (address >= entries[i].info.start && address < entries[i].info.limit) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

LocationInfo Symbolizer::Impl::Resolve(uint64_t address) {
  LocationInfo loc;
  loc.mapping = FindMapping(address);
  if (loc.mapping < 0 && RefreshLocked()) loc.mapping = FindMapping(address);
  if (loc.mapping >= 0) {
    const Entry& e = entries[static_cast<size_t>(loc.mapping)];
    if (e.object != nullptr) e.object->Lookup(address - e.bias, &loc.frames);
  }
  return loc;
}

Symbolizer::Symbolizer() : impl_(std::make_unique<Impl>()) {}

Symbolizer::~Symbolizer() = default;

void Symbolizer::Refresh() {
  std::lock_guard<std::mutex> lock(mu_);
  impl_->RefreshLocked();
}

std::vector<MappingInfo> Symbolizer::Mappings() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!impl_->initialized) impl_->RefreshLocked();
  std::vector<MappingInfo> out;
  out.reserve(impl_->entries.size());
  for (const Impl::Entry& e : impl_->entries) out.push_back(e.info);
  return out;
}

LocationInfo Symbolizer::Symbolize(uint64_t address) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!impl_->initialized) impl_->RefreshLocked();
  auto it = impl_->cache.find(address);
  if (it != impl_->cache.end()) return it->second;
  LocationInfo loc = impl_->Resolve(address);
  if (impl_->cache.size() >= kMaxCachedAddresses) impl_->cache.clear();
  impl_->cache.emplace(address, loc);
  return loc;
}

SymbolizerStats Symbolizer::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  SymbolizerStats stats;
  auto add = [&](const ObjectFile* obj) {
    if (obj == nullptr) return;
    if (obj->has_dwarf()) ++stats.objects_with_dwarf;
    stats.dwarf_lookups += obj->dwarf_lookups();
  };
  for (const auto& [key, obj] : impl_->objects) add(obj.get());
  add(impl_->vdso.get());
  return stats;
}

Symbolizer& Symbolizer::Global() {
  // Leaked on purpose: profiles may be served while static destructors run.
  static Symbolizer* const instance = new Symbolizer();
  return *instance;
}

}  // namespace pprof_agent::internal
