// Exponential gap generator and weights of the Poisson heap sampler.
#include "profiler/heap/sampler.h"

#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

#include <cmath>

namespace pprof_agent::internal {

uint64_t SeedRandom(uint64_t salt) {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t x = salt ^ (static_cast<uint64_t>(ts.tv_nsec) << 20) ^
               static_cast<uint64_t>(ts.tv_sec) ^
               (static_cast<uint64_t>(syscall(SYS_gettid)) << 40);
  // splitmix64 finaliser spreads the entropy of the seed over all bits.
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x == 0 ? 0x2545f4914f6cdd1dULL : x;
}

uint64_t NextRandom(uint64_t* state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return (x * 0x2545f4914f6cdd1dULL) >> 11;
}

int64_t NextSampleGap(uint64_t* rng, int64_t rate) {
  if (rate <= 1) return 0;
  // u in (0, 1]: never log(0).
  const double u =
      (static_cast<double>(NextRandom(rng)) + 1.0) / 9007199254740992.0;
  const double gap = -std::log(u) * static_cast<double>(rate);
  constexpr double kMax = 4611686018427387904.0;  // 2^62
  if (gap >= kMax) return static_cast<int64_t>(kMax);
  // Round up: an allocation of s bytes is sampled iff s >= the integer gap,
  // which with ceil() is exactly s >= gap, so P = 1 - exp(-s/R) holds even
  // for tiny s (floor() would make it 1 - exp(-(s+1)/R), a visible bias at
  // small rates).
  return static_cast<int64_t>(std::ceil(gap));
}

double SampleWeight(uint64_t size, int64_t rate) {
  if (rate <= 1) return 1.0;
  if (size == 0) size = 1;
  const double p = -std::expm1(-static_cast<double>(size) / rate);
  return p > 0 ? 1.0 / p : 1.0;
}

}  // namespace pprof_agent::internal
