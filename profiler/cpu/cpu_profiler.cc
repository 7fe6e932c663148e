// CPU profiler: timers, signal handler, ring drain and Go's CPU profile. See
// cpu_profiler.h for the design; the contract of the signal handler is here.
//
// Signal handler contract (CpuSignalHandler and everything it calls):
//  - Runs on any application thread, at any instruction: inside malloc, inside
//    the agent's own hooks, inside libunwind, inside the loader.
//  - Async-signal-safe: no allocation, no lock that can wait (libunwind's own
//    internal lock, taken only on a cache miss with signals masked, is the one
//    bounded exception), no stdio, no exceptions. errno is saved and restored.
//  - Sets tls_state.in_agent, so that any hook it reaches (libunwind's
//    first-use allocations, its pthread_mutex_lock) passes straight to libc.
//  - Records only signals of this profile's timers (si_code SI_TIMER and the
//    current generation in si_value); everything else (a stray kill -PROF, a
//    signal left pending from the previous profile) is counted and ignored.
//  - Writes into the preallocated ring; a full ring drops and counts.
//
// Unwinding: libunwind's unw_backtrace() from inside the handler, which walks
// the handler's own frames, the kernel's signal frame (rt_sigreturn) and then
// the interrupted stack, using libunwind's per-thread cache of frame shapes.
// The interrupted stack is the part after the exact interrupted pc (read from
// the ucontext). When that pc is not found (libunwind could not cross the
// signal frame), unw_init_local2(ucontext, UNW_INIT_SIGNAL_FRAME) + unw_step
// unwinds from the signal context directly. Both give the exact interrupted
// pc as the leaf (Stack.leaf_is_pc). Why not unw_step always: Debian's
// libunwind 1.6 is built without a per-thread register-state cache, so every
// unw_step takes its global cache lock, which is two rt_sigprocmask system
// calls per frame: 9 µs for a 16-frame stack on the reference VM, against
// about 3 µs for the cached walk with cold caches (tools/bench/cpu_bench
// measures the whole handler; its profiles' comments count slow unwinds).
//
// Accuracy, and what the kernel does (Linux 6.x, 250 Hz tick):
//  - CPU timers are checked on the scheduler tick, on the CPU where the
//    thread runs at that tick. Above 250 Hz a signal stands for several
//    periods: si_overrun says how many, and each sample weighs 1 + overrun.
//  - So a thread can be a few periods past its next expiry when the profile
//    ends; StopSampling() gives such overdue timers a few ticks to fire.
//  - A thread that reads its own CPU clock (clock_gettime with
//    CLOCK_THREAD_CPUTIME_ID, a real system call) tens of thousands of times
//    a second gets far fewer signals on this kernel (overruns make up most
//    of the count, but the backlog at the end of a profile or at thread exit
//    is lost). Measured, not explained; the tests' busy loops avoid it.
//  - Time a thread spends blocked is not CPU time: no signal interrupts it.
#include "profiler/cpu/cpu_profiler.h"

#include "profiler/base/proc_tasks.h"
#include "profiler/base/signal_install.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <new>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "profiler/cpu/cpu_sample_ring.h"
#include "profiler/base/runtime.h"
#include "profiler/base/thread_state.h"

namespace pprof_agent::internal {
namespace {

// Timer slots: one per thread with a timer, found by tid (open addressing).
// Sized for services with thousands of threads; a thread that finds no slot
// is not sampled, and the profile says how many were missed.
constexpr uint32_t kMaxTimerSlots = 16384;  // a power of two
// Samples between two drains (~100 ms): 4096 is 160 busy CPUs at the kernel's
// highest timer-signal rate (250 Hz here); 2.2 MiB reserved, touched as used.
constexpr uint32_t kRingCapacity = 4096;
// Frames of the handler itself (handler, recorder, unwinder, rt_sigreturn)
// that unw_backtrace() returns before the interrupted pc.
constexpr int kHandlerFrames = 8;
constexpr uint32_t kNoSlot = 0xffffffffu;
// How long the end of a profile waits for overdue timers (StopSampling):
// three ticks of a 250 Hz kernel.
constexpr int64_t kOverdueGraceNanos = 12000000;

enum SlotState : int32_t {
  kFree = 0,      // no thread (tid 0), or a tid being claimed
  kArming = 1,    // its owner is creating the timer
  kArmed = 2,     // `timer` is live
  kDeleting = 3,  // someone is deleting `timer`
  kDead = 4,      // timer deleted; the tid may claim the slot again
};

struct TimerSlot {
  std::atomic<int32_t> tid;
  std::atomic<int32_t> state;
  timer_t timer;
};

// Counters of one profile (reset at Start) and of the process.
struct Counters {
  std::atomic<uint64_t> signals{0};
  std::atomic<uint64_t> overruns{0};
  std::atomic<uint64_t> ring_full{0};
  std::atomic<uint64_t> stale{0};
  std::atomic<uint64_t> slow_unwinds{0};
  std::atomic<uint64_t> loader_busy{0};
  std::atomic<uint64_t> armed_at_start{0};
  std::atomic<uint64_t> armed_later{0};
  std::atomic<uint64_t> skipped_blocked{0};
  std::atomic<uint64_t> no_slot{0};
  std::atomic<uint64_t> created{0};
  std::atomic<uint64_t> deleted{0};
  std::atomic<uint64_t> create_failed{0};

