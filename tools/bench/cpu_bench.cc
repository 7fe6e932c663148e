// What the CPU profiler costs, measured through the agent's public surface
// only (it links libpprof_agent.so and talks HTTP to it):
//
//   --mode=handler   Cost of the agent's signal handler per sample, in a real
//                    asynchronous signal context. A worker thread at a chosen
//                    stack depth is profiled over HTTP; once its own timer has
//                    fired, it blocks the profiling signal and collects that
//                    signal's siginfo with sigtimedwait() (which carries the
//                    profile's cookie), then arms a CPU timer of its own on
//                    SIGUSR1 at 1000 Hz. The SIGUSR1 handler calls the agent's
//                    installed handler with that siginfo and the interrupted
//                    context it was given, between two clock reads: exactly
//                    the work of one sample (gate, unwind, ring write), cold
//                    caches included. The agent records these samples as
//                    usual. Prints median/p90/p99 per depth.
//
//   --mode=overhead  Process CPU time of a fixed CPU-bound job (2 threads)
//                    without and with a 100 Hz profile running, interleaved
//                    A/B rounds, the order swapped every round. Prints the
//                    median over rounds of the per-round ratio B/A of the
//                    worker threads' CPU time and of the whole process's.
//
// Usage: cpu_bench [--mode=handler|overhead] [--rounds=N] [--work=N]
//                  [--depths=5,20,40] [--seconds=N] [--save=PREFIX]
// (--save: handler mode writes each profile to PREFIX<depth>.pb.gz; its
// comments say how many samples took the slow unwinder.)
// Build: ninja -C <build> cpu_bench. Run on a quiet machine; every number
// is a median of many.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <pprof_agent/pprof_agent.h>

namespace {

int64_t MonoNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

int64_t CpuNanos(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// --- a minimal HTTP client -------------------------------------------------------

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    perror("connect");
    exit(1);
  }
  return fd;
}

// Sends GET `path`; the caller reads (or closes, which stops a profile).
int SendGet(int port, const std::string& path) {
  const int fd = Connect(port);
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) exit(1);
  return fd;
}

// Reads the whole response; returns its status code.
int ReadStatus(int fd, std::string* body) {
  std::string all;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) all.append(buf, static_cast<size_t>(n));
  close(fd);
  if (body != nullptr) *body = all;
  return all.size() > 12 ? std::atoi(all.c_str() + 9) : 0;
}

// --- work ---------------------------------------------------------------------

__attribute__((always_inline)) inline uint64_t Work(uint64_t x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return x;
}

volatile uint64_t g_sink;

// --- handler cost ---------------------------------------------------------------

using Handler = void (*)(int, siginfo_t*, void*);
Handler g_agent_handler = nullptr;
siginfo_t g_cookie_info;
std::atomic<bool> g_measuring{false};
int64_t g_costs[1 << 16];
std::atomic<uint32_t> g_cost_count{0};

void TimingHandler(int, siginfo_t*, void* ucontext) {
  if (!g_measuring.load(std::memory_order_relaxed)) return;
  siginfo_t info = g_cookie_info;
  info.si_overrun = 0;
  const int64_t t0 = MonoNanos();
  g_agent_handler(SIGPROF, &info, ucontext);
  const int64_t t1 = MonoNanos();
  const uint32_t i = g_cost_count.fetch_add(1, std::memory_order_relaxed);
  if (i < sizeof(g_costs) / sizeof(g_costs[0])) g_costs[i] = t1 - t0;
}

bool AgentHandlerInstalled() {
  struct sigaction sa;
  sigaction(SIGPROF, nullptr, &sa);
  return (sa.sa_flags & SA_SIGINFO) != 0 && sa.sa_sigaction != nullptr;
}

struct HandlerResult {
  int depth = 0;
  size_t samples = 0;
  int64_t median = 0, p90 = 0, p99 = 0;
  bool ok = false;
};

__attribute__((noinline)) void MeasureAtDepth(int depth, int64_t measure_nanos, HandlerResult* out);

__attribute__((noinline)) void Recurse(int left, int depth, int64_t measure_nanos,
                                       HandlerResult* out) {
  if (left > 0) {
    Recurse(left - 1, depth, measure_nanos, out);
  } else {
    MeasureAtDepth(depth, measure_nanos, out);
  }
  asm volatile("" ::: "memory");  // not a tail call: keep the frames
}

