// The pthread lock functions libpprof_agent.so interposes on glibc, for the
// mutex and block profiles (contention_profiler.h).
//
// Contract of every function here:
//  - Called from anywhere, from the first lock the process takes (before any
//    constructor, ours included) to the last one after exit handlers; from
//    inside allocators holding their own locks; from signal handlers that
//    (wrongly, but it happens) take a lock.
//  - Fast path: try the lock first (the real trylock) and return when that
//    settles it. No clock read, no shared write, no TLS but the rwlock read
//    set. An unlock loads the lock word it is about to release anyway and
//    takes the slow path only when glibc marked waiters in it.
//  - Results and errno are exactly those of the real call: every result is
//    the real function's own (a non-EBUSY result of the try is what the
//    blocking call returns too: 0, EOWNERDEAD, ENOTRECOVERABLE, EAGAIN,
//    EINVAL; EDEADLK and ETIMEDOUT come from the blocking call itself).
//    Arguments glibc rejects before trying (bad clock, bad abstime on
//    rwlocks) go straight to the real call. Slow paths restore errno.
//  - Never allocates, never calls dlsym, never takes a lock that can wait
//    (recorders try-lock and drop); agent code (the reentrancy guard) and
//    agent threads pass straight through on every slow path.
//  - The real functions: __pthread_mutex_{lock,trylock,unlock} and
//    __pthread_rwlock_{rdlock,wrlock,tryrdlock,trywrlock,unlock} are plain
//    GLIBC_2.2.5 exports of libc, called directly (valid before any
//    constructor). The others are resolved with dlvsym in a constructor that
//    runs before the agent's start-up; a hook that runs even earlier finds
//    them by reading libc's symbol table (libc_symbols.h), never with dlsym.
//  - pthread_cond_* are interposed at their default version GLIBC_2.3.2 and
//    forwarded to it. Binaries linked against the pre-2.3.2 condvar ABI
//    (2002 and older) are not supported.
//
// Not hooked: C11 mtx_*/cnd_* (glibc implements them with internal calls),
// locks taken inside glibc itself (stdio, the loader), and the mutex
// re-acquisition inside pthread_cond_wait (glibc uses an internal call; its
// time is in the condvar's block event).
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cstdint>

#include "profiler/contention/contention_profiler.h"
#include "profiler/base/libc_symbols.h"
#include "profiler/contention/lock_table.h"
#include "profiler/base/runtime.h"
#include "profiler/base/thread_state.h"

#if defined(__x86_64__)
#define PA_GLIBC_BASE "GLIBC_2.2.5"
#else
#error "lock_hooks.cc: add the base glibc symbol version of this architecture"
#endif

// Since glibc 2.34 these are compat symbols (no default version), so the
// static linker binds to them only when asked for the version explicitly.
#define PA_BIND_BASE(name) __asm__(".symver " #name "," #name "@" PA_GLIBC_BASE)
PA_BIND_BASE(__pthread_mutex_lock);
PA_BIND_BASE(__pthread_mutex_trylock);
PA_BIND_BASE(__pthread_mutex_unlock);
PA_BIND_BASE(__pthread_rwlock_rdlock);
PA_BIND_BASE(__pthread_rwlock_wrlock);
PA_BIND_BASE(__pthread_rwlock_tryrdlock);
PA_BIND_BASE(__pthread_rwlock_trywrlock);
PA_BIND_BASE(__pthread_rwlock_unlock);

extern "C" {
int __pthread_mutex_lock(pthread_mutex_t* m);
int __pthread_mutex_trylock(pthread_mutex_t* m);
int __pthread_mutex_unlock(pthread_mutex_t* m);
int __pthread_rwlock_rdlock(pthread_rwlock_t* rw);
int __pthread_rwlock_wrlock(pthread_rwlock_t* rw);
int __pthread_rwlock_tryrdlock(pthread_rwlock_t* rw);
int __pthread_rwlock_trywrlock(pthread_rwlock_t* rw);
int __pthread_rwlock_unlock(pthread_rwlock_t* rw);
}

