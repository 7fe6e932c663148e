// Contention recorder: the mutex profile (who held a contended lock, valued
// by the delay its critical section caused) and the block profile (who
// waited, valued by how long). The hooks are in lock_hooks.cc; this is what
// they call on their slow paths, and the cold side that turns the records
// into Go's profiles.
//
// Sampling (Go's semantics, PPROF_REFERENCE.md):
//  - block: PPROF_AGENT_BLOCK_RATE = r ns. An event of delay d >= r is always
//    kept and adds (1, d); a shorter one is kept with probability d/r and
//    adds (r/d, r). Both are unbiased for contentions and delay. 0 = off.
//  - mutex: PPROF_AGENT_MUTEX_RATE = N. 1 in N contended releases (at
//    random) is kept and adds (N, N*d). 0 = off.
//  - Defaults: mutex 1 (every contended release is measured, as
//    SetMutexProfileFraction(1)), block 10000 ns (waits of 10 us and more,
//    i.e. every wait that actually slept in the kernel, are exact; shorter,
//    spin-resolved ones are sampled in proportion to their length). Go's
//    defaults are "off"; ours are "on" and bounded by the capture budget.
//  - Capture budget: at most PPROF_AGENT_LOCK_STACKS_PER_SEC stack captures
//    per second for both profiles together (default 1000, i.e. at most
//    ~1 ms of CPU per second in a contention storm). An event that was
//    sampled but finds the budget spent is not lost: its (count, delay) is
//    carried into the next event of the same profile that gets captured, so
//    totals stay exact and only the attribution of the excess is
//    approximate. Carried events are reported in the profile's comments.
//
// How the unlocker learns the delay (mutex profile): a waiter that finds a
// lock busy registers in a fixed side table keyed by the lock's address
// (WaiterTable: number of waiters, waiting since). An unlock checks the
// lock word it is about to release anyway (glibc's __lock is 2 when there
// may be waiters; FUTEX_WAITERS for robust/PI mutexes; rwlock phase bits),
// and only then looks the address up: delay = now - max(earliest current
// waiter's start, previous measured release). Approximations:
//  - waiters that block inside glibc without our hook (the re-acquisition
//    inside pthread_cond_wait, C11 mtx_*) do not register, so their delay is
//    not charged to the holder (it is in the block profile);
//  - a waiter that registered but had not yet set the lock word when the
//    holder unlocked (a window of a few instructions) is not seen by that
//    release; the next measured release includes its time;
//  - with several waiters, the delay is that of the longest-waiting one, not
//    the sum (Go's semantics for sync.Mutex); the block profile has the sum.
#ifndef PPROF_AGENT_PROFILER_CONTENTION_CONTENTION_PROFILER_H_
#define PPROF_AGENT_PROFILER_CONTENTION_CONTENTION_PROFILER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "profiler/contention/lock_table.h"
#include "profiler/base/snapshot.h"
#include "profiler/base/thread_state.h"

namespace pprof_agent::internal {

inline constexpr int64_t kDefaultMutexRate = 1;
inline constexpr int64_t kDefaultBlockRate = 10000;  // ns
inline constexpr int64_t kDefaultLockStacksPerSecond = 1000;

enum class ContentionKind { kMutex, kBlock };

// Rates; setters are cold, readers relaxed atomics. Negative values clamp
// to 0 (off / unlimited).
void SetMutexRate(int64_t one_in_n);
int64_t MutexRate();
void SetBlockRate(int64_t ns);
int64_t BlockRate();
void SetLockStacksPerSecond(int64_t per_second);
int64_t LockStacksPerSecond();

// Per-thread state of the lock hooks, in initial-exec TLS like ThreadState
// (all-zero = nothing yet). `held_reads` lists the rwlocks this thread holds
// for reading (the first kMaxHeldReads of them): rwlock_unlock uses it to
// tell a read unlock from a write unlock, and a thread dump taken on the
// thread itself (signal handler) can report its read locks from it: glibc
// records write owners (__cur_writer) but not readers.
inline constexpr int kMaxHeldReads = 8;
struct LockThreadState {
  int32_t tid;            // gettid(), cached; 0 = not yet known
  uint32_t held_count;    // entries used in held_reads
  uint32_t held_overflow; // read locks held beyond kMaxHeldReads
  uint32_t pad;
  uint64_t rng;           // xorshift state; 0 = not seeded
  uintptr_t held_reads[kMaxHeldReads];
};
extern __thread LockThreadState tls_lock_state PA_TLS;

// The calling thread's kernel id, cached (one syscall per thread). Fork
// resets the cache of the forking thread.
int32_t CurrentTid();

// The side tables (lock_table.h). Constant-initialised: usable from the
// first hook call, before any constructor.
WaiterTable& GlobalWaiterTable();
WaitRegistry& GlobalWaitRegistry();

// True when this thread's lock events are to be measured: sampling is on,
// at least one contention profile is on, and the thread is neither an agent
// thread nor inside agent code.
bool LockEventsWanted();

// Slow-path entry points. Call with errno saved (they may change it) and
// without the reentrancy guard (they take it). `now` is MonotonicNanos().
// RecordBlockEvent: the calling thread waited `delay_ns` for a lock (or a
// condvar) and now holds it. RecordMutexEvent: the calling thread has just
// released a lock whose waiters it delayed by `delay_ns`.
void RecordBlockEvent(int64_t delay_ns, int64_t now);
void RecordMutexEvent(int64_t delay_ns, int64_t now);

// Counts a contention event the side tables had to drop (table full).
void CountWaiterTableFull();

// Everything one contention recorder holds at one instant. Values are
// already scaled by the sampling (estimates of the true totals).
struct ContentionRaw {
  struct Record {
    uint32_t stack_id = 0;  // stable for the life of the process
    double count = 0;
    double delay = 0;  // ns
  };
  ContentionKind kind = ContentionKind::kMutex;
  int64_t time_nanos = 0;
  int64_t rate = 0;  // MutexRate() or BlockRate() at collection
  std::vector<Record> records;
  std::map<uint32_t, std::vector<uint64_t>> stacks;  // id -> pcs, leaf first
  std::vector<std::string> comments;  // sampling note and drop counters
};

// Cold; any non-hook thread.
ContentionRaw CollectContention(ContentionKind kind);

// Go's mutex/block profile: contentions/count, delay/nanoseconds, period
// type contentions/count, period 1. With `base` (a delta), values are
// p1 - p0 per stack and duration_nanos = p1 - p0; stacks whose difference
// is zero are left out.
Snapshot ContentionProfile(const ContentionRaw& p1, const ContentionRaw* base);

struct ContentionCounts {
  uint64_t stacks = 0;   // distinct stacks recorded (the index page count)
  uint64_t dropped = 0;  // events lost (no stack, tables full or busy)
  uint64_t carried = 0;  // sampled events over the capture budget
};
ContentionCounts ContentionCountsNow(ContentionKind kind);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_CONTENTION_CONTENTION_PROFILER_H_
