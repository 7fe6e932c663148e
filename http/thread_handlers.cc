// /debug/pprof/goroutine and /debug/pprof/threadcreate: Handlers methods
// declared in handlers.h (routing and the index rows are in handlers.cc).
// Thin by rule: parse the query, collect, build, respond.
//
// goroutine (our goroutines are the process's threads; profiler/threads/thread_dump.h)
//   debug=0  protobuf, goroutine/count, identical stacks aggregated, labels
//            thread_name, state, lock_wait, stack_missing
//   debug=1  Go's aggregated text ("goroutine profile: total N")
//   debug=2  the full per-thread dump, opening with the wait-for summary
//            (deadlocks, wait chains, longest waits)
//   One dump at a time: a request waits up to 2 s for the previous one, then
//   gets 409. When no stack can be taken at all (the dump signal has an
//   application handler), debug=2 still lists every thread with its state
//   and waits; debug=0/1 answer 500 with the reason.
//   `seconds` is refused (400): a delta of thread stacks says little.
//
// threadcreate: stacks that called pthread_create, cumulative counts
//   (threadcreate/count); debug>=1 Go's text; seconds=N a delta.
#include <string>

#include "http/handlers.h"
#include "profiler/symbols/symbolizer.h"
#include "profiler/threads/thread_create_profiler.h"
#include "profiler/threads/thread_dump.h"
#include "proto/profile_builder.h"
#include "proto/thread_dump_text.h"

namespace pprof_agent::internal {

HttpResponse Handlers::Goroutine(const HttpRequest& request) {
  ProfileQuery query;
  if (auto error = ParseProfileQuery(request.params, max_seconds_, &query)) {
    return ErrorResponse(error->status, error->message);
  }
  if (query.seconds > 0) {
    return ErrorResponse(
        400, "\"seconds\" parameter is not supported for the goroutine profile");
  }
  ThreadDumpOptions options;
  options.signal = ThreadDumpSignal();
  ThreadDump dump;
  std::string message;
  if (!CollectThreadDump(options, &dump, &message)) {
    return ErrorResponse(409, "Could not take a thread dump: " + message);
  }
  if (query.debug >= 2) return TextResponse(ThreadDumpText(dump, Symbolizer::Global()));
  if (!dump.stack_error.empty()) {
    return ErrorResponse(500, "Could not take thread stacks: " + dump.stack_error +
                                  " (goroutine?debug=2 still lists the threads)");
  }
  const Snapshot snapshot = GoroutineProfile(dump);
  if (query.debug == 1) {
    return TextResponse(LegacyCountProfileText(snapshot, "goroutine", Symbolizer::Global()));
  }
  return ProfileResponse(BuildProfileGzip(snapshot, Symbolizer::Global()), "goroutine");
}

HttpResponse Handlers::ThreadCreate(const HttpRequest& request) {
  ProfileQuery query;
  if (auto error = ParseProfileQuery(request.params, max_seconds_, &query)) {
    return ErrorResponse(error->status, error->message);
  }
  if (query.seconds > 0) {
    ThreadCreateRaw p0, p1;
    HttpResponse refusal;
    if (!WaitWindow(query.seconds, &refusal, [&p0] { p0 = CollectThreadCreate(); },
                    [&p1] { p1 = CollectThreadCreate(); })) {
      return refusal;
    }
    return ProfileResponse(BuildProfileGzip(ThreadCreateProfile(p1, &p0), Symbolizer::Global()),
                   "threadcreate-delta");
  }
  const Snapshot snapshot = ThreadCreateProfile(CollectThreadCreate());
  if (query.debug != 0) {
    return TextResponse(LegacyCountProfileText(snapshot, "threadcreate", Symbolizer::Global()));
  }
  return ProfileResponse(BuildProfileGzip(snapshot, Symbolizer::Global()), "threadcreate");
}

}  // namespace pprof_agent::internal