#if defined(PA_SANITIZE_ADDRESS)
// libasan defines these names too, unversioned (so they satisfy the
// versioned references above, ahead of libc) and forwarding through
// pointers it never sets. In the ASan build call libc's own, found in the
// symbol table of libc (pthread_mutex_init: a function libasan leaves alone).
#define PA_LIBC_CALL(name, arg)                                                \
  ([]() {                                                                      \
    static std::atomic<void*> fn{nullptr};                                     \
    void* f = fn.load(std::memory_order_acquire);                              \
    if (f == nullptr) {                                                        \
      f = pprof_agent::internal::FindVersionedSymbol(                          \
          reinterpret_cast<const void*>(&pthread_mutex_init), #name, PA_GLIBC_BASE); \
      fn.store(f, std::memory_order_release);                                  \
    }                                                                          \
    return reinterpret_cast<decltype(&name)>(f);                               \
  }())(arg)
#define __pthread_mutex_lock(m) PA_LIBC_CALL(__pthread_mutex_lock, m)
#define __pthread_mutex_trylock(m) PA_LIBC_CALL(__pthread_mutex_trylock, m)
#define __pthread_mutex_unlock(m) PA_LIBC_CALL(__pthread_mutex_unlock, m)
#define __pthread_rwlock_rdlock(rw) PA_LIBC_CALL(__pthread_rwlock_rdlock, rw)
#define __pthread_rwlock_wrlock(rw) PA_LIBC_CALL(__pthread_rwlock_wrlock, rw)
#define __pthread_rwlock_tryrdlock(rw) PA_LIBC_CALL(__pthread_rwlock_tryrdlock, rw)
#define __pthread_rwlock_trywrlock(rw) PA_LIBC_CALL(__pthread_rwlock_trywrlock, rw)
#define __pthread_rwlock_unlock(rw) PA_LIBC_CALL(__pthread_rwlock_unlock, rw)
#endif

#define PA_INTERPOSE extern "C" __attribute__((visibility("default")))

namespace pprof_agent::internal {
namespace {

// --- glibc facts (nptl/pthreadP.h, pthread_rwlock_common.c; x86-64) ---------
// Mutex kind bits in __data.__kind.
constexpr int kMutexKindMask = 3;        // PTHREAD_MUTEX_KIND_MASK_NP
constexpr int kMutexRecursive = 1;       // PTHREAD_MUTEX_RECURSIVE_NP
constexpr int kMutexRobust = 16;         // PTHREAD_MUTEX_ROBUST_NORMAL_NP
constexpr int kMutexPrioInherit = 32;    // PTHREAD_MUTEX_PRIO_INHERIT_NP
constexpr int kMutexPrioProtect = 64;    // PTHREAD_MUTEX_PRIO_PROTECT_NP
constexpr unsigned kFutexWaiters = 0x80000000u;  // FUTEX_WAITERS
constexpr int kPrioCeilingMask = (1 << 19) - 1;  // below the ceiling bits
// rwlock __data.__readers bits and futex-word flag.
constexpr unsigned kRwWrLocked = 2;  // PTHREAD_RWLOCK_WRLOCKED
constexpr unsigned kRwRWaiting = 4;  // PTHREAD_RWLOCK_RWAITING
constexpr unsigned kRwReaderShift = 3;
constexpr unsigned kRwFutexUsed = 2;  // PTHREAD_RWLOCK_FUTEX_USED

constexpr char kGlibcBase[] = PA_GLIBC_BASE;

// --- real functions -----------------------------------------------------------

enum RealId {
  kMutexTimedlock,
  kMutexClocklock,
  kRwTimedRdlock,
  kRwTimedWrlock,
  kRwClockRdlock,
  kRwClockWrlock,
  kCondWait,
  kCondTimedwait,
  kCondClockwait,
  kSpinLock,
  kSpinTrylock,
  kRealCount,
};

struct RealSpec {
  const char* name;
  const char* version;
};

constexpr RealSpec kRealSpecs[kRealCount] = {
    {"pthread_mutex_timedlock", kGlibcBase},
    {"pthread_mutex_clocklock", "GLIBC_2.30"},
    {"pthread_rwlock_timedrdlock", kGlibcBase},
    {"pthread_rwlock_timedwrlock", kGlibcBase},
    {"pthread_rwlock_clockrdlock", "GLIBC_2.30"},
    {"pthread_rwlock_clockwrlock", "GLIBC_2.30"},
    {"pthread_cond_wait", "GLIBC_2.3.2"},
    {"pthread_cond_timedwait", "GLIBC_2.3.2"},
    {"pthread_cond_clockwait", "GLIBC_2.30"},
    {"pthread_spin_lock", kGlibcBase},
    {"pthread_spin_trylock", kGlibcBase},
};

// Constant-initialised: all null until resolved.
std::atomic<void*> g_real[kRealCount] = {};

// Reads libc's own symbol table: no dlsym, no allocation (libc_symbols.h).
PA_NOINLINE void* ResolveWithoutDlsym(int id) {
  void* fn = FindVersionedSymbol(reinterpret_cast<const void*>(&__pthread_mutex_lock),
                                 kRealSpecs[id].name, kRealSpecs[id].version);
  if (fn != nullptr) g_real[id].store(fn, std::memory_order_release);
  return fn;
}

template <typename Fn>
PA_ALWAYS_INLINE Fn Real(int id) {
  void* fn = g_real[id].load(std::memory_order_acquire);
  if (PA_UNLIKELY(fn == nullptr)) fn = ResolveWithoutDlsym(id);
  return reinterpret_cast<Fn>(fn);
}

// Before the agent's start-up constructor (priority 101 < default), so that
// by the time anything else of the agent runs every pointer is set.
__attribute__((constructor(101))) void ResolveRealFunctions() {
  ReentrancyGuard guard;
  const int saved_errno = errno;
  for (int id = 0; id < kRealCount; ++id) {
    if (g_real[id].load(std::memory_order_acquire) != nullptr) continue;
    void* fn = dlvsym(RTLD_NEXT, kRealSpecs[id].name, kRealSpecs[id].version);
    if (fn == nullptr) {
      ResolveWithoutDlsym(id);
    } else {
      g_real[id].store(fn, std::memory_order_release);
    }
  }
  errno = saved_errno;
}

using MutexTimedFn = int (*)(pthread_mutex_t*, const timespec*);
using MutexClockFn = int (*)(pthread_mutex_t*, clockid_t, const timespec*);
using RwTimedFn = int (*)(pthread_rwlock_t*, const timespec*);
using RwClockFn = int (*)(pthread_rwlock_t*, clockid_t, const timespec*);
using CondWaitFn = int (*)(pthread_cond_t*, pthread_mutex_t*);
using CondTimedFn = int (*)(pthread_cond_t*, pthread_mutex_t*, const timespec*);
using CondClockFn = int (*)(pthread_cond_t*, pthread_mutex_t*, clockid_t,
                            const timespec*);
using SpinFn = int (*)(pthread_spinlock_t*);

// glibc returns EINVAL for these before trying the lock (rwlocks: any bad
// argument; mutexes: an unsupported clock). Such calls skip our try.
bool SupportedClock(clockid_t clock) {
  return clock == CLOCK_REALTIME || clock == CLOCK_MONOTONIC;
}
bool ValidAbstime(const timespec* t) {
  return t != nullptr && t->tv_nsec >= 0 && t->tv_nsec < 1000000000;
}

// --- waiter side ----------------------------------------------------------------

// One blocking call on the slow path: registers the wait (side tables) from
// construction to Finish(), then records the block event.
class WaitScope {
 public:
  // `track_waiters`: register in the WaiterTable, so the lock's holder can
  // charge its release (mutexes and rwlocks, not condvars or spinlocks).
  WaitScope(const void* lock, LockKind kind, const void* mutex,
            bool track_waiters) {
    const int saved_errno = errno;
    start_ = MonotonicNanos();
    if (track_waiters && MutexRate() > 0) {
      waiter_slot_ = GlobalWaiterTable().Register(
          reinterpret_cast<uintptr_t>(lock), start_);
      if (waiter_slot_ < 0) CountWaiterTableFull();
    }
    WaitInfo info;
    info.tid = CurrentTid();
    info.kind = kind;
    info.lock = reinterpret_cast<uintptr_t>(lock);
    info.mutex = reinterpret_cast<uintptr_t>(mutex);
    info.since_ns = start_;
    wait_slot_ = GlobalWaitRegistry().Begin(info);
    errno = saved_errno;
  }
  WaitScope(const WaitScope&) = delete;
  WaitScope& operator=(const WaitScope&) = delete;

  // Right after the blocking call returned; `waited` says whether it ended
  // a wait worth recording (acquired, or woken).
  void Finish(bool waited) {
    const int saved_errno = errno;
    const int64_t end = MonotonicNanos();
    GlobalWaitRegistry().End(wait_slot_);
    if (waiter_slot_ >= 0) GlobalWaiterTable().Unregister(waiter_slot_);
    if (waited) RecordBlockEvent(end - start_, end);
    errno = saved_errno;
  }

 private:
  int64_t start_ = 0;
  int waiter_slot_ = -1;
  int wait_slot_ = -1;
};

bool Acquired(int rc) { return rc == 0 || rc == EOWNERDEAD; }

// --- holder side ----------------------------------------------------------------

// Whether releasing `m` (whose lock word is `lock`, not 1) may wake a waiter.
bool MutexReleaseWakes(const pthread_mutex_t* m, int lock) {
  const int kind = __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED);
  if ((kind & kMutexKindMask) == kMutexRecursive &&
      __atomic_load_n(&m->__data.__count, __ATOMIC_RELAXED) > 1) {
    return false;  // a nested unlock of a recursive mutex releases nothing
  }
  if (kind & (kMutexRobust | kMutexPrioInherit)) {
    return (static_cast<unsigned>(lock) & kFutexWaiters) != 0;
  }
  if (kind & kMutexPrioProtect) return (lock & kPrioCeilingMask) > 1;
  return lock > 1;
}

// The holder of `lock` is about to release it: if hooked threads wait,
// measure the delay it caused them (and restart that clock).
struct PendingRelease {
  bool contended = false;
  int64_t delay = 0;
  int64_t now = 0;
};

PendingRelease TakeRelease(const void* lock) {
  PendingRelease p;
  if (MutexRate() <= 0 || !LockEventsWanted()) return p;
  p.now = MonotonicNanos();
  int waiters = 0;
  p.contended = GlobalWaiterTable().TakeDelay(reinterpret_cast<uintptr_t>(lock),
                                              p.now, &p.delay, &waiters);
  return p;
}

// After the real unlock (so the stack capture does not lengthen anybody's
// wait).
void FinishRelease(const PendingRelease& p, int rc) {
  if (!p.contended || rc != 0) return;
  const int saved_errno = errno;
  RecordMutexEvent(p.delay, p.now);
  errno = saved_errno;
}

PA_NOINLINE int MutexUnlockSlow(pthread_mutex_t* m, int lock) {
  if (!MutexReleaseWakes(m, lock)) return __pthread_mutex_unlock(m);
  const PendingRelease p = TakeRelease(m);
  const int rc = __pthread_mutex_unlock(m);
  FinishRelease(p, rc);
  return rc;
}

// --- mutex acquisition ------------------------------------------------------------

template <typename Blocking>
PA_NOINLINE int MutexLockSlow(pthread_mutex_t* m, Blocking blocking) {
  if (!LockEventsWanted()) return blocking();
  WaitScope scope(m, LockKind::kMutex, nullptr, /*track_waiters=*/true);
  const int rc = blocking();
  scope.Finish(Acquired(rc));
  return rc;
}

template <typename Blocking>
PA_NOINLINE int SpinLockSlow(pthread_spinlock_t* l, Blocking blocking) {
  if (!LockEventsWanted()) return blocking();
  WaitScope scope(const_cast<int*>(l), LockKind::kSpin, nullptr,
                  /*track_waiters=*/false);
  const int rc = blocking();
  scope.Finish(rc == 0);
  return rc;
}

// --- rwlocks ----------------------------------------------------------------------

PA_ALWAYS_INLINE void NoteReadLocked(const pthread_rwlock_t* rw) {
  LockThreadState& t = tls_lock_state;
  if (PA_LIKELY(t.held_count < kMaxHeldReads)) {
    t.held_reads[t.held_count++] = reinterpret_cast<uintptr_t>(rw);
  } else {
    ++t.held_overflow;
  }
}

// True if this unlock releases a read lock (found in this thread's set).
PA_ALWAYS_INLINE bool ForgetReadLocked(const pthread_rwlock_t* rw) {
  LockThreadState& t = tls_lock_state;
  const uintptr_t addr = reinterpret_cast<uintptr_t>(rw);
  for (uint32_t i = t.held_count; i-- > 0;) {
    if (t.held_reads[i] == addr) {
      t.held_reads[i] = t.held_reads[--t.held_count];
      return true;
    }
  }
  if (PA_UNLIKELY(t.held_overflow > 0) &&
      __atomic_load_n(&rw->__data.__cur_writer, __ATOMIC_RELAXED) != CurrentTid()) {
    --t.held_overflow;
    return true;
  }
  return false;
}

// Whether this release may hand the lock to a waiter: a reader's when a
// writer waits for the readers to leave (WRLOCKED in a read phase) or
// readers wait behind a preferred writer; a writer's when readers queued in
// its write phase or other writers wait on the writer futex.
PA_ALWAYS_INLINE bool RwlockReleaseWakes(const pthread_rwlock_t* rw, bool read) {
  const unsigned r = __atomic_load_n(&rw->__data.__readers, __ATOMIC_RELAXED);
  if (read) return (r & (kRwWrLocked | kRwRWaiting)) != 0;
  return (r >> kRwReaderShift) != 0 ||
         (__atomic_load_n(&rw->__data.__writers_futex, __ATOMIC_RELAXED) &
          kRwFutexUsed) != 0 ||
         __atomic_load_n(&rw->__data.__writers, __ATOMIC_RELAXED) != 0;
}

PA_NOINLINE int RwlockUnlockSlow(pthread_rwlock_t* rw) {
  const PendingRelease p = TakeRelease(rw);
  const int rc = __pthread_rwlock_unlock(rw);
  FinishRelease(p, rc);
  return rc;
}

template <typename Blocking>
PA_NOINLINE int RwlockLockSlow(pthread_rwlock_t* rw, bool read,
                               Blocking blocking) {
  if (!LockEventsWanted()) return blocking();
  WaitScope scope(rw, read ? LockKind::kRwlockRead : LockKind::kRwlockWrite,
                  nullptr, /*track_waiters=*/true);
  const int rc = blocking();
  scope.Finish(rc == 0);
  return rc;
}

template <typename Blocking>
PA_ALWAYS_INLINE int ReadLock(pthread_rwlock_t* rw, Blocking blocking) {
  int rc = __pthread_rwlock_tryrdlock(rw);
  if (PA_UNLIKELY(rc == EBUSY)) rc = RwlockLockSlow(rw, true, blocking);
  if (PA_LIKELY(rc == 0)) NoteReadLocked(rw);
  return rc;
}

template <typename Blocking>
PA_ALWAYS_INLINE int WriteLock(pthread_rwlock_t* rw, Blocking blocking) {
  const int rc = __pthread_rwlock_trywrlock(rw);
  if (PA_LIKELY(rc != EBUSY)) return rc;
  return RwlockLockSlow(rw, false, blocking);
}

// --- condition variables -----------------------------------------------------------

// The condvar wait releases `m` inside glibc (an internal call we do not
// see): if that release wakes a waiter of `m`, charge it here, as an unlock.
template <typename Wait>
PA_NOINLINE int CondWait(pthread_cond_t* c, pthread_mutex_t* m, Wait wait) {
  if (!LockEventsWanted()) return wait();
  PendingRelease release;
  const int lock = __atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED);
  if (lock != 1 && MutexReleaseWakes(m, lock)) release = TakeRelease(m);
  WaitScope scope(c, LockKind::kCondvar, m, /*track_waiters=*/false);
  const int rc = wait();
  // A timed wait that timed out slept; it did not wait for another thread.
  scope.Finish(rc == 0);
  if (release.contended) {
    release.now = MonotonicNanos();  // for the capture budget
    FinishRelease(release, 0);
  }
  return rc;
}

}  // namespace
}  // namespace pprof_agent::internal

