// /debug/pprof/lifetimes: how long sampled allocations lived, as a pprof
// profile (profiler/heap/heap_profiler.h LifetimesProfile) with the container
// labels of profiler/heap/container_classifier.h. Thin like every handler: parse,
// collect, build, respond.
#ifndef PPROF_AGENT_HTTP_LIFETIMES_HANDLER_H_
#define PPROF_AGENT_HTTP_LIFETIMES_HANDLER_H_

#include <cstdint>
#include <functional>

#include "http/handlers.h"

namespace pprof_agent::internal {

// Waits `seconds` between the two collections of a delta request. Returns
// false with the response to send (429 busy, 503 stopping) instead.
using DeltaWait = std::function<bool(int64_t seconds, HttpResponse* refusal)>;

// Serves one GET of /debug/pprof/lifetimes: `seconds=N` for a delta,
// `debug=1` for the legacy text listing.
HttpResponse ServeLifetimes(const HttpRequest& request, int64_t max_seconds,
                            const DeltaWait& wait);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_HTTP_LIFETIMES_HANDLER_H_
