// The seam between the core agent (libpprof_agent.so) and the HTTP serving
// code that uses cpp-httplib (serve.cc, built as libpprof_agent_serve.so).
// Debian's libcpp-httplib.so brings libssl, libcrypto and libbrotli with
// it; a host that is never sent a request should not pay for mapping and
// relocating them. So the core binds and listens by itself (server.cc) and
// loads the serving library only when the first request has arrived
// (LoadServeApi()). Both sides are built from this tree by the same
// compiler, so C++ types (std::string, HttpRequest) cross the seam as they
// are; only the entry point is extern "C".
#ifndef PPROF_AGENT_HTTP_SERVE_API_H_
#define PPROF_AGENT_HTTP_SERVE_API_H_

#include <cstdint>
#include <string>

#include "http/handlers.h"

namespace pprof_agent::internal {

// What the serving library calls back into the core for.
struct ServeCallbacks {
  void* ctx;
  // Answers a parsed request (Handlers::Serve).
  void (*serve)(void* ctx, const HttpRequest& request, HttpResponse* out);
  // An error response in the agent's shape (ErrorResponse +
  // AddCommonHeaders).
  void (*error)(void* ctx, int status, const std::string& message,
                HttpResponse* out);
};

inline constexpr int kServeApiVersion = 1;

struct ServeApi {
  int version;  // kServeApiVersion
  // A request parser/answerer bound to `callbacks` (which must outlive it).
  void* (*create)(const ServeCallbacks* callbacks);
  // Parses the request on `fd` (its first bytes already in `received`),
  // answers it, then closes `fd`. `deadline_ns` is the request's deadline on
  // std::chrono::steady_clock (time_since_epoch in ns). Thread-safe.
  void (*serve_connection)(void* server, int fd, std::string* received,
                           int64_t deadline_ns);
  void (*destroy)(void* server);
};

}  // namespace pprof_agent::internal

// The serving library's one exported symbol.
extern "C" const pprof_agent::internal::ServeApi* pprof_agent_serve_api();

#endif  // PPROF_AGENT_HTTP_SERVE_API_H_
