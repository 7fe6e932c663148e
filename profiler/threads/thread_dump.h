// Thread dumps: every thread's current stack at request time, its kernel
// state, and for a thread blocked in a hooked lock call the lock, its
// holders and how long it has waited. Serves /debug/pprof/goroutine (our
// "goroutines" are the process's threads).
//
// How a stack is taken: the requesting thread sends each application thread
// a dedicated real-time signal with rt_tgsigqueueinfo (tgkill with a
// payload: the request's generation and a slot index), and the thread
// unwinds itself in an async-signal-safe handler (libunwind's
// unw_init_local2 on the signal's ucontext with UNW_INIT_SIGNAL_FRAME, then
// unw_step, at most kThreadDumpMaxDepth frames) into that slot of storage
// mmap'd once and never freed. The requester collects with a bounded
// timeout. A slot's state word carries the generation, so a handler that
// runs after its request gave up (a thread that was descheduled for long,
// or unblocked the signal later) finds a newer generation and writes
// nothing.
//
// Threads that are listed without a stack, with their state from
// /proc/self/task/<tid>/status and the reason: they block the signal, did not
// answer within the timeout, the signal could not be queued, or the signal
// has an application handler (the whole dump is then stack-less; the
// handler is never replaced, as for the CPU profiler's signal).
//
// The agent's own threads are listed, marked, and never signalled.
//
// Side effect every signal-based sampler shares: a thread sleeping in a
// system call the kernel cannot restart (nanosleep, poll, epoll_wait,
// select, sigtimedwait, futex waits with a timeout) returns EINTR once per
// dump. SA_RESTART restarts the rest (read, write, futex waits without a
// timeout); well-written code retries on EINTR, and glibc's and libstdc++'s
// waits (sleep_for, condition variables, mutexes) do.
//
// One dump at a time: a request waits up to ThreadDumpOptions::busy_wait_ms
// for the previous one, then fails with kBusy (HTTP 409).
#ifndef PPROF_AGENT_PROFILER_THREADS_THREAD_DUMP_H_
#define PPROF_AGENT_PROFILER_THREADS_THREAD_DUMP_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "profiler/contention/lock_table.h"
#include "profiler/base/snapshot.h"
#include "profiler/threads/wait_graph.h"

namespace pprof_agent::internal {

inline constexpr int kThreadDumpMaxDepth = 128;
inline constexpr int64_t kDefaultThreadDumpTimeoutMs = 1000;
inline constexpr int64_t kDefaultThreadDumpBusyWaitMs = 2000;

// SIGRTMIN+6: glibc's run-time value, so a function.
int DefaultThreadDumpSignal();
// The signal of later dumps (PPROF_AGENT_DUMP_SIGNAL; the start-up code sets
// it). Accepted values as ParseCpuSignal(); the caller validates.
void SetThreadDumpSignal(int signo);
int ThreadDumpSignal();

struct DumpedThread {
  int32_t tid = 0;
  std::string name;
  char state = '?';  // kernel state letter; '?' unknown
  bool agent = false;  // one of pprof-agent's own threads (not signalled)
  bool has_stack = false;
  std::string missing;  // why there is no stack (has_stack false)
  std::string wchan;    // kernel wait channel, read for stack-less threads
  std::vector<uint64_t> pcs;  // leaf first; pcs[0] is the interrupted pc
  // rwlocks this thread holds for reading, from its own lock-hook state.
  std::vector<uintptr_t> read_locks;
  // Blocked in a hooked lock call for the whole dump.
  bool waiting = false;
  WaitInfo wait;
  int64_t waited_ns = 0;
  std::vector<int32_t> holders;  // threads holding wait.lock, when known
};

struct ThreadDump {
  int64_t time_nanos = 0;      // wall clock at the start
  int64_t duration_nanos = 0;  // how long collecting took
  int signal = 0;
  int32_t pid = 0;
  // Non-empty when no stack could be taken at all (the reason).
  std::string stack_error;
  std::vector<DumpedThread> threads;  // by tid
  int64_t exited = 0;      // threads that exited during the dump (left out)
  int64_t timed_out = 0;   // did not answer in time
  int64_t blocked = 0;     // block the signal
  // The lock hooks publish waits only while a contention profile is on
  // (PPROF_AGENT_MUTEX_RATE or BLOCK_RATE > 0); false: no wait-for graph.
  bool waits_tracked = true;
  std::vector<std::string> comments;
};

struct ThreadDumpOptions {
  int signal = 0;  // 0: ThreadDumpSignal()
  int64_t timeout_ms = kDefaultThreadDumpTimeoutMs;
  int64_t busy_wait_ms = kDefaultThreadDumpBusyWaitMs;
  bool stacks = true;  // false: states and waits only (no signals)
};

// Takes a dump. Returns false only when another dump is still running after
// busy_wait_ms (*message says so). Cold: allocates, reads /proc; never call
// from a hook or a signal handler.
bool CollectThreadDump(const ThreadDumpOptions& options, ThreadDump* dump,
                       std::string* message);

// Application threads now (entries of /proc/self/task that are not agent
// threads): the index page's goroutine count. Cheap: one readdir.
int64_t CountApplicationThreads();

// Go's goroutine profile from a dump: sample type goroutine/count, period
// type goroutine/count, period 1; threads with the same stack, name and
// state aggregated, labels thread_name and state. The agent's threads are
// left out (counted in a comment); a thread without a stack is a sample
// with an empty stack and a label stack_missing = the reason.
Snapshot GoroutineProfile(const ThreadDump& dump);

// The wait-for graph's nodes (every thread of the dump, agent threads too).
std::vector<WaitNode> WaitNodesOf(const ThreadDump& dump);

// "S (sleeping)" for 'S'.
std::string ThreadStateText(char state);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_THREADS_THREAD_DUMP_H_
