// Cold-path symbolizer: maps addresses of this process to mappings (from
// /proc/self/maps, with ELF build ids), to function names (from the ELF
// symbol tables, demangled) and, where DWARF can be found, to source files,
// lines and inlined frames. Never called from a hook or signal handler; it
// allocates, opens files and takes an ordinary mutex.
#ifndef PPROF_AGENT_PROFILER_SYMBOLS_SYMBOLIZER_H_
#define PPROF_AGENT_PROFILER_SYMBOLS_SYMBOLIZER_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace pprof_agent::internal {

// One executable mapping of the process, as pprof's Mapping message wants it.
struct MappingInfo {
  uint64_t start = 0;
  uint64_t limit = 0;
  uint64_t offset = 0;  // file offset of `start`
  std::string path;     // file name; "[vdso]" and the like for pseudo files
  std::string build_id;  // lowercase hex of NT_GNU_BUILD_ID, empty if none
  bool has_functions = false;
  bool has_filenames = false;
  bool has_line_numbers = false;
  bool has_inline_frames = false;
};

// One source-level frame. A location has several when calls were inlined.
struct FrameInfo {
  std::string name;         // demangled
  std::string system_name;  // as in the symbol table (mangled)
  std::string file;
  int64_t line = 0;
  int64_t column = 0;
  int64_t start_line = 0;
};

struct LocationInfo {
  int mapping = -1;  // index into Mappings(), -1 if no mapping holds it
  // Innermost first; the last one is the function the others were inlined
  // into. Empty when nothing is known about the address.
  std::vector<FrameInfo> frames;
};

// Parses the text of /proc/<pid>/maps into executable mappings, main
// executable (the first executable file mapping) first. Exposed for tests and
// fuzzing.
std::vector<MappingInfo> ParseProcMaps(const std::string& text);

// Demangles an Itanium C++ symbol ("_Z..."); anything else is returned as is.
std::string DemangleSymbol(const char* raw);

// Counters of the work done, for tests and benchmarks.
struct SymbolizerStats {
  uint64_t dwarf_lookups = 0;       // addresses looked up in DWARF (cold)
  uint64_t objects_with_dwarf = 0;  // files whose DWARF was found
};

// Reads NT_GNU_BUILD_ID from an ELF image in memory; empty when absent or the
// image is malformed. Never reads outside [data, data+size).
std::string ReadBuildId(const uint8_t* data, size_t size);

class Symbolizer {
 public:
  Symbolizer();
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // Re-reads /proc/self/maps if the set of loaded objects changed since the
  // last call. Mappings are never dropped once seen, so that samples from an
  // unloaded library keep resolving (to the file as it was then).
  void Refresh();

  // Executable mappings, main executable first.
  std::vector<MappingInfo> Mappings();

  // Symbolizes one address (already adjusted: a return address minus one).
  // Results are cached per address and per object file (path and build id),
  // so only the first lookup of an address reads DWARF, even across loader
  // changes; an unloaded library's DWARF stays open for its old addresses.
  LocationInfo Symbolize(uint64_t address);

  SymbolizerStats Stats();

  // The process-wide instance used by the server.
  static Symbolizer& Global();

 private:
  struct Impl;
  std::mutex mu_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_SYMBOLS_SYMBOLIZER_H_
