// Heap recorder, cold side: collecting what the malloc hooks recorded into
// plain data, and turning that into Go's heap/allocs profiles. The hot side
// (sampling decision, recording) is in malloc_hooks.cc and heap_sampler.h.
#ifndef PPROF_AGENT_PROFILER_HEAP_PROFILER_H_
#define PPROF_AGENT_PROFILER_HEAP_PROFILER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "profiler/snapshot.h"

namespace pprof_agent::internal {

// Everything the heap recorder holds at one instant. Estimates are already
// unbiased (each sampled allocation of `size` bytes taken at mean rate R
// counts 1/(1-exp(-size/R)) objects).
struct HeapRaw {
  struct Record {
    uint32_t stack_id = 0;  // stable for the life of the process
    uint64_t size = 0;      // requested bytes of each allocation
    double alloc_objects = 0;
    double inuse_objects = 0;
  };
  int64_t time_nanos = 0;
  int64_t sample_rate = 0;  // current mean bytes between samples
  std::vector<Record> records;
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
Snapshot HeapProfile(const HeapRaw& p1, const HeapRaw* base,
                     const std::string& default_type);

// The unbiased weight of one sample: 1/(1-exp(-size/rate)); 1 when rate <= 1.
double HeapSampleWeight(uint64_t size, int64_t rate);

// Number of live sampled blocks and of interned stacks, for the index page.
struct HeapCounts {
  uint64_t live_samples = 0;
  uint64_t stacks = 0;
  uint64_t dropped = 0;  // samples dropped since start (all reasons)
};
HeapCounts HeapCountsNow();

// Address space the heap recorder reserves once it takes its first sample
// (its memory cap: only touched pages become resident).
size_t HeapReservedBytes();

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_HEAP_PROFILER_H_
