// contention_program_{plain,linked}: lock workloads for the contention
// suite. Every mode runs its workload, prints what it measured itself
// ("MEASURED <name> <ns>": the true total time its waiters spent in the
// lock call), prints READY and waits for stdin to close, so the test can
// read the profiles of a workload that is over.
//
//   mutex D N    HoldMutex keeps a std::mutex D ms, N times; WaitForMutex
//                waits for it each time (Go's TestMutexProfile shape)
//   shared D N   HoldExclusive keeps a std::shared_mutex exclusively D ms,
//                N times; ReadShared waits in lock_shared()
//   condvar D N  WaitForSignal waits in condition_variable::wait until
//                NotifyAfter, D ms later, notifies; N times
//   loop         mutex contention (5 ms holds) until stdin closes: for
//                delta profiles, READY first
//   matrix       the semantics matrix: one line per check (return value,
//                errno after the call); run with and without the agent, the
//                outputs must be identical
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>

#include "tests/integration/programs/program_common.h"

// No anonymous namespace: profiles must name the sites it::HoldMutex etc.
namespace it {

using Clock = std::chrono::steady_clock;

int64_t NanosSince(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0)
      .count();
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Waits until `flag` is set, then clears it.
void AwaitFlag(std::atomic<bool>& flag) {
  while (!flag.exchange(false)) std::this_thread::yield();
}

// --- mutex ----------------------------------------------------------------------

std::mutex g_mu;
std::atomic<bool> g_held{false};
std::atomic<bool> g_waiter_done{false};

IT_SITE void HoldMutex(int ms, int n) {
  for (int i = 0; i < n; ++i) {
    g_mu.lock();
    g_held = true;
    SleepMs(ms);
    g_mu.unlock();
    AwaitFlag(g_waiter_done);
  }
}

IT_SITE int64_t WaitForMutex(int n) {
  int64_t waited = 0;
  for (int i = 0; i < n; ++i) {
    AwaitFlag(g_held);
    SleepMs(1);  // let the holder settle into its sleep
    const auto t0 = Clock::now();
    g_mu.lock();
    waited += NanosSince(t0);
    g_mu.unlock();
    g_waiter_done = true;
  }
  return waited;
}

void RunMutex(int ms, int n) {
  std::thread holder(HoldMutex, ms, n);
  const int64_t waited = WaitForMutex(n);
  holder.join();
  std::printf("MEASURED WaitForMutex %lld\n", static_cast<long long>(waited));
}

// --- shared_mutex ----------------------------------------------------------------

std::shared_mutex g_rw;

IT_SITE void HoldExclusive(int ms, int n) {
  for (int i = 0; i < n; ++i) {
    g_rw.lock();
    g_held = true;
    SleepMs(ms);
    g_rw.unlock();
    AwaitFlag(g_waiter_done);
  }
}

IT_SITE int64_t ReadShared(int n) {
  int64_t waited = 0;
  for (int i = 0; i < n; ++i) {
    AwaitFlag(g_held);
    SleepMs(1);
    const auto t0 = Clock::now();
    g_rw.lock_shared();
    waited += NanosSince(t0);
    g_rw.unlock_shared();
    g_waiter_done = true;
  }
  return waited;
}

void RunShared(int ms, int n) {
  std::thread writer(HoldExclusive, ms, n);
  const int64_t waited = ReadShared(n);
  writer.join();
  std::printf("MEASURED ReadShared %lld\n", static_cast<long long>(waited));
}

// --- condition_variable --------------------------------------------------------------

std::mutex g_cv_mu;
std::condition_variable g_cv;
int g_generation = 0;
std::atomic<bool> g_waiting{false};

IT_SITE void NotifyAfter(int ms, int n) {
  for (int i = 0; i < n; ++i) {
    AwaitFlag(g_waiting);
    SleepMs(ms);
    {
      std::lock_guard<std::mutex> lock(g_cv_mu);
      ++g_generation;
    }
    g_cv.notify_one();
  }
}

IT_SITE int64_t WaitForSignal(int n) {
  int64_t waited = 0;
  for (int i = 0; i < n; ++i) {
    std::unique_lock<std::mutex> lock(g_cv_mu);
    const int target = g_generation + 1;
    g_waiting = true;
    const auto t0 = Clock::now();
    while (g_generation < target) g_cv.wait(lock);
    waited += NanosSince(t0);
  }
  return waited;
}

void RunCondvar(int ms, int n) {
  std::thread notifier(NotifyAfter, ms, n);
  const int64_t waited = WaitForSignal(n);
  notifier.join();
  std::printf("MEASURED WaitForSignal %lld\n", static_cast<long long>(waited));
}

// --- loop ---------------------------------------------------------------------------

std::atomic<bool> g_stop{false};

IT_SITE void LoopHolder() {
  while (!g_stop) {
    g_mu.lock();
    SleepMs(5);
    g_mu.unlock();
    SleepMs(1);
  }
}

IT_SITE void LoopWaiter() {
  while (!g_stop) {
    g_mu.lock();
    g_mu.unlock();
    SleepMs(1);
  }
}

// --- matrix -------------------------------------------------------------------------

const char* ErrName(int e) {
  switch (e) {
    case 0: return "0";
    case EBUSY: return "EBUSY";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EDEADLK: return "EDEADLK";
    case EOWNERDEAD: return "EOWNERDEAD";
    case ENOTRECOVERABLE: return "ENOTRECOVERABLE";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case EAGAIN: return "EAGAIN";
    case 4242: return "unchanged";
    default: {
      static char buf[32];
      std::snprintf(buf, sizeof(buf), "errno%d", e);
      return buf;
    }
  }
}

// Runs `call` with errno set to a sentinel and prints its result and errno.
int Check(const char* name, const std::function<int()>& call) {
  errno = 4242;
  const int rc = call();
  const int err = errno;
  std::printf("%s: rc=%s", name, ErrName(rc));
  std::printf(" errno=%s\n", ErrName(err));
  return rc;
}

timespec AfterMs(clockid_t clock, int ms) {
  timespec t;
  clock_gettime(clock, &t);
  t.tv_nsec += static_cast<long>(ms) * 1000000;
  t.tv_sec += t.tv_nsec / 1000000000;
  t.tv_nsec %= 1000000000;
  return t;
}

// Runs `fn` on another thread and waits for it.
void OnOtherThread(const std::function<void()>& fn) {
  std::thread t(fn);
  t.join();
}

// Holds `lock_fn`'s lock on another thread for `ms`, while `body` runs here
// (started once the other thread holds it), so that our call is contended.
void WhileHeldElsewhere(const std::function<void()>& lock_fn,
                        const std::function<void()>& unlock_fn, int ms,
                        const std::function<void()>& body) {
  std::atomic<bool> locked{false};
  std::thread t([&] {
    lock_fn();
    locked = true;
    SleepMs(ms);
    unlock_fn();
  });
  while (!locked) std::this_thread::yield();
  body();
  t.join();
}

pthread_mutex_t MakeMutex(int type, int robust, int protocol) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, type);
  pthread_mutexattr_setrobust(&a, robust);
  pthread_mutexattr_setprotocol(&a, protocol);
  // A ceiling the thread may reach (root, or CAP_SYS_NICE; without either
  // the lock fails alike with and without the agent).
  if (protocol == PTHREAD_PRIO_PROTECT) {
    pthread_mutexattr_setprioceiling(&a, sched_get_priority_min(SCHED_FIFO));
  }
  pthread_mutex_t m;
  pthread_mutex_init(&m, &a);
  pthread_mutexattr_destroy(&a);
  return m;
}

