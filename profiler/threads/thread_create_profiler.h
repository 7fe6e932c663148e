// The threadcreate profile: the stacks that called pthread_create, counted
// cumulatively since the agent was loaded (Go's threadcreate/count).
//
// The pthread_create interposer (thread_hooks.cc) calls
// ThreadCreateCaptureStack() in the creating thread before the real call
// and ThreadCreateRecord() once the real call succeeded. Stacks are interned
// in a fixed StackTable (mmap'd, never the profiled heap) under a try-lock;
// counts are atomics indexed by stack id.
//
// Contract of the hook-side functions: called from the creating thread, in
// the interposer, possibly before the agent's start-up (they then record
// nothing and count the creation as unrecorded); no allocation from the
// profiled heap, no lock that can wait (a busy table drops and counts),
// errno preserved.
#ifndef PPROF_AGENT_PROFILER_THREADS_THREAD_CREATE_PROFILER_H_
#define PPROF_AGENT_PROFILER_THREADS_THREAD_CREATE_PROFILER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "profiler/base/snapshot.h"

namespace pprof_agent::internal {

// Hook side. The id of the calling thread's stack (its caller of
// pthread_create first), 0 when it could not be captured, or a private
// value when the agent creates a thread for itself (not profiled: counted
// in the profile's comments only).
uint32_t ThreadCreateCaptureStack();
// Hook side. A thread was created from stack `stack_id` (0: unknown).
void ThreadCreateRecord(uint32_t stack_id);

struct ThreadCreateRaw {
  struct Record {
    std::vector<uint64_t> pcs;  // return addresses, leaf first
    int64_t count = 0;
  };
  int64_t time_nanos = 0;
  std::vector<Record> records;  // by stack id
  int64_t total = 0;            // every creation seen, recorded or not
  int64_t unrecorded = 0;       // created without a stack (see comments)
  std::vector<std::string> comments;
};

// Cold; any non-hook thread.
ThreadCreateRaw CollectThreadCreate();

// Go's threadcreate profile: sample type threadcreate/count, period type
// threadcreate/count, period 1. With `base`, counts are p1 - p0 (a delta).
Snapshot ThreadCreateProfile(const ThreadCreateRaw& raw,
                             const ThreadCreateRaw* base = nullptr);

// Threads the application created since the agent was loaded (the index
// page's count).
int64_t ThreadCreateTotal();

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_THREADS_THREAD_CREATE_PROFILER_H_
