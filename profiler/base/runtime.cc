// Process-wide profiler switches and the per-thread state they guard.
#include "profiler/base/runtime.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <limits>

#include "profiler/base/stack_capture.h"
#include "profiler/base/thread_state.h"

namespace pprof_agent::internal {

__thread ThreadState tls_state PA_TLS = {};

namespace {
std::atomic<int64_t> g_heap_rate{kDefaultHeapRate};
std::atomic<bool> g_sampling_enabled{false};

// Tids of live agent threads; 0 = free entry. Lock-free: entries are claimed
// and released with CAS, and readers only compare.
std::atomic<int32_t> g_agent_tids[kMaxAgentThreads] = {};
pthread_key_t g_agent_tid_key;
pthread_once_t g_agent_tid_once = PTHREAD_ONCE_INIT;

// Thread exit of a marked thread: forget its tid, which the kernel may give
// to an application thread next.
void ForgetAgentTid(void* value) {
  const auto tid = static_cast<int32_t>(reinterpret_cast<intptr_t>(value));
  for (auto& entry : g_agent_tids) {
    int32_t expected = tid;
    if (entry.compare_exchange_strong(expected, 0)) return;
  }
}

void ClearAgentTidsInChild() {
  for (auto& entry : g_agent_tids) entry.store(0, std::memory_order_relaxed);
}

void InitAgentTidKey() {
  pthread_key_create(&g_agent_tid_key, ForgetAgentTid);
  // The child of a fork has none of the parent's agent threads.
  pthread_atfork(nullptr, nullptr, ClearAgentTidsInChild);
}

void RememberAgentTid() {
  const auto tid = static_cast<int32_t>(syscall(SYS_gettid));
  pthread_once(&g_agent_tid_once, InitAgentTidKey);
  for (auto& entry : g_agent_tids) {
    int32_t expected = 0;
    if (entry.compare_exchange_strong(expected, tid)) {
      pthread_setspecific(g_agent_tid_key,
                          reinterpret_cast<void*>(static_cast<intptr_t>(tid)));
      return;
    }
  }
  // Full: the thread is still an agent thread by its TLS mark; only code
  // that enumerates threads from outside (the CPU profiler) misses it.
}
}  // namespace

void MarkCurrentThreadAsAgent() {
  if (!tls_state.is_agent_thread) RememberAgentTid();
  tls_state.is_agent_thread = true;
  // Never reaches zero in practice: the fast path stays fast on agent threads.
  tls_state.bytes_until_sample = uint64_t{1} << 62;
}

bool CurrentThreadIsAgent() { return tls_state.is_agent_thread; }

bool IsAgentThreadId(int32_t tid) {
  if (tid == 0) return false;
  for (const auto& entry : g_agent_tids) {
    if (entry.load(std::memory_order_relaxed) == tid) return true;
  }
  return false;
}

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
