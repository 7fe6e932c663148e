// Turns a profiler Snapshot plus symbols into pprof's wire format: the
// gzip-compressed perftools profile message, and Go's legacy text forms.
// No generated protobuf header appears here; callers see bytes only.
#ifndef PPROF_AGENT_PROTO_PROFILE_BUILDER_H_
#define PPROF_AGENT_PROTO_PROFILE_BUILDER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "profiler/snapshot.h"
#include "profiler/symbolizer.h"

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

// Go's legacy heap text (`heap?debug=1`): header line, one record per
// sample with inuse and alloc counts and addresses, then `# ` lines with
// symbolized frames. Expects the heap sample types in Go's order.
// Values are printed as raw sample counts (see the .cc) and other sample
// types get a generic listing of the same shape.
std::string LegacyHeapText(const Snapshot& snapshot, Symbolizer& symbols);
std::string LegacyHeapText(const Snapshot& snapshot, SymbolSource& symbols);

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
                                 std::string_view name,
                                 int64_t sampling_period,
                                 SymbolSource& symbols);

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
                                   std::string_view name,
                                   SymbolSource& symbols);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROTO_PROFILE_BUILDER_H_
