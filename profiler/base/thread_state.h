// Per-thread agent state, in initial-exec TLS so that a hook reads it with one
// %fs-relative access and no call to __tls_get_addr (which may allocate).
// Valid from the first instruction of every thread, before any constructor:
// the all-zero initial state means "not initialised yet", which sends the
// next allocation to the slow path where initialisation happens.
#ifndef PPROF_AGENT_PROFILER_BASE_THREAD_STATE_H_
#define PPROF_AGENT_PROFILER_BASE_THREAD_STATE_H_

#include <cstdint>

#define PA_TLS __attribute__((tls_model("initial-exec")))
#define PA_LIKELY(x) __builtin_expect(!!(x), 1)
#define PA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define PA_ALWAYS_INLINE inline __attribute__((always_inline))
#define PA_NOINLINE __attribute__((noinline))

namespace pprof_agent::internal {

struct ThreadState {
  // Bytes this thread may still allocate before its next heap sample. The
  // malloc fast path subtracts the request (unsigned) and takes the slow path
  // when the request is >= what was left (borrow or zero). Zero initially,
  // so the first allocation goes slow.
  uint64_t bytes_until_sample;
  // xorshift state of this thread's sampler; 0 = not seeded yet.
  uint64_t rng;
  // Depth of agent code on this thread's stack. Non-zero: every hook passes
  // straight through to libc (reentrancy guard).
  int32_t in_agent;
  // One of the agent's own threads: never sampled.
  bool is_agent_thread;
};

// The asm label gives the hooks' inline assembly a stable name to reach it.
extern __thread ThreadState tls_state asm("pprof_agent_tls_state") PA_TLS;

// RAII reentrancy guard: while alive, hooks on this thread pass through.
class ReentrancyGuard {
 public:
  ReentrancyGuard() { ++tls_state.in_agent; }
  ~ReentrancyGuard() { --tls_state.in_agent; }
  ReentrancyGuard(const ReentrancyGuard&) = delete;
  ReentrancyGuard& operator=(const ReentrancyGuard&) = delete;
};

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_BASE_THREAD_STATE_H_