using namespace pprof_agent::internal;  // NOLINT: the C entry points below

// --- mutexes ----------------------------------------------------------------------

PA_INTERPOSE int pthread_mutex_lock(pthread_mutex_t* m) {
  const int rc = __pthread_mutex_trylock(m);
  if (PA_LIKELY(rc != EBUSY)) return rc;
  return MutexLockSlow(m, [m] { return __pthread_mutex_lock(m); });
}

// Never waits, so there is nothing to record; interposed only so that the
// set of hooked entry points is complete and forwards in one jump.
PA_INTERPOSE int pthread_mutex_trylock(pthread_mutex_t* m) {
  return __pthread_mutex_trylock(m);
}

PA_INTERPOSE int pthread_mutex_timedlock(pthread_mutex_t* m,
                                         const timespec* abstime) {
  auto real = Real<MutexTimedFn>(kMutexTimedlock);
  const int rc = __pthread_mutex_trylock(m);
  if (PA_LIKELY(rc != EBUSY)) return rc;
  return MutexLockSlow(m, [=] { return real(m, abstime); });
}

PA_INTERPOSE int pthread_mutex_clocklock(pthread_mutex_t* m, clockid_t clock,
                                         const timespec* abstime) {
  auto real = Real<MutexClockFn>(kMutexClocklock);
  if (PA_UNLIKELY(!SupportedClock(clock))) return real(m, clock, abstime);
  const int rc = __pthread_mutex_trylock(m);
  if (PA_LIKELY(rc != EBUSY)) return rc;
  return MutexLockSlow(m, [=] { return real(m, clock, abstime); });
}

