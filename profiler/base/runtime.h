// Process-wide profiler state that the serving layers may change: sampling
// rates, the "sampling enabled" switch and agent-thread marking. Setters are
// cold; the hooks read these through relaxed atomics in their slow paths only.
#ifndef PPROF_AGENT_PROFILER_BASE_RUNTIME_H_
#define PPROF_AGENT_PROFILER_BASE_RUNTIME_H_

#include <cstdint>

namespace pprof_agent::internal {

inline constexpr int64_t kDefaultHeapRate = 512 * 1024;

// Marks the calling thread as one of the agent's own: none of its
// allocations, locks or CPU time is ever sampled. Call first thing in every
// thread the agent creates.
void MarkCurrentThreadAsAgent();
bool CurrentThreadIsAgent();

// Whether `tid` is one of the agent's live threads (marked above), for code
// that enumerates /proc/self/task and must skip them (the CPU profiler's
// timers). At most kMaxAgentThreads are remembered; a thread leaves the set
// when it exits, and a forked child starts with an empty set.
inline constexpr int kMaxAgentThreads = 64;
bool IsAgentThreadId(int32_t tid);

// Mean bytes between heap samples: 1 = every allocation, 0 = off.
void SetHeapRate(int64_t bytes);
int64_t HeapRate();

// Until this is called (by the start-up code, once the environment is read)
// the hooks pass every call straight through. Before it, libunwind and the
// agent's tables may not be usable yet.
void EnableSampling();
bool SamplingEnabled();

// Monotonic clock in nanoseconds (CLOCK_MONOTONIC) and wall clock
// (CLOCK_REALTIME); async-signal-safe.
int64_t MonotonicNanos();
int64_t WallNanos();

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_BASE_RUNTIME_H_
