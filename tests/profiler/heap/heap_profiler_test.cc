// Lifetime classes and the /debug/pprof/lifetimes snapshot, the thread
// labels of live heap samples, and the thread registry behind them. Pure
// functions over hand-made HeapRaw values: no interposition here
// (tests/suites/containers runs real processes).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <thread>

#include "profiler/heap/heap_profiler.h"
#include "profiler/heap/thread_registry.h"

namespace pprof_agent::internal {
namespace {

constexpr int64_t kMs = 1000000;

TEST(LifetimeClass, BoundariesArePowersOfTen) {
  EXPECT_EQ(LifetimeClass(-5), 0);
  EXPECT_EQ(LifetimeClass(0), 0);
  EXPECT_EQ(LifetimeClass(kMs - 1), 0);
  EXPECT_EQ(LifetimeClass(kMs), 1);
  EXPECT_EQ(LifetimeClass(10 * kMs - 1), 1);
  EXPECT_EQ(LifetimeClass(10 * kMs), 2);
  EXPECT_EQ(LifetimeClass(100 * kMs), 3);
  EXPECT_EQ(LifetimeClass(1000 * kMs), 4);
  EXPECT_EQ(LifetimeClass(10000 * kMs - 1), 4);
  EXPECT_EQ(LifetimeClass(10000 * kMs), 5);
  EXPECT_EQ(LifetimeClass(int64_t{1} << 62), 5);
  EXPECT_STREQ(kLifetimeClassNames[0], "<1ms");
  EXPECT_STREQ(kLifetimeClassNames[5], ">10s");
}

// One stack (id 1, two frames) with a 100-byte record.
HeapRaw OneRecord(double alloc, double inuse, std::initializer_list<double> freed) {
  HeapRaw raw;
  raw.time_nanos = 5000;
  raw.sample_rate = 524288;
  HeapRaw::Record r;
  r.stack_id = 1;
  r.size = 100;
  r.alloc_objects = alloc;
  r.inuse_objects = inuse;
  int c = 0;
  for (double f : freed) r.freed[c++] = f;
  raw.records.push_back(r);
  raw.frames = {0x1000, 0x2000};
  raw.stack_begin = {0, 0};
  raw.stack_end = {0, 2};
  return raw;
}

std::map<std::string, std::vector<int64_t>> ByLifetime(const Snapshot& snap) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const Sample& s : snap.samples) {
    for (const Label& l : s.labels) {
      if (l.key == "lifetime") out[l.str] = s.values;
    }
  }
  return out;
}

TEST(LifetimesProfile, FreedByClassAndLive) {
  const HeapRaw raw = OneRecord(10, 3, {4, 2, 0, 0, 0, 1});
  const Snapshot snap = LifetimesProfile(raw, nullptr);
  ASSERT_EQ(snap.sample_types.size(), 2u);
  EXPECT_EQ(snap.sample_types[0].type, "alloc_objects");
  EXPECT_EQ(snap.sample_types[1].type, "alloc_space");
  EXPECT_EQ(snap.default_sample_type, "alloc_space");
  EXPECT_EQ(snap.period, 524288);
  const auto by = ByLifetime(snap);
  EXPECT_EQ(by.size(), 4u);  // empty classes are left out
  EXPECT_EQ(by.at("<1ms"), (std::vector<int64_t>{4, 400}));
  EXPECT_EQ(by.at("1-10ms"), (std::vector<int64_t>{2, 200}));
  EXPECT_EQ(by.at(">10s"), (std::vector<int64_t>{1, 100}));
  EXPECT_EQ(by.at("live"), (std::vector<int64_t>{3, 300}));
  ASSERT_EQ(snap.stacks.size(), 1u);  // one stack shared by every class
  for (const Sample& s : snap.samples) {
    EXPECT_TRUE(s.labels[0].is_num);
    EXPECT_EQ(s.labels[0].key, "bytes");
    EXPECT_EQ(s.labels[0].num, 100);
  }
}

