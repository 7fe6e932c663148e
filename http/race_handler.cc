// /debug/pprof/races: reports of concurrent container access from the
// checked containers (pprof_agent/checked.h). Handlers::Races is declared in
// handlers.h. Thin by rule: parse the query, snapshot the store, build,
// respond.
//   debug=0    gzip protobuf, races/count, two samples per report sharing a
//              race_id label (profiler/races/race_profile.h)
//   debug>=1   TSan-style text with symbolized stacks
//   seconds=N  a delta of both over N seconds
#include <string>

#include "http/handlers.h"
#include "profiler/races/race_profile.h"
#include "profiler/races/race_store.h"
#include "profiler/races/race_text.h"
#include "profiler/symbols/symbolizer.h"
#include "proto/profile_builder.h"

namespace pprof_agent::internal {

HttpResponse Handlers::Races(const HttpRequest& request) {
  ProfileQuery query;
  if (auto error = ParseProfileQuery(request.params, max_seconds_, &query)) {
    return ErrorResponse(error->status, error->message);
  }
  RaceSnapshot snapshot = SnapshotRaces();
  RaceSnapshot baseline;
  bool delta = false;
  if (query.seconds > 0) {
    HttpResponse refusal;
    if (!BeginWait(&refusal)) return refusal;
    const bool slept = Sleep(query.seconds);
    EndWait();
    if (!slept) return ErrorResponse(503, "profile canceled: the agent's server is stopping");
    baseline = std::move(snapshot);
    snapshot = SnapshotRaces();
    delta = true;
  }
  HttpResponse response;
  if (query.debug != 0) {
    const RaceSnapshot shown = delta ? RaceDelta(snapshot, baseline) : snapshot;
    response.content_type = kTextContentType;
    response.body = RaceSnapshotText(shown, Symbolizer::Global());
    return response;
  }
  std::string gz = BuildProfileGzip(RacesProfile(snapshot, delta ? &baseline : nullptr),
                                    Symbolizer::Global());
  if (gz.empty()) return ErrorResponse(500, "could not encode the profile");
  response.content_type = "application/octet-stream";
  response.headers.emplace_back("Content-Disposition",
                                std::string("attachment; filename=\"") +
                                    (delta ? "races-delta" : "races") + "\"");
  response.body = std::move(gz);
  return response;
}

}  // namespace pprof_agent::internal