void MutexKind(const char* kind, int type, int robust, int protocol) {
  char name[128];
  auto N = [&](const char* what) {
    std::snprintf(name, sizeof(name), "%s.%s", kind, what);
    return name;
  };
  pthread_mutex_t m = MakeMutex(type, robust, protocol);
  Check(N("lock"), [&] { return pthread_mutex_lock(&m); });
  Check(N("trylock_self"), [&] { return pthread_mutex_trylock(&m); });
  if (type == PTHREAD_MUTEX_RECURSIVE) {
    Check(N("relock"), [&] { return pthread_mutex_lock(&m); });
    Check(N("unlock_inner"), [&] { return pthread_mutex_unlock(&m); });
  }
  if (type == PTHREAD_MUTEX_ERRORCHECK) {
    Check(N("relock"), [&] { return pthread_mutex_lock(&m); });
    timespec t = AfterMs(CLOCK_REALTIME, 10);
    Check(N("timedlock_self"), [&] { return pthread_mutex_timedlock(&m, &t); });
  }
  OnOtherThread([&] {
    Check(N("trylock_other"), [&] { return pthread_mutex_trylock(&m); });
    timespec t = AfterMs(CLOCK_REALTIME, 20);
    Check(N("timedlock_timeout"), [&] { return pthread_mutex_timedlock(&m, &t); });
    timespec c = AfterMs(CLOCK_MONOTONIC, 20);
    Check(N("clocklock_timeout"),
          [&] { return pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &c); });
    Check(N("clocklock_badclock"),
          [&] { return pthread_mutex_clocklock(&m, CLOCK_PROCESS_CPUTIME_ID, &c); });
    if (type == PTHREAD_MUTEX_ERRORCHECK || type == PTHREAD_MUTEX_RECURSIVE ||
        robust == PTHREAD_MUTEX_ROBUST) {
      Check(N("unlock_not_owner"), [&] { return pthread_mutex_unlock(&m); });
    }
  });
  Check(N("unlock"), [&] { return pthread_mutex_unlock(&m); });
  if (type == PTHREAD_MUTEX_ERRORCHECK || type == PTHREAD_MUTEX_RECURSIVE) {
    Check(N("unlock_unlocked"), [&] { return pthread_mutex_unlock(&m); });
  }
  // Uncontended timed and clock locks with arguments glibc checks only when
  // it has to wait.
  timespec bad = {0, 2000000000L};
  Check(N("timedlock_badtime_free"), [&] { return pthread_mutex_timedlock(&m, &bad); });
  Check(N("unlock2"), [&] { return pthread_mutex_unlock(&m); });
  Check(N("clocklock_badclock_free"),
        [&] { return pthread_mutex_clocklock(&m, 12345, &bad); });
  // Contended: the hook's slow path runs.
  WhileHeldElsewhere([&] { pthread_mutex_lock(&m); }, [&] { pthread_mutex_unlock(&m); },
                     20, [&] {
                       Check(N("lock_contended"), [&] { return pthread_mutex_lock(&m); });
                       Check(N("unlock_contended"), [&] { return pthread_mutex_unlock(&m); });
                     });
  WhileHeldElsewhere([&] { pthread_mutex_lock(&m); }, [&] { pthread_mutex_unlock(&m); },
                     20, [&] {
                       timespec t = AfterMs(CLOCK_REALTIME, 5000);
                       Check(N("timedlock_contended"),
                             [&] { return pthread_mutex_timedlock(&m, &t); });
                       Check(N("unlock3"), [&] { return pthread_mutex_unlock(&m); });
                     });
  WhileHeldElsewhere([&] { pthread_mutex_lock(&m); }, [&] { pthread_mutex_unlock(&m); },
                     20, [&] {
                       timespec t = {0, -1};
                       Check(N("timedlock_contended_badtime"),
                             [&] { return pthread_mutex_timedlock(&m, &t); });
                     });
  if (robust == PTHREAD_MUTEX_ROBUST) {
    OnOtherThread([&] { pthread_mutex_lock(&m); });  // exits holding it
    Check(N("lock_owner_died"), [&] { return pthread_mutex_lock(&m); });
    Check(N("consistent"), [&] { return pthread_mutex_consistent(&m); });
    Check(N("unlock_after_consistent"), [&] { return pthread_mutex_unlock(&m); });
    OnOtherThread([&] { pthread_mutex_lock(&m); });
    Check(N("trylock_owner_died"), [&] { return pthread_mutex_trylock(&m); });
    Check(N("unlock_inconsistent"), [&] { return pthread_mutex_unlock(&m); });
    Check(N("lock_not_recoverable"), [&] { return pthread_mutex_lock(&m); });
    // Owner death noticed by a waiter blocked in the slow path.
    pthread_mutex_t m2 = MakeMutex(type, robust, protocol);
    std::atomic<bool> locked{false};
    std::thread dier([&] {
      pthread_mutex_lock(&m2);
      locked = true;
      SleepMs(20);
    });
    while (!locked) std::this_thread::yield();
    Check(N("lock_contended_owner_died"), [&] { return pthread_mutex_lock(&m2); });
    dier.join();
    Check(N("consistent2"), [&] { return pthread_mutex_consistent(&m2); });
    Check(N("unlock4"), [&] { return pthread_mutex_unlock(&m2); });
    pthread_mutex_destroy(&m2);
  } else {
    pthread_mutex_destroy(&m);
  }
}

