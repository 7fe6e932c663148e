// The /debug/pprof endpoints, independent of the HTTP library: a request in,
// a response out. Thin by rule (DESIGN.md): parse the query, call the
// profiler API, marshal with proto/, respond. Headers and error texts follow
// Go's net/http/pprof (PPROF_REFERENCE.md) so pprof clients work unchanged.
#ifndef PPROF_AGENT_HTTP_HANDLERS_H_
#define PPROF_AGENT_HTTP_HANDLERS_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "http/config.h"
#include "http/query.h"

namespace pprof_agent::internal {

struct HeapRaw;
struct ContentionRaw;

struct HttpRequest {
  std::string method;         // "GET", "HEAD", "POST"
  std::string path;           // decoded, without the query
  std::string raw_query;      // after '?', undecoded (for GET /symbol)
  QueryParams params;         // decoded query parameters
  std::string authorization;  // the Authorization header, or ""
  std::string body;
  // True once the client has closed its connection (set by server.cc;
  // empty when unknown). Long requests poll it to stop early.
  std::function<bool()> client_gone;
};

struct HttpResponse {
  int status = 200;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;  // all others
  std::string body;

  // The value of header `name` (exact case), or "".
  std::string Header(const std::string& name) const;
};

inline constexpr char kTextContentType[] = "text/plain; charset=utf-8";

// An error response as Go's serveError writes it: text/plain, X-Go-Pprof: 1
// (pprof shows the body to its user only when both are present), one line.
HttpResponse ErrorResponse(int status, std::string message);

// 200, text/plain (debug=1 and debug=2 answers).
HttpResponse TextResponse(std::string body);

// debug=0: a gzip-compressed protobuf, as a download named `filename`; 500
// when the profile could not be encoded (`gzipped` empty).
HttpResponse ProfileResponse(std::string gzipped, const std::string& filename);

// The query of a godeltaprof endpoint (`name`: delta_heap, delta_mutex,
// delta_block): no `seconds`, debug=0 only. The 400 to send when it is
// refused; nothing when it is fine.
std::optional<HttpResponse> RefuseDeltaQuery(const HttpRequest& request,
                                             int64_t max_seconds,
                                             const std::string& name);

// Adds what every response carries (X-Content-Type-Options: nosniff) unless
// already present. Serve() applies it; server.cc applies it to the responses
// the HTTP library makes by itself (413, 414, ...).
void AddCommonHeaders(HttpResponse* response);

// Delta requests (`seconds=N`) hold a server thread while they wait. At most
// this many wait at once, so the others stay free for ordinary requests
// (server.cc runs kServerThreads threads); more get 429 instead of queueing.
inline constexpr int kMaxConcurrentWaits = 2;

class Handlers {
 public:
  explicit Handlers(const Config& config);
  ~Handlers();
  Handlers(const Handlers&) = delete;
  Handlers& operator=(const Handlers&) = delete;

  // Serves one request. Thread-safe; never throws (an exception becomes a
  // 500 with its message).
  HttpResponse Serve(const HttpRequest& request);

  // Wakes every waiting delta request (it answers 503) and refuses new ones,
  // so that stopping the server never waits out a `seconds=300`.
  void Shutdown();

 private:
  HttpResponse Route(const HttpRequest& request);
  bool Authorized(const HttpRequest& request) const;
  HttpResponse Index();
  HttpResponse Cmdline();
  HttpResponse Symbol(const HttpRequest& request);
  HttpResponse Heap(const std::string& name, const HttpRequest& request);
  HttpResponse DeltaHeap(const HttpRequest& request);
  HttpResponse CpuProfile(const HttpRequest& request);  // cpu_handler.cc
  // mutex, block, delta_mutex, delta_block (contention_handlers.cc).
  HttpResponse Contention(const std::string& name, const HttpRequest& request);
  HttpResponse DeltaContention(const std::string& name,
                               const HttpRequest& request);
  // goroutine and threadcreate (thread_handlers.cc).
  HttpResponse Goroutine(const HttpRequest& request);
  HttpResponse ThreadCreate(const HttpRequest& request);
  // races (race_handler.cc).
  HttpResponse Races(const HttpRequest& request);

  // The one wait of the `seconds=N` deltas: takes a wait slot, runs
  // `begin` (collect p0), sleeps N seconds, runs `end` (collect p1), gives
  // the slot back. False, with the response to send, when no slot is free
  // (429), the server is stopping (503) or Shutdown() ends the sleep (503,
  // `end` not run).
  template <typename Begin, typename End>
  bool WaitWindow(int64_t seconds, HttpResponse* refusal, Begin begin, End end) {
    if (!BeginWait(refusal)) return false;
    begin();
    const bool slept = Sleep(seconds);
    if (slept) end();
    EndWait();
    if (!slept) {
      *refusal = ErrorResponse(503, "profile canceled: the agent's server is stopping");
    }
    return slept;
  }

  // Delta waits: Begin fails (with the response to send) when too many wait
  // or the server is stopping; Sleep returns false when woken by Shutdown().
  bool BeginWait(HttpResponse* refusal);
  void EndWait();
  bool Sleep(int64_t seconds);

  const std::string token_;
  const int64_t max_seconds_;
  const int64_t cpu_hz_;
  const int cpu_signal_;

  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  bool shutting_down_ = false;  // guarded by wait_mu_
  int waiting_ = 0;             // guarded by wait_mu_

  // Baseline of /delta_heap (Pyroscope): the previous request's collection.
  std::mutex delta_heap_mu_;
  std::unique_ptr<HeapRaw> last_delta_heap_;  // guarded by delta_heap_mu_

  // Baselines of /delta_mutex and /delta_block.
  std::mutex delta_contention_mu_;
  std::unique_ptr<ContentionRaw> last_delta_mutex_;  // guarded by the above
  std::unique_ptr<ContentionRaw> last_delta_block_;  // guarded by the above
};

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_HTTP_HANDLERS_H_
