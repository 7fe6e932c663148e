// A tiny test-and-set lock for the recorders. TryLock() is async-signal-safe
// and never waits, so hooks and signal handlers can use it and drop their
// event when it fails. Critical sections under it never allocate, block or
// call back into hooked functions.
#ifndef PPROF_AGENT_PROFILER_BASE_SPINLOCK_H_
#define PPROF_AGENT_PROFILER_BASE_SPINLOCK_H_

#include <sched.h>

#include <atomic>

namespace pprof_agent::internal {

class SpinLock {
 public:
  constexpr SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  bool TryLock() {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  // Spins at most `attempts` times; false means the caller must drop its
  // event (and count the drop) instead of waiting longer.
  bool TryLockFor(int attempts) {
    for (int i = 0; i < attempts; ++i) {
      if (TryLock()) return true;
      __builtin_ia32_pause();
    }
    return false;
  }
  // Like TryLockFor, then gives the holder the CPU up to `yields` times: on
  // an oversubscribed machine the holder may be descheduled, and a short
  // critical section cannot finish while we spin. Still bounded; never for
  // signal handlers (sched_yield is fine there, but they must not wait).
  bool TryLockYielding(int attempts, int yields) {
    if (TryLockFor(attempts)) return true;
    for (int i = 0; i < yields; ++i) {
      sched_yield();
      if (TryLock()) return true;
    }
    return false;
  }
  // Cold paths only (snapshots, fork handlers): yields while waiting.
  void Lock() {
    while (!TryLock()) sched_yield();
  }
  void Unlock() { locked_.store(false, std::memory_order_release); }
  // After fork the child has one thread: whoever held the lock is gone.
  void ResetAfterFork() { locked_.store(false, std::memory_order_relaxed); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_BASE_SPINLOCK_H_
