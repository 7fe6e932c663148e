// The wait-for graph of thread dumps (profiler/threads/wait_graph.h): cycles,
// chains, longest waits and the summary text, on hand-made graphs.
#include "profiler/threads/wait_graph.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pprof_agent::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

WaitNode Running(int32_t tid, std::string name) {
  WaitNode n;
  n.tid = tid;
  n.name = std::move(name);
  n.state = 'R';
  return n;
}

WaitNode Waiting(int32_t tid, std::string name, uintptr_t lock,
                 std::vector<int32_t> holders, int64_t waited_ns = 1000000000,
                 LockKind kind = LockKind::kMutex) {
  WaitNode n;
  n.tid = tid;
  n.name = std::move(name);
  n.state = 'S';
  n.waiting = true;
  n.kind = kind;
  n.lock = lock;
  n.waited_ns = waited_ns;
  n.holders = std::move(holders);
  return n;
}

TEST(WaitGraph, NoWaitersNoDeadlockNoChains) {
  const std::vector<WaitNode> nodes = {Running(1, "main"), Running(2, "worker")};
  const WaitGraphAnalysis a = AnalyzeWaitGraph(nodes);
  EXPECT_THAT(a.deadlocks, IsEmpty());
  EXPECT_THAT(a.chains, IsEmpty());
  EXPECT_THAT(a.longest, IsEmpty());
  EXPECT_EQ(FormatWaitSummary(nodes, a),
            "wait-for graph: no thread is blocked in a hooked lock call\n");
}

TEST(WaitGraph, LockOrderInversionIsOneCycleFromTheSmallestTid) {
  const std::vector<WaitNode> nodes = {
      Waiting(20, "dl-b", 0xa0, {10}),  // B waits for mutex A, held by 10
      Waiting(10, "dl-a", 0xb0, {20}),  // A waits for mutex B, held by 20
      Running(1, "main"),
  };
  const WaitGraphAnalysis a = AnalyzeWaitGraph(nodes);
  ASSERT_EQ(a.deadlocks.size(), 1u);
  EXPECT_THAT(a.deadlocks[0], ElementsAre(10, 20));
  EXPECT_THAT(a.deadlock_others[0], IsEmpty());
  EXPECT_THAT(a.chains, IsEmpty());
  const std::string text = FormatWaitSummary(nodes, a);
  EXPECT_THAT(text, HasSubstr("DEADLOCK: thread 10 (dl-a) waits for mutex 0xb0 held by "
                              "thread 20 (dl-b), which waits for mutex 0xa0 held by "
                              "thread 10 (dl-a)\n"));
  EXPECT_THAT(text, HasSubstr("2 threads blocked in hooked lock calls, 1 deadlock\n"));
}

TEST(WaitGraph, ThirdWaiterChainEndsInTheCycle) {
  const std::vector<WaitNode> nodes = {
      Waiting(10, "dl-a", 0xb0, {20}),
      Waiting(20, "dl-b", 0xa0, {10}),
      Waiting(30, "late", 0xa0, {10}, 500000000),
  };
  const WaitGraphAnalysis a = AnalyzeWaitGraph(nodes);
  ASSERT_EQ(a.deadlocks.size(), 1u);
  ASSERT_EQ(a.chains.size(), 1u);
  EXPECT_THAT(a.chains[0].tids, ElementsAre(30, 10));
  EXPECT_EQ(a.chains[0].deadlock, 0);
  EXPECT_THAT(FormatWaitSummary(nodes, a),
              HasSubstr("  thread 30 (late) waits for mutex 0xa0 held by thread 10 "
                        "(dl-a), which is in DEADLOCK 1 [500ms]\n"));
}

TEST(WaitGraph, ThreeThreadCycleInWaitOrder) {
  const std::vector<WaitNode> nodes = {
      Waiting(7, "c", 0x3, {5}),
      Waiting(5, "a", 0x1, {6}),
      Waiting(6, "b", 0x2, {7}),
  };
  const WaitGraphAnalysis a = AnalyzeWaitGraph(nodes);
  ASSERT_EQ(a.deadlocks.size(), 1u);
  EXPECT_THAT(a.deadlocks[0], ElementsAre(5, 6, 7));
  EXPECT_THAT(FormatWaitSummary(nodes, a),
              HasSubstr("DEADLOCK: thread 5 (a) waits for mutex 0x1 held by thread 6 (b), "
                        "which waits for mutex 0x2 held by thread 7 (c), which waits for "
                        "mutex 0x3 held by thread 5 (a)\n"));
}

