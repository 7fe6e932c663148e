// The CPU profiler: per-thread CPU-time timers (timer_create on each thread's
// CPU clock, SIGEV_THREAD_ID), a signal handler that unwinds the interrupted
// stack into a lock-free ring, and the cold side that drains the ring into an
// aggregate and turns it into Go's CPU profile (samples/count, cpu/nanoseconds).
//
// Why per-thread CPU timers and not setitimer(ITIMER_PROF): the process-wide
// timer's signal goes to whichever thread the kernel picks, which skews
// samples toward some threads (Go switched away from it in 1.18 for that
// reason). A timer on each thread's own CPU clock fires in proportion to that
// thread's CPU time, and only while it runs: a thread blocked in read(),
// poll() or nanosleep() is never interrupted.
//
// One profile at a time. The signal handler is installed on first use and
// stays installed, gated by an atomic flag, so that a signal still pending
// when a profile ends never meets the default action (which would kill the
// process). An application handler already installed for the signal is never
// replaced: the profile fails with a message that names the signal and the
// setting to change (PPROF_AGENT_CPU_SIGNAL). An application that installs
// its handler over ours while a profile runs ends that profile at its next
// Poll(); the whole policy is in profiler/base/signal_install.h.
//
// Fork: a child does not inherit timers; an atfork handler resets the state so
// that a child can profile itself. Exec: the kernel deletes the timers, but a
// signal that became pending during execve() itself is delivered to the new
// image, whose disposition is the default one; this window is a few
// microseconds long and is documented, not handled.
#ifndef PPROF_AGENT_PROFILER_CPU_CPU_PROFILER_H_
#define PPROF_AGENT_PROFILER_CPU_CPU_PROFILER_H_

#include <signal.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "profiler/base/snapshot.h"

namespace pprof_agent::internal {

inline constexpr int kDefaultCpuHz = 100;
inline constexpr int kMaxCpuHz = 1000;
inline constexpr int kDefaultCpuSignal = SIGPROF;

struct CpuProfileOptions {
  int hz = kDefaultCpuHz;          // 1..kMaxCpuHz
  int signal = kDefaultCpuSignal;  // see ParseCpuSignal()
};

// Why a profile could not start.
enum class CpuStartError {
  kNone,
  kBusy,              // another CPU profile is running (HTTP 409)
  kBadOptions,        // hz or signal out of range
  kSignalInUse,       // the application has its own handler for the signal
  kSignalBlocked,     // every application thread blocks the signal
  kNoResources,       // mmap, sigaction or every timer_create failed
};

// Everything one finished profile collected.
struct CpuRaw {
  struct Record {
    std::vector<uint64_t> pcs;  // leaf (exact interrupted pc) first
    int32_t tid = 0;
    int64_t samples = 0;  // sum of weights (1 + si_overrun)
  };
  int hz = kDefaultCpuHz;
  int64_t start_wall_nanos = 0;
  int64_t duration_nanos = 0;
  std::vector<Record> records;
  std::map<int32_t, std::string> thread_names;  // tid -> /proc comm
  std::vector<std::string> comments;  // counters, drops, notes
};

// A running CPU profile; RAII: destroying it stops the profile and deletes
// every timer it created. Not thread-safe: one thread (the request's) owns it.
class CpuProfileSession {
 public:
  // Installs the handler if needed, arms a timer on every application thread
  // that exists now (threads created later arm their own, see
  // CpuOnThreadStart) and starts sampling. On failure returns null and sets
  // *error and *message (one line, for the HTTP response).
  static std::unique_ptr<CpuProfileSession> Start(const CpuProfileOptions& options,
                                                  CpuStartError* error,
                                                  std::string* message);
  ~CpuProfileSession();
  CpuProfileSession(const CpuProfileSession&) = delete;
  CpuProfileSession& operator=(const CpuProfileSession&) = delete;

