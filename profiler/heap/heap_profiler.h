// Heap recorder, cold side: collecting what the malloc hooks recorded into
// plain data, and turning that into Go's heap/allocs profiles. The hot side
// (sampling decision, recording) is in hooks/malloc_hooks.cc and heap/sampler.h.
#ifndef PPROF_AGENT_PROFILER_HEAP_HEAP_PROFILER_H_
#define PPROF_AGENT_PROFILER_HEAP_HEAP_PROFILER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "profiler/base/snapshot.h"
#include "profiler/heap/thread_registry.h"

namespace pprof_agent::internal {

// How long a freed sampled allocation lived, in classes whose boundaries are
// powers of ten: [0, 1ms), [1ms, 10ms), [10ms, 100ms), [100ms, 1s),
// [1s, 10s), [10s, inf). Objects still alive are the `live` class of
// /debug/pprof/lifetimes.
inline constexpr int kLifetimeClasses = 6;
inline constexpr const char* kLifetimeClassNames[kLifetimeClasses] = {
    "<1ms", "1-10ms", "10-100ms", "100ms-1s", "1-10s", ">10s"};
inline constexpr const char* kLifetimeLive = "live";

// The class of a lifetime of `nanos` nanoseconds (negative counts as 0).
inline int LifetimeClass(int64_t nanos) {
  int64_t bound = 1000000;  // 1 ms
  for (int c = 0; c < kLifetimeClasses - 1; ++c, bound *= 10) {
    if (nanos < bound) return c;
  }
  return kLifetimeClasses - 1;
}

// Everything the heap recorder holds at one instant. Estimates are already
// unbiased (each sampled allocation of `size` bytes taken at mean rate R
// counts 1/(1-exp(-size/R)) objects).
struct HeapRaw {
  struct Record {
    uint32_t stack_id = 0;  // stable for the life of the process
    uint64_t size = 0;      // requested bytes of each allocation
    double alloc_objects = 0;
    double inuse_objects = 0;
    // Weights of the freed samples, by lifetime class (cumulative).
    double freed[kLifetimeClasses] = {};
  };
  // Live weight of one (stack, size) record from one thread.
  struct LiveByThread {
    uint32_t stack_id = 0;
    uint64_t size = 0;
    ThreadHandle thread = 0;  // 0: unknown
    double objects = 0;
  };
  int64_t time_nanos = 0;
  int64_t sample_rate = 0;  // current mean bytes between samples
  std::vector<Record> records;
  // Sorted by (stack_id, size, thread); sums to each record's inuse_objects.
  std::vector<LiveByThread> live_by_thread;
  // What the registry said, at collection time, of every thread named in
  // live_by_thread.
  std::vector<ThreadInfo> threads;
  // Frames of every stack a record names, leaf first, flattened so that a
  // large collection costs a handful of allocations: stack id `i` is
  // frames[stack_begin[i], stack_end[i]) (empty if no record names it).
  std::vector<uint64_t> frames;
  std::vector<uint32_t> stack_begin;
  std::vector<uint32_t> stack_end;
  std::vector<std::string> comments;  // drop counters
};

// Copies the recorder's state. Cold path; safe on any non-hook thread.
HeapRaw CollectHeap();

// Go's heap profile: alloc_objects, alloc_space, inuse_objects, inuse_space,
// period space/bytes = sample rate, a `bytes` label per sample. With `base`
// (a delta request), alloc_* are p1-p0 and inuse_* are p1's own, and
// duration_nanos = p1 - p0. `default_type` is "inuse_space" for heap and
// "alloc_space" for allocs.
//
// Thread of origin: the live objects of a (stack, size) are reported in one
// sample per allocating thread, labelled `thread_name` and `thread_state`
// (alive|exited). The thread labels describe the live objects: the alloc_*
// values of the (stack, size) ride on the sample of the thread holding the
// most, so a stack allocated by one thread still has exactly one sample.
Snapshot HeapProfile(const HeapRaw& p1, const HeapRaw* base,
                     const std::string& default_type);

// /debug/pprof/lifetimes: alloc_objects/count and alloc_space/bytes, scaled
// as in allocs, split by a `lifetime` label: one of kLifetimeClassNames for
// freed objects, kLifetimeLive for objects still alive; plus `bytes`. With
// `base`, freed classes are p1-p0 and `live` is p1's own.
Snapshot LifetimesProfile(const HeapRaw& p1, const HeapRaw* base);

// Number of live sampled blocks and of interned stacks, for the index page.
struct HeapCounts {
  uint64_t live_samples = 0;
  uint64_t stacks = 0;
  uint64_t dropped = 0;  // samples dropped since start (all reasons)
};
HeapCounts HeapCountsNow();

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_HEAP_HEAP_PROFILER_H_
