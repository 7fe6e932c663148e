// The agent's HTTP server, core half: binds and listens by itself (plain
// socket/bind/listen), accepts connections and reads each request whole
// with poll() under a deadline (ReadRequests), and hands it to a bounded
// pool of agent threads. Parsing and answering are cpp-httplib's, in
// serve.cc, which lives in libpprof_agent_serve.so and is loaded only when
// the first request has arrived (LoadServeApi), so a host that is never
// sent a request maps neither httplib nor the TLS and compression libraries
// Debian's libcpp-httplib.so needs. What we do differently from httplib's
// own server:
//  - SO_REUSEADDR only, never SO_REUSEPORT (a second process could bind
//    the same port and silently take half the connections), and FD_CLOEXEC
//    so that a child the host execs does not keep the port open.
//  - A backlog of kListenBacklog, not 5.
//  - Our threads are marked as agent threads, block asynchronous signals
//    (the host's process-directed signals go to its own threads) and are
//    bounded.
//  - One thread accepts and reads every request whole with poll() under a
//    deadline, and a worker gets only requests that have arrived: a client
//    that stalls or trickles holds no worker.
#include "http/server.h"

#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
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

#include "http/handlers.h"
#include "http/log.h"
#include "http/serve_api.h"
#include "profiler/base/runtime.h"

// Defined only when serve.cc is linked into the same program (see
// LoadServeApi); otherwise null.
extern "C" __attribute__((weak, visibility("hidden")))
const pprof_agent::internal::ServeApi* pprof_agent_serve_api();

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
class AgentThreadPool final {
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
  ~AgentThreadPool() { shutdown(); }

  void enqueue(std::function<void()> fn) {
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

  void shutdown() {
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


// The serving library, loaded once and never unloaded (handlers' closures,
// e.g. request.client_gone, run its code). Linked into the same program
// (the unit tests link serve.cc), it is used as it is; otherwise it is
// libpprof_agent_serve.so from the directory of the library this code is
// in, or by name through the loader's search path.
const ServeApi* LoadServeApi(std::string* error) {
  static std::mutex mu;
  static const ServeApi* api = nullptr;
  static std::string load_error;
  std::lock_guard<std::mutex> lock(mu);
  if (api != nullptr) return api;
  if (pprof_agent_serve_api != nullptr) {
    api = pprof_agent_serve_api();
  } else if (load_error.empty()) {
    static constexpr char kName[] = "libpprof_agent_serve.so";
    void* handle = nullptr;
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&LoadServeApi), &info) != 0 &&
        info.dli_fname != nullptr) {
      std::string path = info.dli_fname;
      const size_t slash = path.rfind('/');
      path = (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + kName;
      handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    }
    if (handle == nullptr) handle = dlopen(kName, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      load_error = std::string("cannot load ") + kName + ": " +
                   (why != nullptr ? why : "unknown error");
    } else {
      using Entry = const ServeApi* (*)();
      auto entry = reinterpret_cast<Entry>(dlsym(handle, "pprof_agent_serve_api"));
      const ServeApi* loaded = entry != nullptr ? entry() : nullptr;
      if (loaded == nullptr || loaded->version != kServeApiVersion) {
        load_error = std::string(kName) + " is not this agent's serving library";
      } else {
        api = loaded;
      }
    }
  }
  if (api == nullptr) *error = load_error;
  return api;
}

// Binds and listens on host:port (port 0: a free one) as httplib 0.11's
// bind_to_port did, with our socket options: the first address getaddrinfo
// gives that binds; an IPv6 socket also takes IPv4 (IPV6_V6ONLY off).
// Returns the socket (non-blocking, close-on-exec) and sets `*bound_port`,
// or -1 with errno set.
int BindAndListen(const std::string& host, int port, int* bound_port) {
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  const std::string service = std::to_string(port);
  if (getaddrinfo(host.c_str(), service.c_str(), &hints, &result) != 0) {
    errno = EADDRNOTAVAIL;
    return -1;
  }
  int fd = -1;
  int saved_errno = EADDRNOTAVAIL;
  for (addrinfo* rp = result; rp != nullptr; rp = rp->ai_next) {
    fd = ::socket(rp->ai_family, rp->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                  rp->ai_protocol);
    if (fd < 0) {
      saved_errno = errno;
      continue;
    }
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (rp->ai_family == AF_INET6) {
      int no = 0;
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof(no));
    }
    if (::bind(fd, rp->ai_addr, rp->ai_addrlen) == 0 &&
        ::listen(fd, kListenBacklog) == 0) {
      break;
    }
    saved_errno = errno;
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(result);
  if (fd < 0) {
    errno = saved_errno;
    return -1;
  }
  sockaddr_storage addr;
  socklen_t len = sizeof(addr);
  *bound_port = port;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    if (addr.ss_family == AF_INET) {
      *bound_port = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      *bound_port = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    }
  }
  return fd;
}

