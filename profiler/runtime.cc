// Process-wide profiler switches and the per-thread state they guard.
#include "profiler/runtime.h"

#include <time.h>

#include <atomic>
#include <limits>

#include "profiler/stack_capture.h"
#include "profiler/thread_state.h"

namespace pprof_agent::internal {

__thread ThreadState tls_state PA_TLS = {};

namespace {
std::atomic<int64_t> g_heap_rate{kDefaultHeapRate};
std::atomic<bool> g_sampling_enabled{false};
}  // namespace

void MarkCurrentThreadAsAgent() {
  tls_state.is_agent_thread = true;
  // Never reaches zero in practice: the fast path stays fast on agent threads.
  tls_state.bytes_until_sample = uint64_t{1} << 62;
}

bool CurrentThreadIsAgent() { return tls_state.is_agent_thread; }

void SetHeapRate(int64_t bytes) {
  g_heap_rate.store(bytes < 0 ? 0 : bytes, std::memory_order_relaxed);
}

int64_t HeapRate() { return g_heap_rate.load(std::memory_order_relaxed); }

void EnableSampling() {
  if (g_sampling_enabled.load(std::memory_order_acquire)) return;
  {
    ReentrancyGuard guard;
    InitStackCapture();
  }
  g_sampling_enabled.store(true, std::memory_order_release);
}

bool SamplingEnabled() {
  return g_sampling_enabled.load(std::memory_order_acquire);
}

int64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

int64_t WallNanos() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace pprof_agent::internal
