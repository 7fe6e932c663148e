// What the pthread_create interposer (thread_hooks.cc, in the shared library
// only) passes from a creating thread to the thread it creates, and the hooks
// it calls on the way. Profilers that need to know about thread creation,
// start or exit add themselves in thread_hooks.cc at the marked places.
#ifndef PPROF_AGENT_PROFILER_HOOKS_THREAD_HOOKS_H_
#define PPROF_AGENT_PROFILER_HOOKS_THREAD_HOOKS_H_

#include <cstdint>

namespace pprof_agent::internal {

// Allocated by the interposer with __libc_malloc in the creating thread,
// copied and freed by the new thread before its start routine runs.
struct ThreadStartContext {
  void* (*start_routine)(void*);
  void* arg;
  // The threadcreate profile's id of the creator's stack, captured in
  // OnThreadCreate() (0 = none; profiler/threads/thread_create_profiler.h).
  uint32_t creator_stack_id;
};

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_HOOKS_THREAD_HOOKS_H_
