// /debug/pprof/lifetimes; see lifetimes_handler.h.
#include "http/lifetimes_handler.h"

#include <string>
#include <utility>

#include "profiler/heap/container_classifier.h"
#include "profiler/heap/heap_profiler.h"
#include "profiler/symbols/symbolizer.h"
#include "proto/profile_builder.h"

namespace pprof_agent::internal {

HttpResponse ServeLifetimes(const HttpRequest& request, int64_t max_seconds,
                            const DeltaWait& wait) {
  ProfileQuery query;
  if (auto error = ParseProfileQuery(request.params, max_seconds, &query)) {
    return ErrorResponse(error->status, error->message);
  }
  Snapshot snapshot;
  std::string filename = "lifetimes";
  if (query.seconds > 0) {
    const HeapRaw p0 = CollectHeap();
    HttpResponse refusal;
    if (!wait(query.seconds, &refusal)) return refusal;
    snapshot = LifetimesProfile(CollectHeap(), &p0);
    filename += "-delta";
  } else {
    snapshot = LifetimesProfile(CollectHeap(), nullptr);
  }
  Symbolizer& symbolizer = Symbolizer::Global();
  AddContainerLabels(&snapshot, symbolizer);
  if (query.debug != 0) return TextResponse(LegacyHeapText(snapshot, symbolizer));
  return ProfileResponse(BuildProfileGzip(snapshot, symbolizer), filename);
}

}  // namespace pprof_agent::internal
