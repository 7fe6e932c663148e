// The serving half of the agent's HTTP server, built as
// libpprof_agent_serve.so and loaded by the core only when the first request
// has arrived (serve_api.h): cpp-httplib parses each request that server.cc's
// listener has read whole, and writes the answer. cpp-httplib 0.11 adapted to
// an in-process agent; what the library does by default, and why we change
// it:
//  - Server::Server() calls signal(SIGPIPE, SIG_IGN): a process-wide change
//    of the host's disposition. We restore the host's disposition, and
//    every send() passes MSG_NOSIGNAL, so a send() to a vanished client
//    fails with EPIPE in our thread and the host's SIGPIPE semantics are
//    untouched.
//  - Its bind and listen loop are not used: server.cc binds (SO_REUSEADDR
//    only, never SO_REUSEPORT; FD_CLOEXEC), accepts and reads every request
//    whole with poll() under a deadline, and its own agent threads call
//    ServeConnection(), which has httplib parse the request from our
//    DeadlineStream (process_request, a protected member).
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "http/connection_probe.h"
#include "http/httplib_compat.h"
#include "http/serve_api.h"
#include "http/server.h"

namespace pprof_agent::internal {
namespace {

using Clock = std::chrono::steady_clock;

int MillisUntil(Clock::time_point deadline) {
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits for `events` on `fd` for at most `timeout_ms`; false on timeout.
bool PollFor(int fd, short events, int timeout_ms) {
  pollfd p = {fd, events, 0};
  for (;;) {
    const int rc = poll(&p, 1, timeout_ms);
    if (rc < 0 && errno == EINTR) continue;
    return rc > 0;
  }
}


// The stream httplib parses a request from and writes its response to: the
// bytes the listener already read, then the (non-blocking) socket. Reads
// fail once the request's deadline has passed, so even a request the
// listener handed over unfinished (see JudgeRequestArrival) holds a worker
// only until then. Writes wait at most kWriteTimeoutSeconds each and end
// kResponseWriteDeadlineSeconds after the first one.
class DeadlineStream final : public httplib::Stream {
 public:
  DeadlineStream(int fd, std::string received, Clock::time_point deadline)
      : fd_(fd), buffer_(std::move(received)), deadline_(deadline) {}

  bool is_readable() const override {
    return offset_ < buffer_.size() || PollFor(fd_, POLLIN, 0);
  }
  bool is_writable() const override { return PollFor(fd_, POLLOUT, WriteWaitMillis()); }
  ssize_t read(char* ptr, size_t size) override {
    // httplib reads the head a byte at a time: serve it from a buffer.
    if (offset_ == buffer_.size()) {
      buffer_.resize(16 * 1024);
      offset_ = 0;
      const ssize_t n = Receive(buffer_.data(), buffer_.size());
      buffer_.resize(n > 0 ? static_cast<size_t>(n) : 0);
      if (n <= 0) return n;
    }
    const size_t n = std::min(size, buffer_.size() - offset_);
    std::memcpy(ptr, buffer_.data() + offset_, n);
    offset_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    StartWriteClock();
    for (;;) {
      // MSG_NOSIGNAL: a vanished client is EPIPE here, never a SIGPIPE.
      const ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      const int wait_ms = WriteWaitMillis();
      if (wait_ms == 0 || !PollFor(fd_, POLLOUT, wait_ms)) return -1;
    }
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    SocketEndpoint(fd_, /*peer=*/true, &ip, &port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    SocketEndpoint(fd_, /*peer=*/false, &ip, &port);
  }
  socket_t socket() const override { return fd_; }

 private:
  ssize_t Receive(char* ptr, size_t size) {
    for (;;) {
      const ssize_t n = ::recv(fd_, ptr, size, 0);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      const int left = MillisUntil(deadline_);
      if (left == 0 || !PollFor(fd_, POLLIN, left)) return -1;
    }
  }

  const int fd_;
  std::string buffer_;
  size_t offset_ = 0;
  const Clock::time_point deadline_;
  // Set by the first write: the end of kResponseWriteDeadlineSeconds.
  mutable Clock::time_point write_deadline_{};

  void StartWriteClock() const {
    if (write_deadline_ == Clock::time_point{}) {
      write_deadline_ = Clock::now() + std::chrono::seconds(kResponseWriteDeadlineSeconds);
    }
  }
  // How long the next wait for the socket to drain may last (0: the
  // answer's time is up).
  int WriteWaitMillis() const {
    StartWriteClock();
    return std::min(kWriteTimeoutSeconds * 1000, MillisUntil(write_deadline_));
  }
};


// Exposes the listening socket (a protected member) for the fork policy,
// and httplib's request processing for connections we accepted ourselves.
class HttpServer final : public httplib::Server {
 public:
  int listen_fd() const { return svr_sock_; }

  // Parses and answers the request, then closes `fd`. One request per
  // connection (see Start()).
  void ServeConnection(int fd, std::string received,
                       Clock::time_point deadline) {
    try {
      DeadlineStream stream(fd, std::move(received), deadline);
      bool connection_closed = false;
      process_request(stream, /*close_connection=*/true, connection_closed,
                      nullptr);
    } catch (...) {
      // bad_alloc outside a handler: drop this connection, not the host.
    }
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
  }
};

// httplib::Server's constructor ignores SIGPIPE process-wide; undo that.
// This runs in the listener thread at the first request, so a host thread
// that changed SIGPIPE's disposition in the same microseconds would see its
// change undone; httplib 0.11 offers no constructor without the signal().
std::unique_ptr<HttpServer> NewHttpServer() {
  struct sigaction saved;
  const bool have_saved = sigaction(SIGPIPE, nullptr, &saved) == 0;
  auto server = std::make_unique<HttpServer>();
  if (have_saved) sigaction(SIGPIPE, &saved, nullptr);
  return server;
}

HttpRequest ToHttpRequest(const httplib::Request& req) {
  HttpRequest request;
  request.method = req.method;
  request.path = req.path;
  const size_t q = req.target.find('?');
  if (q != std::string::npos) request.raw_query = req.target.substr(q + 1);
  request.params = req.params;
  request.authorization = req.get_header_value("Authorization");
  request.body = req.body;
  request.client_gone = ClientGoneProbe(req.local_addr, req.local_port,
                                        req.remote_addr, req.remote_port);
  return request;
}

void Send(HttpResponse response, httplib::Response& res) {
  res.status = response.status;
  for (const auto& [key, value] : response.headers) {
    // The server's default headers (nosniff) are already in `res`.
    if (!res.has_header(key.c_str())) res.set_header(key.c_str(), value);
  }
  if (!response.content_type.empty()) {
    // set_content() would copy the body: a second copy of a large profile
    // in the host's memory.
    res.body = std::move(response.body);
    res.headers.erase("Content-Type");
    res.set_header("Content-Type", response.content_type);
  }
}

// Responses httplib makes by itself (unparsable request, 413, 414, ...):
// give them our error shape. Ours already have a body and pass untouched.
httplib::Server::HandlerResponse FillLibraryError(const ServeCallbacks* cb,
                                                  httplib::Response& res) {
  if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
  std::string message;
  switch (res.status) {
    case 400:
      message = "bad request";
      break;
    case 404:
      message = "404 page not found";
      break;
    case 413:
      message = "request body too large (limit " +
                std::to_string(kMaxRequestBodyBytes) + " bytes)";
      break;
    case 414:
      message = "request URI too long";
      break;
    default:
      message = "HTTP error " + std::to_string(res.status);
      break;
  }
  HttpResponse response;
  cb->error(cb->ctx, res.status, message, &response);
  Send(response, res);
  return httplib::Server::HandlerResponse::Handled;
}

// httplib reads a Content-Length it cannot parse ("abc", "-1") as 0 and
// serves the request without its body; the rest of the bytes would then be
// read as a request of their own. Refuse such framing before any handler
// (or the body reader) runs: digits only, and repeated values must agree.
httplib::Server::HandlerResponse RejectBadFraming(const ServeCallbacks* cb,
                                                 const httplib::Request& req,
                                                 httplib::Response& res) {
  const size_t count = req.get_header_value_count("Content-Length");
  for (size_t i = 0; i < count; ++i) {
    const std::string value = req.get_header_value("Content-Length", i);
    if (value.empty() || value.size() > 19 ||
        value.find_first_not_of("0123456789") != std::string::npos ||
        value != req.get_header_value("Content-Length", 0)) {
      HttpResponse response;
      cb->error(cb->ctx, 400, "invalid Content-Length", &response);
      Send(response, res);
      return httplib::Server::HandlerResponse::Handled;
    }
  }
  return httplib::Server::HandlerResponse::Unhandled;
}

// One configured httplib::Server per core Server.
HttpServer* NewConfiguredServer(const ServeCallbacks* cb) {
  std::unique_ptr<HttpServer> owned = NewHttpServer();
  HttpServer& http = *owned;
  http.set_payload_max_length(kMaxRequestBodyBytes);
  // One request per connection (ServeConnection): a kept-alive connection
  // would hold a worker while idle, and four idle keep-alive clients would
  // stop the server. Profile clients make one request per connection anyway.
  http.set_pre_routing_handler(httplib::Server::HandlerWithResponse(
      [cb](const httplib::Request& req, httplib::Response& res) {
        return RejectBadFraming(cb, req, res);
      }));
  http.set_default_headers({{"X-Content-Type-Options", "nosniff"}});
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [cb](const httplib::Request&, httplib::Response& res) {
        return FillLibraryError(cb, res);
      }));
  http.set_exception_handler([cb](const httplib::Request&,
                                  httplib::Response& res, std::exception_ptr) {
    // Serve() catches everything; this covers the adapter itself
    // (e.g. bad_alloc copying a request), and keeps httplib from
    // putting exception texts into headers.
    HttpResponse response;
    cb->error(cb->ctx, 500, "internal error", &response);
    res.headers.clear();
    Send(response, res);
  });
  auto serve = [cb](const httplib::Request& req, httplib::Response& res) {
    HttpResponse response;
    cb->serve(cb->ctx, ToHttpRequest(req), &response);
    Send(std::move(response), res);
  };
  // Every path: Handlers routes (and answers 404s in Go's words). GET also
  // serves HEAD.
  http.Get(".*", serve);
  http.Post(".*", serve);
  return owned.release();
}

void* Create(const ServeCallbacks* cb) {
  try {
    return NewConfiguredServer(cb);
  } catch (...) {
    return nullptr;
  }
}

void ServeOne(void* server, int fd, std::string* received, int64_t deadline_ns) {
  const Clock::time_point deadline{std::chrono::nanoseconds(deadline_ns)};
  static_cast<HttpServer*>(server)->ServeConnection(fd, std::move(*received),
                                                    deadline);
}

void Destroy(void* server) { delete static_cast<HttpServer*>(server); }

constexpr ServeApi kApi = {kServeApiVersion, Create, ServeOne, Destroy};

}  // namespace
}  // namespace pprof_agent::internal

extern "C" __attribute__((visibility("default")))
const pprof_agent::internal::ServeApi* pprof_agent_serve_api() {
  return &pprof_agent::internal::kApi;
}
