// Thread registry: which thread a live heap sample came from, its name, and
// whether it has exited, so that memory still held by exited threads is one
// `-tagfocus=thread_state=exited` away.
//
// A thread registers on its first sampled allocation (the heap slow path)
// and gets a handle, cached in TLS and stored in each live sample it makes.
// Handles are never reused for another thread while the thread they name is
// alive, so a reused tid cannot put a new thread's name on old memory.
//
// Thread exit: the registry learns of it from a pthread key destructor that
// the first registration of each thread installs (pthread_key_create once,
// pthread_setspecific per thread: neither allocates for one of the first 32
// keys, and a nested allocation would pass through the reentrancy guard
// anyway). The pthread_create wrapper (profiler/hooks/thread_hooks.cc) calls
// ThreadRegistryOnExit() too; the call is idempotent. The
// name of an exiting thread is read with prctl(PR_GET_NAME) in the thread
// itself, before it is gone. Threads that never reach the destructor (the
// process forked, exec'd, or killed them) are found gone when /proc/self/task
// no longer lists them at collection time.
//
// Contract of the hot-side functions (ThreadRegistryCurrent,
// ThreadRegistryOnExit): called from the malloc slow path or thread exit; no
// allocation from the profiled heap (the table is mmap'd), no waiting lock,
// errno preserved.
#ifndef PPROF_AGENT_PROFILER_HEAP_THREAD_REGISTRY_H_
#define PPROF_AGENT_PROFILER_HEAP_THREAD_REGISTRY_H_

#include <cstdint>
#include <string>
#include <vector>

namespace pprof_agent::internal {

// 0 = no thread (registration failed: the table is full of live threads).
using ThreadHandle = uint32_t;

// The calling thread's handle, registering it on first use. Hot side.
ThreadHandle ThreadRegistryCurrent();

// Marks the calling thread exited and records its final name. Hot side;
// idempotent; a thread that never registered is ignored.
void ThreadRegistryOnExit();

// In a fork child: forget the calling thread's handle (its tid changed), so
// its next sampled allocation registers it again.
void ThreadRegistryAtForkChild();

// What the registry knows about one handle. Cold side.
struct ThreadInfo {
  ThreadHandle handle = 0;
  int32_t tid = 0;
  std::string name;
  bool exited = false;
};

// Information about each of `handles` (same order). Alive threads' names are
// read from /proc/self/task/<tid>/comm; a thread missing there is reported
// exited. A handle that was recycled (its thread exited long ago and the
// table needed the slot) is reported exited with an empty name.
std::vector<ThreadInfo> ThreadRegistryLookup(const std::vector<ThreadHandle>& handles);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_HEAP_THREAD_REGISTRY_H_
