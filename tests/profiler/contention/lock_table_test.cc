// The lock hooks' side tables (profiler/contention/lock_table.h): per-lock waiter
// bookkeeping and the unlocker's delay, the per-thread wait registry, the
// capture budget.
#include "profiler/contention/lock_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

namespace pprof_agent::internal {
namespace {

// Tables are large; keep them off the test's stack.
std::unique_ptr<WaiterTable> NewWaiterTable() { return std::make_unique<WaiterTable>(); }

TEST(ContentionWaiterTable, UnlockWithoutWaitersFindsNothing) {
  auto table = NewWaiterTable();
  int64_t delay = -1;
  int waiters = -1;
  EXPECT_FALSE(table->TakeDelay(0x1000, 100, &delay, &waiters));
  EXPECT_EQ(table->Waiters(0x1000), 0);
}

TEST(ContentionWaiterTable, DelayRunsFromEarliestWaiterAndRestartsAtEachRelease) {
  auto table = NewWaiterTable();
  const uintptr_t lock = 0x7f0012345670;
  const int a = table->Register(lock, 1000);
  const int b = table->Register(lock, 1500);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_EQ(a, b) << "waiters of one lock share one slot";
  EXPECT_EQ(table->Waiters(lock), 2);
  int64_t delay = 0;
  int waiters = 0;
  ASSERT_TRUE(table->TakeDelay(lock, 4000, &delay, &waiters));
  EXPECT_EQ(delay, 3000);  // since the earliest waiter, not the sum
  EXPECT_EQ(waiters, 2);
  table->Unregister(a);
  // The next release is charged only for the time since the previous one.
  ASSERT_TRUE(table->TakeDelay(lock, 4500, &delay, &waiters));
  EXPECT_EQ(delay, 500);
  EXPECT_EQ(waiters, 1);
  table->Unregister(b);
  EXPECT_FALSE(table->TakeDelay(lock, 5000, &delay, &waiters));
  EXPECT_EQ(table->Waiters(lock), 0);
}

TEST(ContentionWaiterTable, NewWaitersAfterAQuietSpellStartAFreshClock) {
  auto table = NewWaiterTable();
  const uintptr_t lock = 0x5000;
  table->Unregister(table->Register(lock, 100));
  const int slot = table->Register(lock, 9000);
  int64_t delay = 0;
  int waiters = 0;
  ASSERT_TRUE(table->TakeDelay(lock, 9100, &delay, &waiters));
  EXPECT_EQ(delay, 100);
  table->Unregister(slot);
}

TEST(ContentionWaiterTable, FullWindowDropsAndOtherAddressesStillWork) {
  auto table = NewWaiterTable();
  // Fill far more addresses than slots exist around some of their homes:
  // registrations either succeed or return -1; never crash, never mix.
  std::vector<std::pair<uintptr_t, int>> held;
  int dropped = 0;
  for (uintptr_t i = 1; i <= 2 * WaiterTable::kSlots; ++i) {
    const uintptr_t addr = i * 64;
    const int slot = table->Register(addr, static_cast<int64_t>(i));
    if (slot < 0) {
      ++dropped;
    } else {
      held.emplace_back(addr, slot);
    }
  }
  EXPECT_GT(dropped, 0);
  for (const auto& [addr, slot] : held) {
    EXPECT_EQ(table->Waiters(addr), 1) << addr;
    table->Unregister(slot);
  }
  for (const auto& [addr, slot] : held) EXPECT_EQ(table->Waiters(addr), 0);
}

TEST(ContentionWaiterTable, AddressesBeyondUserSpaceAreNotTracked) {
  auto table = NewWaiterTable();
  EXPECT_EQ(table->Register(WaiterTable::kMaxAddress, 1), -1);
  EXPECT_EQ(table->Register(0, 1), -1);
}

TEST(ContentionWaiterTable, ConcurrentWaitersBalanceOut) {
  auto table = NewWaiterTable();
  constexpr int kThreads = 4;
  constexpr int kIterations = 20000;
  const uintptr_t locks[] = {0x1000, 0x2000, 0x3000};
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIterations; ++i) {
        const uintptr_t lock = locks[(i + t) % 3];
        const int slot = table->Register(lock, i);
        if (slot < 0) {
          failures.fetch_add(1);
          continue;
        }
        int64_t delay;
        int waiters;
        if (!table->TakeDelay(lock, i + 10, &delay, &waiters) || waiters < 1) {
          failures.fetch_add(1);
        }
        table->Unregister(slot);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (uintptr_t lock : locks) EXPECT_EQ(table->Waiters(lock), 0);
}

TEST(ContentionWaitRegistry, PublishesWaitsUntilEnd) {
  auto registry = std::make_unique<WaitRegistry>();
  WaitInfo info;
  info.tid = 4242;
  info.kind = LockKind::kCondvar;
  info.lock = 0x1000;
  info.mutex = 0x2000;
  info.since_ns = 77;
  const int slot = registry->Begin(info);
  ASSERT_GE(slot, 0);
  WaitInfo other = info;
  other.tid = 4243;
  other.kind = LockKind::kRwlockWrite;
  const int slot2 = registry->Begin(other);
  ASSERT_GE(slot2, 0);
  std::vector<WaitInfo> waits = registry->Snapshot();
  ASSERT_EQ(waits.size(), 2u);
  bool found = false;
  for (const WaitInfo& w : waits) {
    if (w.tid != 4242) continue;
    found = true;
    EXPECT_EQ(w.kind, LockKind::kCondvar);
    EXPECT_EQ(w.lock, 0x1000u);
    EXPECT_EQ(w.mutex, 0x2000u);
    EXPECT_EQ(w.since_ns, 77);
  }
  EXPECT_TRUE(found);
  registry->End(slot);
  registry->End(slot2);
  EXPECT_TRUE(registry->Snapshot().empty());
  EXPECT_EQ(registry->Begin(WaitInfo{}), -1) << "tid 0 is not a thread";
  EXPECT_STREQ(LockKindName(LockKind::kRwlockRead), "rwlock-read");
}

TEST(ContentionWaitRegistry, ReadersNeverSeeTornRecords) {
  auto registry = std::make_unique<WaitRegistry>();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int64_t i = 1; !stop; ++i) {
      WaitInfo info;
      info.tid = 99;
      info.kind = LockKind::kMutex;
      info.lock = static_cast<uintptr_t>(i);
      info.mutex = static_cast<uintptr_t>(i);
      info.since_ns = i;
      registry->End(registry->Begin(info));
    }
  });
  for (int i = 0; i < 2000; ++i) {
    for (const WaitInfo& w : registry->Snapshot()) {
      ASSERT_EQ(w.lock, w.mutex);
      ASSERT_EQ(static_cast<int64_t>(w.lock), w.since_ns);
    }
  }
  stop = true;
  writer.join();
}