PA_INTERPOSE int pthread_mutex_unlock(pthread_mutex_t* m) {
  // 1: locked, no waiters (the normal, recursive and error-checking kinds).
  const int lock = __atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED);
  if (PA_LIKELY(lock == 1)) return __pthread_mutex_unlock(m);
  return MutexUnlockSlow(m, lock);
}

// --- rwlocks ----------------------------------------------------------------------

PA_INTERPOSE int pthread_rwlock_rdlock(pthread_rwlock_t* rw) {
  return ReadLock(rw, [rw] { return __pthread_rwlock_rdlock(rw); });
}

PA_INTERPOSE int pthread_rwlock_tryrdlock(pthread_rwlock_t* rw) {
  const int rc = __pthread_rwlock_tryrdlock(rw);
  if (rc == 0) NoteReadLocked(rw);
  return rc;
}

PA_INTERPOSE int pthread_rwlock_timedrdlock(pthread_rwlock_t* rw,
                                            const timespec* abstime) {
  auto real = Real<RwTimedFn>(kRwTimedRdlock);
  if (PA_UNLIKELY(!ValidAbstime(abstime))) {
    const int rc = real(rw, abstime);
    if (rc == 0) NoteReadLocked(rw);
    return rc;
  }
  return ReadLock(rw, [=] { return real(rw, abstime); });
}

