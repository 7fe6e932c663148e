// cpu_program_{plain,linked}: CPU-bound workloads for the CPU profile suite
// (tests/suites/cpu/cpu_profile_test.cc). Prints READY once its threads run,
// then works until stdin closes.
//
//   ratio        2 threads; each alternates it::CpuThreeQuarters and
//                it::CpuOneQuarter with the same loop body, 3 units of work
//                to 1, in units of random size (so that no timer period can
//                alias with the alternation): 75% of the CPU in the first.
//   busy N       N identical threads in it::CpuBusyLoop, named busy-0..N-1.
//   eintr        1 busy thread, and once a CPU profile has started (the
//                SIGPROF handler appears): a thread blocked in read() on a
//                pipe that main writes after 2 s, one in nanosleep(2 s), one
//                in poll() with a 1 s timeout, twice. Each prints what it got:
//                READ/NANOSLEEP/POLL lines with rc, eintr count and time.
//   app-handler  installs its own SIGPROF handler first, 1 busy thread; at
//                exit prints APP_HANDLER intact=1 if it is still installed.
//   blocked      blocks SIGPROF in main before any thread starts (so every
//                application thread blocks it), 1 busy thread.
//   churn        1 busy thread; once a profile has started, starts
//                it::LateWorker (thread "late-worker", busy 1.5 s) and keeps
//                creating short-lived threads (it::ShortLived, ~3 ms of CPU
//                each) until stdin closes; prints CHURN threads=N at exit.
//
// The busy loops make no system call: on Linux a thread that reads its own
// CPU clock thousands of times a second has its CPU timer checked less often
// (cpu_profiler.cc), which is not what these tests measure.
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/programs/program_common.h"

namespace it {

std::atomic<bool> g_stop{false};
volatile uint64_t g_sink;

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

// The work every function below does: a dependent multiply-add chain, so
// that a unit of work costs the same CPU time wherever it runs.
__attribute__((always_inline)) inline uint64_t Work(uint64_t x, long n) {
  for (long i = 0; i < n; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return x;
}

constexpr long kUnit = 20000;  // ~20-60 us of CPU

IT_SITE uint64_t CpuThreeQuarters(uint64_t x, long units) { return Work(x, 3 * units * kUnit); }
IT_SITE uint64_t CpuOneQuarter(uint64_t x, long units) { return Work(x, units * kUnit); }

IT_SITE void RatioThread(uint64_t seed) {
  uint64_t x = seed, rng = seed | 1;
  while (!g_stop.load(std::memory_order_relaxed)) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    const long units = 1 + static_cast<long>(rng % 8);
    x = CpuThreeQuarters(x, units);
    x = CpuOneQuarter(x, units);
  }
  g_sink = x;
}

IT_SITE void CpuBusyLoop() {
  uint64_t x = 1;
  while (!g_stop.load(std::memory_order_relaxed)) x = Work(x, 100000);
  g_sink = x;
}

IT_SITE void LateWorker() {
  pthread_setname_np(pthread_self(), "late-worker");
  uint64_t x = 3;
  const int64_t end = NowMs() + 1500;
  while (NowMs() < end && !g_stop.load()) x = Work(x, 100000);
  g_sink = x;
}

IT_SITE void ShortLived() {
  uint64_t x = 5;
  const int64_t end = NowMs() + 3;
  while (NowMs() < end) x = Work(x, 10000);
  g_sink = x;
}

bool ProfileHandlerInstalled() {
  struct sigaction sa;
  sigaction(SIGPROF, nullptr, &sa);
  return (sa.sa_flags & SA_SIGINFO) != 0 || (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
}

// Returns once the agent has installed its CPU signal handler, i.e. a CPU
// profile is starting (timers follow within milliseconds).
void WaitForProfile() {
  while (!ProfileHandlerInstalled()) usleep(1000);
  usleep(20000);
}

void Eintr() {
  int to_reader[2], never[2];
  if (pipe(to_reader) != 0 || pipe(never) != 0) std::abort();
  WaitForProfile();
  std::thread reader([&] {
    char c;
    int eintr = 0;
    const int64_t start = NowMs();
    ssize_t rc;
    while ((rc = read(to_reader[0], &c, 1)) < 0 && errno == EINTR) ++eintr;
    std::printf("READ rc=%zd eintr=%d ms=%lld\n", rc, eintr,
                static_cast<long long>(NowMs() - start));
    std::fflush(stdout);
  });
  std::thread sleeper([] {
    int eintr = 0;
    timespec req = {2, 0}, rem;
    const int64_t start = NowMs();
    int rc;
    while ((rc = nanosleep(&req, &rem)) != 0 && errno == EINTR) {
      ++eintr;
      req = rem;
    }
    std::printf("NANOSLEEP rc=%d eintr=%d ms=%lld\n", rc, eintr,
                static_cast<long long>(NowMs() - start));
    std::fflush(stdout);
  });
  std::thread poller([&] {
    int eintr = 0;
    int64_t max_ms = 0;
    int last_rc = 0;
    for (int i = 0; i < 2; ++i) {
      pollfd p = {never[0], POLLIN, 0};
      const int64_t start = NowMs();
      last_rc = poll(&p, 1, 1000);
      if (last_rc < 0 && errno == EINTR) ++eintr;
      max_ms = std::max(max_ms, NowMs() - start);
    }
    std::printf("POLL rc=%d eintr=%d max_ms=%lld\n", last_rc, eintr,
                static_cast<long long>(max_ms));
    std::fflush(stdout);
  });
  usleep(2000000);
  if (write(to_reader[1], "x", 1) != 1) std::abort();
  reader.join();
  sleeper.join();
  poller.join();
  std::printf("EINTR_DONE\n");
  std::fflush(stdout);
}

void AppHandler(int) {}

}  // namespace it

int main(int argc, char** argv) {
  using namespace it;
  const std::string mode = argc > 1 ? argv[1] : "busy";
  if (mode == "app-handler") {
    struct sigaction sa = {};
    sa.sa_handler = AppHandler;
    sigaction(SIGPROF, &sa, nullptr);
  }
  if (mode == "blocked") {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPROF);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }
  StartAgentIfLinked();
  std::vector<std::thread> threads;
  if (mode == "ratio") {
    for (int i = 0; i < 2; ++i) threads.emplace_back(RatioThread, 0x1234567 + i);
  } else if (mode == "busy") {
    const int n = argc > 2 ? std::atoi(argv[2]) : 1;
    for (int i = 0; i < n; ++i) {
      threads.emplace_back(CpuBusyLoop);
      pthread_setname_np(threads.back().native_handle(),
                         ("busy-" + std::to_string(i)).c_str());
    }
  } else {
    threads.emplace_back(CpuBusyLoop);
  }
  std::atomic<int> churned{0};
  std::thread extra;
  if (mode == "churn") {
    extra = std::thread([&churned] {
      WaitForProfile();
      std::thread late(LateWorker);
      while (!g_stop.load()) {
        std::thread t(ShortLived);
        t.join();
        churned.fetch_add(1);
      }
      late.join();
    });
  }
  AnnounceReady();
  if (mode == "eintr") Eintr();
  WaitForStdinClose(120);
  g_stop = true;
  for (auto& t : threads) t.join();
  if (extra.joinable()) extra.join();
  if (mode == "app-handler") {
    struct sigaction sa;
    sigaction(SIGPROF, nullptr, &sa);
    std::printf("APP_HANDLER intact=%d\n", sa.sa_handler == AppHandler ? 1 : 0);
  }
  if (mode == "churn") std::printf("CHURN threads=%d\n", churned.load());
  std::fflush(stdout);
  return 0;
}
