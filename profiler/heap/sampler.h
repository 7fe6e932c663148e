// Poisson sampling of allocated bytes.
//
// The maths. We want each allocated byte to be sampled independently with
// probability 1/R (R = mean bytes between samples, PPROF_AGENT_HEAP_RATE), and
// an allocation to be recorded when at least one of its bytes is. For a
// Poisson process of rate 1/R over the byte stream the gaps between sample
// points are exponential with mean R, and the process is memoryless: after a
// sample we may forget where we were and draw a fresh gap. Each thread keeps
// `bytes_until_sample` = the remaining gap; an allocation of s bytes is sampled
// iff s >= that gap, which happens with probability p(s) = 1 - exp(-s/R).
// Weighting each sample by 1/p(s) makes the sum over samples an unbiased
// estimate of the true count (and s/p(s) of the true bytes):
//   E[sum 1/p(s_i) * [sampled_i]] = sum p(s_i)/p(s_i) = n.
// The first gap of every thread is drawn at random too, so that short-lived
// threads are not all sampled at the same offset.
//
// R = 1 records every allocation with weight 1; R = 0 records nothing.
#ifndef PPROF_AGENT_PROFILER_HEAP_SAMPLER_H_
#define PPROF_AGENT_PROFILER_HEAP_SAMPLER_H_

#include <cstdint>

namespace pprof_agent::internal {

// Seeds a per-thread generator; never returns 0. Async-signal-safe.
uint64_t SeedRandom(uint64_t salt);

// xorshift64*: advances `state` and returns 53 random bits.
uint64_t NextRandom(uint64_t* state);

// Draws an exponential gap with mean `rate` bytes (0 when rate <= 1).
// Clamped to [0, 2^62] so that subtracting an allocation never overflows.
int64_t NextSampleGap(uint64_t* rng, int64_t rate);

// 1 / (1 - exp(-size/rate)); 1 when rate <= 1.
double SampleWeight(uint64_t size, int64_t rate);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_HEAP_SAMPLER_H_
