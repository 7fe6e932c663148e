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
#include "http/server.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
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
#include "profiler/runtime.h"

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

// httplib's TaskQueue with agent threads and a bounded queue. enqueue() and
// shutdown() are called only by the listening thread.
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

// Exposes the listening socket (a protected member) for the fork policy.
class HttpServer final : public httplib::Server {
 public:
  int listen_fd() const { return svr_sock_; }
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

void Send(const HttpResponse& response, httplib::Response& res) {
  res.status = response.status;
  for (const auto& [key, value] : response.headers) {
    // The server's default headers (nosniff) are already in `res`.
    if (!res.has_header(key.c_str())) res.set_header(key.c_str(), value);
  }
  if (!response.content_type.empty()) {
    res.set_content(response.body, response.content_type.c_str());
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

}  // namespace

struct Server::Impl {
  std::unique_ptr<Handlers> handlers;
  std::unique_ptr<HttpServer> http;
  std::thread listen_thread;
  std::atomic<bool> listen_returned{false};
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

  http.new_task_queue = [] { return new AgentThreadPool(); };
  http.set_socket_options(ListenSocketOptions);
  http.set_read_timeout(kReadTimeoutSeconds);
  http.set_write_timeout(kWriteTimeoutSeconds);
  http.set_payload_max_length(kMaxRequestBodyBytes);
  // One request per connection. With kServerThreads workers, a kept-alive
  // connection holds a worker for the whole keep-alive timeout: a client
  // that stalls mid-request held one for the read timeout plus 5 s more
  // after its 400, and four idle keep-alive clients stopped the server.
  // Profile clients make one request per connection anyway.
  http.set_keep_alive_max_count(1);
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
  // The library listens with a backlog of 5 (compiled in): a burst of a few
  // connections while the listener is not scheduled would see SYNs dropped
  // and a one-second retransmit. Listening again only raises the backlog.
  ::listen(http.listen_fd(), kListenBacklog);

  Impl* raw = impl.get();
  try {
    impl->listen_thread = SpawnAgentThread("pprof-listen", [raw] {
      raw->http->listen_after_bind();
      raw->listen_returned.store(true);
    });
  } catch (const std::exception& e) {
    // The bound socket closes with the server object (httplib closes it
    // when listen ends; here listen never began).
    if (raw->http->listen_fd() >= 0) ::close(raw->http->listen_fd());
    return Status(std::string("cannot start the server thread: ") + e.what());
  }
  // Until listen_after_bind() marks the server running, stop() would be a
  // no-op and a Stop() could hang on the join: wait for it here.
  while (!http.is_running() && !raw->listen_returned.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (raw->listen_returned.load()) {
    impl->listen_thread.join();
    return Status("the server stopped right after starting on " +
                  FormatHostPort(address.host, port));
  }
  LogLine("serving on http://" + FormatHostPort(address.host, port) +
          "/debug/pprof/");
  impl_ = std::move(impl);
  return Status();
}

void Server::Stop() {
  if (!impl_) return;
  impl_->handlers->Shutdown();
  impl_->http->stop();
  if (impl_->listen_thread.joinable()) impl_->listen_thread.join();
  impl_.reset();
}

int Server::port() const {
  if (!impl_ || impl_->listen_returned.load()) return 0;
  return impl_->port;
}

void Server::AbandonAfterFork() {
  if (!impl_) return;
  const int fd = impl_->http->listen_fd();
  if (fd >= 0) ::close(fd);
  // Leaked on purpose: destroying it would join threads that do not exist
  // in this process (std::terminate for a joinable std::thread).
  (void)impl_.release();
}

}  // namespace pprof_agent::internal
