// The agent's one policy for taking a signal (the CPU profiler's timers and
// the thread dump's requests). Cold path: called on a request thread, never
// from a handler.
//
// Policy, and why:
//  - Before: an application handler already installed for the signal is
//    never replaced. The request fails with one line that names the signal
//    and the setting that picks another one. SIG_DFL and SIG_IGN count as
//    free (an ignored signal is inherited across exec from whoever started
//    the process; our handler ignores every signal that is not a sample, so
//    the application sees no difference).
//  - Install is one atomic swap (sigaction with an old-action argument): if
//    the application installed its handler between our check and our
//    install, the swap returns it and we put it straight back, so an
//    application handler is never lost to the race.
//  - Once installed, ours stays installed for the life of the process, gated
//    by the users' own flags: a signal still pending when a profile or dump
//    ends (a thread that blocked it, a timer that expired during the stop)
//    is delivered later to our handler, which ignores it. Restoring SIG_DFL
//    instead would let that late SIGPROF kill the process.
//  - After: an application that installs its own handler over ours gets it.
//    The CPU profile in progress notices at its next poll (every 100 ms),
//    deletes its timers and ends as a partial profile whose comments say why;
//    until then the application's handler may receive some of our timer
//    signals (si_code SI_TIMER). Later requests are refused as in "before".
//    An application that puts back the action it saved (ours) can be
//    profiled again. One case cannot be defended without interposing
//    sigaction(): setting SIG_DFL for the signal while a profile runs lets
//    the next timer signal kill the process, as the application's own
//    setitimer would.
#ifndef PPROF_AGENT_PROFILER_BASE_SIGNAL_INSTALL_H_
#define PPROF_AGENT_PROFILER_BASE_SIGNAL_INSTALL_H_

#include <signal.h>

#include <string>

namespace pprof_agent::internal {

using SignalAction = void (*)(int, siginfo_t*, void*);

// True when `sa` is `handler` installed with SA_SIGINFO.
bool IsHandler(const struct sigaction& sa, SignalAction handler);

// True when `sa` is SIG_DFL or SIG_IGN (no handler of anyone's).
bool IsFreeDisposition(const struct sigaction& sa);

// Installs `handler` for `signo` (SA_SIGINFO | SA_RESTART) unless it is
// already there or the application has a handler of its own. On failure sets
// a one-line *message naming `signal_name`; `setting_hint` ends the message
// that tells the user how to pick another signal, e.g.
// "set PPROF_AGENT_CPU_SIGNAL to a free signal".
bool InstallHandlerIfFree(int signo, SignalAction handler,
                          const std::string& signal_name,
                          const char* setting_hint, std::string* message);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_BASE_SIGNAL_INSTALL_H_
