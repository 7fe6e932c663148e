// Statistical tests of the Poisson byte sampler.
#include "profiler/heap/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace pprof_agent::internal {
namespace {

// Gaps must be exponential with mean R. With n = 200000 draws the standard
// error of the sample mean is R/sqrt(n) = 0.22% of R; a 1.5% tolerance is
// ~7 standard errors (never flakes) yet catches an off-by-rate or a
// distribution with the wrong shape (a uniform gap has the same mean but
// fails the KS test below).
TEST(Sampler, GapMeanMatchesRate) {
  uint64_t rng = SeedRandom(1);
  constexpr int kN = 200000;
  for (int64_t rate : {16 * 1024, 512 * 1024}) {
    double sum = 0;
    for (int i = 0; i < kN; ++i) sum += NextSampleGap(&rng, rate);
    EXPECT_NEAR(sum / kN, static_cast<double>(rate), 0.015 * rate) << "rate " << rate;
  }
}

// Kolmogorov-Smirnov against Exp(mean R). The 0.1% critical value of D for
// n = 50000 is 1.95/sqrt(n) = 0.0087; we allow 0.01 (a false alarm rate far
// below 1e-3). A gap distribution off by 5% in its mean gives D ~ 0.018.
TEST(Sampler, GapsAreExponential) {
  uint64_t rng = SeedRandom(7);
  constexpr int kN = 50000;
  constexpr int64_t kRate = 512 * 1024;
  std::vector<double> gaps(kN);
  for (double& g : gaps) g = static_cast<double>(NextSampleGap(&rng, kRate));
  std::sort(gaps.begin(), gaps.end());
  double d = 0;
  for (int i = 0; i < kN; ++i) {
    const double cdf = 1 - std::exp(-gaps[i] / kRate);
    d = std::max({d, std::abs(cdf - static_cast<double>(i) / kN),
                  std::abs(cdf - static_cast<double>(i + 1) / kN)});
  }
  EXPECT_LT(d, 0.01);
}

TEST(Sampler, RateOneSamplesEverything) {
  uint64_t rng = SeedRandom(3);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(NextSampleGap(&rng, 1), 0);
  EXPECT_DOUBLE_EQ(SampleWeight(100, 1), 1.0);
}

TEST(Sampler, WeightIsInverseSamplingProbability) {
  constexpr int64_t kRate = 512 * 1024;
  EXPECT_NEAR(SampleWeight(kRate, kRate), 1 / (1 - std::exp(-1.0)), 1e-12);
  // Small objects: weight ~ R/size.
  EXPECT_NEAR(SampleWeight(64, kRate), kRate / 64.0, kRate / 64.0 * 1e-3);
  // Huge objects are always sampled and stand for themselves.
  EXPECT_NEAR(SampleWeight(uint64_t{1} << 40, kRate), 1.0, 1e-12);
}

// The estimator is unbiased end to end: simulate the countdown exactly as
// the malloc hook runs it over a stream of mixed sizes and compare the
// weighted estimate of allocated objects with the truth. 2M allocations of
// 4 sizes at R = 16 KiB give ~3000 samples per size; the relative standard
// error of each estimate is below 2%, so 8% never flakes while a missing or
// wrong weight (e.g. R/size instead of 1/p) is off by >10% for 32 KiB objects.
TEST(Sampler, CountdownEstimateIsUnbiased) {
  uint64_t rng = SeedRandom(11);
  constexpr int64_t kRate = 16 * 1024;
  const uint64_t sizes[] = {24, 512, 4096, 32768};
  double estimate[4] = {};
  int64_t truth[4] = {};
  int64_t left = NextSampleGap(&rng, kRate);
  for (int i = 0; i < 2000000; ++i) {
    const int k = (i * 7 + i / 3) % 4;
    const uint64_t s = sizes[k];
    ++truth[k];
    left -= static_cast<int64_t>(s);
    if (left <= 0) {
      estimate[k] += SampleWeight(s, kRate);
      left = NextSampleGap(&rng, kRate);
    }
  }
  for (int k = 0; k < 4; ++k) {
    EXPECT_NEAR(estimate[k] / truth[k], 1.0, 0.08) << "size " << sizes[k];
  }
}

}  // namespace
}  // namespace pprof_agent::internal