  void Reset() {
    for (auto* c : {&signals, &overruns, &ring_full, &stale, &slow_unwinds,
                    &loader_busy, &armed_at_start, &armed_later, &skipped_blocked, &no_slot,
                    &created, &deleted, &create_failed}) {
      c->store(0, std::memory_order_relaxed);
    }
  }
};

// Everything the handler and the thread hooks touch. Constant-initialised and
// trivially destructible: usable from the first instruction of the process to
// the last signal after exit handlers, with no guard variable or destructor.
struct CpuState {
  // A session exists (one profile at a time).
  std::atomic<bool> busy{false};
  // The handler records samples of `generation` only while this is set.
  std::atomic<bool> sampling{false};
  // New threads arm their own timer only while this is set.
  std::atomic<bool> arming{false};
  std::atomic<uint32_t> generation{0};
  // Handlers between their gate check and their last access to the ring.
  std::atomic<int32_t> handlers_running{0};
  // Settings of the running profile, written before `arming` is set.
  std::atomic<int> signal{kDefaultCpuSignal};
  std::atomic<int64_t> interval_ns{1000000000 / kDefaultCpuHz};
  // The child of a fork may hold a half-written ring cell.
  std::atomic<bool> ring_needs_reset{false};
  Counters profile;
  std::atomic<uint64_t> total_created{0};
  std::atomic<uint64_t> total_deleted{0};
  std::atomic<uint64_t> total_create_failed{0};
  std::atomic<uint64_t> total_profiles{0};
  CpuSampleRing ring;
  TimerSlot slots[kMaxTimerSlots] = {};
};

constinit CpuState g_cpu;

pid_t GetTid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

uint32_t SlotHash(int32_t tid) {
  return (static_cast<uint32_t>(tid) * 2654435761u) & (kMaxTimerSlots - 1);
}

// --- signal handler -----------------------------------------------------------

// The stack of the interrupted code, leaf (its exact pc) first. See the file
// comment for why two unwinders.
PA_ALWAYS_INLINE int UnwindInterrupted(void* ucontext, uint64_t* out) {
  auto* uc = static_cast<ucontext_t*>(ucontext);
  const auto pc = static_cast<uint64_t>(uc->uc_mcontext.gregs[REG_RIP]);
  if (LoaderLockBusy()) {
    // See LoaderLockBusy() in cpu_profiler.h: unwinding could deadlock.
    g_cpu.profile.loader_busy.fetch_add(1, std::memory_order_relaxed);
    out[0] = pc;
    return 1;
  }
  void* raw[kCpuMaxFrames + kHandlerFrames];
  const int n = unw_backtrace(raw, kCpuMaxFrames + kHandlerFrames);
  for (int i = 0; i < n && i <= kHandlerFrames; ++i) {
    if (reinterpret_cast<uint64_t>(raw[i]) != pc) continue;
    const int depth = std::min(n - i, kCpuMaxFrames);
    for (int j = 0; j < depth; ++j) out[j] = reinterpret_cast<uint64_t>(raw[i + j]);
    return depth;
  }
  g_cpu.profile.slow_unwinds.fetch_add(1, std::memory_order_relaxed);
  out[0] = pc;
  int depth = 1;
  unw_cursor_t cursor;
  if (unw_init_local2(&cursor, static_cast<unw_context_t*>(ucontext),
                      UNW_INIT_SIGNAL_FRAME) < 0) {
    return depth;
  }
  while (depth < kCpuMaxFrames && unw_step(&cursor) > 0) {
    unw_word_t ip = 0;
    if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0) break;
    out[depth++] = ip;
  }
  return depth;
}

PA_NOINLINE void RecordSample(uint32_t generation, uint32_t slot, int weight,
                              void* ucontext) {
  ++tls_state.in_agent;
  CpuSampleRecord record;
  record.generation = generation;
  record.tid = g_cpu.slots[slot].tid.load(std::memory_order_relaxed);
  record.weight = weight;
  record.depth = UnwindInterrupted(ucontext, record.pcs);
  if (!g_cpu.ring.TryPush(record)) {
    g_cpu.profile.ring_full.fetch_add(1, std::memory_order_relaxed);
  }
  --tls_state.in_agent;
}

void CpuSignalHandler(int, siginfo_t* info, void* ucontext) {
  const int saved_errno = errno;
  CpuState& s = g_cpu;
  // Announce, then check the gate (both seq_cst): Stop() clears the gate and
  // then waits for handlers_running to drain, so no handler touches the ring
  // after Stop() has taken the last samples.
  s.handlers_running.fetch_add(1, std::memory_order_seq_cst);
  if (s.sampling.load(std::memory_order_seq_cst) && info != nullptr &&
      info->si_code == SI_TIMER) {
    const auto cookie = reinterpret_cast<uint64_t>(info->si_value.sival_ptr);
    const auto generation = static_cast<uint32_t>(cookie >> 32);
    const auto slot = static_cast<uint32_t>(cookie);
    if (generation == s.generation.load(std::memory_order_relaxed) &&
        slot < kMaxTimerSlots) {
      const int overrun = info->si_overrun > 0 ? info->si_overrun : 0;
      s.profile.signals.fetch_add(1, std::memory_order_relaxed);
      s.profile.overruns.fetch_add(overrun, std::memory_order_relaxed);
      RecordSample(generation, slot, 1 + overrun, ucontext);
    } else {
      s.profile.stale.fetch_add(1, std::memory_order_relaxed);
    }
  }
  s.handlers_running.fetch_sub(1, std::memory_order_seq_cst);
  errno = saved_errno;
}

// --- handler installation -----------------------------------------------------

bool HandlerIsOurs(const struct sigaction& sa) {
  return IsHandler(sa, CpuSignalHandler);
}

// Installs the handler for `signo` unless the application has its own there.
// While no profile runs the installed handler ignores the signal. (A thread
// blocked in a system call uses no CPU and gets no signal from its own CPU
// timer in the first place, so SA_RESTART rarely matters here.)
bool EnsureHandler(int signo, std::string* message) {
  return InstallHandlerIfFree(
      signo, CpuSignalHandler, CpuSignalName(signo),
      "set PPROF_AGENT_CPU_SIGNAL to a free signal, e.g. SIGRTMIN+4", message);
}

// --- timers -------------------------------------------------------------------

// Claims the slot of `tid` for arming. kNoSlot when the tid already has a
// slot that is armed or being armed (someone else covers it) or when the
// table is full (*full set).
uint32_t ClaimSlot(int32_t tid, bool* full) {
  *full = false;
  const uint32_t start = SlotHash(tid);
  for (uint32_t probe = 0; probe < kMaxTimerSlots; ++probe) {
    const uint32_t index = (start + probe) & (kMaxTimerSlots - 1);
    TimerSlot& slot = g_cpu.slots[index];
    int32_t owner = slot.tid.load(std::memory_order_seq_cst);
    if (owner == 0) {
      if (slot.tid.compare_exchange_strong(owner, tid, std::memory_order_seq_cst)) {
        slot.state.store(kArming, std::memory_order_seq_cst);
        return index;
      }
      // Lost the race for this empty slot; `owner` is the winner's tid.
    }
    if (owner == tid) {
      int32_t state = kDead;
      if (slot.state.compare_exchange_strong(state, kArming,
                                             std::memory_order_seq_cst)) {
        return index;  // the tid was reused after a thread exited
      }
      return kNoSlot;  // armed, or being armed or claimed by someone else
    }
  }
  *full = true;
  return kNoSlot;
}

// The slot of `tid`, or kNoSlot.
uint32_t FindSlot(int32_t tid) {
  const uint32_t start = SlotHash(tid);
  for (uint32_t probe = 0; probe < kMaxTimerSlots; ++probe) {
    const uint32_t index = (start + probe) & (kMaxTimerSlots - 1);
    const int32_t owner = g_cpu.slots[index].tid.load(std::memory_order_acquire);
    if (owner == tid) return index;
    if (owner == 0) return kNoSlot;
  }
  return kNoSlot;
}

void DeleteTimer(timer_t timer) {
  timer_delete(timer);
  g_cpu.profile.deleted.fetch_add(1, std::memory_order_relaxed);
  g_cpu.total_deleted.fetch_add(1, std::memory_order_relaxed);
}

// Deletes the slot's timer if it is armed; true if this call deleted it.
bool DisarmSlot(TimerSlot& slot) {
  int32_t state = kArmed;
  if (!slot.state.compare_exchange_strong(state, kDeleting,
                                          std::memory_order_acq_rel)) {
    return false;
  }
  DeleteTimer(slot.timer);
  slot.state.store(kDead, std::memory_order_release);
  return true;
}

uint64_t NextRandom(uint64_t* state) {
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *state = x;
  return x;
}

// Creates and starts the timer of a claimed slot. The first expiry is random
// within one period, so that short-lived threads are sampled in proportion
// to their CPU time rather than never (or always) at their start.
bool ArmClaimedSlot(uint32_t index, int32_t tid, uint32_t generation) {
  TimerSlot& slot = g_cpu.slots[index];
  struct sigevent sev;
  memset(&sev, 0, sizeof(sev));
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = g_cpu.signal.load(std::memory_order_relaxed);
#ifdef sigev_notify_thread_id
  sev.sigev_notify_thread_id = tid;
#else
  sev._sigev_un._tid = tid;
#endif
  sev.sigev_value.sival_ptr =
      reinterpret_cast<void*>(static_cast<uintptr_t>(PackTimerCookie(generation, index)));
  timer_t timer;
  if (timer_create(ThreadCpuClock(tid), &sev, &timer) != 0) {
    // EINVAL/ESRCH: the thread exited since we saw it. EAGAIN: out of
    // RLIMIT_SIGPENDING (every timer holds one queued-signal slot).
    g_cpu.profile.create_failed.fetch_add(1, std::memory_order_relaxed);
    g_cpu.total_create_failed.fetch_add(1, std::memory_order_relaxed);
    slot.state.store(kDead, std::memory_order_release);
    return false;
  }
  g_cpu.profile.created.fetch_add(1, std::memory_order_relaxed);
  g_cpu.total_created.fetch_add(1, std::memory_order_relaxed);
  const int64_t interval = g_cpu.interval_ns.load(std::memory_order_relaxed);
  uint64_t rng = (static_cast<uint64_t>(tid) << 32) ^
                 static_cast<uint64_t>(MonotonicNanos()) ^ 0x9e3779b97f4a7c15ULL;
  const int64_t first = 1 + static_cast<int64_t>(NextRandom(&rng) % static_cast<uint64_t>(interval));
  struct itimerspec spec;
  spec.it_interval.tv_sec = interval / 1000000000;
  spec.it_interval.tv_nsec = interval % 1000000000;
  spec.it_value.tv_sec = first / 1000000000;
  spec.it_value.tv_nsec = first % 1000000000;
  if (timer_settime(timer, 0, &spec, nullptr) != 0) {
    DeleteTimer(timer);
    slot.state.store(kDead, std::memory_order_release);
    return false;
  }
  slot.timer = timer;
  slot.state.store(kArmed, std::memory_order_release);
  return true;
}

bool CurrentThreadBlocks(int signo) {
  sigset_t current;
  if (pthread_sigmask(SIG_BLOCK, nullptr, &current) != 0) return false;
  return sigismember(&current, signo) == 1;
}

// --- thread enumeration (cold) ------------------------------------------------

std::string ReadThreadName(int32_t tid) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/task/%d/comm", tid);
  char buf[64];
  size_t len = 0;
  if (!ReadSmallFile(path, buf, sizeof(buf), &len)) return "";
  while (len > 0 && buf[len - 1] == '\n') --len;
  return std::string(buf, len);
}