TEST(WaitGraph, SelfDeadlockOnANonRecursiveMutex) {
  const std::vector<WaitNode> nodes = {Waiting(42, "relock", 0x10, {42})};
  const WaitGraphAnalysis a = AnalyzeWaitGraph(nodes);
  ASSERT_EQ(a.deadlocks.size(), 1u);
  EXPECT_THAT(a.deadlocks[0], ElementsAre(42));
  EXPECT_THAT(FormatWaitSummary(nodes, a),
              HasSubstr("DEADLOCK: thread 42 (relock) waits for mutex 0x10 held by "
                        "thread 42 (relock) (itself)\n"));
}

TEST(WaitGraph, TwoSeparateDeadlocksAreBothReported) {
  const std::vector<WaitNode> nodes = {
      Waiting(1, "a1", 0x1, {2}), Waiting(2, "a2", 0x2, {1}),
      Waiting(8, "b1", 0x8, {9}), Waiting(9, "b2", 0x9, {8}),
  };
  const WaitGraphAnalysis a = AnalyzeWaitGraph(nodes);
  ASSERT_EQ(a.deadlocks.size(), 2u);
  EXPECT_THAT(a.deadlocks[0], ElementsAre(1, 2));
  EXPECT_THAT(a.deadlocks[1], ElementsAre(8, 9));
}

TEST(WaitGraph, ComponentWithTwoCyclesNamesTheOtherMembers) {
  // A read-held rwlock: 1 waits for readers 2 and 3, both of which wait
  // for 1. One cycle is printed; the third thread is named beside it.
  const std::vector<WaitNode> nodes = {
      Waiting(1, "writer", 0x100, {2, 3}, 1, LockKind::kRwlockWrite),
      Waiting(2, "r1", 0x200, {1}),
      Waiting(3, "r2", 0x200, {1}),
  };
  const WaitGraphAnalysis a = AnalyzeWaitGraph(nodes);
  ASSERT_EQ(a.deadlocks.size(), 1u);
  EXPECT_THAT(a.deadlocks[0], ElementsAre(1, 2));
  EXPECT_THAT(a.deadlock_others[0], ElementsAre(3));
  const std::string text = FormatWaitSummary(nodes, a);
  EXPECT_THAT(text, HasSubstr("rwlock 0x100 (to write) held by thread 2 (r1) and 1 other,"));
  EXPECT_THAT(text, HasSubstr("  also in this deadlock: thread 3 (r2)\n"));
}

TEST(WaitGraph, LongChainEndsAtARunningHolder) {
  const std::vector<WaitNode> nodes = {
      Waiting(1, "head", 0x1, {2}, 3000000000),
      Waiting(2, "mid", 0x2, {3}, 2000000000),
      Running(3, "busy"),
  };
  const WaitGraphAnalysis a = AnalyzeWaitGraph(nodes);
  EXPECT_THAT(a.deadlocks, IsEmpty());
  ASSERT_EQ(a.chains.size(), 1u);
  EXPECT_THAT(a.chains[0].tids, ElementsAre(1, 2, 3));
  EXPECT_EQ(a.chains[0].deadlock, -1);
  const std::string text = FormatWaitSummary(nodes, a);
  EXPECT_THAT(text, HasSubstr("  thread 1 (head) waits for mutex 0x1 held by thread 2 (mid), "
                              "which waits for mutex 0x2 held by thread 3 (busy), which is "
                              "not blocked in a hooked lock (R running) [3.000s]\n"));
  EXPECT_THAT(a.longest, ElementsAre(1, 2));
}

