// The agent's one policy for taking a signal: install our SA_SIGINFO handler
// only where the application has none (SIG_DFL and SIG_IGN count as free),
// never replace the application's, and keep ours installed once it is there
// (a late signal must never meet the default action). Cold path: called on a
// request thread, never from a handler.
#ifndef PPROF_AGENT_PROFILER_SIGNAL_INSTALL_H_
#define PPROF_AGENT_PROFILER_SIGNAL_INSTALL_H_

#include <signal.h>

#include <string>

namespace pprof_agent::internal {

using SignalAction = void (*)(int, siginfo_t*, void*);

// True when `sa` is `handler` installed with SA_SIGINFO.
bool IsHandler(const struct sigaction& sa, SignalAction handler);

// Installs `handler` for `signo` (SA_SIGINFO | SA_RESTART) unless it is
// already there or the application has a handler of its own. On failure sets
// a one-line *message naming `signal_name`; `setting_hint` ends the message
// that tells the user how to pick another signal, e.g.
// "set PPROF_AGENT_CPU_SIGNAL to a free signal".
bool InstallHandlerIfFree(int signo, SignalAction handler,
                          const std::string& signal_name,
                          const char* setting_hint, std::string* message);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_SIGNAL_INSTALL_H_