// --- stopping -----------------------------------------------------------------

// Whether the timer's thread has run past its next expiry without the timer
// firing yet: the kernel checks CPU timers on its tick, and only on a CPU
// where the thread is running at that tick, so a thread that runs in short
// slices can be several periods behind. timer_gettime() says 1 ns then.
bool Overdue(timer_t timer) {
  struct itimerspec left;
  if (timer_gettime(timer, &left) != 0) return false;
  return left.it_value.tv_sec == 0 && left.it_value.tv_nsec == 1;
}

// Closes both gates, deletes every timer and waits for handlers in flight.
// After it returns no handler of this profile touches the ring again.
//
// A timer that is overdue at the end (see Overdue()) stands for CPU time used
// inside the window that has not been sampled yet; deleting it would lose
// that time (up to several periods per thread on a busy machine). Those
// timers get a grace of a few kernel ticks to fire before they are deleted;
// every other timer is deleted at once.
void StopSampling() {
  CpuState& s = g_cpu;
  s.arming.store(false, std::memory_order_seq_cst);
  uint32_t overdue[256];
  uint32_t overdue_count = 0;
  for (uint32_t i = 0; i < kMaxTimerSlots; ++i) {
    TimerSlot& slot = s.slots[i];
    if (slot.tid.load(std::memory_order_seq_cst) == 0) continue;
    // A thread arming itself when the gate closed finishes in microseconds;
    // wait for it (bounded: a thread stopped in a debugger must not hang us).
    for (int spin = 0; spin < 2000; ++spin) {
      const int32_t state = slot.state.load(std::memory_order_seq_cst);
      if (state != kArming && state != kDeleting) break;
      sched_yield();
    }
    if (slot.state.load(std::memory_order_acquire) == kArmed &&
        overdue_count < sizeof(overdue) / sizeof(overdue[0]) &&
        Overdue(slot.timer)) {
      overdue[overdue_count++] = i;
      continue;
    }
    DisarmSlot(slot);
  }
  const int64_t grace_end = MonotonicNanos() + kOverdueGraceNanos;
  while (overdue_count > 0) {
    const bool last_round = MonotonicNanos() >= grace_end;
    uint32_t still = 0;
    for (uint32_t k = 0; k < overdue_count; ++k) {
      TimerSlot& slot = s.slots[overdue[k]];
      if (!last_round && slot.state.load(std::memory_order_acquire) == kArmed &&
          Overdue(slot.timer)) {
        overdue[still++] = overdue[k];
      } else {
        DisarmSlot(slot);
      }
    }
    overdue_count = still;
    if (overdue_count > 0) {
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, nullptr);
    }
  }
  s.sampling.store(false, std::memory_order_seq_cst);
  // Handlers that passed the gate before it closed finish within one unwind.
  for (int i = 0; i < 1000 && s.handlers_running.load(std::memory_order_seq_cst) != 0; ++i) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, nullptr);
  }
}

