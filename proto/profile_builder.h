// Turns a profiler Snapshot plus symbols into pprof's wire format: the
// gzip-compressed perftools profile message, and Go's legacy text forms.
// No generated protobuf header appears here; callers see bytes only.
#ifndef PPROF_AGENT_PROTO_PROFILE_BUILDER_H_
#define PPROF_AGENT_PROTO_PROFILE_BUILDER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "profiler/base/snapshot.h"
#include "profiler/symbols/symbolizer.h"

namespace pprof_agent::internal {

// The profile's `drop_frames`: pprof hides every frame whose name matches
// (anchored, after stripping the argument list) and all frames beneath it.
// It names what tcmalloc and Go hide from their users: the agent's own code
// (an optional leading word catches a template's demangled return type), the
// malloc-family entry points it interposes (glibc's __libc_ aliases too, and
// a symbol version such as "@@GLIBC_2.2.5" if the symbolizer appends one) and
// operator new/delete. It keeps
// std::allocator and container frames: they are the user's code, and a later
// classification of containers reads them. pprof only hides frames in its
// view; the data stays in the profile. RE2 syntax, as pprof compiles it.
inline constexpr std::string_view kDropFrames =
    R"((\w+ )*pprof_agent::.*)"
    R"(|(__libc_)?(malloc|calloc|realloc|reallocarray|free|cfree|memalign)"
    R"(|posix_memalign|aligned_alloc|valloc|pvalloc)(@.*)?)"
    R"(|operator new.*|operator delete.*)";

// What the builder needs from a symbolizer. The Symbolizer overloads below
// adapt the real one (after a Refresh()); tests and the fuzz target supply
// fixed symbols so they depend neither on /proc nor on debug info.
class SymbolSource {
 public:
  virtual ~SymbolSource() = default;
  // Executable mappings, main executable first; called at most once per
  // build.
  virtual std::vector<MappingInfo> Mappings() = 0;
  // Symbolizes one already adjusted address; called once per distinct one.
  virtual LocationInfo Symbolize(uint64_t address) = 0;
};

// Serialized, uncompressed Profile message. `drop_frames` is set to the
// agent's own hook frames.
std::string BuildProfileProto(const Snapshot& snapshot, Symbolizer& symbols);
std::string BuildProfileProto(const Snapshot& snapshot, SymbolSource& symbols);

// BuildProfileProto() gzip-compressed at a fast level: what /debug/pprof
// serves with debug=0.
std::string BuildProfileGzip(const Snapshot& snapshot, Symbolizer& symbols);
std::string BuildProfileGzip(const Snapshot& snapshot, SymbolSource& symbols);

// gzip of arbitrary bytes (fast level); returns "" only on zlib failure.
std::string Gzip(const std::string& data);

// Every legacy text (debug=1 and 2) is built whole in the host's memory
// before it is sent, and its size grows with the number of stacks: with the
// stack table full (2^20 distinct stacks offered), heap?debug=1 was 250 MB
// and raised the host's peak RSS by 550 MB. So each text stops adding
// records once it reaches kMaxTextBytes; the record that crosses the limit
// is still written whole, so a text is at most the limit plus one record
// plus its closing comments. A text cut short ends with a comment line (Go's
// parsers skip "#" lines)
//   # pprof-agent: text truncated at <limit> bytes: <n> of <total> <records>
//     left out (debug=0 has them all)
// and its header totals still count every record. The buffer is reserved
// whole once a text passes kTextReserveAfterBytes, so it never grows by
// doubling past the limit: building a text costs at most about the limit in
// resident memory (untouched reserved pages are not resident), on top of
// the snapshot that debug=0 needs as well.
inline constexpr size_t kMaxTextBytes = size_t{32} << 20;
inline constexpr size_t kTextReserveAfterBytes = size_t{1} << 20;

// Whether a text being built in `out` may take another record under
// `max_bytes`. The first time the text passes kTextReserveAfterBytes it
// reserves the rest of the budget (plus room for the record that crosses
// it and the comments), so that no reallocation copies it again.
bool TextHasRoom(std::string* out, size_t max_bytes);

// The closing comment of a text cut at `limit` bytes, without "# " (see
// kMaxTextBytes). `records` names what was left out ("records", "threads").
std::string TruncationComment(size_t limit, size_t left_out, size_t total,
                              std::string_view records);

// Go's legacy heap text (`heap?debug=1`): header line, one record per
// sample with inuse and alloc counts and addresses, then `# ` lines with
// symbolized frames. Expects the heap sample types in Go's order.
// Values are printed as raw sample counts (see the .cc) and other sample
// types get a generic listing of the same shape.
std::string LegacyHeapText(const Snapshot& snapshot, Symbolizer& symbols);
std::string LegacyHeapText(const Snapshot& snapshot, SymbolSource& symbols,
                           size_t max_bytes = kMaxTextBytes);

// Go's legacy text of the mutex and block profiles (`mutex?debug=1`; Go's
// runtime/pprof writeProfileInternal): "--- <name>:", "cycles/second=" (our
// delays are nanoseconds, so 1e9 keeps pprof's conversion exact), for
// "mutex" also "sampling period=<sampling_period>", then one
// "<delay> <contentions> @ <addresses>" record per sample, largest delay
// first, each followed by its "#\t" frame lines. Expects the sample types
// contentions and delay; anything else gets the generic listing.
std::string LegacyContentionText(const Snapshot& snapshot,
                                 std::string_view name,
                                 int64_t sampling_period, Symbolizer& symbols);
std::string LegacyContentionText(const Snapshot& snapshot,
                                 std::string_view name, int64_t sampling_period,
                                 SymbolSource& symbols,
                                 size_t max_bytes = kMaxTextBytes);

// Go's legacy text of a count profile (`goroutine?debug=1`,
// `threadcreate?debug=1`; runtime/pprof printCountProfile): "<name> profile:
// total N", then one "<count> @ <addresses>" record per distinct stack,
// largest count first, each followed by its "#\t" frame lines. Samples with
// the same stack are merged whatever their labels; a thread_name label
// becomes a "# threads:" line. Samples without a stack count in the total
// and are listed in the closing comments only (pprof's parser rejects a
// record without addresses). Expects one sample type.
std::string LegacyCountProfileText(const Snapshot& snapshot,
                                   std::string_view name, Symbolizer& symbols);
std::string LegacyCountProfileText(const Snapshot& snapshot,
                                   std::string_view name, SymbolSource& symbols,
                                   size_t max_bytes = kMaxTextBytes);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROTO_PROFILE_BUILDER_H_
