// Source positions and inlined frames of one ELF object, read from its DWARF
// with elfutils' libdw; and the search for that DWARF when the object itself
// has none (the build-id tree under /usr/lib/debug, .gnu_debuglink).
// Cold path only: the symbolizer calls it under its mutex on the server
// thread; it allocates, opens files and is not thread-safe.
#ifndef PPROF_AGENT_PROFILER_SYMBOLS_DWARF_READER_H_
#define PPROF_AGENT_PROFILER_SYMBOLS_DWARF_READER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "profiler/symbols/symbolizer.h"

namespace pprof_agent::internal {

// Where the DWARF of an object was found.
enum class DebugInfoSource {
  kObject,      // the object file itself (built with -g, not stripped)
  kBuildIdDir,  // <root>/.build-id/xx/yyyy.debug (Debian's *-dbg packages)
  kDebugLink,   // the file named by the object's .gnu_debuglink section
};

inline constexpr char kDefaultDebugRoot[] = "/usr/lib/debug";

// <root>/.build-id/<first two hex digits>/<the rest>.debug; "" when the build
// id is too short or not lowercase hex (it becomes part of a path).
std::string BuildIdDebugPath(std::string_view root, std::string_view build_id);

// Where GDB looks for a .gnu_debuglink target `link` of the object at
// `object_path`: its directory, its directory's .debug/, and the same
// directory under `root`. `link` must be a plain file name.
std::vector<std::string> DebugLinkCandidates(std::string_view root,
                                             const std::string& object_path,
                                             const std::string& link);

// The CRC-32 that .gnu_debuglink records (the zlib/IEEE polynomial).
uint32_t DebugLinkCrc32(uint32_t crc, const uint8_t* data, size_t size);

class DwarfReader {
 public:
  // Finds the DWARF of the object at `object_path` (may be "" when only the
  // build id is known, as for the vdso) whose build id is `build_id` (hex;
  // "" if it has none). Tried in order: the object itself, the build-id
  // file under `debug_root`, then the .gnu_debuglink targets. A candidate
  // is taken only if it has .debug_info and .debug_line and is the right
  // build: equal build ids when both are known, else the debuglink CRC.
  // Returns null when nothing fits.
  //
  // The chosen file stays mapped (read-only, private; no descriptor is
  // kept) for the reader's life: lookups keep working after the object is
  // dlclose'd and even after the file is deleted or replaced on disk. Only
  // the ELF headers are read here; the DWARF itself is parsed (and, when
  // compressed, inflated) on the first Lookup().
  static std::unique_ptr<DwarfReader> Open(
      const std::string& object_path, const std::string& build_id,
      const std::string& debug_root = kDefaultDebugRoot);

  // libdw and libelf are not linked: the first Open() (or this) loads
  // them. The symbolizer calls this before it reads the process's mappings,
  // so that loading them is not a loader change it sees later. False if
  // they cannot be loaded (then Open() returns null).
  static bool LoadLibraries();

  ~DwarfReader();
  DwarfReader(const DwarfReader&) = delete;
  DwarfReader& operator=(const DwarfReader&) = delete;

  DebugInfoSource source() const { return source_; }
  // The file the DWARF is read from.
  const std::string& path() const { return path_; }
  // The whole file as mapped, for reading its .symtab; null if unavailable.
  const uint8_t* Image(size_t* size) const;

  // Appends the source frames of the ELF virtual address `vaddr` (link-time
  // address, bias already removed), innermost first: the function the code
  // at `vaddr` belongs to with the position from the line table, then each
  // function it was inlined into with the position of the inlined call;
  // the last is the out-of-line function. `name` is demangled from the
  // linkage name when there is one (then `system_name` holds it), else the
  // DWARF name in both. A position without an enclosing function (no
  // subprogram DIE covers it) is one frame with empty names. Returns false,
  // appending nothing, when no compile unit covers `vaddr`.
  bool Lookup(uint64_t vaddr, std::vector<FrameInfo>* frames);

  // How many lookups did DWARF work (for tests and benchmarks).
  uint64_t lookups() const { return lookups_; }

 private:
  struct Impl;
  DwarfReader();

  DebugInfoSource source_ = DebugInfoSource::kObject;
  std::string path_;
  uint64_t lookups_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_SYMBOLS_DWARF_READER_H_
