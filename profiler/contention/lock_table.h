// Fixed-size, lock-free side tables of the lock hooks. Only slow paths (a
// lock that was found busy, an unlock that saw waiters) touch them; an
// uncontended lock has no state anywhere.
//
//  - WaiterTable: per contended lock address, how many hooked threads wait
//    and since when. Waiters write it on their slow path; the unlocker of a
//    contended lock reads it to learn the delay its critical section caused
//    (the mutex profile), then restarts the clock for the next release.
//  - WaitRegistry: per waiting thread, which lock it waits on, of what kind,
//    since when. Written by the waiter around its blocking call; readable
//    from any other thread with Snapshot() (thread dumps and wait-for graphs
//    read it; they find the owner in the lock itself: glibc's
//    __data.__owner for mutexes, __data.__cur_writer for a write-locked
//    rwlock, and the readers in each reader's LockThreadState).
//  - RateLimiter: a shared budget of stack captures per second.
//
// Everything here is async-signal-safe, never allocates and never waits:
// a full table drops (the caller counts it).
#ifndef PPROF_AGENT_PROFILER_CONTENTION_LOCK_TABLE_H_
#define PPROF_AGENT_PROFILER_CONTENTION_LOCK_TABLE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pprof_agent::internal {

// What a thread waits on.
enum class LockKind : uint8_t {
  kNone = 0,
  kMutex = 1,
  kRwlockRead = 2,
  kRwlockWrite = 3,
  kCondvar = 4,  // `lock` is the condvar, `mutex` the mutex it releases
  kSpin = 5,
};
const char* LockKindName(LockKind kind);

// Per-lock waiter bookkeeping. Approximation (documented in
// contention_profiler.h): the delay a release caused is the time since the
// earliest current waiter registered or, if a release was already measured
// while it waited, since that release (Go's semrelease does the same:
// acquiretime of the remaining waiters is reset to the release time). So
// each stretch of time during which somebody waits is charged to exactly one
// release, however many threads wait.
class WaiterTable {
 public:
  static constexpr uint32_t kSlots = 4096;  // power of two
  static constexpr uint32_t kWindow = 8;    // slots probed per address
  // Addresses at or above 2^48 are not tracked (x86-64 user space is below).
  static constexpr uint64_t kMaxAddress = uint64_t{1} << 48;

  constexpr WaiterTable() = default;
  WaiterTable(const WaiterTable&) = delete;
  WaiterTable& operator=(const WaiterTable&) = delete;

  // A waiter on `addr` starts waiting at `now`. Returns the slot to pass to
  // Unregister(), or -1 when the table is full around `addr` (drop).
  int Register(uintptr_t addr, int64_t now);
  // The waiter that got `slot` from Register() stopped waiting.
  void Unregister(int slot);
  // The holder of `addr` is about to release it at `now`. If hooked threads
  // wait on it, returns true with the delay since the earliest of them (or
  // the previous measured release) and restarts that clock at `now`.
  bool TakeDelay(uintptr_t addr, int64_t now, int64_t* delay, int* waiters);

  // Number of waiters registered on `addr` (tests, diagnostics).
  int Waiters(uintptr_t addr) const;
  // After fork: the child's only thread waits on nothing.
  void Reset();

 private:
  // key: addr << 16 | kInit (bit 15, since not yet written) | waiters (0..14)
  static constexpr uint64_t kInitBit = uint64_t{1} << 15;
  static constexpr uint64_t kCountMask = kInitBit - 1;
  struct alignas(16) Slot {
    std::atomic<uint64_t> key{0};
    std::atomic<int64_t> since{0};
  };
  static uint32_t Home(uintptr_t addr);

  Slot slots_[kSlots];
};

// One waiting thread, as another thread sees it.
struct WaitInfo {
  int32_t tid = 0;
  LockKind kind = LockKind::kNone;
  uintptr_t lock = 0;
  uintptr_t mutex = 0;  // condvar waits: the mutex; otherwise 0
  int64_t since_ns = 0;  // CLOCK_MONOTONIC
};

class WaitRegistry {
 public:
  static constexpr uint32_t kSlots = 1024;  // concurrently waiting threads

  constexpr WaitRegistry() = default;
  WaitRegistry(const WaitRegistry&) = delete;
  WaitRegistry& operator=(const WaitRegistry&) = delete;

  // Publishes `info` (tid must be non-zero) until End(). Returns the slot,
  // or -1 when every slot is taken (drop).
  int Begin(const WaitInfo& info);
  void End(int slot);
  // A consistent copy of every published wait. Any thread; allocates.
  std::vector<WaitInfo> Snapshot() const;
  void Reset();

 private:
  struct alignas(64) Slot {
    std::atomic<int32_t> tid{0};   // 0 = free; claimed with a CAS
    std::atomic<uint32_t> seq{0};  // odd while being written
    std::atomic<uintptr_t> lock{0};
    std::atomic<uintptr_t> mutex{0};
    std::atomic<int64_t> since{0};
    std::atomic<uint8_t> kind{0};
  };
  Slot slots_[kSlots];
};

// Generic cell rate algorithm: at most `per_second` admissions per second
// on average, with bursts of up to `burst`. 0 = unlimited. One CAS per
// admission attempt; lock-free.
class RateLimiter {
 public:
  constexpr RateLimiter() = default;
  // Constant-initialisable with a rate (a static limiter works before any
  // constructor runs).
  constexpr RateLimiter(int64_t per_second, int64_t burst)
      : per_second_(per_second > 0 ? per_second : 0),
        interval_ns_(per_second > 0 ? Interval(per_second) : 0),
        tolerance_ns_(per_second > 0 ? Interval(per_second) * (burst > 1 ? burst - 1 : 0) : 0) {}
  void SetRate(int64_t per_second, int64_t burst);
  int64_t rate() const { return per_second_.load(std::memory_order_relaxed); }
  bool TryAcquire(int64_t now_ns);

 private:
  static constexpr int64_t Interval(int64_t per_second) {
    return 1000000000 / per_second > 0 ? 1000000000 / per_second : 1;
  }
  std::atomic<int64_t> per_second_{0};
  std::atomic<int64_t> interval_ns_{0};
  std::atomic<int64_t> tolerance_ns_{0};
  std::atomic<int64_t> tat_{0};  // theoretical arrival time
};

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_CONTENTION_LOCK_TABLE_H_