// Makes the table empty for the next profile. Slots still owned by a thread
// stuck in arming/deleting are left alone (that thread finishes them).
void ClearSlots() {
  for (TimerSlot& slot : g_cpu.slots) {
    if (slot.tid.load(std::memory_order_relaxed) == 0) continue;
    int32_t state = slot.state.load(std::memory_order_acquire);
    if (state == kDead || state == kFree) {
      slot.state.store(kFree, std::memory_order_relaxed);
      slot.tid.store(0, std::memory_order_release);
    }
  }
}

void AtForkChild() {
  // Timers are not inherited and no session exists in the child; the
  // parent's profile goes on in the parent. Cheap: no page of the ring is
  // touched here (a fork-heavy host must not pay for it).
  CpuState& s = g_cpu;
  s.busy.store(false, std::memory_order_relaxed);
  s.sampling.store(false, std::memory_order_relaxed);
  s.arming.store(false, std::memory_order_relaxed);
  s.handlers_running.store(0, std::memory_order_relaxed);
  s.ring_needs_reset.store(true, std::memory_order_relaxed);
  for (TimerSlot& slot : s.slots) {
    if (slot.tid.load(std::memory_order_relaxed) == 0) continue;
    slot.state.store(kFree, std::memory_order_relaxed);
    slot.tid.store(0, std::memory_order_relaxed);
  }
}