void RwlockMatrix() {
  pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
  Check("rwlock.rdlock", [&] { return pthread_rwlock_rdlock(&rw); });
  Check("rwlock.rdlock_again", [&] { return pthread_rwlock_rdlock(&rw); });
  Check("rwlock.trywrlock_while_read", [&] { return pthread_rwlock_trywrlock(&rw); });
  OnOtherThread([&] {
    timespec t = AfterMs(CLOCK_REALTIME, 20);
    Check("rwlock.timedwrlock_timeout", [&] { return pthread_rwlock_timedwrlock(&rw, &t); });
    timespec c = AfterMs(CLOCK_MONOTONIC, 20);
    Check("rwlock.clockwrlock_timeout",
          [&] { return pthread_rwlock_clockwrlock(&rw, CLOCK_MONOTONIC, &c); });
    Check("rwlock.tryrdlock_other", [&] { return pthread_rwlock_tryrdlock(&rw); });
    Check("rwlock.unlock_other_read", [&] { return pthread_rwlock_unlock(&rw); });
  });
  Check("rwlock.unlock1", [&] { return pthread_rwlock_unlock(&rw); });
  Check("rwlock.unlock2", [&] { return pthread_rwlock_unlock(&rw); });
  Check("rwlock.wrlock", [&] { return pthread_rwlock_wrlock(&rw); });
  Check("rwlock.wrlock_self", [&] { return pthread_rwlock_wrlock(&rw); });
  Check("rwlock.rdlock_self_writer", [&] { return pthread_rwlock_rdlock(&rw); });
  Check("rwlock.tryrdlock_self_writer", [&] { return pthread_rwlock_tryrdlock(&rw); });
  OnOtherThread([&] {
    timespec t = AfterMs(CLOCK_REALTIME, 20);
    Check("rwlock.timedrdlock_timeout", [&] { return pthread_rwlock_timedrdlock(&rw, &t); });
    timespec c = AfterMs(CLOCK_MONOTONIC, 20);
    Check("rwlock.clockrdlock_timeout",
          [&] { return pthread_rwlock_clockrdlock(&rw, CLOCK_MONOTONIC, &c); });
  });
  Check("rwlock.unlock3", [&] { return pthread_rwlock_unlock(&rw); });
  timespec bad = {0, 2000000000L};
  Check("rwlock.timedrdlock_badtime_free", [&] { return pthread_rwlock_timedrdlock(&rw, &bad); });
  Check("rwlock.timedwrlock_badtime_free", [&] { return pthread_rwlock_timedwrlock(&rw, &bad); });
  timespec ok = AfterMs(CLOCK_MONOTONIC, 20);
  Check("rwlock.clockrdlock_badclock_free",
        [&] { return pthread_rwlock_clockrdlock(&rw, CLOCK_PROCESS_CPUTIME_ID, &ok); });
  Check("rwlock.clockwrlock_badclock_free",
        [&] { return pthread_rwlock_clockwrlock(&rw, 12345, &ok); });
  WhileHeldElsewhere([&] { pthread_rwlock_wrlock(&rw); }, [&] { pthread_rwlock_unlock(&rw); },
                     20, [&] {
                       Check("rwlock.rdlock_contended", [&] { return pthread_rwlock_rdlock(&rw); });
                       Check("rwlock.unlock_contended_read", [&] { return pthread_rwlock_unlock(&rw); });
                     });
  WhileHeldElsewhere([&] { pthread_rwlock_rdlock(&rw); }, [&] { pthread_rwlock_unlock(&rw); },
                     20, [&] {
                       timespec t = AfterMs(CLOCK_REALTIME, 5000);
                       Check("rwlock.timedwrlock_contended",
                             [&] { return pthread_rwlock_timedwrlock(&rw, &t); });
                       Check("rwlock.unlock_contended_write", [&] { return pthread_rwlock_unlock(&rw); });
                     });
  pthread_rwlock_destroy(&rw);

  // Writer-preferring, no recursive readers.
  pthread_rwlockattr_t a;
  pthread_rwlockattr_init(&a);
  pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_t wp;
  pthread_rwlock_init(&wp, &a);
  WhileHeldElsewhere([&] { pthread_rwlock_rdlock(&wp); }, [&] { pthread_rwlock_unlock(&wp); },
                     20, [&] {
                       Check("rwlock_wp.wrlock_contended", [&] { return pthread_rwlock_wrlock(&wp); });
                       Check("rwlock_wp.unlock", [&] { return pthread_rwlock_unlock(&wp); });
                     });
  pthread_rwlock_destroy(&wp);
  pthread_rwlockattr_destroy(&a);
}

