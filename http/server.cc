// cpp-httplib 0.11 adapted to an in-process agent. What the library does by
// default, and why we change it:
//  - Server::Server() calls signal(SIGPIPE, SIG_IGN): a process-wide change
//    of the host's disposition. We restore the host's disposition and block
//    signals in our threads instead, so a send() to a vanished client fails
//    with EPIPE in our thread and the host's SIGPIPE semantics are untouched.
//  - default_socket_options sets SO_REUSEPORT: a second process could bind
//    the same port and silently take half the connections. We set
//    SO_REUSEADDR only (quick restarts), and FD_CLOEXEC so that a child the
//    host execs does not keep the port open.
//  - It listens with a backlog of 5; we raise it (see Start()).
//  - Its ThreadPool threads are anonymous and would be sampled; ours are
//    marked as agent threads, block asynchronous signals (the host's
//    process-directed signals go to its own threads) and are bounded.
//  - Its listen loop hands each accepted socket to a worker, which then
//    reads the request with a timeout per recv(): a client that stalls
//    holds a worker for the whole timeout, one that sends a byte every few
//    seconds holds it for ever, and kServerThreads of them stop the server.
//    We run our own loop instead (ReadRequests): one thread accepts and
//    reads every request whole with poll() under a deadline, and a worker
//    gets only requests that have arrived, which httplib parses from our
//    DeadlineStream (process_request, a protected member).
#include "http/server.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "http/connection_probe.h"
#include "http/handlers.h"
#include "http/httplib_compat.h"
#include "http/log.h"
#include "profiler/base/runtime.h"

namespace pprof_agent::internal {
namespace {

// Blocks every asynchronous signal in the calling thread until destroyed.
// Threads created meanwhile inherit the mask from their first instruction;
// synchronous faults stay unblocked (blocking them would not help: the
// kernel kills the process anyway).
class ScopedBlockSignals {
 public:
  ScopedBlockSignals() {
    sigset_t set;
    sigfillset(&set);
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS}) {
      sigdelset(&set, sig);
    }
    pthread_sigmask(SIG_BLOCK, &set, &saved_);
  }
  ~ScopedBlockSignals() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  ScopedBlockSignals(const ScopedBlockSignals&) = delete;
  ScopedBlockSignals& operator=(const ScopedBlockSignals&) = delete;

 private:
  sigset_t saved_;
};

// Every thread of the server is made here. May throw std::system_error.
std::thread SpawnAgentThread(const char* name, std::function<void()> body) {
  ScopedBlockSignals block;
  std::thread thread([body = std::move(body)] {
    MarkCurrentThreadAsAgent();  // first: nothing below may be sampled
    body();
  });
  // Named from here, so the name is there before the thread first runs
  // (for top -H, gdb and the tests). At most 15 characters.
  pthread_setname_np(thread.native_handle(), name);
  return thread;
}

// The workers: agent threads and a bounded queue. enqueue() is called only
// by the listener thread, shutdown() by Stop() once the listener has ended.
class AgentThreadPool final : public httplib::TaskQueue {
 public:
  AgentThreadPool() {
    for (int i = 0; i < kServerThreads; ++i) {
      try {
        threads_.push_back(SpawnAgentThread("pprof-http", [this] { Work(); }));
      } catch (const std::exception&) {
        break;  // fewer workers; with none, enqueue() runs jobs inline
      }
    }
  }
  ~AgentThreadPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    if (threads_.empty()) {
      fn();
      return;
    }
    std::unique_lock<std::mutex> lock(mu_);
    // Back-pressure instead of an unbounded queue: the listener waits, and
    // new connections wait in the kernel's backlog.
    space_.wait(lock, [this] {
      return jobs_.size() < static_cast<size_t>(kMaxQueuedConnections);
    });
    jobs_.push_back(std::move(fn));
    lock.unlock();
    work_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    work_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        // Drain before exiting: each job owns an accepted socket that only
        // the job closes.
        if (jobs_.empty()) return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      space_.notify_one();
      fn();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable work_;
  std::condition_variable space_;
  std::deque<std::function<void()>> jobs_;  // guarded by mu_
  bool stopping_ = false;                   // guarded by mu_
};

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
std::unique_ptr<HttpServer> NewHttpServer() {
  struct sigaction saved;
  const bool have_saved = sigaction(SIGPIPE, nullptr, &saved) == 0;
  auto server = std::make_unique<HttpServer>();
  if (have_saved) sigaction(SIGPIPE, &saved, nullptr);
  return server;
}

