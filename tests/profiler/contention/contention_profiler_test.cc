// The contention recorder (profiler/contention/contention_profiler.h): Go's sampling
// and scaling, the capture budget keeping totals exact, the profile shape
// and deltas; and the lock hooks' symbol lookup without dlsym.
#include "profiler/contention/contention_profiler.h"

#include <dlfcn.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>

#include <cmath>

#include "profiler/base/libc_symbols.h"
#include "profiler/base/runtime.h"

namespace pprof_agent::internal {
namespace {

struct Totals {
  double count = 0;
  double delay = 0;
};

Totals Sum(const ContentionRaw& raw) {
  Totals t;
  for (const auto& r : raw.records) {
    t.count += r.count;
    t.delay += r.delay;
  }
  return t;
}

Totals Delta(const ContentionRaw& before, const ContentionRaw& after) {
  const Totals a = Sum(before);
  const Totals b = Sum(after);
  return {b.count - a.count, b.delay - a.delay};
}

// Each test changes rates; put the defaults back.
class ContentionRecorder : public ::testing::Test {
 protected:
  void SetUp() override { EnableSampling(); }
  void TearDown() override {
    SetMutexRate(kDefaultMutexRate);
    SetBlockRate(kDefaultBlockRate);
    SetLockStacksPerSecond(kDefaultLockStacksPerSecond);
  }
};

__attribute__((noinline)) void BlockEvents(int n, int64_t delay) {
  for (int i = 0; i < n; ++i) RecordBlockEvent(delay, MonotonicNanos());
}

TEST_F(ContentionRecorder, LongWaitsAreRecordedExactly) {
  SetBlockRate(10000);
  SetLockStacksPerSecond(0);
  const ContentionRaw before = CollectContention(ContentionKind::kBlock);
  BlockEvents(100, 50000);
  const Totals d = Delta(before, CollectContention(ContentionKind::kBlock));
  EXPECT_DOUBLE_EQ(d.count, 100);
  EXPECT_DOUBLE_EQ(d.delay, 100 * 50000.0);
}

// Events shorter than the rate are kept with probability delay/rate and
// weighted rate/delay: unbiased. 20000 events of 1 us at rate 10 us: each
// kept with p = 0.1, so the count estimate has a relative standard error of
// sqrt((1-p)/(n p)) = 2.1%; +-10% is 4.7 sigma. The delay estimate is the
// count estimate times the fixed delay, so the same holds.
TEST_F(ContentionRecorder, ShortWaitsAreSampledWithoutBias) {
  SetBlockRate(10000);
  SetLockStacksPerSecond(0);
  const ContentionRaw before = CollectContention(ContentionKind::kBlock);
  constexpr int kEvents = 20000;
  BlockEvents(kEvents, 1000);
  const Totals d = Delta(before, CollectContention(ContentionKind::kBlock));
  EXPECT_NEAR(d.count, kEvents, kEvents * 0.10);
  EXPECT_NEAR(d.delay, kEvents * 1000.0, kEvents * 1000.0 * 0.10);
}

// 1 in N releases, each standing for N (Go's SetMutexProfileFraction).
// 20000 releases at N = 10: binomial count, relative standard error
// sqrt((1-p)/(n p)) = 2.1%; +-10% is 4.7 sigma.
TEST_F(ContentionRecorder, MutexRateRecordsOneInNScaledByN) {
  SetMutexRate(10);
  SetLockStacksPerSecond(0);
  const ContentionRaw before = CollectContention(ContentionKind::kMutex);
  constexpr int kEvents = 20000;
  for (int i = 0; i < kEvents; ++i) RecordMutexEvent(3000, MonotonicNanos());
  const ContentionRaw after = CollectContention(ContentionKind::kMutex);
  const Totals d = Delta(before, after);
  EXPECT_NEAR(d.count, kEvents, kEvents * 0.10);
  EXPECT_NEAR(d.delay, kEvents * 3000.0, kEvents * 3000.0 * 0.10);
  EXPECT_EQ(std::fmod(d.count, 10.0), 0.0) << "every sample stands for N";
  EXPECT_EQ(after.rate, 10);
}

TEST_F(ContentionRecorder, RateZeroRecordsNothing) {
  SetMutexRate(0);
  SetBlockRate(0);
  const ContentionRaw mb = CollectContention(ContentionKind::kMutex);
  const ContentionRaw bb = CollectContention(ContentionKind::kBlock);
  RecordMutexEvent(5000, MonotonicNanos());
  BlockEvents(10, 50000);
  EXPECT_EQ(Delta(mb, CollectContention(ContentionKind::kMutex)).count, 0);
  EXPECT_EQ(Delta(bb, CollectContention(ContentionKind::kBlock)).count, 0);
}

// A storm far over the capture budget: most events are not captured, yet
// the totals stay exact (their values ride on the next captured event).
TEST_F(ContentionRecorder, CaptureBudgetKeepsTotalsExact) {
  SetBlockRate(1);
  SetLockStacksPerSecond(5);
  const ContentionRaw before = CollectContention(ContentionKind::kBlock);
  const ContentionCounts counts_before = ContentionCountsNow(ContentionKind::kBlock);
  BlockEvents(5000, 20000);
  // One more event once the budget has refilled carries the rest.
  SetLockStacksPerSecond(0);
  BlockEvents(1, 20000);
  const ContentionRaw after = CollectContention(ContentionKind::kBlock);
  const Totals d = Delta(before, after);
  EXPECT_DOUBLE_EQ(d.count, 5001);
  EXPECT_DOUBLE_EQ(d.delay, 5001 * 20000.0);
  EXPECT_GT(ContentionCountsNow(ContentionKind::kBlock).carried,
            counts_before.carried + 4000);
  bool noted = false;
  for (const std::string& c : after.comments) {
    noted = noted || c.find("capture budget") != std::string::npos;
  }
  EXPECT_TRUE(noted);
}

TEST_F(ContentionRecorder, ProfileHasGosTypesAndNamesTheCaller) {
  SetBlockRate(1);
  SetLockStacksPerSecond(0);
  BlockEvents(3, 7000);
  const ContentionRaw raw = CollectContention(ContentionKind::kBlock);
  const Snapshot s = ContentionProfile(raw, nullptr);
  ASSERT_EQ(s.sample_types.size(), 2u);
  EXPECT_EQ(s.sample_types[0].type, "contentions");
  EXPECT_EQ(s.sample_types[0].unit, "count");
  EXPECT_EQ(s.sample_types[1].type, "delay");
  EXPECT_EQ(s.sample_types[1].unit, "nanoseconds");
  EXPECT_EQ(s.period_type.type, "contentions");
  EXPECT_EQ(s.period_type.unit, "count");
  EXPECT_EQ(s.period, 1);
  EXPECT_EQ(s.default_sample_type, "");  // pprof's default: the last, delay
  ASSERT_FALSE(s.samples.empty());
  for (const Sample& sample : s.samples) {
    EXPECT_FALSE(s.stacks[sample.stack].pcs.empty());
    EXPECT_FALSE(s.stacks[sample.stack].leaf_is_pc);
  }
}

TEST(ContentionProfileDelta, SubtractsPerStackAndDropsUnchanged) {
  ContentionRaw p0;
  p0.time_nanos = 1000;
  p0.records = {{1, 5, 500}, {2, 3, 300}};
  p0.stacks = {{1, {0x10}}, {2, {0x20}}};
  ContentionRaw p1 = p0;
  p1.time_nanos = 3000;
  p1.records = {{1, 5, 500}, {2, 7, 900}, {3, 1, 50}};
  p1.stacks[3] = {0x30};
  const Snapshot s = ContentionProfile(p1, &p0);
  EXPECT_EQ(s.time_nanos, 3000);
  EXPECT_EQ(s.duration_nanos, 2000);
  ASSERT_EQ(s.samples.size(), 2u);
  EXPECT_EQ(s.samples[0].values, (std::vector<int64_t>{4, 600}));
  EXPECT_EQ(s.stacks[s.samples[0].stack].pcs, (std::vector<uint64_t>{0x20}));
  EXPECT_EQ(s.samples[1].values, (std::vector<int64_t>{1, 50}));
  EXPECT_FALSE(s.stacks[0].leaf_is_pc);
}

TEST(ContentionThreadState, TidIsCachedAndRight) {
  const int32_t tid = CurrentTid();
  EXPECT_EQ(tid, gettid());
  EXPECT_EQ(CurrentTid(), tid);
}

// The hooks' fallback when they run before their constructor: reading
// libc's symbol table must find exactly what dlvsym finds, for every
// function the hooks forward to.
TEST(ContentionLibcSymbols, FindsWhatDlvsymFinds) {
  // Both the anchor and the expected addresses come from libc's own handle:
  // under a sanitizer, &pthread_mutex_lock and RTLD_DEFAULT lookups resolve
  // to the sanitizer's interceptors, which live in another object.
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(libc, nullptr);
  const void* anchor = dlvsym(libc, "pthread_mutex_lock", "GLIBC_2.2.5");
  ASSERT_NE(anchor, nullptr);
  const struct {
    const char* name;
    const char* version;
  } kSymbols[] = {
      {"pthread_mutex_timedlock", "GLIBC_2.2.5"},
      {"pthread_mutex_clocklock", "GLIBC_2.30"},
      {"pthread_rwlock_timedrdlock", "GLIBC_2.2.5"},
      {"pthread_rwlock_timedwrlock", "GLIBC_2.2.5"},
      {"pthread_rwlock_clockrdlock", "GLIBC_2.30"},
      {"pthread_rwlock_clockwrlock", "GLIBC_2.30"},
      {"pthread_cond_wait", "GLIBC_2.3.2"},
      {"pthread_cond_timedwait", "GLIBC_2.3.2"},
      {"pthread_cond_wait", "GLIBC_2.2.5"},
      {"pthread_cond_clockwait", "GLIBC_2.30"},
      {"pthread_spin_lock", "GLIBC_2.2.5"},
      {"pthread_spin_trylock", "GLIBC_2.2.5"},
  };
  for (const auto& s : kSymbols) {
    void* expected = dlvsym(libc, s.name, s.version);
    ASSERT_NE(expected, nullptr) << s.name << "@" << s.version;
    EXPECT_EQ(FindVersionedSymbol(anchor, s.name, s.version), expected)
        << s.name << "@" << s.version;
  }
  // The two condvar ABIs are different functions.
  EXPECT_NE(FindVersionedSymbol(anchor, "pthread_cond_wait", "GLIBC_2.3.2"),
            FindVersionedSymbol(anchor, "pthread_cond_wait", "GLIBC_2.2.5"));
  EXPECT_EQ(FindVersionedSymbol(anchor, "no_such_function", "GLIBC_2.2.5"), nullptr);
  EXPECT_EQ(FindVersionedSymbol(anchor, "pthread_cond_wait", "GLIBC_9.9"), nullptr);
  dlclose(libc);
}

}  // namespace
}  // namespace pprof_agent::internal