void ServeCallback(void* ctx, const HttpRequest& request, HttpResponse* out) {
  *out = static_cast<Handlers*>(ctx)->Serve(request);
}

void ErrorCallback(void*, int status, const std::string& message,
                   HttpResponse* out) {
  *out = ErrorResponse(status, message);
  AddCommonHeaders(out);
}

}  // namespace

struct Server::Impl {
  std::unique_ptr<Handlers> handlers;
  ServeCallbacks callbacks = {};
  const ServeApi* api = nullptr;  // set by the listener at the first request
  void* http = nullptr;           // api->create(&callbacks)
  std::unique_ptr<AgentThreadPool> pool;
  std::thread listen_thread;
  int listen_fd = -1;
  int wake_fd = -1;  // eventfd: wakes the listener to return
  int port = 0;

  ~Impl() {
    if (http != nullptr) api->destroy(http);
  }
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
  impl->callbacks = {impl->handlers.get(), ServeCallback, ErrorCallback};

  errno = 0;
  int port = 0;
  const int listen_fd = BindAndListen(address.host, address.port, &port);
  if (listen_fd < 0) {
    const int saved_errno = errno;
    std::string reason =
        "cannot listen on " + FormatHostPort(address.host, address.port);
    if (saved_errno != 0)
      reason += std::string(": ") + std::strerror(saved_errno);
    return Status(reason);
  }
  impl->port = port;
  impl->listen_fd = listen_fd;

  impl->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (impl->wake_fd < 0) {
    const int saved_errno = errno;
    ::close(listen_fd);
    return Status(std::string("cannot create the server's eventfd: ") +
                  std::strerror(saved_errno));
  }
  Impl* raw = impl.get();
  try {
    impl->listen_thread = SpawnAgentThread("pprof-listen", [raw, listen_fd] {
      bool load_failed_logged = false;
      ReadRequests(listen_fd, raw->wake_fd, [raw, &load_failed_logged](
                                                PendingRequest p) {
        // The first request loads the serving library and starts the
        // workers: a host that is never sent one pays for neither. Only
        // this thread sets raw->http and raw->pool; the workers read
        // raw->http after the queue's mutex, Stop() both after joining
        // this thread.
        if (raw->pool == nullptr) {
          try {
            raw->pool = std::make_unique<AgentThreadPool>();
          } catch (const std::exception&) {
            ::close(p.fd);  // out of memory: drop this one, try again later
            return;
          }
        }
        if (raw->http == nullptr) {
          std::string load_error;
          raw->api = LoadServeApi(&load_error);
          if (raw->api != nullptr) raw->http = raw->api->create(&raw->callbacks);
          if (raw->http == nullptr) {
            if (!load_failed_logged) {
              LogLine(load_error.empty() ? "cannot create the HTTP server"
                                         : load_error);
              load_failed_logged = true;
            }
            ::close(p.fd);
            return;
          }
        }
        raw->pool->enqueue([raw, p = std::move(p)]() mutable {
          raw->api->serve_connection(
              raw->http, p.fd, &p.received,
              std::chrono::duration_cast<std::chrono::nanoseconds>(
                  p.deadline.time_since_epoch())
                  .count());
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
  if (impl_->pool) impl_->pool->shutdown();
  ::close(impl_->listen_fd);
  ::close(impl_->wake_fd);
  impl_.reset();
}

int Server::port() const { return impl_ ? impl_->port : 0; }

void Server::AbandonAfterFork() {
  if (!impl_) return;
  if (impl_->listen_fd >= 0) ::close(impl_->listen_fd);
  if (impl_->wake_fd >= 0) ::close(impl_->wake_fd);
  // Leaked on purpose: destroying it would join threads that do not exist
  // in this process (std::terminate for a joinable std::thread).
  (void)impl_.release();
}

}  // namespace pprof_agent::internal