TEST(ContentionRateLimiter, AdmitsBurstThenRate) {
  RateLimiter limiter(1000, 10);  // 1 per ms, bursts of 10
  int admitted = 0;
  for (int i = 0; i < 100; ++i) admitted += limiter.TryAcquire(1000000000);
  EXPECT_EQ(admitted, 10);
  // One more per millisecond after that.
  EXPECT_TRUE(limiter.TryAcquire(1000000000 + 1000000));
  EXPECT_FALSE(limiter.TryAcquire(1000000000 + 1000000));
  // Over one second of steady demand: about the rate.
  admitted = 0;
  for (int64_t t = 2000000000; t < 3000000000; t += 100000) {
    admitted += limiter.TryAcquire(t);
  }
  EXPECT_GE(admitted, 1000);
  EXPECT_LE(admitted, 1010);
}

TEST(ContentionRateLimiter, ZeroMeansUnlimited) {
  RateLimiter limiter;
  limiter.SetRate(0, 10);
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(limiter.TryAcquire(5));
  limiter.SetRate(2, 1);
  EXPECT_EQ(limiter.rate(), 2);
  EXPECT_TRUE(limiter.TryAcquire(1000000000));
  EXPECT_FALSE(limiter.TryAcquire(1000000000));
}

}  // namespace
}  // namespace pprof_agent::internal