PA_INTERPOSE int pthread_rwlock_clockrdlock(pthread_rwlock_t* rw,
                                            clockid_t clock,
                                            const timespec* abstime) {
  auto real = Real<RwClockFn>(kRwClockRdlock);
  if (PA_UNLIKELY(!SupportedClock(clock) || !ValidAbstime(abstime))) {
    const int rc = real(rw, clock, abstime);
    if (rc == 0) NoteReadLocked(rw);
    return rc;
  }
  return ReadLock(rw, [=] { return real(rw, clock, abstime); });
}

PA_INTERPOSE int pthread_rwlock_wrlock(pthread_rwlock_t* rw) {
  return WriteLock(rw, [rw] { return __pthread_rwlock_wrlock(rw); });
}

PA_INTERPOSE int pthread_rwlock_trywrlock(pthread_rwlock_t* rw) {
  return __pthread_rwlock_trywrlock(rw);
}

PA_INTERPOSE int pthread_rwlock_timedwrlock(pthread_rwlock_t* rw,
                                            const timespec* abstime) {
  auto real = Real<RwTimedFn>(kRwTimedWrlock);
  if (PA_UNLIKELY(!ValidAbstime(abstime))) return real(rw, abstime);
  return WriteLock(rw, [=] { return real(rw, abstime); });
}