__attribute__((noinline)) void MeasureAtDepth(int depth, int64_t measure_nanos,
                                              HandlerResult* out) {
  // 1. Get a sample's siginfo from the agent's own timer on this thread.
  sigset_t prof;
  sigemptyset(&prof);
  sigaddset(&prof, SIGPROF);
  pthread_sigmask(SIG_BLOCK, &prof, nullptr);
  uint64_t x = 1;
  const timespec zero = {0, 0};
  const int64_t give_up = MonoNanos() + 3000000000LL;
  for (;;) {
    x = Work(x, 100000);
    if (sigtimedwait(&prof, &g_cookie_info, &zero) == SIGPROF) break;
    if (MonoNanos() > give_up) {
      fprintf(stderr, "no profiling signal arrived\n");
      return;
    }
  }
  struct sigaction sa;
  sigaction(SIGPROF, nullptr, &sa);
  g_agent_handler = sa.sa_sigaction;

  // 2. Our own CPU timer on SIGUSR1 at 1000 Hz calls it, timed.
  struct sigaction timing = {};
  timing.sa_sigaction = TimingHandler;
  timing.sa_flags = SA_SIGINFO | SA_RESTART;
  sigaction(SIGUSR1, &timing, nullptr);
  timer_t timer;
  sigevent ev = {};
  ev.sigev_notify = SIGEV_THREAD_ID;
  ev.sigev_signo = SIGUSR1;
#ifdef sigev_notify_thread_id
  ev.sigev_notify_thread_id = static_cast<pid_t>(syscall(SYS_gettid));
#else
  ev._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));
#endif
  timer_create(CLOCK_THREAD_CPUTIME_ID, &ev, &timer);
  itimerspec its = {{0, 1000000}, {0, 1000000}};
  g_cost_count = 0;
  g_measuring = true;
  timer_settime(timer, 0, &its, nullptr);
  const int64_t end = MonoNanos() + measure_nanos;
  while (MonoNanos() < end) {
    x = Work(x, 100000);
    sigtimedwait(&prof, nullptr, &zero);  // drop the agent's own pending signal
  }
  g_measuring = false;
  timer_delete(timer);
  pthread_sigmask(SIG_UNBLOCK, &prof, nullptr);
  g_sink = x;

  const size_t n = std::min<size_t>(g_cost_count.load(), sizeof(g_costs) / sizeof(g_costs[0]));
  std::vector<int64_t> costs(g_costs, g_costs + n);
  std::sort(costs.begin(), costs.end());
  out->depth = depth;
  out->samples = n;
  if (n > 0) {
    out->median = costs[n / 2];
    out->p90 = costs[n * 9 / 10];
    out->p99 = costs[n * 99 / 100];
    out->ok = true;
  }
}

std::string g_save_prefix;  // --save=PREFIX: the profiles, as PREFIX<depth>.pb.gz

int RunHandler(const std::vector<int>& depths, int seconds) {
  const int port = pprof_agent::Port();
  printf("| depth (frames above the thread's root) | samples | median | p90 | p99 |\n");
  printf("|---|---|---|---|---|\n");
  for (int depth : depths) {
    // The profile is requested first; the worker starts right after, so the
    // agent arms it on creation (pthread_create hook) or at start.
    const int fd = SendGet(port, "/debug/pprof/profile?seconds=" + std::to_string(seconds + 2) + "&hz=100");
    while (!AgentHandlerInstalled()) usleep(1000);
    usleep(100000);
    HandlerResult result;
    std::thread worker([&] { Recurse(depth, depth, seconds * 1000000000LL, &result); });
    worker.join();
    std::string body;
    const int status = ReadStatus(fd, &body);
    if (!g_save_prefix.empty()) {
      const size_t start = body.find("\r\n\r\n");
      if (FILE* f = fopen((g_save_prefix + std::to_string(depth) + ".pb.gz").c_str(), "wb")) {
        if (start != std::string::npos) fwrite(body.data() + start + 4, 1, body.size() - start - 4, f);
        fclose(f);
      }
    }
    if (!result.ok || status != 200) {
      fprintf(stderr, "depth %d: no measurement (HTTP %d)\n", depth, status);
      return 1;
    }
    printf("| %d | %zu | %.2f us | %.2f us | %.2f us |\n", depth, result.samples,
           result.median / 1e3, result.p90 / 1e3, result.p99 / 1e3);
    fflush(stdout);
  }
  return 0;
}

// --- overhead -------------------------------------------------------------------

struct RunCpu {
  int64_t workers_ns = 0;
  int64_t process_ns = 0;
};

