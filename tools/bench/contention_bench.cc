// contention_bench: lock workloads for the lock hooks' overhead targets,
// run by tools/bench/contention_run with and without
// LD_PRELOAD=libpprof_agent.so (the very same binary on both sides).
//
//   uncontended N          N x (std::mutex lock + unlock), one thread: the
//                          hooks' fast path (callgrind instructions).
//   critical N T IN OUT    T threads, N iterations each: lock, ~IN ns of work,
//                          unlock, ~OUT ns of work; prints wall seconds.
//   handoff K SPIN_US      K forced contended hand-offs between two threads:
//                          each iteration is exactly one blocked lock (a
//                          block event) and one unlock that wakes it (a
//                          mutex event). Prints process CPU seconds and K.
//
// Output: one "key=value" line, parsed by the runner.
#include <sys/resource.h>
#include <sched.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

double Seconds(const timespec& t) { return t.tv_sec + t.tv_nsec * 1e-9; }

double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec * 1e-6;
}

// This thread's CPU time: blocked time is not in it, so around a lock call
// it is the CPU the call (and any hook in it) spent.
double ThreadCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return Seconds(t);
}

double WallSeconds() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return Seconds(t);
}

// About `ns` nanoseconds of dependent arithmetic (calibrated once).
volatile uint64_t g_sink;
uint64_t g_iters_per_ns_x1000 = 1000;

__attribute__((noinline)) void Work(uint64_t ns) {
  uint64_t x = 88172645463325252ULL;
  const uint64_t n = ns * g_iters_per_ns_x1000 / 1000;
  for (uint64_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  g_sink = x;
}

void Calibrate() {
  const uint64_t probe = 20000000;
  g_iters_per_ns_x1000 = 1000;
  const double t0 = WallSeconds();
  Work(probe);
  const double elapsed_ns = (WallSeconds() - t0) * 1e9;
  g_iters_per_ns_x1000 = static_cast<uint64_t>(probe * 1000.0 / elapsed_ns);
  if (g_iters_per_ns_x1000 == 0) g_iters_per_ns_x1000 = 1;
}

std::mutex g_mu;

__attribute__((noinline)) void Uncontended(long n) {
  for (long i = 0; i < n; ++i) {
    g_mu.lock();
    g_mu.unlock();
  }
}

void Critical(long n, int threads, uint64_t in_ns, uint64_t out_ns) {
  Calibrate();
  std::vector<std::thread> workers;
  std::atomic<bool> go{false};
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      while (!go) std::this_thread::yield();
      for (long i = 0; i < n; ++i) {
        g_mu.lock();
        Work(in_ns);
        g_mu.unlock();
        Work(out_ns);
      }
    });
  }
  const double t0 = WallSeconds();
  go = true;
  for (auto& w : workers) w.join();
  std::printf("wall=%.6f\n", WallSeconds() - t0);
}

// Holder: takes the lock, waits until the waiter announced itself and had
// SPIN_US to block in the kernel, releases (a contended unlock), then waits
// for the waiter to finish its turn.
void Handoff(long k, long spin_us) {
  std::atomic<long> announced{-1};
  std::atomic<long> done{-1};
  std::atomic<bool> held{false};
  double unlock_cpu = 0;
  std::thread holder([&] {
    for (long i = 0; i < k; ++i) {
      g_mu.lock();
      held.store(true);
      while (announced.load() != i) std::this_thread::yield();
      // Time for the waiter to block in the kernel (yielding, so that a
      // busy machine does not starve it).
      const double until = WallSeconds() + spin_us * 1e-6;
      while (WallSeconds() < until) std::this_thread::yield();
      const double c0 = ThreadCpuSeconds();
      g_mu.unlock();  // wakes the waiter: a mutex event
      unlock_cpu += ThreadCpuSeconds() - c0;
      while (done.load() != i) std::this_thread::yield();
    }
  });
  const double cpu0 = CpuSeconds();
  const double wall0 = WallSeconds();
  double lock_cpu = 0;
  for (long i = 0; i < k; ++i) {
    while (!held.exchange(false)) std::this_thread::yield();
    announced.store(i);
    const double c0 = ThreadCpuSeconds();
    g_mu.lock();  // blocks: the holder waits SPIN_US before unlocking
    lock_cpu += ThreadCpuSeconds() - c0;
    g_mu.unlock();
    done.store(i);
  }
  holder.join();
  // Per hand-off: CPU of the blocked lock call (block event) and of the
  // waking unlock (mutex event), in ns.
  std::printf("lock_cpu_ns=%.1f unlock_cpu_ns=%.1f cpu=%.6f wall=%.6f events=%ld\n",
              lock_cpu / k * 1e9, unlock_cpu / k * 1e9, CpuSeconds() - cpu0,
              WallSeconds() - wall0, k);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "uncontended" && argc == 3) {
    Uncontended(std::atol(argv[2]));
    std::printf("ok\n");
  } else if (mode == "critical" && argc == 6) {
    Critical(std::atol(argv[2]), std::atoi(argv[3]), std::atol(argv[4]),
             std::atol(argv[5]));
  } else if (mode == "handoff" && argc == 4) {
    Handoff(std::atol(argv[2]), std::atol(argv[3]));
  } else {
    std::fprintf(stderr,
                 "usage: %s uncontended N | critical N THREADS IN_NS OUT_NS | "
                 "handoff K SPIN_US\n",
                 argv[0]);
    return 2;
  }
  return 0;
}
