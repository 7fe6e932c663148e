// Turns a profiler Snapshot plus symbols into pprof's wire format: the
// gzip-compressed perftools profile message, and Go's legacy text forms.
// No generated protobuf header appears here; callers see bytes only.
#ifndef PPROF_AGENT_PROTO_PROFILE_BUILDER_H_
#define PPROF_AGENT_PROTO_PROFILE_BUILDER_H_

#include <string>

#include "profiler/snapshot.h"
#include "profiler/symbolizer.h"

namespace pprof_agent::internal {

// Serialized, uncompressed Profile message. `drop_frames` is set to the
// agent's own hook frames.
std::string BuildProfileProto(const Snapshot& snapshot, Symbolizer& symbols);

// BuildProfileProto() gzip-compressed at a fast level: what /debug/pprof
// serves with debug=0.
std::string BuildProfileGzip(const Snapshot& snapshot, Symbolizer& symbols);

// gzip of arbitrary bytes (fast level); returns "" only on zlib failure.
std::string Gzip(const std::string& data);

// Go's legacy heap text (`heap?debug=1`): header line, one record per
// sample with inuse and alloc counts and addresses, then `# ` lines with
// symbolized frames. Expects the heap sample types in Go's order.
std::string LegacyHeapText(const Snapshot& snapshot, Symbolizer& symbols);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROTO_PROFILE_BUILDER_H_