TEST(WaitGraph, OneEdgeChainsAreNotListedAsChains) {
  const std::vector<WaitNode> nodes = {Waiting(1, "w", 0x1, {2}), Running(2, "h")};
  const WaitGraphAnalysis a = AnalyzeWaitGraph(nodes);
  ASSERT_EQ(a.chains.size(), 1u);
  const std::string text = FormatWaitSummary(nodes, a);
  EXPECT_THAT(text, Not(HasSubstr("wait chains:")));
  EXPECT_THAT(text, HasSubstr("blocked longest:\n  1.000s\tthread 1 (w) waits for mutex 0x1 "
                              "held by thread 2 (h)\n"));
}

TEST(WaitGraph, HolderThatNoLongerExistsEndsTheChain) {
  const std::vector<WaitNode> nodes = {
      Waiting(1, "w", 0x1, {2}),
      Waiting(2, "x", 0x2, {999}),
  };
  const WaitGraphAnalysis a = AnalyzeWaitGraph(nodes);
  EXPECT_THAT(a.deadlocks, IsEmpty());
  ASSERT_EQ(a.chains.size(), 1u);
  EXPECT_THAT(a.chains[0].tids, ElementsAre(1, 2, 999));
  EXPECT_THAT(FormatWaitSummary(nodes, a),
              HasSubstr("held by thread 999 (no longer exists)"));
}

TEST(WaitGraph, WaitersWithoutAKnownHolderHaveNoEdges) {
  std::vector<WaitNode> nodes = {
      Waiting(1, "cv", 0x1, {}, 5, LockKind::kCondvar),
      Waiting(2, "spin", 0x2, {}, 6, LockKind::kSpin),
  };
  nodes[0].mutex = 0x9;
  const WaitGraphAnalysis a = AnalyzeWaitGraph(nodes);
  EXPECT_THAT(a.deadlocks, IsEmpty());
  EXPECT_THAT(a.chains, IsEmpty());
  EXPECT_THAT(a.longest, ElementsAre(2, 1));
  EXPECT_THAT(FormatWaitSummary(nodes, a),
              HasSubstr("condition variable 0x1 (mutex 0x9) (holder unknown)"));
}

TEST(WaitGraph, LongestWaitsAreCappedAndCounted) {
  std::vector<WaitNode> nodes;
  nodes.push_back(Running(1000, "holder"));
  for (int i = 1; i <= 15; ++i) nodes.push_back(Waiting(i, "w", 0x1, {1000}, i * 1000000));
  const WaitGraphAnalysis a = AnalyzeWaitGraph(nodes);
  ASSERT_EQ(a.longest.size(), 15u);
  EXPECT_EQ(a.longest.front(), 15);
  EXPECT_EQ(a.longest.back(), 1);
  const std::string text = FormatWaitSummary(nodes, a, 20, 10);
  EXPECT_THAT(text, HasSubstr("  ... 5 more blocked threads\n"));
  EXPECT_THAT(text, HasSubstr("  15ms\tthread 15 (w)"));
}

TEST(WaitGraph, LongChainDoesNotRecurse) {
  // 100000 threads in one chain: the iterative SCC walk must not overflow.
  std::vector<WaitNode> nodes;
  const int n = 100000;
  for (int i = 1; i < n; ++i) nodes.push_back(Waiting(i, "t", static_cast<uintptr_t>(i), {i + 1}));
  nodes.push_back(Running(n, "end"));
  const WaitGraphAnalysis a = AnalyzeWaitGraph(nodes);
  EXPECT_THAT(a.deadlocks, IsEmpty());
  ASSERT_EQ(a.chains.size(), 1u);
  EXPECT_EQ(a.chains[0].tids.size(), static_cast<size_t>(n));
}

TEST(WaitGraph, LockDescriptionsAndDurations) {
  EXPECT_EQ(DescribeLock(LockKind::kMutex, 0x10, 0), "mutex 0x10");
  EXPECT_EQ(DescribeLock(LockKind::kRwlockRead, 0x10, 0), "rwlock 0x10 (to read)");
  EXPECT_EQ(DescribeLock(LockKind::kSpin, 0x10, 0), "spinlock 0x10");
  EXPECT_EQ(FormatWaitDuration(1500000000), "1.500s");
  EXPECT_EQ(FormatWaitDuration(25000000), "25ms");
  EXPECT_EQ(FormatWaitDuration(812000), "812us");
  EXPECT_EQ(FormatWaitDuration(-5), "0us");
}

}  // namespace
}  // namespace pprof_agent::internal
