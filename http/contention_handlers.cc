// /debug/pprof/mutex, /block, /delta_mutex and /delta_block: Handlers
// methods declared in handlers.h, kept apart from the heap endpoints.
// Thin by rule: parse the query, collect, build, respond.
#include <memory>
#include <mutex>
#include <string>

#include "http/handlers.h"
#include "profiler/contention/contention_profiler.h"
#include "profiler/symbols/symbolizer.h"
#include "proto/profile_builder.h"

namespace pprof_agent::internal {
namespace {

ContentionKind KindOf(const std::string& name) {
  return name == "mutex" || name == "delta_mutex" ? ContentionKind::kMutex
                                                  : ContentionKind::kBlock;
}

}  // namespace

HttpResponse Handlers::Contention(const std::string& name,
                                  const HttpRequest& request) {
  ProfileQuery query;
  if (auto error = ParseProfileQuery(request.params, max_seconds_, &query)) {
    return ErrorResponse(error->status, error->message);
  }
  const ContentionKind kind = KindOf(name);
  if (query.seconds > 0) {
    // Go's delta: contentions and delay are cumulative, so p1 - p0.
    ContentionRaw p0, p1;
    HttpResponse refusal;
    if (!WaitWindow(query.seconds, &refusal, [&] { p0 = CollectContention(kind); },
                    [&] { p1 = CollectContention(kind); })) {
      return refusal;
    }
    const Snapshot snapshot = ContentionProfile(p1, &p0);
    return ProfileResponse(BuildProfileGzip(snapshot, Symbolizer::Global()),
                        name + "-delta");
  }
  const ContentionRaw raw = CollectContention(kind);
  const Snapshot snapshot = ContentionProfile(raw, nullptr);
  if (query.debug != 0) {
    return TextResponse(
        LegacyContentionText(snapshot, name, raw.rate, Symbolizer::Global()));
  }
  return ProfileResponse(BuildProfileGzip(snapshot, Symbolizer::Global()), name);
}

HttpResponse Handlers::DeltaContention(const std::string& name,
                                       const HttpRequest& request) {
  // Pyroscope's godeltaprof: values since the previous request of the same
  // path; the first request returns absolute values. Protobuf only.
  if (auto refusal = RefuseDeltaQuery(request, max_seconds_, name)) return *refusal;
  const ContentionKind kind = KindOf(name);
  Snapshot snapshot;
  {
    // Collect and swap under one lock: concurrent scrapers get adjoining
    // windows, nothing counted twice or lost.
    std::lock_guard<std::mutex> lock(delta_contention_mu_);
    std::unique_ptr<ContentionRaw>& last =
        kind == ContentionKind::kMutex ? last_delta_mutex_ : last_delta_block_;
    auto now = std::make_unique<ContentionRaw>(CollectContention(kind));
    snapshot = ContentionProfile(*now, last.get());
    last = std::move(now);
  }
  return ProfileResponse(BuildProfileGzip(snapshot, Symbolizer::Global()), name);
}

}  // namespace pprof_agent::internal