[[maybe_unused]] const bool g_atfork_registered = [] {
  pthread_atfork(nullptr, nullptr, AtForkChild);
  return true;
}();

}  // namespace

// --- session ------------------------------------------------------------------

struct CpuProfileSession::Aggregate {
  struct Value {
    int64_t samples = 0;
  };
  int hz = kDefaultCpuHz;
  int signal = kDefaultCpuSignal;
  uint32_t generation = 0;
  int64_t start_wall = 0;
  int64_t start_mono = 0;
  // key: tid then pcs, as raw bytes.
  std::unordered_map<std::string, Value> samples;
  std::map<int32_t, std::string> names;
  std::vector<std::string> notes;
  int64_t skipped_agent = 0;
};

std::unique_ptr<CpuProfileSession> CpuProfileSession::Start(
    const CpuProfileOptions& options, CpuStartError* error,
    std::string* message) {
  CpuState& s = g_cpu;
  *error = CpuStartError::kNone;
  if (options.hz < 1 || options.hz > kMaxCpuHz) {
    *error = CpuStartError::kBadOptions;
    *message = "hz must be from 1 to " + std::to_string(kMaxCpuHz);
    return nullptr;
  }
  int ignored;
  if (!ParseCpuSignal(std::to_string(options.signal), &ignored)) {
    *error = CpuStartError::kBadOptions;
    *message = "signal " + std::to_string(options.signal) +
               " cannot be used for CPU profiling";
    return nullptr;
  }
  if (s.busy.exchange(true, std::memory_order_acq_rel)) {
    *error = CpuStartError::kBusy;
    *message = "cpu profiling already in use";
    return nullptr;
  }
  struct BusyGuard {
    bool release = true;
    ~BusyGuard() {
      if (release) g_cpu.busy.store(false, std::memory_order_release);
    }
  } busy_guard;

  if (s.ring_needs_reset.exchange(false)) {
    // A forked child: start from a fresh ring (the old one may hold a cell
    // a parent thread was writing when fork() ran).
    new (&s.ring) CpuSampleRing();
  }
  if (!s.ring.Allocate(kRingCapacity)) {
    *error = CpuStartError::kNoResources;
    *message = "cannot map the sample buffer";
    return nullptr;
  }
  {
    // libunwind initialises itself on first use (locks, allocation): make
    // sure that happens here and not in the first signal handler.
    ReentrancyGuard guard;
    void* warm[4];
    unw_backtrace(warm, 4);
  }
  if (!EnsureHandler(options.signal, message)) {
    *error = CpuStartError::kSignalInUse;
    return nullptr;
  }
  const bool loader_lock_known = FindLoaderLock();

  auto agg = std::make_unique<Aggregate>();
  if (!loader_lock_known) {
    agg->notes.push_back(
        "cpu: the dynamic loader's lock was not found; a sample taken inside "
        "dlopen/dlclose may hang its thread");
  }
  agg->hz = options.hz;
  agg->signal = options.signal;
  s.profile.Reset();
  const uint32_t generation = s.generation.load(std::memory_order_relaxed) + 1;
  agg->generation = generation;
  s.signal.store(options.signal, std::memory_order_relaxed);
  s.interval_ns.store(1000000000 / options.hz, std::memory_order_relaxed);
  s.generation.store(generation, std::memory_order_seq_cst);
  s.sampling.store(true, std::memory_order_seq_cst);
  // From here on, new threads arm themselves; the enumeration below covers
  // every thread that started before (ClaimSlot dedupes the overlap).
  s.arming.store(true, std::memory_order_seq_cst);
  agg->start_wall = WallNanos();
  agg->start_mono = MonotonicNanos();

  int64_t eligible = 0;
  for (const int32_t tid : ListTasks()) {
    if (IsAgentThreadId(tid)) {
      ++agg->skipped_agent;
      continue;
    }
    TaskStatus task;
    if (!ReadTaskStatus(tid, options.signal, &task)) continue;  // exited meanwhile
    // glibc (pthread_create, fork, posix_spawn) and libunwind (its cache lock,
    // taken by the malloc hooks' stack capture) mask every signal for a few
    // microseconds at a time: a thread seen blocking the signal is read again
    // before it is left out of the whole profile.
    bool exited = false;
    for (int retry = 0; retry < 3 && task.blocks_signal && !exited; ++retry) {
      sched_yield();
      exited = !ReadTaskStatus(tid, options.signal, &task);
    }
    if (exited) continue;
    if (task.blocks_signal) {
      s.profile.skipped_blocked.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    ++eligible;
    if (!task.name.empty()) agg->names[tid] = task.name;
    bool full = false;
    const uint32_t index = ClaimSlot(tid, &full);
    if (index == kNoSlot) {
      if (full) s.profile.no_slot.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (ArmClaimedSlot(index, tid, generation)) {
      s.profile.armed_at_start.fetch_add(1, std::memory_order_relaxed);
    }
  }
  const uint64_t blocked = s.profile.skipped_blocked.load();
  if (eligible == 0 && blocked > 0) {
    StopSampling();
    ClearSlots();
    *error = CpuStartError::kSignalBlocked;
    *message = CpuSignalName(options.signal) +
               " is blocked in every application thread (" +
               std::to_string(blocked) +
               "), so no thread could be sampled; set PPROF_AGENT_CPU_SIGNAL to "
               "a signal the application does not block";
    return nullptr;
  }
  if (eligible > 0 && s.profile.armed_at_start.load() == 0 &&
      s.profile.created.load() == 0 && s.profile.create_failed.load() > 0) {
    StopSampling();
    ClearSlots();
    *error = CpuStartError::kNoResources;
    *message = "timer_create failed for every thread (RLIMIT_SIGPENDING?)";
    return nullptr;
  }
  s.total_profiles.fetch_add(1, std::memory_order_relaxed);
  auto session = std::unique_ptr<CpuProfileSession>(new CpuProfileSession);
  session->aggregate_ = std::move(agg);
  busy_guard.release = false;
  return session;
}

CpuProfileSession::~CpuProfileSession() {
  if (!stopped_ && aggregate_ != nullptr) (void)Stop();
}

void CpuProfileSession::Drain() {
  Aggregate& agg = *aggregate_;
  CpuSampleRecord record;
  std::string key;
  while (g_cpu.ring.TryPop(&record)) {
    if (record.generation != agg.generation) continue;  // a late straggler
    key.assign(reinterpret_cast<const char*>(&record.tid), sizeof(record.tid));
    key.append(reinterpret_cast<const char*>(record.pcs),
               sizeof(uint64_t) * static_cast<size_t>(record.depth));
    agg.samples[key].samples += record.weight;
    if (agg.names.find(record.tid) == agg.names.end()) {
      // Read now, while the thread most likely still exists.
      agg.names[record.tid] = ReadThreadName(record.tid);
    }
  }
}

bool CpuProfileSession::Poll() {
  if (stopped_ || aggregate_ == nullptr) return false;
  Drain();
  struct sigaction current;
  if (sigaction(aggregate_->signal, nullptr, &current) == 0 &&
      !HandlerIsOurs(current)) {
    if (aggregate_->notes.empty()) {
      aggregate_->notes.push_back(
          "profile cut short: the application replaced the " +
          CpuSignalName(aggregate_->signal) + " handler");
    }
    return false;
  }
  return true;
}

CpuRaw CpuProfileSession::Stop() {
  CpuRaw raw;
  if (stopped_ || aggregate_ == nullptr) return raw;
  stopped_ = true;
  Aggregate& agg = *aggregate_;
  // The window ends now: what StopSampling() still collects (overdue timers)
  // is CPU time used before this instant.
  const int64_t end_mono = MonotonicNanos();
  StopSampling();
  Drain();
  ClearSlots();
  CpuState& s = g_cpu;
  raw.hz = agg.hz;
  raw.start_wall_nanos = agg.start_wall;
  raw.duration_nanos = end_mono - agg.start_mono;
  raw.records.reserve(agg.samples.size());
  for (const auto& [key, value] : agg.samples) {
    CpuRaw::Record r;
    memcpy(&r.tid, key.data(), sizeof(r.tid));
    const size_t frames = (key.size() - sizeof(r.tid)) / sizeof(uint64_t);
    r.pcs.resize(frames);
    memcpy(r.pcs.data(), key.data() + sizeof(r.tid), frames * sizeof(uint64_t));
    r.samples = value.samples;
    raw.records.push_back(std::move(r));
  }
  // Deterministic order (tests, diffs): by tid, then stack.
  std::sort(raw.records.begin(), raw.records.end(),
            [](const CpuRaw::Record& a, const CpuRaw::Record& b) {
              return std::tie(a.tid, a.pcs) < std::tie(b.tid, b.pcs);
            });
  raw.thread_names = std::move(agg.names);

  const Counters& c = s.profile;
  const uint64_t period = 1000000000ULL / static_cast<uint64_t>(agg.hz);
  raw.comments.push_back("cpu profile: hz=" + std::to_string(agg.hz) +
                         " period=" + std::to_string(period) + "ns signal=" +
                         CpuSignalName(agg.signal) +
                         "; per-thread CPU-time timers; each sample weighs "
                         "1 + timer overruns");
  raw.comments.push_back(
      "cpu window: start_unix_nanos=" + std::to_string(raw.start_wall_nanos) +
      " duration_nanos=" + std::to_string(raw.duration_nanos));
  raw.comments.push_back(
      "cpu threads: armed at start=" + std::to_string(c.armed_at_start.load()) +
      " armed later=" + std::to_string(c.armed_later.load()) +
      " skipped (signal blocked)=" + std::to_string(c.skipped_blocked.load()) +
      " skipped (agent)=" + std::to_string(agg.skipped_agent) +
      " not covered (timer table full)=" + std::to_string(c.no_slot.load()));
  raw.comments.push_back(
      "cpu signals: " + std::to_string(c.signals.load()) + " overruns=" +
      std::to_string(c.overruns.load()) + " dropped (buffer full)=" +
      std::to_string(c.ring_full.load()) + " ignored (stale or foreign)=" +
      std::to_string(c.stale.load()) + " slow unwinds=" +
      std::to_string(c.slow_unwinds.load()) +
      " leaf only (loader lock held)=" + std::to_string(c.loader_busy.load()));
  raw.comments.push_back(
      "cpu timers this profile: created=" + std::to_string(c.created.load()) +
      " deleted=" + std::to_string(c.deleted.load()) +
      " create failed=" + std::to_string(c.create_failed.load()));
  raw.comments.push_back(
      "cpu timers process lifetime: created=" +
      std::to_string(s.total_created.load()) +
      " deleted=" + std::to_string(s.total_deleted.load()) +
      " profiles=" + std::to_string(s.total_profiles.load()));
  for (std::string& note : agg.notes) raw.comments.push_back(std::move(note));
  s.busy.store(false, std::memory_order_release);
  return raw;
}

// --- thread hooks ---------------------------------------------------------------

void CpuOnThreadStart() {
  CpuState& s = g_cpu;
  if (PA_LIKELY(!s.arming.load(std::memory_order_relaxed))) return;
  if (tls_state.is_agent_thread) return;
  const int signo = s.signal.load(std::memory_order_relaxed);
  if (CurrentThreadBlocks(signo)) {
    // The agent's own threads start with every signal blocked, before they
    // mark themselves; application threads that block it are not sampled.
    return;
  }
  const pid_t tid = GetTid();
  bool full = false;
  const uint32_t index = ClaimSlot(tid, &full);
  if (index == kNoSlot) {
    if (full) s.profile.no_slot.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Dekker with StopSampling(): the claim above and this load are seq_cst,
  // as are its store of `arming` and its scan of the slots. Either Stop sees
  // our claim (and waits for us) or we see the gate closed.
  const uint32_t generation = s.generation.load(std::memory_order_seq_cst);
  if (!s.arming.load(std::memory_order_seq_cst)) {
    s.slots[index].state.store(kDead, std::memory_order_release);
    return;
  }
  if (ArmClaimedSlot(index, tid, generation)) {
    s.profile.armed_later.fetch_add(1, std::memory_order_relaxed);
  }
}

void CpuOnThreadExit() {
  CpuState& s = g_cpu;
  if (PA_LIKELY(!s.busy.load(std::memory_order_relaxed))) return;
  const uint32_t index = FindSlot(GetTid());
  if (index == kNoSlot) return;
  // Loses harmlessly to StopSampling() if that got there first.
  DisarmSlot(s.slots[index]);
}

CpuCounters CpuCountersNow() {
  CpuCounters c;
  c.timers_created = g_cpu.total_created.load();
  c.timers_deleted = g_cpu.total_deleted.load();
  c.timer_create_failures = g_cpu.total_create_failed.load();
  c.profiles = g_cpu.total_profiles.load();
  c.running = g_cpu.busy.load();
  return c;
}

// --- profile ------------------------------------------------------------------

Snapshot CpuProfileSnapshot(const CpuRaw& raw) {
  Snapshot snap;
  snap.sample_types = {{"samples", "count"}, {"cpu", "nanoseconds"}};
  snap.period_type = {"cpu", "nanoseconds"};
  const int hz = raw.hz >= 1 ? raw.hz : kDefaultCpuHz;
  snap.period = 1000000000 / hz;
  snap.time_nanos = raw.start_wall_nanos;
  snap.duration_nanos = raw.duration_nanos;
  snap.comments = raw.comments;
  std::map<std::vector<uint64_t>, uint32_t> stack_index;
  for (const CpuRaw::Record& r : raw.records) {
    if (r.samples <= 0 || r.pcs.empty()) continue;
    auto [it, inserted] = stack_index.emplace(r.pcs, snap.stacks.size());
    if (inserted) snap.stacks.push_back(Stack{r.pcs, /*leaf_is_pc=*/true});
    Sample sample;
    sample.stack = it->second;
    sample.values = {r.samples, r.samples * snap.period};
    sample.labels.push_back(Label::Num("thread_id", r.tid));
    auto name = raw.thread_names.find(r.tid);
    const std::string thread_name =
        name != raw.thread_names.end() && !name->second.empty() ? name->second
                                                                : "unknown";
    sample.labels.push_back(Label::Str("thread_name", thread_name));
    snap.samples.push_back(std::move(sample));
  }
  return snap;
}

// --- the dynamic loader's lock ----------------------------------------------------

namespace {

// The lock word (pthread_mutex_t.__data.__lock) of glibc's dl_load_write_lock.
std::atomic<const pthread_mutex_t*> g_loader_lock{nullptr};
std::atomic<bool> g_loader_lock_searched{false};

struct LoaderLockSearch {
  const char* base = nullptr;
  size_t size = 0;
  pid_t tid = 0;
  const pthread_mutex_t* found = nullptr;
  int matches = 0;
  bool scanned = false;
};

// Runs with dl_load_write_lock held by this thread: the one locked recursive
// mutex of _rtld_global that this thread owns is that lock.
int ScanRtldGlobal(dl_phdr_info*, size_t, void* data) {
  auto* search = static_cast<LoaderLockSearch*>(data);
  if (search->scanned) return 1;
  search->scanned = true;
  for (size_t off = 0; off + sizeof(pthread_mutex_t) <= search->size;
       off += alignof(pthread_mutex_t)) {
    const auto* m = reinterpret_cast<const pthread_mutex_t*>(search->base + off);
    if (m->__data.__lock != 0 && m->__data.__owner == search->tid &&
        m->__data.__count >= 1 &&
        (m->__data.__kind & 3) == PTHREAD_MUTEX_RECURSIVE_NP) {
      ++search->matches;
      search->found = m;
    }
  }
  return 1;
}

}  // namespace

bool FindLoaderLock() {
  if (g_loader_lock.load(std::memory_order_acquire) != nullptr) return true;
  if (g_loader_lock_searched.exchange(true)) return false;
  void* rtld = dlsym(RTLD_DEFAULT, "_rtld_global");
  Dl_info info;
  void* entry = nullptr;  // const ElfW(Sym)*
  if (rtld == nullptr || dladdr1(rtld, &info, &entry, RTLD_DL_SYMENT) == 0 ||
      entry == nullptr) {
    return false;
  }
  const auto* symbol = static_cast<const ElfW(Sym)*>(entry);
  if (symbol->st_size == 0) return false;
  LoaderLockSearch search;
  search.base = static_cast<const char*>(rtld);
  search.size = symbol->st_size;
  search.tid = GetTid();
  dl_iterate_phdr(ScanRtldGlobal, &search);
  // Exactly one candidate, and it is released now that the iteration is over.
  if (search.matches != 1 || search.found->__data.__owner == search.tid) return false;
  g_loader_lock.store(search.found, std::memory_order_release);
  return true;
}

bool LoaderLockBusy() {
  const pthread_mutex_t* m = g_loader_lock.load(std::memory_order_acquire);
  if (m == nullptr || __atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED) == 0) {
    return false;
  }
  // Held. By another thread (its owner written): unwinding waits until that
  // thread lets go, as any dl_iterate_phdr() caller does. Many threads unwind
  // at once in a thread dump or a CPU profile, each taking the lock in
  // dl_iterate_phdr, so this is the common case and must keep the stack.
  // By this thread, or by someone between the lock word and the owner field
  // (taking or releasing it, perhaps this thread): not safe.
  // The owner-less window is a few instructions; when another thread is in
  // it (or was preempted there, with hundreds of threads unwinding on two
  // cores) it ends if we wait a little. If this thread is in it, it cannot
  // end: after a bounded wait, the leaf only.
  for (int round = 0; round < 64; ++round) {
    if (__atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED) == 0) return false;
    const int owner = __atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED);
    if (owner != 0) return owner == static_cast<int>(syscall(SYS_gettid));
    if (round < 32) {
      __builtin_ia32_pause();
    } else {
      sched_yield();  // async-signal-safe; lets a preempted holder run
    }
  }
  return true;
}

