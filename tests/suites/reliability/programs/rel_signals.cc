// rel_signals_{plain,linked}: the host program of the signal scenarios of the
// reliability suite (tests/suites/reliability/signals_test.cc).
//
//   rel_signals MODE CTLDIR [ARGS]
//
// Modes (every busy thread spins in its group's own function, so that a
// profile tells the groups apart):
//   before N     installs its own SA_SIGINFO SIGPROF handler and starts
//                setitimer(ITIMER_PROF, 10 ms) before the agent is started
//                (linked) or used (preloaded); N busy threads (rel::BusyWork).
//   after        2 busy threads; the application takes SIGPROF over later,
//                on the "install" command.
//   blockers     2 busy threads (rel::BusyWork), 2 that block SIGPROF from
//                their first instruction (rel::BlockedWork), 2 "togglers"
//                (rel::TogglerWork) that block and unblock it on command.
//   busy N       N busy threads.
//   crowd I B    I idle threads (parked on a condition variable, 256 KiB
//                stacks) and B busy threads (rel::CrowdBusyWork).
//
// Commands: the test writes a file CTLDIR/cmd.<n> (n = 1, 2, ...) holding one
// word; the main thread runs it and prints "DONE <n> <result>":
//   status    app_calls=A app_timer_calls=T handler=app|agent|default|ignore
//             work=w1,w2,... threads=N toggler_pending=P
//   install   sigaction(SIGPROF, the application's handler), saving the old
//   restore   sigaction(SIGPROF, what "install" saved)
//   raise     raise(SIGPROF) three times (runs the handler synchronously)
//   block     the togglers block SIGPROF (DONE once both have)
//   unblock   the main thread queues one SIGPROF on each toggler with
//             tgkill (so a signal is certainly pending), then the togglers
//             unblock it: it is delivered to whatever handler is installed
//             (with SIG_DFL the process would die here)
// READY once the threads run; exits 0 when stdin closes, printing
// "EXIT app_calls=A" (exit 1 if a command failed).
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/programs/program_common.h"

namespace rel {

std::atomic<bool> g_stop{false};
std::atomic<long> g_app_calls{0};
std::atomic<long> g_app_timer_calls{0};
struct sigaction g_saved_action;
bool g_have_saved = false;

void AppHandler(int, siginfo_t* info, void*) {
  g_app_calls.fetch_add(1, std::memory_order_relaxed);
  if (info != nullptr && info->si_code == SI_TIMER) {
    g_app_timer_calls.fetch_add(1, std::memory_order_relaxed);
  }
}

bool InstallAppHandler(struct sigaction* old) {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = AppHandler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  return sigaction(SIGPROF, &sa, old) == 0;
}

const char* HandlerKind() {
  struct sigaction sa;
  if (sigaction(SIGPROF, nullptr, &sa) != 0) return "unknown";
  if ((sa.sa_flags & SA_SIGINFO) != 0) {
    return sa.sa_sigaction == AppHandler ? "app" : "agent";
  }
  if (sa.sa_handler == SIG_DFL) return "default";
  if (sa.sa_handler == SIG_IGN) return "ignore";
  return "other";
}

// Work that never enters the kernel: a profile's samples of it are CPU time
// of exactly this loop.
#define REL_WORK_FUNCTION(Name)                                        \
  IT_SITE uint64_t Name(uint64_t seed) {                               \
    uint64_t x = seed | 1;                                             \
    for (int i = 0; i < 20000; ++i) x = x * 6364136223846793005ULL + 1; \
    return x;                                                          \
  }
REL_WORK_FUNCTION(BusyWork)
REL_WORK_FUNCTION(BlockedWork)
REL_WORK_FUNCTION(TogglerWork)
REL_WORK_FUNCTION(CrowdBusyWork)

std::atomic<uint64_t> g_sink{0};

struct Worker {
  pthread_t thread;
  std::atomic<long> work{0};
  std::atomic<int> tid{0};
  std::atomic<bool> pending{false};  // togglers: SIGPROF pending while blocked
  int kind = 0;
};
enum Kind { kBusy, kBlocked, kToggler, kCrowdBusy, kIdle };

std::vector<Worker*> g_workers;
// Togglers: the wanted mask state and how many have reached it.
std::atomic<int> g_toggle_want{0};  // 0 unblocked, 1 blocked
std::atomic<int> g_toggle_acked{0};
std::mutex g_idle_mu;
std::condition_variable g_idle_cv;

void BlockSigprof(bool block) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPROF);
  pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, nullptr);
}

