// Thread dumps: the signal handler that unwinds a thread into its slot, the
// requester that signals and collects, and the goroutine profile. See
// thread_dump.h for the design.
//
// Signal handler contract (DumpSignalHandler and everything it calls):
//  - Runs on any application thread, at any instruction: inside malloc,
//    inside the agent's own hooks, inside libunwind, inside the loader.
//  - Async-signal-safe: no allocation, no lock that can wait (libunwind's
//    own cache lock, taken with signals masked, is the one bounded
//    exception, as for the CPU profiler), no stdio, no exceptions. errno is
//    saved and restored.
//  - Sets tls_state.in_agent while it unwinds, so that any hook it reaches
//    (libunwind's pthread_mutex_lock) passes straight to libc.
//  - Acts only on signals this process queued with SI_QUEUE for a slot whose
//    state is "pending" in the cookie's generation; claims the slot with one
//    CAS (pending -> writing), so a late or duplicate signal never writes a
//    slot that another request owns. Everything else is counted and ignored.
//  - Writes only its own slot of the preallocated storage.
//
// Slot protocol (the state word is generation << 8 | phase):
//   requester: any phase but "writing" -> pending(gen); signal the thread.
//   handler:   pending(gen) -> writing(gen); unwind; -> done(gen).
//   requester at the deadline: pending(gen) -> abandoned(gen) (CAS; if the
//   handler won, it is writing and finishes within one unwind). A slot left
//   "writing" by a thread that stalled mid-unwind is skipped by later
//   requests until it is done.
#include "profiler/threads/thread_dump.h"

#include "profiler/cpu/cpu_profiler.h"
#include "profiler/base/proc_tasks.h"
#include "profiler/base/signal_install.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <tuple>
#include <unordered_map>
#include <utility>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "profiler/contention/contention_profiler.h"
#include "profiler/base/runtime.h"
#include "profiler/base/thread_state.h"