RunCpu RunJob(int64_t work) {
  rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  std::atomic<int64_t> workers{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&workers, work, t] {
      g_sink = Work(static_cast<uint64_t>(t) + 1, work);
      workers += CpuNanos(CLOCK_THREAD_CPUTIME_ID);
    });
  }
  for (auto& t : threads) t.join();
  getrusage(RUSAGE_SELF, &r1);
  auto ns = [](const timeval& tv) { return int64_t{tv.tv_sec} * 1000000000 + int64_t{tv.tv_usec} * 1000; };
  RunCpu c;
  c.workers_ns = workers.load();
  c.process_ns = ns(r1.ru_utime) + ns(r1.ru_stime) - ns(r0.ru_utime) - ns(r0.ru_stime);
  return c;
}

RunCpu RunProfiled(int port, int64_t work) {
  const int fd = SendGet(port, "/debug/pprof/profile?seconds=120&hz=100");
  usleep(100000);  // the request is read and the timers armed
  const RunCpu c = RunJob(work);
  close(fd);  // the agent sees the client go and stops within 100 ms
  usleep(300000);
  return c;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int RunOverhead(int rounds, int64_t work) {
  const int port = pprof_agent::Port();
  RunJob(work / 4);  // warm up
  std::vector<double> workers_ratio, process_ratio;
  for (int r = 0; r < rounds; ++r) {
    RunCpu a, b;
    if (r % 2 == 0) {
      a = RunJob(work);
      b = RunProfiled(port, work);
    } else {
      b = RunProfiled(port, work);
      a = RunJob(work);
    }
    workers_ratio.push_back(static_cast<double>(b.workers_ns) / static_cast<double>(a.workers_ns));
    process_ratio.push_back(static_cast<double>(b.process_ns) / static_cast<double>(a.process_ns));
    fprintf(stderr, "round %d: workers %.3f s -> %.3f s, process %.3f s -> %.3f s\n", r,
            a.workers_ns / 1e9, b.workers_ns / 1e9, a.process_ns / 1e9, b.process_ns / 1e9);
  }
  auto quartiles = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    char buf[64];
    snprintf(buf, sizeof(buf), "%.4f..%.4f", v[v.size() / 4], v[v.size() * 3 / 4]);
    return std::string(buf);
  };
  printf("| measure (2 busy threads, 100 Hz) | median ratio profiled/unprofiled | IQR | rounds |\n");
  printf("|---|---|---|---|\n");
  printf("| worker threads' CPU time | %.4f | %s | %d |\n", Median(workers_ratio),
         quartiles(workers_ratio).c_str(), rounds);
  printf("| process CPU time (incl. the agent's thread) | %.4f | %s | %d |\n",
         Median(process_ratio), quartiles(process_ratio).c_str(), rounds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = "handler";
  int rounds = 11;
  int seconds = 3;
  int64_t work = 1000000000;  // ~1.3 s of CPU per thread
  std::vector<int> depths = {5, 20, 40};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--mode=", 0) == 0) {
      mode = a.substr(7);
    } else if (a.rfind("--rounds=", 0) == 0) {
      rounds = std::atoi(a.c_str() + 9);
    } else if (a.rfind("--seconds=", 0) == 0) {
      seconds = std::atoi(a.c_str() + 10);
    } else if (a.rfind("--save=", 0) == 0) {
      g_save_prefix = a.substr(7);
    } else if (a.rfind("--work=", 0) == 0) {
      work = std::atoll(a.c_str() + 7);
    } else if (a.rfind("--depths=", 0) == 0) {
      depths.clear();
      std::string list = a.substr(9);
      for (size_t p = 0; p <= list.size();) {
        const size_t q = list.find(',', p);
        depths.push_back(std::atoi(list.substr(p, q - p).c_str()));
        if (q == std::string::npos) break;
        p = q + 1;
      }
    } else {
      fprintf(stderr, "usage: cpu_bench [--mode=handler|overhead] [--rounds=N] "
                      "[--work=N] [--depths=5,20,40] [--seconds=N]\n");
      return 2;
    }
  }
  pprof_agent::Options options;
  options.address = "127.0.0.1:0";
  if (pprof_agent::Status s = pprof_agent::Start(options); !s.ok()) {
    fprintf(stderr, "cannot start the agent: %s\n", s.message().c_str());
    return 1;
  }
  if (mode == "handler") return RunHandler(depths, seconds);
  if (mode == "overhead") return RunOverhead(rounds, work);
  fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