void CondMatrix() {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  pthread_mutex_lock(&m);
  timespec t = AfterMs(CLOCK_REALTIME, 20);
  Check("cond.timedwait_timeout", [&] { return pthread_cond_timedwait(&c, &m, &t); });
  timespec mt = AfterMs(CLOCK_MONOTONIC, 20);
  Check("cond.clockwait_timeout",
        [&] { return pthread_cond_clockwait(&c, &m, CLOCK_MONOTONIC, &mt); });
  Check("cond.clockwait_badclock",
        [&] { return pthread_cond_clockwait(&c, &m, CLOCK_PROCESS_CPUTIME_ID, &mt); });
  bool flag = false;
  std::thread notifier([&] {
    SleepMs(20);
    pthread_mutex_lock(&m);
    flag = true;
    pthread_cond_signal(&c);
    pthread_mutex_unlock(&m);
  });
  Check("cond.wait_signalled", [&] {
    int rc = 0;
    while (!flag && rc == 0) rc = pthread_cond_wait(&c, &m);
    return rc;
  });
  pthread_mutex_unlock(&m);
  notifier.join();
  Check("cond.mutex_unlocked_after", [&] { return pthread_mutex_trylock(&m); });
  pthread_mutex_unlock(&m);

  // An error-checking mutex not held by the waiter: EPERM from the wait.
  pthread_mutex_t ec = MakeMutex(PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_STALLED,
                                 PTHREAD_PRIO_NONE);
  timespec t2 = AfterMs(CLOCK_REALTIME, 20);
  Check("cond.timedwait_unowned_errorcheck",
        [&] { return pthread_cond_timedwait(&c, &ec, &t2); });
  pthread_mutex_destroy(&ec);
}