namespace pprof_agent::internal {
namespace {

// Slots per batch. A process with more threads is dumped in several
// batches; 4096 slots of ~1.2 KiB are 5 MiB of address space, reserved on
// the first dump and touched only as far as used.
constexpr uint32_t kSlots = 4096;
// Offset of the default signal from SIGRTMIN (the CPU profiler's message
// suggests SIGRTMIN+4 for its own signal; stay clear of it).
constexpr int kDefaultSignalOffset = 6;
// While waiting for answers: how often to check that pending threads still
// exist (a thread that exited after being signalled never answers).
constexpr int64_t kLivenessCheckNs = 20 * 1000000;
// How long a handler that claimed its slot may take to finish after the
// deadline.
constexpr int64_t kWritingGraceNs = 50 * 1000000;

enum Phase : uint64_t {
  kIdle = 0,
  kPending = 1,
  kWriting = 2,
  kDone = 3,
  kAbandoned = 4,
};

constexpr uint64_t StateWord(uint32_t generation, Phase phase) {
  return (uint64_t{generation} << 8) | phase;
}
constexpr Phase PhaseOf(uint64_t state) { return static_cast<Phase>(state & 0xff); }

struct alignas(64) DumpSlot {
  std::atomic<uint64_t> state;
  int32_t tid;
  int32_t depth;
  uint32_t read_count;
  uint32_t read_overflow;
  uintptr_t read_locks[kMaxHeldReads];
  uint64_t pcs[kThreadDumpMaxDepth];
};

// Everything the handler touches. Constant-initialised and trivially
// destructible: valid from the first instruction to the last signal.
struct DumpState {
  std::atomic<bool> busy{false};
  std::atomic<DumpSlot*> slots{nullptr};
  std::atomic<uint32_t> generation{0};
  std::atomic<int32_t> pid{0};
  std::atomic<int> signal{0};  // 0: the default
  std::atomic<uint64_t> answered{0};
  std::atomic<uint64_t> ignored{0};  // foreign or stale signals
};

constinit DumpState g_dump;

int32_t GetTid() { return static_cast<int32_t>(syscall(SYS_gettid)); }

// --- signal handler -----------------------------------------------------------

// The interrupted stack, leaf (its exact pc) first.
PA_ALWAYS_INLINE int UnwindInterrupted(void* ucontext, uint64_t* out) {
  auto* uc = static_cast<ucontext_t*>(ucontext);
  out[0] = static_cast<uint64_t>(uc->uc_mcontext.gregs[REG_RIP]);
  int depth = 1;
  // Unwinding while the loader's lock is held could wait for this very
  // thread forever (LoaderLockBusy() in cpu_profiler.h): the leaf only.
  if (LoaderLockBusy()) return depth;
  unw_cursor_t cursor;
  if (unw_init_local2(&cursor, static_cast<unw_context_t*>(ucontext),
                      UNW_INIT_SIGNAL_FRAME) < 0) {
    return depth;
  }
  while (depth < kThreadDumpMaxDepth && unw_step(&cursor) > 0) {
    unw_word_t ip = 0;
    if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0) break;
    out[depth++] = ip;
  }
  return depth;
}

void DumpSignalHandler(int, siginfo_t* info, void* ucontext) {
  const int saved_errno = errno;
  DumpSlot* slots = g_dump.slots.load(std::memory_order_acquire);
  bool handled = false;
  if (slots != nullptr && info != nullptr && ucontext != nullptr &&
      info->si_code == SI_QUEUE &&
      info->si_pid == g_dump.pid.load(std::memory_order_relaxed)) {
    const auto cookie = reinterpret_cast<uint64_t>(info->si_value.sival_ptr);
    const auto generation = static_cast<uint32_t>(cookie >> 32);
    const auto index = static_cast<uint32_t>(cookie);
    if (index < kSlots) {
      DumpSlot& slot = slots[index];
      uint64_t expected = StateWord(generation, kPending);
      if (slot.state.compare_exchange_strong(expected,
                                             StateWord(generation, kWriting),
                                             std::memory_order_acq_rel)) {
        ++tls_state.in_agent;
        slot.tid = GetTid();
        slot.depth = UnwindInterrupted(ucontext, slot.pcs);
        // Read locks are known only to the thread itself (glibc records
        // write owners, not readers).
        const LockThreadState& locks = tls_lock_state;
        const uint32_t n = std::min<uint32_t>(locks.held_count, kMaxHeldReads);
        for (uint32_t i = 0; i < n; ++i) slot.read_locks[i] = locks.held_reads[i];
        slot.read_count = n;
        slot.read_overflow = locks.held_overflow;
        --tls_state.in_agent;
        slot.state.store(StateWord(generation, kDone), std::memory_order_release);
        g_dump.answered.fetch_add(1, std::memory_order_relaxed);
        handled = true;
      }
    }
  }
  if (!handled) g_dump.ignored.fetch_add(1, std::memory_order_relaxed);
  errno = saved_errno;
}

// --- signal set-up (cold) -----------------------------------------------------

std::string SignalName(int signo) {
  if (signo >= SIGRTMIN && signo <= SIGRTMAX) {
    return signo == SIGRTMIN ? "SIGRTMIN"
                             : "SIGRTMIN+" + std::to_string(signo - SIGRTMIN);
  }
  const char* abbrev = sigabbrev_np(signo);
  return abbrev != nullptr ? std::string("SIG") + abbrev
                           : "signal " + std::to_string(signo);
}

// Installs the handler unless the application has its own for the signal
// (the CPU profiler's policy, profiler/base/signal_install.h). Once installed it
// stays: a signal that is still queued when a dump ends (a thread unblocked
// it later) must meet our handler, not the default action, which for a
// real-time signal kills.
bool EnsureHandler(int signo, std::string* message) {
  return InstallHandlerIfFree(signo, DumpSignalHandler, SignalName(signo),
                              "set PPROF_AGENT_DUMP_SIGNAL to a free signal",
                              message);
}

DumpSlot* EnsureSlots() {
  DumpSlot* slots = g_dump.slots.load(std::memory_order_acquire);
  if (slots != nullptr) return slots;
  void* p = mmap(nullptr, sizeof(DumpSlot) * kSlots, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  slots = static_cast<DumpSlot*>(p);  // zero pages: every slot idle, gen 0
  g_dump.slots.store(slots, std::memory_order_release);
  return slots;
}

void AtForkChild() {
  // The child has one thread; a dump the parent was taking is not ours.
  // Slots a parent thread was writing stay "writing" and are skipped.
  g_dump.busy.store(false, std::memory_order_relaxed);
}

[[maybe_unused]] const bool g_atfork_registered = [] {
  pthread_atfork(nullptr, nullptr, AtForkChild);
  return true;
}();

// --- /proc (cold) ---------------------------------------------------------------

std::string ReadWchan(int32_t tid) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", tid);
  char buf[128];
  size_t len = 0;
  if (!ReadSmallFile(path, buf, sizeof(buf), &len)) return "";
  std::string wchan(buf, len);
  while (!wchan.empty() && (wchan.back() == '\n' || wchan.back() == ' ')) wchan.pop_back();
  return wchan == "0" ? "" : wchan;
}

// --- reading lock words of the application (cold) ----------------------------

// Reads `len` bytes at `addr` of this process without faulting on an address
// that is no longer mapped (a lock freed while we look): process_vm_readv on
// ourselves, or, where a sandbox forbids that, a pipe (write() of a bad
// address fails with EFAULT instead of a signal).
class SafeReader {
 public:
  ~SafeReader() {
    if (pipe_[0] >= 0) close(pipe_[0]);
    if (pipe_[1] >= 0) close(pipe_[1]);
  }
  bool Read(uintptr_t addr, void* out, size_t len) {
    if (addr == 0) return false;
    if (use_vm_) {
      iovec local = {out, len};
      iovec remote = {reinterpret_cast<void*>(addr), len};
      const ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
      if (n == static_cast<ssize_t>(len)) return true;
      if (n >= 0 || errno == EFAULT) return false;
      use_vm_ = false;  // ENOSYS, EPERM (seccomp): fall back
    }
    if (pipe_[0] < 0 && pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0) return false;
    const ssize_t w = write(pipe_[1], reinterpret_cast<const void*>(addr), len);
    if (w != static_cast<ssize_t>(len)) {
      if (w > 0) Drain();
      return false;
    }
    return read(pipe_[0], out, len) == static_cast<ssize_t>(len);
  }