void ListenSocketOptions(socket_t sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  const int flags = fcntl(sock, F_GETFD);
  if (flags >= 0) fcntl(sock, F_SETFD, flags | FD_CLOEXEC);
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
httplib::Server::HandlerResponse FillLibraryError(const httplib::Request&,
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
  HttpResponse response = ErrorResponse(res.status, message);
  AddCommonHeaders(&response);
  Send(response, res);
  return httplib::Server::HandlerResponse::Handled;
}

// httplib reads a Content-Length it cannot parse ("abc", "-1") as 0 and
// serves the request without its body; the rest of the bytes would then be
// read as a request of their own. Refuse such framing before any handler
// (or the body reader) runs: digits only, and repeated values must agree.
httplib::Server::HandlerResponse RejectBadFraming(const httplib::Request& req,
                                                  httplib::Response& res) {
  const size_t count = req.get_header_value_count("Content-Length");
  for (size_t i = 0; i < count; ++i) {
    const std::string value = req.get_header_value("Content-Length", i);
    if (value.empty() || value.size() > 19 ||
        value.find_first_not_of("0123456789") != std::string::npos ||
        value != req.get_header_value("Content-Length", 0)) {
      HttpResponse response = ErrorResponse(400, "invalid Content-Length");
      AddCommonHeaders(&response);
      Send(response, res);
      return httplib::Server::HandlerResponse::Handled;
    }
  }
  return httplib::Server::HandlerResponse::Unhandled;
}

// A connection whose request is still arriving.
struct PendingRequest {
  int fd = -1;
  Clock::time_point deadline;
  std::string received;
  bool continue_sent = false;
};

// The bytes a pending request may grow to before it is handed over as it
// is (the parser then refuses it).
constexpr size_t kMaxReceivedBytes =
    kMaxRequestHeadBytes + kMaxRequestBodyBytes + 4096;

// Gives up on a pending request: 408 (it missed its deadline) or 503 (it
// made room for a newer one) in our error shape if it began, in one
// non-blocking send (the client is not reading promptly anyway), then
// closes it.
void AbandonRequest(const PendingRequest& p, bool evicted) {
  if (!p.received.empty()) {
    HttpResponse response =
        evicted ? ErrorResponse(503, "too many requests arriving at once (" +
                                         std::to_string(kMaxPendingRequests) +
                                         "); the oldest is dropped")
                : ErrorResponse(408, "request not received whole within " +
                                         std::to_string(kRequestDeadlineMs) +
                                         " ms");
    AddCommonHeaders(&response);
    std::string out = "HTTP/1.1 " + std::to_string(response.status) +
                      (evicted ? " Service Unavailable" : " Request Timeout") +
                      "\r\nContent-Type: " + response.content_type + "\r\n";
    for (const auto& [key, value] : response.headers) {
      out += key + ": " + value + "\r\n";
    }
    out += "Connection: close\r\nContent-Length: " +
           std::to_string(response.body.size()) + "\r\n\r\n" + response.body;
    (void)::send(p.fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  ::close(p.fd);
}

// Reads what has arrived on `p` (non-blocking); false if the peer closed or
// reset the connection.
bool ReceiveAvailable(PendingRequest* p) {
  char buf[16 * 1024];
  while (p->received.size() < kMaxReceivedBytes) {
    const size_t room = kMaxReceivedBytes - p->received.size();
    const ssize_t n = ::recv(p->fd, buf, std::min(sizeof(buf), room), 0);
    if (n > 0) {
      p->received.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  return true;
}

// The listener thread: accepts connections on `listen_fd` (non-blocking)
// and reads their requests with poll() until each has arrived whole
// (JudgeRequestArrival), then hands it to `deliver` (a worker; it may wait
// for a free place in the queue: back-pressure). Requests not whole by
// their deadline are answered 408 and closed; beyond kMaxPendingRequests
// the oldest is answered 503 and closed. Returns when `wake_fd` is
// signalled. Owns every pending socket; nothing here waits but poll() and
// that back-pressure.
void ReadRequests(int listen_fd, int wake_fd,
                  const std::function<void(PendingRequest)>& deliver) {
  std::deque<PendingRequest> pending;  // accept order = deadline order
  std::vector<pollfd> fds;
  Clock::time_point accept_paused_until;
  for (;;) {
    const bool accepting = Clock::now() >= accept_paused_until;
    fds.clear();
    fds.push_back({wake_fd, POLLIN, 0});
    fds.push_back({accepting ? listen_fd : -1, POLLIN, 0});  // -1: ignored
    for (const PendingRequest& p : pending) fds.push_back({p.fd, POLLIN, 0});
    int timeout = -1;
    if (!pending.empty()) timeout = MillisUntil(pending.front().deadline);
    if (!accepting) {
      const int paused = MillisUntil(accept_paused_until);
      timeout = timeout < 0 ? paused : std::min(timeout, paused);
    }
    if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // ENOMEM
      continue;
    }
    if (fds[0].revents != 0) break;  // Stop()

    std::deque<PendingRequest> waiting;
    for (size_t i = 0; i < pending.size(); ++i) {
      PendingRequest& p = pending[i];
      if (fds[i + 2].revents == 0) {
        waiting.push_back(std::move(p));
        continue;
      }
      const bool open = ReceiveAvailable(&p);
      const RequestArrival arrival =
          p.received.size() >= kMaxReceivedBytes
              ? RequestArrival::kWhole
              : JudgeRequestArrival(p.received, kMaxRequestHeadBytes,
                                    kMaxRequestBodyBytes);
      if (arrival == RequestArrival::kWhole || (!open && !p.received.empty())) {
        // A request cut short by its client goes to the parser too, which
        // answers or drops it as it did when it read the socket itself.
        deliver(std::move(p));
      } else if (!open) {
        ::close(p.fd);
      } else {
        if (arrival == RequestArrival::kExpectsContinue && !p.continue_sent) {
          // httplib sends its own 100 once the body is here; a second
          // interim response is allowed (RFC 9110 15.2).
          static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
          (void)::send(p.fd, kContinue, sizeof(kContinue) - 1,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
          p.continue_sent = true;
        }
        waiting.push_back(std::move(p));
      }
    }
    pending.swap(waiting);

    if (accepting && (fds[1].revents & POLLIN) != 0) {
      for (int i = 0; i < kMaxPendingRequests; ++i) {
        const int fd =
            accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno == EINTR || errno == ECONNABORTED) continue;
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
              errno == ENOMEM) {
            // Out of descriptors: the listening socket stays readable, so
            // polling it now would spin. Leave them in the backlog a while.
            accept_paused_until = Clock::now() + std::chrono::milliseconds(100);
          }
          break;
        }
        if (pending.size() >= static_cast<size_t>(kMaxPendingRequests)) {
          AbandonRequest(pending.front(), /*evicted=*/true);
          pending.pop_front();
        }
        pending.push_back(
            {fd, Clock::now() + std::chrono::milliseconds(kRequestDeadlineMs),
             std::string(), false});
      }
    }

    const Clock::time_point now = Clock::now();
    while (!pending.empty() && pending.front().deadline <= now) {
      AbandonRequest(pending.front(), /*evicted=*/false);
      pending.pop_front();
    }
  }
  for (const PendingRequest& p : pending) ::close(p.fd);
}

}  // namespace

struct Server::Impl {
  std::unique_ptr<Handlers> handlers;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<AgentThreadPool> pool;
  std::thread listen_thread;
  int wake_fd = -1;  // eventfd: wakes the listener to return
  int port = 0;
};

Server::Server() = default;

Server::~Server() { Stop(); }

Status Server::Start(const Config& config) {
  // Validate before stopping: a restart with bad settings keeps the old
  // server. Binding comes after Stop(), since the address may be the same.
  if (Status status = Validate(config); !status.ok()) return status;
  Address address;
  std::string error;
  ParseAddress(config.address, &address, &error);  // Validate() checked it
  if (address.off) return Status("serving is off (address \"off\")");
  Stop();

  auto impl = std::make_unique<Impl>();
  impl->handlers = std::make_unique<Handlers>(config);
  impl->http = NewHttpServer();
  HttpServer& http = *impl->http;
  Handlers* handlers = impl->handlers.get();

  http.set_socket_options(ListenSocketOptions);
  http.set_payload_max_length(kMaxRequestBodyBytes);
  // One request per connection (ServeConnection): a kept-alive connection
  // would hold a worker while idle, and four idle keep-alive clients would
  // stop the server. Profile clients make one request per connection anyway.
  http.set_pre_routing_handler(
      httplib::Server::HandlerWithResponse(RejectBadFraming));
  http.set_default_headers({{"X-Content-Type-Options", "nosniff"}});
  http.set_error_handler(
      httplib::Server::HandlerWithResponse(FillLibraryError));
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        // Serve() catches everything; this covers the adapter itself
        // (e.g. bad_alloc copying a request), and keeps httplib from
        // putting exception texts into headers.
        HttpResponse response = ErrorResponse(500, "internal error");
        AddCommonHeaders(&response);
        res.headers.clear();
        Send(response, res);
      });
  auto serve = [handlers](const httplib::Request& req, httplib::Response& res) {
    Send(handlers->Serve(ToHttpRequest(req)), res);
  };
  // Every path: Handlers routes (and answers 404s in Go's words). GET also
  // serves HEAD.
  http.Get(".*", serve);
  http.Post(".*", serve);

  errno = 0;
  int port = address.port;
  bool bound;
  if (port == 0) {
    port = http.bind_to_any_port(address.host);
    bound = port > 0;
  } else {
    bound = http.bind_to_port(address.host, port);
  }
  if (!bound) {
    const int saved_errno = errno;
    std::string reason =
        "cannot listen on " + FormatHostPort(address.host, address.port);
    if (saved_errno != 0)
      reason += std::string(": ") + std::strerror(saved_errno);
    return Status(reason);
  }
  impl->port = port;
  const int listen_fd = http.listen_fd();
  // The library listens with a backlog of 5 (compiled in): a burst of a few
  // connections while the listener is not scheduled would see SYNs dropped
  // and a one-second retransmit. Listening again only raises the backlog.
  // Non-blocking: the listener accepts until EAGAIN.
  ::listen(listen_fd, kListenBacklog);
  const int fl = fcntl(listen_fd, F_GETFL);
  if (fl >= 0) fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK);

  impl->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (impl->wake_fd < 0) {
    const int saved_errno = errno;
    ::close(listen_fd);
    return Status(std::string("cannot create the server's eventfd: ") +
                  std::strerror(saved_errno));
  }
  Impl* raw = impl.get();
  try {
    impl->pool = std::make_unique<AgentThreadPool>();
    impl->listen_thread = SpawnAgentThread("pprof-listen", [raw, listen_fd] {
      HttpServer* server = raw->http.get();
      AgentThreadPool* pool = raw->pool.get();
      ReadRequests(listen_fd, raw->wake_fd, [server, pool](PendingRequest p) {
        pool->enqueue([server, p = std::move(p)]() mutable {
          server->ServeConnection(p.fd, std::move(p.received), p.deadline);
        });
      });
    });
  } catch (const std::exception& e) {
    ::close(listen_fd);
    ::close(impl->wake_fd);
    return Status(std::string("cannot start the server thread: ") + e.what());
  }
  LogLine("serving on http://" + FormatHostPort(address.host, port) +
          "/debug/pprof/");
  impl_ = std::move(impl);
  return Status();
}

void Server::Stop() {
  if (!impl_) return;
  impl_->handlers->Shutdown();
  const uint64_t one = 1;
  (void)!::write(impl_->wake_fd, &one, sizeof(one));
  if (impl_->listen_thread.joinable()) impl_->listen_thread.join();
  // Connections already handed over are served (delta waits were cut
  // short above), then the workers end.
  impl_->pool->shutdown();
  ::close(impl_->http->listen_fd());
  ::close(impl_->wake_fd);
  impl_.reset();
}

int Server::port() const { return impl_ ? impl_->port : 0; }

void Server::AbandonAfterFork() {
  if (!impl_) return;
  const int fd = impl_->http->listen_fd();
  if (fd >= 0) ::close(fd);
  if (impl_->wake_fd >= 0) ::close(impl_->wake_fd);
  // Leaked on purpose: destroying it would join threads that do not exist
  // in this process (std::terminate for a joinable std::thread).
  (void)impl_.release();
}

}  // namespace pprof_agent::internal