// --- signal names -----------------------------------------------------------------

namespace {

struct NamedSignal {
  const char* name;
  int signo;
};

constexpr NamedSignal kNamedSignals[] = {
    {"PROF", SIGPROF}, {"VTALRM", SIGVTALRM}, {"ALRM", SIGALRM},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  }
  return true;
}

bool ParseSmallInt(std::string_view text, int* out) {
  if (text.empty() || text.size() > 3) return false;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  *out = value;
  return true;
}

bool UsableSignal(int signo) {
  for (const NamedSignal& s : kNamedSignals) {
    if (s.signo == signo) return true;
  }
  // SIGRTMIN and SIGRTMAX are glibc's run-time values: the two or three
  // lowest real-time signals belong to glibc itself.
  return signo >= SIGRTMIN && signo <= SIGRTMAX;
}

}  // namespace

bool ParseCpuSignal(std::string_view text, int* signo) {
  if (text.size() > 3 && EqualsIgnoreCase(text.substr(0, 3), "SIG")) {
    text.remove_prefix(3);
  }
  int value = 0;
  if (ParseSmallInt(text, &value)) {
    if (!UsableSignal(value)) return false;
    *signo = value;
    return true;
  }
  for (const NamedSignal& s : kNamedSignals) {
    if (EqualsIgnoreCase(text, s.name)) {
      *signo = s.signo;
      return true;
    }
  }
  if (text.size() >= 5) {
    const std::string_view base = text.substr(0, 5);
    int offset = 0;
    std::string_view rest = text.substr(5);
    int sign = 0;
    if (!rest.empty() && (rest.front() == '+' || rest.front() == '-')) {
      sign = rest.front() == '+' ? 1 : -1;
      rest.remove_prefix(1);
      if (!ParseSmallInt(rest, &offset)) return false;
    } else if (!rest.empty()) {
      return false;
    }
    if (EqualsIgnoreCase(base, "RTMIN") && sign >= 0) {
      value = SIGRTMIN + offset;
    } else if (EqualsIgnoreCase(base, "RTMAX") && sign <= 0) {
      value = SIGRTMAX - offset;
    } else {
      return false;
    }
    if (!UsableSignal(value)) return false;
    *signo = value;
    return true;
  }
  return false;
}

std::string CpuSignalName(int signo) {
  for (const NamedSignal& s : kNamedSignals) {
    if (s.signo == signo) return std::string("SIG") + s.name;
  }
  if (signo >= SIGRTMIN && signo <= SIGRTMAX) {
    return signo == SIGRTMIN ? "SIGRTMIN"
                             : "SIGRTMIN+" + std::to_string(signo - SIGRTMIN);
  }
  return "signal " + std::to_string(signo);
}

}  // namespace pprof_agent::internal
