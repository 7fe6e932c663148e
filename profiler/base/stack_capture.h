// Stack capture for hooks: libunwind's unw_backtrace (a cached, loop-free
// walk), with the agent's own leading frames removed so that the first frame
// is the code that called malloc (or a lock function).
#ifndef PPROF_AGENT_PROFILER_BASE_STACK_CAPTURE_H_
#define PPROF_AGENT_PROFILER_BASE_STACK_CAPTURE_H_

#include <cstdint>

namespace pprof_agent::internal {

inline constexpr int kMaxStackDepth = 64;

// Finds the agent's own executable text so CaptureStack() can skip it. Cold;
// call once at start-up before hooks sample.
void InitStackCapture();

// Writes at most `max_depth` return addresses, leaf first, into `out` and
// returns how many. Call with the reentrancy guard held: libunwind may
// allocate on first use. Never called from a signal handler.
int CaptureStack(uint64_t* out, int max_depth);

// True if `pc` lies in the agent's own text.
bool IsAgentPc(uint64_t pc);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_BASE_STACK_CAPTURE_H_