void SpinMatrix() {
  pthread_spinlock_t s;
  pthread_spin_init(&s, PTHREAD_PROCESS_PRIVATE);
  Check("spin.lock", [&] { return pthread_spin_lock(&s); });
  Check("spin.trylock_held", [&] { return pthread_spin_trylock(&s); });
  Check("spin.unlock", [&] { return pthread_spin_unlock(&s); });
  WhileHeldElsewhere([&] { pthread_spin_lock(&s); }, [&] { pthread_spin_unlock(&s); }, 5,
                     [&] {
                       Check("spin.lock_contended", [&] { return pthread_spin_lock(&s); });
                       Check("spin.unlock_contended", [&] { return pthread_spin_unlock(&s); });
                     });
  pthread_spin_destroy(&s);
}

void RunMatrix() {
  MutexKind("normal", PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_STALLED, PTHREAD_PRIO_NONE);
  MutexKind("errorcheck", PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_STALLED, PTHREAD_PRIO_NONE);
  MutexKind("recursive", PTHREAD_MUTEX_RECURSIVE, PTHREAD_MUTEX_STALLED, PTHREAD_PRIO_NONE);
  MutexKind("adaptive", PTHREAD_MUTEX_ADAPTIVE_NP, PTHREAD_MUTEX_STALLED, PTHREAD_PRIO_NONE);
  MutexKind("robust", PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_ROBUST, PTHREAD_PRIO_NONE);
  MutexKind("robust_errorcheck", PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_ROBUST,
            PTHREAD_PRIO_NONE);
  MutexKind("pi", PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_STALLED, PTHREAD_PRIO_INHERIT);
  MutexKind("pi_errorcheck", PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_STALLED,
            PTHREAD_PRIO_INHERIT);
  MutexKind("pi_robust", PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_ROBUST, PTHREAD_PRIO_INHERIT);
  MutexKind("pp", PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_STALLED, PTHREAD_PRIO_PROTECT);
  RwlockMatrix();
  CondMatrix();
  SpinMatrix();
  // std:: types on top of these.
  std::timed_mutex tm;
  tm.lock();
  OnOtherThread([&] {
    std::printf("std.timed_mutex.try_lock_for: %d\n",
                tm.try_lock_for(std::chrono::milliseconds(10)) ? 1 : 0);
  });
  tm.unlock();
  std::printf("MATRIX DONE\n");
}

}  // namespace it

int main(int argc, char** argv) {
  it::StartAgentIfLinked();
  const std::string mode = argc > 1 ? argv[1] : "";
  const int ms = argc > 2 ? std::atoi(argv[2]) : 20;
  const int n = argc > 3 ? std::atoi(argv[3]) : 10;
  if (mode == "mutex") {
    it::RunMutex(ms, n);
  } else if (mode == "shared") {
    it::RunShared(ms, n);
  } else if (mode == "condvar") {
    it::RunCondvar(ms, n);
  } else if (mode == "matrix") {
    it::RunMatrix();
    std::fflush(stdout);
    return 0;
  } else if (mode == "loop") {
    std::thread holder(it::LoopHolder);
    std::thread waiter(it::LoopWaiter);
    it::AnnounceReady();
    it::WaitForStdinClose();
    it::g_stop = true;
    holder.join();
    waiter.join();
    return 0;
  } else {
    std::fprintf(stderr, "usage: %s mutex|shared|condvar|loop|matrix [ms n]\n", argv[0]);
    return 2;
  }
  it::AnnounceReady();
  return it::WaitForStdinClose() ? 0 : 1;
}
