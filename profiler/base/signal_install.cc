// Signal-handler installation shared by the CPU profiler and the thread dump;
// the policy is in signal_install.h.
#include "profiler/base/signal_install.h"

#include <errno.h>
#include <string.h>

#include <string>
#include <string_view>

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

// --- signal names ---------------------------------------------------------------

namespace {

struct NamedSignal {
  const char* name;
  int signo;
};

constexpr NamedSignal kNamedSignals[] = {
    {"PROF", SIGPROF}, {"VTALRM", SIGVTALRM}, {"ALRM", SIGALRM},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  }
  return true;
}

bool ParseSmallInt(std::string_view text, int* out) {
  if (text.empty() || text.size() > 3) return false;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  *out = value;
  return true;
}

bool UsableSignal(int signo) {
  for (const NamedSignal& s : kNamedSignals) {
    if (s.signo == signo) return true;
  }
  // SIGRTMIN and SIGRTMAX are glibc's run-time values: the two or three
  // lowest real-time signals belong to glibc itself.
  return signo >= SIGRTMIN && signo <= SIGRTMAX;
}

}  // namespace

bool ParseSignal(std::string_view text, int* signo) {
  if (text.size() > 3 && EqualsIgnoreCase(text.substr(0, 3), "SIG")) {
    text.remove_prefix(3);
  }
  int value = 0;
  if (ParseSmallInt(text, &value)) {
    if (!UsableSignal(value)) return false;
    *signo = value;
    return true;
  }
  for (const NamedSignal& s : kNamedSignals) {
    if (EqualsIgnoreCase(text, s.name)) {
      *signo = s.signo;
      return true;
    }
  }
  if (text.size() >= 5) {
    const std::string_view base = text.substr(0, 5);
    int offset = 0;
    std::string_view rest = text.substr(5);
    int sign = 0;
    if (!rest.empty() && (rest.front() == '+' || rest.front() == '-')) {
      sign = rest.front() == '+' ? 1 : -1;
      rest.remove_prefix(1);
      if (!ParseSmallInt(rest, &offset)) return false;
    } else if (!rest.empty()) {
      return false;
    }
    if (EqualsIgnoreCase(base, "RTMIN") && sign >= 0) {
      value = SIGRTMIN + offset;
    } else if (EqualsIgnoreCase(base, "RTMAX") && sign <= 0) {
      value = SIGRTMAX - offset;
    } else {
      return false;
    }
    if (!UsableSignal(value)) return false;
    *signo = value;
    return true;
  }
  return false;
}

std::string SignalName(int signo) {
  for (const NamedSignal& s : kNamedSignals) {
    if (s.signo == signo) return std::string("SIG") + s.name;
  }
  if (signo >= SIGRTMIN && signo <= SIGRTMAX) {
    return signo == SIGRTMIN ? "SIGRTMIN"
                             : "SIGRTMIN+" + std::to_string(signo - SIGRTMIN);
  }
  const char* abbrev = sigabbrev_np(signo);
  return abbrev != nullptr ? std::string("SIG") + abbrev
                           : "signal " + std::to_string(signo);
}

}  // namespace pprof_agent::internal