 private:
  void Drain() {
    char buf[256];
    while (read(pipe_[0], buf, sizeof(buf)) > 0) {
    }
  }
  bool use_vm_ = true;
  int pipe_[2] = {-1, -1};
};

// glibc (nptl) facts, as lock_hooks.cc uses them.
constexpr int kMutexRobust = 16;        // PTHREAD_MUTEX_ROBUST_NORMAL_NP
constexpr int kMutexPrioInherit = 32;   // PTHREAD_MUTEX_PRIO_INHERIT_NP
constexpr int kFutexTidMask = 0x3fffffff;
constexpr int kOwnerInconsistent = 0x7fffffff;  // PTHREAD_MUTEX_INCONSISTENT
constexpr int kOwnerNotRecoverable = 0x7ffffffe;
constexpr unsigned kRwReaderShift = 3;

int32_t MutexOwner(SafeReader& reader, uintptr_t addr) {
  pthread_mutex_t m;
  if (!reader.Read(addr, &m, sizeof(m))) return 0;
  int owner = m.__data.__owner;
  if (owner == kOwnerInconsistent || owner == kOwnerNotRecoverable) owner = 0;
  if (owner == 0 && (m.__data.__kind & (kMutexRobust | kMutexPrioInherit))) {
    owner = m.__data.__lock & kFutexTidMask;
  }
  return owner > 0 ? owner : 0;
}

// The write owner of an rwlock, or 0; *readers = readers it counts.
int32_t RwlockWriter(SafeReader& reader, uintptr_t addr, unsigned* readers) {
  *readers = 0;
  pthread_rwlock_t rw;
  if (!reader.Read(addr, &rw, sizeof(rw))) return 0;
  *readers = rw.__data.__readers >> kRwReaderShift;
  return rw.__data.__cur_writer > 0 ? rw.__data.__cur_writer : 0;
}

// --- collection ---------------------------------------------------------------

struct BusyGuard {
  ~BusyGuard() { g_dump.busy.store(false, std::memory_order_release); }
};

bool AcquireBusy(int64_t wait_ms) {
  const int64_t deadline = MonotonicNanos() + wait_ms * 1000000;
  for (;;) {
    bool expected = false;
    if (g_dump.busy.compare_exchange_strong(expected, true,
                                            std::memory_order_acq_rel)) {
      return true;
    }
    if (MonotonicNanos() >= deadline) return false;
    struct timespec ts = {0, 5 * 1000000};
    nanosleep(&ts, nullptr);
  }
}

int QueueSignal(int32_t pid, int32_t tid, int signo, uint64_t cookie) {
  siginfo_t si;
  memset(&si, 0, sizeof(si));
  si.si_signo = signo;
  si.si_code = SI_QUEUE;
  si.si_pid = pid;
  si.si_uid = getuid();
  si.si_value.sival_ptr = reinterpret_cast<void*>(static_cast<uintptr_t>(cookie));
  if (syscall(SYS_rt_tgsigqueueinfo, pid, tid, signo, &si) == 0) return 0;
  return errno;
}

bool ThreadExists(int32_t pid, int32_t tid) {
  return syscall(SYS_tgkill, pid, tid, 0) == 0 || errno != ESRCH;
}

void SleepNanos(int64_t ns) {
  struct timespec ts = {static_cast<time_t>(ns / 1000000000),
                        static_cast<long>(ns % 1000000000)};
  nanosleep(&ts, nullptr);
}

// libunwind sets itself up on first use (locks, allocation): let that happen
// here, on the requesting thread, and not in the first handler.
void WarmUnwinder() {
  ReentrancyGuard guard;
  unw_context_t context;
  unw_cursor_t cursor;
  if (unw_getcontext(&context) != 0) return;
  if (unw_init_local(&cursor, &context) < 0) return;
  for (int i = 0; i < 4 && unw_step(&cursor) > 0; ++i) {
  }
}

struct Target {
  size_t thread;  // index into dump->threads
  uint32_t slot = 0;
  bool answered = false;
  bool exited = false;
};

// Signals one batch of threads and collects their stacks.
void CollectBatch(DumpSlot* slots, std::vector<Target>& batch, ThreadDump* dump,
                  int signo, int64_t timeout_ns) {
  const int32_t pid = dump->pid;
  const uint32_t generation = g_dump.generation.fetch_add(1) + 1;
  // Claim a slot per thread, skipping slots a stalled handler still writes.
  uint32_t next = 0;
  for (Target& t : batch) {
    bool got = false;
    while (next < kSlots && !got) {
      DumpSlot& slot = slots[next];
      uint64_t state = slot.state.load(std::memory_order_acquire);
      if (PhaseOf(state) != kWriting &&
          slot.state.compare_exchange_strong(state, StateWord(generation, kPending),
                                             std::memory_order_acq_rel)) {
        t.slot = next;
        got = true;
      }
      ++next;
    }
    if (!got) {
      dump->threads[t.thread].missing = "no free dump slot";
      t.slot = kSlots;
    }
  }
  for (Target& t : batch) {
    if (t.slot >= kSlots) continue;
    DumpedThread& thread = dump->threads[t.thread];
    const uint64_t cookie = (uint64_t{generation} << 32) | t.slot;
    const int err = QueueSignal(pid, thread.tid, signo, cookie);
    if (err == 0) continue;
    uint64_t expected = StateWord(generation, kPending);
    slots[t.slot].state.compare_exchange_strong(expected,
                                                StateWord(generation, kAbandoned));
    if (err == ESRCH) {
      t.exited = true;
    } else {
      thread.missing = std::string("the signal could not be queued: ") + strerror(err);
    }
    t.slot = kSlots;
  }

  const int64_t start = MonotonicNanos();
  const int64_t deadline = start + timeout_ns;
  int64_t next_liveness = start + kLivenessCheckNs;
  int64_t pause = 50 * 1000;
  for (;;) {
    size_t waiting = 0;
    for (const Target& t : batch) {
      if (t.slot >= kSlots) continue;
      const Phase phase = PhaseOf(slots[t.slot].state.load(std::memory_order_acquire));
      if (phase == kPending || phase == kWriting) ++waiting;
    }
    if (waiting == 0) break;
    const int64_t now = MonotonicNanos();
    if (now >= deadline) break;
    if (now >= next_liveness) {
      // A thread that exited after it was signalled never answers.
      for (Target& t : batch) {
        if (t.slot >= kSlots) continue;
        DumpSlot& slot = slots[t.slot];
        uint64_t expected = StateWord(generation, kPending);
        if (slot.state.load(std::memory_order_acquire) != expected) continue;
        if (ThreadExists(pid, dump->threads[t.thread].tid)) continue;
        if (slot.state.compare_exchange_strong(expected,
                                               StateWord(generation, kAbandoned))) {
          t.exited = true;
          t.slot = kSlots;
        }
      }
      next_liveness = now + kLivenessCheckNs;
    }
    SleepNanos(std::min(pause, deadline - now));
    pause = std::min<int64_t>(pause * 2, 2 * 1000000);
  }

  // Give up on the rest; a handler that already claimed its slot gets a
  // short grace to finish.
  const int64_t grace_end = MonotonicNanos() + kWritingGraceNs;
  for (Target& t : batch) {
    if (t.slot >= kSlots) continue;
    DumpSlot& slot = slots[t.slot];
    DumpedThread& thread = dump->threads[t.thread];
    uint64_t expected = StateWord(generation, kPending);
    if (slot.state.compare_exchange_strong(expected,
                                           StateWord(generation, kAbandoned))) {
      if (!ThreadExists(pid, thread.tid)) {
        t.exited = true;
      } else {
        ++dump->timed_out;
        thread.missing = "no answer to the signal within " +
                         std::to_string(timeout_ns / 1000000) + " ms";
      }
      continue;
    }
    while (PhaseOf(slot.state.load(std::memory_order_acquire)) == kWriting &&
           MonotonicNanos() < grace_end) {
      SleepNanos(100 * 1000);
    }
    const uint64_t state = slot.state.load(std::memory_order_acquire);
    if (state != StateWord(generation, kDone)) {
      ++dump->timed_out;
      thread.missing = "unwinding did not finish in time";
      continue;
    }
    const int depth = std::clamp(slot.depth, 0, kThreadDumpMaxDepth);
    thread.pcs.assign(slot.pcs, slot.pcs + depth);
    thread.read_locks.assign(slot.read_locks,
                             slot.read_locks + std::min<uint32_t>(slot.read_count, kMaxHeldReads));
    thread.has_stack = depth > 0;
    if (!thread.has_stack) thread.missing = "the unwinder found no frame";
    t.answered = true;
  }
}

// Waits present in both snapshots (same thread, lock and start): blocked for
// the whole dump, not a wait that happened to begin or end during it.
std::unordered_map<int32_t, WaitInfo> StableWaits(const std::vector<WaitInfo>& before,
                                                  const std::vector<WaitInfo>& after) {
  std::unordered_map<int32_t, WaitInfo> first;
  for (const WaitInfo& w : before) first[w.tid] = w;
  std::unordered_map<int32_t, WaitInfo> stable;
  for (const WaitInfo& w : after) {
    auto it = first.find(w.tid);
    if (it == first.end()) continue;
    const WaitInfo& b = it->second;
    if (b.lock == w.lock && b.kind == w.kind && b.since_ns == w.since_ns) {
      stable[w.tid] = w;
    }
  }
  return stable;
}

void FindHolders(ThreadDump* dump) {
  SafeReader reader;
  // Who holds which rwlock for reading, from the threads' own read sets.
  std::unordered_map<uintptr_t, std::vector<int32_t>> readers_of;
  for (const DumpedThread& t : dump->threads) {
    for (uintptr_t lock : t.read_locks) readers_of[lock].push_back(t.tid);
  }
  for (DumpedThread& t : dump->threads) {
    if (!t.waiting) continue;
    switch (t.wait.kind) {
      case LockKind::kMutex:
        if (const int32_t owner = MutexOwner(reader, t.wait.lock)) {
          t.holders.push_back(owner);
        }
        break;
      case LockKind::kRwlockRead:
      case LockKind::kRwlockWrite: {
        unsigned readers = 0;
        if (const int32_t writer = RwlockWriter(reader, t.wait.lock, &readers)) {
          t.holders.push_back(writer);
        } else if (auto it = readers_of.find(t.wait.lock); it != readers_of.end()) {
          for (int32_t tid : it->second) {
            if (tid != t.tid) t.holders.push_back(tid);
          }
        }
        break;
      }
      case LockKind::kCondvar:
      case LockKind::kSpin:
      case LockKind::kNone:
        break;  // no owner recorded anywhere
    }
  }
}

const char* StateWordOf(char state) {
  switch (state) {
    case 'R': return "running";
    case 'S': return "sleeping";
    case 'D': return "disk sleep";
    case 'T': return "stopped";
    case 't': return "tracing stop";
    case 'Z': return "zombie";
    case 'X': return "dead";
    case 'I': return "idle";
    case 'P': return "parked";
    default: return "unknown";
  }
}

}  // namespace