PA_INTERPOSE int pthread_rwlock_clockwrlock(pthread_rwlock_t* rw,
                                            clockid_t clock,
                                            const timespec* abstime) {
  auto real = Real<RwClockFn>(kRwClockWrlock);
  if (PA_UNLIKELY(!SupportedClock(clock) || !ValidAbstime(abstime))) {
    return real(rw, clock, abstime);
  }
  return WriteLock(rw, [=] { return real(rw, clock, abstime); });
}

PA_INTERPOSE int pthread_rwlock_unlock(pthread_rwlock_t* rw) {
  const bool read = ForgetReadLocked(rw);
  if (PA_LIKELY(!RwlockReleaseWakes(rw, read))) return __pthread_rwlock_unlock(rw);
  return RwlockUnlockSlow(rw);
}

// --- condition variables -----------------------------------------------------------

PA_INTERPOSE int pthread_cond_wait(pthread_cond_t* c, pthread_mutex_t* m) {
  auto real = Real<CondWaitFn>(kCondWait);
  return CondWait(c, m, [=] { return real(c, m); });
}

PA_INTERPOSE int pthread_cond_timedwait(pthread_cond_t* c, pthread_mutex_t* m,
                                        const timespec* abstime) {
  auto real = Real<CondTimedFn>(kCondTimedwait);
  return CondWait(c, m, [=] { return real(c, m, abstime); });
}

PA_INTERPOSE int pthread_cond_clockwait(pthread_cond_t* c, pthread_mutex_t* m,
                                        clockid_t clock,
                                        const timespec* abstime) {
  auto real = Real<CondClockFn>(kCondClockwait);
  return CondWait(c, m, [=] { return real(c, m, clock, abstime); });
}

// --- spinlocks ----------------------------------------------------------------------
// Block profile only: a spinning waiter leaves no mark an unlock could see.

PA_INTERPOSE int pthread_spin_lock(pthread_spinlock_t* l) {
  const int rc = Real<SpinFn>(kSpinTrylock)(l);
  if (PA_LIKELY(rc != EBUSY)) return rc;
  auto real = Real<SpinFn>(kSpinLock);
  return SpinLockSlow(l, [=] { return real(l); });
}
