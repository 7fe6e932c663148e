// The signal-install policy (profiler/base/signal_install.h) on spare real-time
// signals of this test process.
#include "profiler/base/signal_install.h"

#include <signal.h>
#include <string.h>

#include <atomic>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace pprof_agent::internal {
namespace {

void OurHandler(int, siginfo_t*, void*) {}
void AppHandler(int) {}

int SpareSignal() { return SIGRTMIN + 10; }

// A delay the compiler cannot remove.
void Spin(int n) {
  for (int i = 0; i < n; ++i) asm volatile("" ::: "memory");
}

void SetDisposition(int signo, void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(signo, &sa, nullptr), 0);
}

struct sigaction Current(int signo) {
  struct sigaction sa;
  sigaction(signo, nullptr, &sa);
  return sa;
}

TEST(SignalInstall, TakesADefaultOrIgnoredSignalAndKeepsIt) {
  const int signo = SpareSignal();
  for (auto free : {SIG_DFL, SIG_IGN}) {
    SetDisposition(signo, free);
    std::string message;
    EXPECT_TRUE(InstallHandlerIfFree(signo, OurHandler, "SIGX", "hint", &message)) << message;
    EXPECT_TRUE(IsHandler(Current(signo), OurHandler));
    EXPECT_NE(Current(signo).sa_flags & SA_RESTART, 0);
    // Already ours: nothing to do, still true.
    EXPECT_TRUE(InstallHandlerIfFree(signo, OurHandler, "SIGX", "hint", &message));
  }
  SetDisposition(signo, SIG_DFL);
}

TEST(SignalInstall, NeverReplacesAnApplicationHandler) {
  const int signo = SpareSignal();
  SetDisposition(signo, AppHandler);
  std::string message;
  EXPECT_FALSE(InstallHandlerIfFree(signo, OurHandler, "SIGX",
                                    "set PPROF_AGENT_CPU_SIGNAL to a free signal", &message));
  EXPECT_EQ(message,
            "SIGX already has a handler installed by the application; the agent does "
            "not replace it (set PPROF_AGENT_CPU_SIGNAL to a free signal)");
  EXPECT_EQ(Current(signo).sa_handler, AppHandler);
  SetDisposition(signo, SIG_DFL);
}

// The application installs its handler while we install ours, over and over:
// whichever comes first, the application's handler is what remains, and we
// report success only when ours is installed. (A check-then-install without
// the swap loses the application's handler when its sigaction lands between
// the two: with the sweep below that happens within a few hundred
// iterations on the reference VM.)
TEST(SignalInstall, AnApplicationHandlerInstalledConcurrentlyIsNeverLost) {
  const int signo = SpareSignal();
  int ours_won = 0, app_kept = 0;
  for (int i = 0; i < 5000; ++i) {
    SetDisposition(signo, SIG_DFL);
    std::atomic<bool> go{false};
    // A delay that sweeps across the length of our install (two system
    // calls), so that the application's sigaction lands before, inside and
    // after it.
    const int delay = i % 64;
    std::thread app([&] {
      while (!go.load()) {
      }
      Spin(delay * 20);
      SetDisposition(signo, AppHandler);
    });
    // Both threads spinning, then released together.
    Spin(20000);
    go = true;
    std::string message;
    const bool installed = InstallHandlerIfFree(signo, OurHandler, "SIGX", "hint", &message);
    app.join();
    // The application's sigaction always ran last or was given back.
    ASSERT_EQ(Current(signo).sa_handler, AppHandler) << "iteration " << i;
    if (installed) ++ours_won;  // ours went in first, then the app replaced it
    else ++app_kept;
  }
  SetDisposition(signo, SIG_DFL);
  RecordProperty("installed_then_replaced", ours_won);
  RecordProperty("refused", app_kept);
}

}  // namespace
}  // namespace pprof_agent::internal