int DefaultThreadDumpSignal() { return SIGRTMIN + kDefaultSignalOffset; }

void SetThreadDumpSignal(int signo) {
  g_dump.signal.store(signo, std::memory_order_relaxed);
}

int ThreadDumpSignal() {
  const int signo = g_dump.signal.load(std::memory_order_relaxed);
  return signo > 0 ? signo : DefaultThreadDumpSignal();
}

std::string ThreadStateText(char state) {
  if (state == '?') return "? (unknown)";
  return std::string(1, state) + " (" + StateWordOf(state) + ")";
}

int64_t CountApplicationThreads() {
  int64_t count = 0;
  for (int32_t tid : ListTasks()) count += IsAgentThreadId(tid) ? 0 : 1;
  return count;
}

bool CollectThreadDump(const ThreadDumpOptions& options, ThreadDump* dump,
                       std::string* message) {
  if (!AcquireBusy(options.busy_wait_ms)) {
    *message = "a thread dump is already being taken; retry in a moment";
    return false;
  }
  BusyGuard busy_guard;
  const int64_t start = MonotonicNanos();
  *dump = ThreadDump();
  dump->time_nanos = WallNanos();
  dump->pid = static_cast<int32_t>(getpid());
  dump->signal = options.signal > 0 ? options.signal : ThreadDumpSignal();
  g_dump.pid.store(dump->pid, std::memory_order_relaxed);
  const int32_t self = GetTid();

  // Who exists, and in what state. Reading the state before the signal
  // shows what the thread was doing, not that it was running the handler.
  for (int32_t tid : ListTasks()) {
    TaskStatus status;
    if (!ReadTaskStatus(tid, dump->signal, &status)) {
      ++dump->exited;
      continue;
    }
    DumpedThread thread;
    thread.tid = tid;
    thread.name = std::move(status.name);
    thread.state = status.state;
    thread.agent = IsAgentThreadId(tid) || (tid == self && CurrentThreadIsAgent());
    if (thread.agent) {
      thread.missing = "pprof-agent's own thread (not signalled)";
    } else if (thread.state == 'Z' || thread.state == 'X') {
      // A main thread that called pthread_exit while others run stays a
      // zombie: it exists but will never answer.
      thread.missing = "the thread has exited (" + ThreadStateText(thread.state) + ")";
    } else if (thread.state == 't' || thread.state == 'T') {
      // Stopped by a debugger: the signal would wait until it is resumed.
      thread.missing = "the thread is stopped (" + ThreadStateText(thread.state) +
                       ") and cannot answer";
    } else if (status.blocks_signal) {
      thread.missing = "the thread blocks " + SignalName(dump->signal);
      ++dump->blocked;
    }
    dump->threads.push_back(std::move(thread));
  }
  const std::vector<WaitInfo> waits_before = GlobalWaitRegistry().Snapshot();
  dump->waits_tracked = SamplingEnabled() && (MutexRate() > 0 || BlockRate() > 0);

  DumpSlot* slots = nullptr;
  if (!options.stacks) {
    dump->stack_error = "stacks not requested";
  } else if (std::string why; !EnsureHandler(dump->signal, &why)) {
    dump->stack_error = why;
  } else if ((slots = EnsureSlots()) == nullptr) {
    dump->stack_error = "cannot map the dump buffer";
  }
  std::vector<Target> targets;
  if (slots != nullptr) {
    WarmUnwinder();
    FindLoaderLock();
    for (size_t i = 0; i < dump->threads.size(); ++i) {
      if (dump->threads[i].missing.empty()) targets.push_back({i});
    }
    const int64_t timeout_ns = std::max<int64_t>(1, options.timeout_ms) * 1000000;
    for (size_t begin = 0; begin < targets.size(); begin += kSlots) {
      std::vector<Target> batch(
          targets.begin() + static_cast<long>(begin),
          targets.begin() + static_cast<long>(std::min(targets.size(), begin + kSlots)));
      CollectBatch(slots, batch, dump, dump->signal, timeout_ns);
      std::copy(batch.begin(), batch.end(), targets.begin() + static_cast<long>(begin));
    }
  } else {
    for (DumpedThread& t : dump->threads) {
      if (t.missing.empty()) t.missing = "no stacks in this dump: " + dump->stack_error;
    }
  }

  // Waits, holders and wait times.
  const std::vector<WaitInfo> waits_after = GlobalWaitRegistry().Snapshot();
  const auto stable = StableWaits(waits_before, waits_after);
  const int64_t now = MonotonicNanos();
  for (DumpedThread& t : dump->threads) {
    auto it = stable.find(t.tid);
    if (it == stable.end()) continue;
    t.waiting = true;
    t.wait = it->second;
    t.waited_ns = std::max<int64_t>(0, now - t.wait.since_ns);
  }
  FindHolders(dump);

  // Threads that exited during the dump are left out.
  std::vector<bool> gone(dump->threads.size(), false);
  for (const Target& t : targets) {
    if (t.exited) gone[t.thread] = true;
  }
  std::vector<DumpedThread> kept;
  kept.reserve(dump->threads.size());
  for (size_t i = 0; i < dump->threads.size(); ++i) {
    if (gone[i]) {
      ++dump->exited;
      continue;
    }
    DumpedThread& t = dump->threads[i];
    if (!t.has_stack && !t.agent) t.wchan = ReadWchan(t.tid);
    kept.push_back(std::move(t));
  }
  dump->threads = std::move(kept);
  dump->duration_nanos = MonotonicNanos() - start;

  size_t agent = 0, with_stack = 0;
  for (const DumpedThread& t : dump->threads) {
    agent += t.agent ? 1 : 0;
    with_stack += t.has_stack ? 1 : 0;
  }
  char line[320];
  std::snprintf(line, sizeof(line),
                "pprof-agent: thread dump of %zu threads (%zu of pprof-agent) "
                "in %.1f ms with %s; stacks of %zu; without a stack: %" PRId64
                " block the signal, %" PRId64 " did not answer in time; %" PRId64
                " exited during the dump",
                dump->threads.size(), agent,
                static_cast<double>(dump->duration_nanos) / 1e6,
                SignalName(dump->signal).c_str(), with_stack, dump->blocked,
                dump->timed_out, dump->exited);
  dump->comments.push_back(line);
  if (!dump->stack_error.empty()) {
    dump->comments.push_back("pprof-agent: no stacks: " + dump->stack_error);
  }
  return true;
}

