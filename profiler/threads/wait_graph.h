// The wait-for graph of a thread dump: who waits for a lock that whom holds.
// Pure logic over plain structs (no /proc, no signals), so the cycle finder
// and the summary text are unit-tested directly (tests/profiler/
// thread_dump_wait_graph_test.cc).
//
// A node is a thread. An edge A -> B means "A is blocked acquiring a lock
// that B holds": a mutex (glibc's __data.__owner), a write-locked rwlock
// (__data.__cur_writer) or a read-locked rwlock (each reader that recorded
// the lock in its own read set: several edges). A waiter whose lock has no
// known holder (condition variables, spinlocks, a holder glibc does not
// record) has no edge.
//
// What is reported, in this order, at the top of a debug=2 dump:
//  - deadlocks: one cycle per strongly connected component (Tarjan), or a
//    thread waiting for a lock it holds itself; each printed as
//    "DEADLOCK: thread A (a) waits for mutex X held by thread B (b), which
//    waits for mutex Y held by thread A (a)";
//  - wait chains: from each waiting thread that nobody waits for, following
//    edges to a thread that is not blocked in a hooked lock (the root whose
//    progress everybody waits for) or into a deadlock; chains of two edges or
//    more, and every chain that ends in a deadlock;
//  - the threads blocked longest.
#ifndef PPROF_AGENT_PROFILER_THREADS_WAIT_GRAPH_H_
#define PPROF_AGENT_PROFILER_THREADS_WAIT_GRAPH_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "profiler/contention/lock_table.h"

namespace pprof_agent::internal {

struct WaitNode {
  int32_t tid = 0;
  std::string name;
  char state = '?';  // kernel state letter ('R', 'S', 'D', ...); '?' unknown
  // Blocked in a hooked lock call for the whole dump.
  bool waiting = false;
  LockKind kind = LockKind::kNone;
  uintptr_t lock = 0;
  uintptr_t mutex = 0;  // condition variable waits: the mutex released
  int64_t waited_ns = 0;
  // Threads that hold `lock` (edges), in the order found. May name threads
  // that are not nodes (exited, or the agent's own).
  std::vector<int32_t> holders;
};

struct WaitGraphAnalysis {
  // Each cycle lists tids in wait order: cycle[i] waits for a lock held by
  // cycle[i + 1], and the last one for a lock held by cycle[0]. It starts at
  // its smallest tid. A thread that waits for a lock it holds itself is a
  // cycle of one.
  std::vector<std::vector<int32_t>> deadlocks;
  // Threads in a deadlocked component that are not on its printed cycle
  // (a component with several cycles), per deadlock.
  std::vector<std::vector<int32_t>> deadlock_others;
  struct Chain {
    // tids[0] waits for tids[1], which waits for tids[2], ...
    std::vector<int32_t> tids;
    // >= 0: the last thread is part of deadlocks[deadlock].
    int deadlock = -1;
    int64_t waited_ns = 0;  // of tids[0]
  };
  // One per waiting thread that nobody waits for and that is not in a
  // deadlock; ending in a deadlock first, then longest first, then by tid.
  std::vector<Chain> chains;
  // Waiting threads, longest wait first (ties by tid).
  std::vector<int32_t> longest;
};

WaitGraphAnalysis AnalyzeWaitGraph(const std::vector<WaitNode>& nodes);

// "mutex 0x7f...", "rwlock 0x... (to write)", "condition variable 0x...
// (mutex 0x...)".
std::string DescribeLock(LockKind kind, uintptr_t lock, uintptr_t mutex);

// "1.234s", "25ms", "812us".
std::string FormatWaitDuration(int64_t ns);

// The summary block that opens a debug=2 dump (deadlocks, chains, longest
// waits), every line ending in '\n'. At most `max_chains` chains and
// `max_longest` longest waits are listed; the rest are counted.
std::string FormatWaitSummary(const std::vector<WaitNode>& nodes,
                              const WaitGraphAnalysis& analysis,
                              size_t max_chains = 20, size_t max_longest = 10);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_THREADS_WAIT_GRAPH_H_
