// Go's heap-sampling test (go/test/heapsampling.go), run against the agent:
// sites allocating known numbers of objects of known sizes must be estimated
// within 10% by the allocs profile, read back through `go tool pprof -raw`.
//
// Go allocates in allocInterleaved1/2/3 (sizes 17K, 1K, 18K, 512, 16K, 256,
// interleaved) and allocSmall1/2/3 (1K, 512, 256) at MemProfileRate 16384
// and tells sizes apart by line number; we tell them apart by the `bytes`
// label each sample carries. Go retries up to three times and passes if any
// experiment lands within 10%; we instead make every (site, size) pass by
// choosing N large enough that 10% is far outside the sampling noise.
//
// The numbers. An allocation of s bytes at mean rate R is sampled with
// probability p = 1-exp(-s/R) and then counts 1/p objects, so N allocations
// are estimated with relative standard error sqrt((1-p)/(N p)). At R = 16384
// the worst size is 256 (p = 0.0155, (1-p)/p = 63.5); with N = 200000 that is
// 1.8%, so 10% is 5.6 sigma (512: 1.3%, 1024: 0.9%, 16-18 KiB: 0.16-0.17%).
// Two-sided, one check fails by chance with probability ~2e-8; all 27 checks
// together ~6e-7. The program makes ~1.3M samples for this (under a second).
// Both flavours run it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "tests/integration/integration_util.h"

namespace pprof_agent::integration {
namespace {

constexpr int64_t kRate = 16384;
constexpr int64_t kRounds = 200000;
constexpr double kTolerance = 0.10;  // Go's margin

struct Site {
  const char* function;
  std::vector<int64_t> sizes;
};

void ExpectEstimatesWithinTolerance(Flavour flavour) {
  TempDir tmp;
  std::string error;
  EnvChanges env;
  env.set["PPROF_AGENT_HEAP_RATE"] = std::to_string(kRate);
  auto program = StartProgram("it_alloc", flavour,
                              {"heapsampling", std::to_string(kRounds)}, env,
                              true, &error);
  ASSERT_TRUE(program.has_value()) << error;
  auto profile = FetchRawProfile(tmp, program->port, "/debug/pprof/allocs",
                                 "allocs.pb.gz", &error);
  ASSERT_TRUE(profile.has_value()) << error;
  EXPECT_EQ(profile->period, kRate);
  const int objects = profile->TypeIndex("alloc_objects");
  const int space = profile->TypeIndex("alloc_space");
  ASSERT_GE(objects, 0);
  ASSERT_GE(space, 0);

  const std::vector<int64_t> interleaved = {17 * 1024, 1024, 18 * 1024,
                                            512,       16 * 1024, 256};
  const std::vector<int64_t> small = {1024, 512, 256};
  const Site sites[] = {
      {"it::allocInterleaved1", interleaved}, {"it::allocInterleaved2", interleaved},
      {"it::allocInterleaved3", interleaved}, {"it::allocSmall1", small},
      {"it::allocSmall2", small},             {"it::allocSmall3", small},
  };
  std::string table = "site                   size   estimate    error   sigma  error/sigma\n";
  for (const Site& site : sites) {
    for (int64_t size : site.sizes) {
      int64_t est_objects = 0;
      int64_t est_bytes = 0;
      for (const RawProfile::Sample& s : profile->samples) {
        auto bytes = s.num_labels.find("bytes");
        if (bytes == s.num_labels.end() || bytes->second.empty() ||
            bytes->second.front() != size) {
          continue;
        }
        if (!profile->SampleHasFunction(s, site.function)) continue;
        est_objects += s.values[objects];
        est_bytes += s.values[space];
      }
      const double p = 1 - std::exp(-static_cast<double>(size) / kRate);
      const double sigma = std::sqrt((1 - p) / (kRounds * p));
      const double err = static_cast<double>(est_objects) / kRounds - 1;
      char row[160];
      std::snprintf(row, sizeof(row), "%-21s %6lld %10lld %+7.2f%% %6.2f%% %+8.2f\n",
                    site.function, static_cast<long long>(size),
                    static_cast<long long>(est_objects), 100 * err, 100 * sigma,
                    err / sigma);
      table += row;
      EXPECT_LE(std::fabs(err), kTolerance)
          << site.function << " size " << size << ": estimated " << est_objects
          << " objects, want " << kRounds << " +- 10%";
      const double byte_err =
          static_cast<double>(est_bytes) / static_cast<double>(kRounds * size) - 1;
      EXPECT_LE(std::fabs(byte_err), kTolerance)
          << site.function << " size " << size << ": estimated " << est_bytes
          << " bytes, want " << kRounds * size << " +- 10%";
    }
  }
  std::printf("%s (%s)\n%s", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
              FlavourName(flavour), table.c_str());
  ::testing::Test::RecordProperty("estimates", table);

  program->process->CloseStdin();
  const ExitStatus status = program->process->Wait(kExitTimeout);
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe();
}

TEST(HeapSampling, PreloadedAllocsEstimateEveryObjectCountWithinTenPercent) {
  PA_IT_SKIP_WITHOUT_GO();
  ExpectEstimatesWithinTolerance(Flavour::kPreloaded);
}

TEST(HeapSampling, LinkedAllocsEstimateEveryObjectCountWithinTenPercent) {
  PA_IT_SKIP_WITHOUT_GO();
  ExpectEstimatesWithinTolerance(Flavour::kLinked);
}

}  // namespace
}  // namespace pprof_agent::integration