std::vector<WaitNode> WaitNodesOf(const ThreadDump& dump) {
  std::vector<WaitNode> nodes;
  nodes.reserve(dump.threads.size());
  for (const DumpedThread& t : dump.threads) {
    WaitNode node;
    node.tid = t.tid;
    node.name = t.name;
    node.state = t.state;
    node.waiting = t.waiting;
    node.kind = t.wait.kind;
    node.lock = t.wait.lock;
    node.mutex = t.wait.mutex;
    node.waited_ns = t.waited_ns;
    node.holders = t.holders;
    nodes.push_back(std::move(node));
  }
  return nodes;
}

Snapshot GoroutineProfile(const ThreadDump& dump) {
  Snapshot snap;
  snap.sample_types = {{"goroutine", "count"}};
  snap.period_type = {"goroutine", "count"};
  snap.period = 1;
  snap.time_nanos = dump.time_nanos;
  snap.comments = dump.comments;
  // Aggregation key: stack, then the labels.
  using Key = std::tuple<std::vector<uint64_t>, std::string, std::string,
                         std::string, std::string>;
  std::map<Key, int64_t> counts;
  size_t agent = 0;
  for (const DumpedThread& t : dump.threads) {
    if (t.agent) {
      ++agent;
      continue;
    }
    const std::string lock_wait = t.waiting ? LockKindName(t.wait.kind) : "";
    counts[Key{t.has_stack ? t.pcs : std::vector<uint64_t>{}, t.name,
               t.state == '?' ? "" : StateWordOf(t.state), lock_wait,
               t.has_stack ? "" : t.missing}] += 1;
  }
  std::map<std::vector<uint64_t>, uint32_t> stack_index;
  for (const auto& [key, count] : counts) {
    const auto& [pcs, name, state, lock_wait, missing] = key;
    auto [it, inserted] = stack_index.emplace(pcs, snap.stacks.size());
    if (inserted) snap.stacks.push_back(Stack{pcs, /*leaf_is_pc=*/true});
    Sample sample;
    sample.stack = it->second;
    sample.values = {count};
    sample.labels.push_back(Label::Str("thread_name", name.empty() ? "unknown" : name));
    if (!state.empty()) sample.labels.push_back(Label::Str("state", state));
    if (!lock_wait.empty()) sample.labels.push_back(Label::Str("lock_wait", lock_wait));
    if (!missing.empty()) sample.labels.push_back(Label::Str("stack_missing", missing));
    snap.samples.push_back(std::move(sample));
  }
  if (agent > 0) {
    snap.comments.push_back("pprof-agent: " + std::to_string(agent) +
                            " threads of pprof-agent itself are not in this profile");
  }
  return snap;
}

}  // namespace pprof_agent::internal