bool SigprofPending() {
  sigset_t set;
  return sigpending(&set) == 0 && sigismember(&set, SIGPROF) == 1;
}

void* WorkerMain(void* arg) {
  Worker& w = *static_cast<Worker*>(arg);
  w.tid.store(static_cast<int>(syscall(SYS_gettid)));
  if (w.kind == kIdle) {
    std::unique_lock<std::mutex> lock(g_idle_mu);
    g_idle_cv.wait(lock, [] { return g_stop.load(); });
    return nullptr;
  }
  if (w.kind == kBlocked) BlockSigprof(true);
  int toggled = 0;
  uint64_t x = static_cast<uint64_t>(w.tid.load());
  while (!g_stop.load(std::memory_order_relaxed)) {
    switch (w.kind) {
      case kBusy: x = BusyWork(x); break;
      case kBlocked: x = BlockedWork(x); break;
      case kToggler: x = TogglerWork(x); break;
      default: x = CrowdBusyWork(x); break;
    }
    w.work.fetch_add(1, std::memory_order_relaxed);
    if (w.kind == kToggler) {
      const int want = g_toggle_want.load();
      if (want != toggled) {
        BlockSigprof(want == 1);
        toggled = want;
        g_toggle_acked.fetch_add(1);
      }
      w.pending.store(toggled == 1 && SigprofPending());
    }
  }
  g_sink.fetch_add(x, std::memory_order_relaxed);
  return nullptr;
}

void StartWorkers(int kind, int n) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  for (int i = 0; i < n; ++i) {
    auto* w = new Worker;
    w->kind = kind;
    if (pthread_create(&w->thread, &attr, WorkerMain, w) != 0) {
      std::fprintf(stderr, "pthread_create failed after %zu threads\n", g_workers.size());
      std::exit(2);
    }
    g_workers.push_back(w);
  }
  pthread_attr_destroy(&attr);
  for (Worker* w : g_workers) {
    while (w->tid.load() == 0) usleep(100);
  }
}

int CountThreads() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
  }
  return n;
}

std::string Status() {
  std::string work;
  int toggler_pending = 0;
  for (const Worker* w : g_workers) {
    if (w->kind == kIdle) continue;
    if (!work.empty()) work += ",";
    work += std::to_string(w->work.load());
    toggler_pending += w->pending.load() ? 1 : 0;
  }
  return "app_calls=" + std::to_string(g_app_calls.load()) +
         " app_timer_calls=" + std::to_string(g_app_timer_calls.load()) +
         " handler=" + HandlerKind() + " work=" + work +
         " threads=" + std::to_string(CountThreads()) +
         " toggler_pending=" + std::to_string(toggler_pending);
}

bool WaitToggled(int want) {
  int togglers = 0;
  for (const Worker* w : g_workers) togglers += w->kind == kToggler;
  g_toggle_acked.store(0);
  g_toggle_want.store(want);
  for (int i = 0; i < 10000 && g_toggle_acked.load() < togglers; ++i) usleep(1000);
  return g_toggle_acked.load() == togglers;
}