  // Moves what the handler recorded into this session's aggregate. Call
  // every ~100 ms while the profile runs (the ring holds a few seconds of
  // samples of a busy machine, not a whole profile). Returns false when the
  // profile cannot go on (the application replaced the signal handler).
  bool Poll();

  // Stops sampling, deletes the timers, drains the last samples and returns
  // the profile. The session is finished afterwards (Poll/Stop do nothing).
  CpuRaw Stop();

 private:
  CpuProfileSession() = default;
  struct Aggregate;
  void Drain();

  std::unique_ptr<Aggregate> aggregate_;
  bool stopped_ = false;
};

// Go's CPU profile from a finished one: sample types samples/count and
// cpu/nanoseconds, period type cpu/nanoseconds, period 1e9/hz, leaf_is_pc
// stacks, labels thread_id (num) and thread_name (str) on every sample.
Snapshot CpuProfileSnapshot(const CpuRaw& raw);

// Counters over the life of the process, for tests and the index page.
struct CpuCounters {
  uint64_t timers_created = 0;
  uint64_t timers_deleted = 0;
  uint64_t timer_create_failures = 0;
  uint64_t profiles = 0;
  bool running = false;
};
CpuCounters CpuCountersNow();

// Thread hooks (profiler/hooks/thread_hooks.cc). Called first thing in every thread
// created through pthread_create while the agent is loaded: arms the thread's
// own timer when a profile is running (one relaxed load when none is).
void CpuOnThreadStart();
// Called when such a thread exits, by any path: deletes its timer, if any.
void CpuOnThreadExit();

// The dynamic loader's write lock (glibc's dl_load_write_lock) and signal
// handlers that unwind. libunwind calls dl_iterate_phdr() on a cache miss,
// which takes that lock, a recursive mutex. A signal that interrupts a thread
// inside dlopen()/dlclose() while it holds the lock, or while it is taking it
// (lock word set, owner not yet written), makes the handler wait for itself
// forever; every other thread then piles up behind the loader (found by the
// dlopen storm under CPU profiling). So the handlers skip the unwind, keeping
// the interrupted pc alone, while the interrupted thread may hold that lock.
//
// glibc does not export the lock: FindLoaderLock() finds it once (cold, any
// thread but a handler) as the one locked recursive mutex inside ld.so's
// _rtld_global that the calling thread owns from within a dl_iterate_phdr()
// callback, and checks that it is released afterwards. False when it cannot
// be found (then the handlers unwind unprotected, as before).
bool FindLoaderLock();
// Async-signal-safe: one load while the lock is free. True while this
// thread holds the loader's write lock, or while someone stays between
// taking (or releasing) it and writing its owner (a bounded wait of a few
// pauses and sched_yield()s decides); false when another thread owns
// it (the unwind then just waits for it), when it is free, or when it was
// never found.
bool LoaderLockBusy();

// PPROF_AGENT_CPU_SIGNAL: "SIGPROF", "PROF", "27", "SIGRTMIN+3", "SIGRTMAX-1"
// (case-insensitive). Accepted: SIGPROF, SIGVTALRM, SIGALRM, SIGUSR1,
// SIGUSR2 and the real-time signals glibc leaves to applications. Pure.
bool ParseCpuSignal(std::string_view text, int* signo);
// "SIGPROF", "SIGRTMIN+3", or the number.
std::string CpuSignalName(int signo);

// The CPU clock of thread `tid` of this process, as the kernel encodes it
// (MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)): usable with clock_gettime and
// timer_create from any thread of the process.
constexpr clockid_t ThreadCpuClock(int32_t tid) {
  return static_cast<clockid_t>((~static_cast<uint32_t>(tid) << 3) | 6);
}

// The timer value a sample's siginfo carries: profile generation and slot.
constexpr uint64_t PackTimerCookie(uint32_t generation, uint32_t slot) {
  return (uint64_t{generation} << 32) | slot;
}

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_CPU_CPU_PROFILER_H_
