// Signal-handler installation shared by the CPU profiler and the thread dump.
#include "profiler/signal_install.h"

#include <errno.h>
#include <string.h>

namespace pprof_agent::internal {

bool IsHandler(const struct sigaction& sa, SignalAction handler) {
  return (sa.sa_flags & SA_SIGINFO) != 0 && sa.sa_sigaction == handler;
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
  const bool is_default = (current.sa_flags & SA_SIGINFO) == 0 &&
                          (current.sa_handler == SIG_DFL ||
                           current.sa_handler == SIG_IGN);
  if (!is_default) {
    *message = signal_name +
               " already has a handler installed by the application; the agent "
               "does not replace it (" + setting_hint + ")";
    return false;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = handler;
  // SA_RESTART: a system call the signal interrupts is restarted where the
  // kernel allows it.
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(signo, &sa, nullptr) != 0) {
    *message = "cannot install the handler for " + signal_name + ": " +
               strerror(errno);
    return false;
  }
  return true;
}

}  // namespace pprof_agent::internal