TEST(LifetimesProfile, DeltaSubtractsFreedKeepsLive) {
  HeapRaw p0 = OneRecord(5, 4, {3, 1, 0, 0, 0, 0});
  p0.time_nanos = 1000;
  const HeapRaw p1 = OneRecord(10, 2, {7, 1, 0, 0, 0, 0});
  const Snapshot snap = LifetimesProfile(p1, &p0);
  EXPECT_EQ(snap.duration_nanos, 4000);
  const auto by = ByLifetime(snap);
  EXPECT_EQ(by.at("<1ms"), (std::vector<int64_t>{4, 400}));
  EXPECT_EQ(by.count("1-10ms"), 0u);  // nothing new in the window
  EXPECT_EQ(by.at("live"), (std::vector<int64_t>{2, 200}));
}

TEST(HeapProfileThreads, LiveObjectsSplitByThread) {
  HeapRaw raw = OneRecord(10, 5, {});
  raw.live_by_thread = {{1, 100, 7, 3}, {1, 100, 9, 2}};
  raw.threads = {ThreadInfo{7, 100, "worker-1", false}, ThreadInfo{9, 101, "batch", true}};
  const Snapshot snap = HeapProfile(raw, nullptr, "inuse_space");
  ASSERT_EQ(snap.samples.size(), 2u);
  std::map<std::string, std::vector<int64_t>> values_by_name;
  std::map<std::string, std::string> state_by_name;
  for (const Sample& s : snap.samples) {
    std::string name, state;
    for (const Label& l : s.labels) {
      if (l.key == "thread_name") name = l.str;
      if (l.key == "thread_state") state = l.str;
    }
    values_by_name[name] = s.values;
    state_by_name[name] = state;
  }
  // alloc_* ride on the thread holding the most.
  EXPECT_EQ(values_by_name["worker-1"], (std::vector<int64_t>{10, 1000, 3, 300}));
  EXPECT_EQ(values_by_name["batch"], (std::vector<int64_t>{0, 0, 2, 200}));
  EXPECT_EQ(state_by_name, (std::map<std::string, std::string>{{"worker-1", "alive"},
                                                               {"batch", "exited"}}));
}

TEST(HeapProfileThreads, OneThreadOneSample) {
  HeapRaw raw = OneRecord(10, 5, {});
  raw.live_by_thread = {{1, 100, 7, 5}};
  raw.threads = {ThreadInfo{7, 100, "main", false}};
  const Snapshot snap = HeapProfile(raw, nullptr, "inuse_space");
  ASSERT_EQ(snap.samples.size(), 1u);
  EXPECT_EQ(snap.samples[0].values, (std::vector<int64_t>{10, 1000, 5, 500}));
}

TEST(HeapProfileThreads, WithoutThreadInfoOneSample) {
  HeapRaw raw = OneRecord(10, 5, {});
  const Snapshot snap = HeapProfile(raw, nullptr, "inuse_space");
  ASSERT_EQ(snap.samples.size(), 1u);
  EXPECT_EQ(snap.samples[0].values, (std::vector<int64_t>{10, 1000, 5, 500}));
}

TEST(ThreadRegistry, AliveThenExitedWithFinalName) {
  const ThreadHandle self = ThreadRegistryCurrent();
  ASSERT_NE(self, 0u);
  EXPECT_EQ(ThreadRegistryCurrent(), self);  // cached
  ThreadHandle other = 0;
  std::thread t([&other] {
    pthread_setname_np(pthread_self(), "pa-short-lived");
    other = ThreadRegistryCurrent();
    // Renamed after registration: the name at exit is the one reported.
    pthread_setname_np(pthread_self(), "pa-renamed");
  });
  t.join();
  ASSERT_NE(other, 0u);
  ASSERT_NE(other, self);
  const std::vector<ThreadInfo> infos = ThreadRegistryLookup({self, other, 0});
  ASSERT_EQ(infos.size(), 3u);
  EXPECT_FALSE(infos[0].exited);
  EXPECT_FALSE(infos[0].name.empty());
  EXPECT_TRUE(infos[1].exited);  // told by the pthread key destructor
  EXPECT_EQ(infos[1].name, "pa-renamed");
  EXPECT_TRUE(infos[2].exited);  // handle 0: nobody
  EXPECT_EQ(infos[2].name, "");
}

}  // namespace
}  // namespace pprof_agent::internal
