// The agent's HTTP server: binds the configured address and serves Handlers
// on the agent's own threads (one listener, kServerThreads workers), each
// marked with MarkCurrentThreadAsAgent() so that nothing it does is sampled.
// Start() binds and starts the listener only; the workers and the HTTP
// library (libpprof_agent_serve.so, see serve_api.h) come with the first
// request.
// The listener accepts connections and reads each request whole with poll()
// (at most kMaxPendingRequests at once, each within kRequestDeadlineMs of
// its accept); only then does a worker parse and serve it. So clients that
// stall or trickle hold no worker, and the workers serve the others at once.
// The HTTP library stays inside serve.cc.
#ifndef PPROF_AGENT_HTTP_SERVER_H_
#define PPROF_AGENT_HTTP_SERVER_H_

#include <memory>

#include "http/config.h"

namespace pprof_agent::internal {

// Worker threads. Small and fixed: the agent must not compete with its host.
inline constexpr int kServerThreads = 4;
// Accepted connections waiting for a worker; beyond it the listener stops
// accepting until one is taken, and the kernel's backlog absorbs the rest.
inline constexpr int kMaxQueuedConnections = 64;
// Pending connections the kernel holds before the listener accepts them.
inline constexpr int kListenBacklog = 64;
// Request limits. A /symbol body is the largest request pprof sends.
inline constexpr size_t kMaxRequestBodyBytes = 64 * 1024;
// The request line and headers; a longer head is answered 4xx.
inline constexpr size_t kMaxRequestHeadBytes = 16 * 1024;
// The whole request (head and body) must arrive within this time of its
// connection being accepted, however it trickles in; then the connection is
// answered 408 (or just closed if nothing came) and closed. pprof, curl and
// scrapers send a request in one piece right after connecting; 3 s leaves a
// loaded machine plenty of room. Serving time is not counted: a `seconds=N`
// profile waits as long as it asks.
inline constexpr int kRequestDeadlineMs = 3000;
// Connections whose request is still arriving. A new one beyond it closes
// the oldest (it has had the most time), so a crowd of stalled clients
// cannot keep new ones out either.
inline constexpr int kMaxPendingRequests = 64;
// Writing the answer: each send() may wait kWriteTimeoutSeconds for the
// client to read, and the whole answer must be written within
// kResponseWriteDeadlineSeconds of its first byte, or the connection is
// closed. A protobuf profile is at most a few hundred KB and fits the
// socket buffers at once; a 32 MiB text (kMaxTextBytes) needs a reader of
// about 1 MB/s. Without the total deadline a client that reads one byte
// now and then would hold a worker for ever, and four would stop the agent.
inline constexpr int kWriteTimeoutSeconds = 10;
inline constexpr int kResponseWriteDeadlineSeconds = 30;

// Not thread-safe: the caller serializes Start/Stop (agent.cc holds a mutex).
class Server {
 public:
  Server();
  ~Server();  // Stop()s
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Validates `config` (Validate(); a bad one leaves a running server as it
  // is), then stops a running server, binds and starts serving; on success
  // logs "serving on http://host:port/debug/pprof/" once. On failure returns
  // the reason (the caller logs it); after a failed bind nothing runs.
  Status Start(const Config& config);

  // Stops serving: waiting delta requests are cut short, in-flight requests
  // finish, threads are joined. Must not be called from a server thread.
  void Stop();

  // The bound port while serving, else 0.
  int port() const;

  // In the child after fork(): the server's threads do not exist there.
  // Closes the inherited listening socket (so the parent alone holds the
  // port) and forgets the server without touching its threads. Only
  // async-signal-safe calls.
  void AbandonAfterFork();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_HTTP_SERVER_H_