// Runs one command; false if it failed.
bool RunCommand(const std::string& cmd, std::string* result) {
  if (cmd == "status") {
    *result = Status();
    return true;
  }
  if (cmd == "install") {
    g_have_saved = InstallAppHandler(&g_saved_action);
    *result = g_have_saved ? "installed" : "failed";
    return g_have_saved;
  }
  if (cmd == "restore") {
    const bool ok = g_have_saved && sigaction(SIGPROF, &g_saved_action, nullptr) == 0;
    *result = std::string(ok ? "restored" : "failed") + " handler=" + HandlerKind();
    return ok;
  }
  if (cmd == "raise") {
    const long before = g_app_calls.load();
    for (int i = 0; i < 3; ++i) raise(SIGPROF);
    *result = "app_calls_added=" + std::to_string(g_app_calls.load() - before);
    return true;
  }
  if (cmd == "block") {
    const bool ok = WaitToggled(1);
    *result = ok ? "blocked" : "failed";
    return ok;
  }
  if (cmd == "unblock") {
    int queued = 0;
    for (const Worker* w : g_workers) {
      if (w->kind != kToggler) continue;
      queued += syscall(SYS_tgkill, getpid(), w->tid.load(), SIGPROF) == 0;
    }
    // Each toggler notices within one work unit that it has a signal
    // pending: wait for all of them, up to 2 s (a work unit is far longer
    // under ASan on a loaded machine than the 20 ms it takes here).
    int pending = 0;
    for (int waited_ms = 0; waited_ms <= 2000; waited_ms += 10) {
      pending = 0;
      for (const Worker* w : g_workers) pending += w->kind == kToggler && w->pending.load();
      if (pending >= queued) break;
      usleep(10000);
    }
    const bool ok = WaitToggled(0);
    *result = "queued=" + std::to_string(queued) + " pending_before_unblock=" +
              std::to_string(pending) + (ok ? " unblocked" : " failed");
    return ok;
  }
  *result = "unknown command";
  return false;
}

bool StdinClosed() {
  pollfd fd = {STDIN_FILENO, POLLIN, 0};
  if (poll(&fd, 1, 0) <= 0) return false;
  char buf[64];
  return read(STDIN_FILENO, buf, sizeof(buf)) <= 0;
}

int CommandLoop(const std::string& ctl) {
  bool ok = true;
  int next = 1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(30);
  while (!StdinClosed()) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "rel_signals: timed out waiting for stdin to close\n");
      ok = false;
      break;
    }
    const std::string path = ctl + "/cmd." + std::to_string(next);
    std::ifstream f(path);
    if (!f) {
      usleep(2000);
      continue;
    }
    std::string cmd;
    f >> cmd;
    std::string result;
    if (!RunCommand(cmd, &result)) ok = false;
    std::printf("DONE %d %s\n", next, result.c_str());
    std::fflush(stdout);
    ++next;
  }
  g_stop = true;
  {
    std::lock_guard<std::mutex> lock(g_idle_mu);
  }
  g_idle_cv.notify_all();
  for (Worker* w : g_workers) pthread_join(w->thread, nullptr);
  std::printf("EXIT app_calls=%ld %s\n", g_app_calls.load(), ok ? "ok" : "failed");
  return ok ? 0 : 1;
}

}  // namespace rel

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  const std::string ctl = argc > 2 ? argv[2] : "";
  const int a = argc > 3 ? std::atoi(argv[3]) : 0;
  const int b = argc > 4 ? std::atoi(argv[4]) : 0;
  if (ctl.empty()) {
    std::fprintf(stderr, "usage: %s before N|after|blockers|busy N|crowd I B CTLDIR\n", argv[0]);
    return 2;
  }
  if (mode == "before") {
    // Before the agent has any chance to install its own handler.
    if (!rel::InstallAppHandler(nullptr)) return 2;
    struct itimerval it = {{0, 10000}, {0, 10000}};
    if (setitimer(ITIMER_PROF, &it, nullptr) != 0) return 2;
  }
  it::StartAgentIfLinked();
  if (mode == "before" || mode == "busy") {
    rel::StartWorkers(rel::kBusy, a);
  } else if (mode == "after") {
    rel::StartWorkers(rel::kBusy, 2);
  } else if (mode == "blockers") {
    rel::StartWorkers(rel::kBusy, 2);
    rel::StartWorkers(rel::kBlocked, 2);
    rel::StartWorkers(rel::kToggler, 2);
  } else if (mode == "crowd") {
    rel::StartWorkers(rel::kIdle, a);
    rel::StartWorkers(rel::kCrowdBusy, b);
  } else {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  it::AnnounceReady();
  return rel::CommandLoop(ctl);
}
