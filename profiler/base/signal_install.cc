// Signal-handler installation shared by the CPU profiler and the thread dump;
// the policy is in signal_install.h.
#include "profiler/base/signal_install.h"

#include <errno.h>
#include <string.h>

namespace pprof_agent::internal {
namespace {

std::string InUseMessage(const std::string& signal_name, const char* setting_hint) {
  return signal_name +
         " already has a handler installed by the application; the agent "
         "does not replace it (" + setting_hint + ")";
}

}  // namespace

bool IsHandler(const struct sigaction& sa, SignalAction handler) {
  return (sa.sa_flags & SA_SIGINFO) != 0 && sa.sa_sigaction == handler;
}

bool IsFreeDisposition(const struct sigaction& sa) {
  return (sa.sa_flags & SA_SIGINFO) == 0 &&
         (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN);
}

bool InstallHandlerIfFree(int signo, SignalAction handler,
                          const std::string& signal_name,
                          const char* setting_hint, std::string* message) {
  struct sigaction current;
  if (sigaction(signo, nullptr, &current) != 0) {
    *message = "cannot read the disposition of " + signal_name + ": " +
               strerror(errno);
    return false;
  }
  if (IsHandler(current, handler)) return true;
  if (!IsFreeDisposition(current)) {
    *message = InUseMessage(signal_name, setting_hint);
    return false;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = handler;
  // SA_RESTART: a system call the signal interrupts is restarted where the
  // kernel allows it.
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  struct sigaction previous;
  if (sigaction(signo, &sa, &previous) != 0) {
    *message = "cannot install the handler for " + signal_name + ": " +
               strerror(errno);
    return false;
  }
  if (!IsFreeDisposition(previous) && !IsHandler(previous, handler)) {
    // The application installed its handler after our check: give it back.
    // (Signals of ours cannot be in flight: nothing is armed before this
    // returns true.)
    sigaction(signo, &previous, nullptr);
    *message = InUseMessage(signal_name, setting_hint);
    return false;
  }
  return true;
}

}  // namespace pprof_agent::internal
