#include "profiler/base/stack_table.h"

#include <gtest/gtest.h>

#include <vector>

namespace pprof_agent::internal {
namespace {

TEST(StackTable, InternsIdenticalStacksOnce) {
  StackTable t(16, 1024);
  const uint64_t a[] = {1, 2, 3};
  const uint64_t b[] = {1, 2, 4};
  const uint32_t ia = t.Intern(a, 3);
  const uint32_t ib = t.Intern(b, 3);
  EXPECT_NE(ia, 0u);
  EXPECT_NE(ib, 0u);
  EXPECT_NE(ia, ib);
  EXPECT_EQ(t.Intern(a, 3), ia);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.Get(ia), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(t.Get(ib), (std::vector<uint64_t>{1, 2, 4}));
}

TEST(StackTable, PrefixIsADifferentStack) {
  StackTable t(16, 1024);
  const uint64_t a[] = {1, 2, 3};
  EXPECT_NE(t.Intern(a, 3), t.Intern(a, 2));
}

TEST(StackTable, FullTableReturnsZeroAndKeepsOldIds) {
  StackTable t(4, 1024);
  uint32_t ids[4];
  for (uint64_t i = 0; i < 4; ++i) {
    const uint64_t pcs[] = {i + 100, 7};
    ids[i] = t.Intern(pcs, 2);
    ASSERT_NE(ids[i], 0u);
  }
  const uint64_t extra[] = {999, 7};
  EXPECT_EQ(t.Intern(extra, 2), 0u);
  const uint64_t again[] = {100, 7};
  EXPECT_EQ(t.Intern(again, 2), ids[0]);  // existing stacks still resolve
}

TEST(StackTable, FramePoolFullReturnsZero) {
  StackTable t(100, 8);
  const uint64_t pcs[] = {1, 2, 3, 4, 5};
  EXPECT_NE(t.Intern(pcs, 5), 0u);
  const uint64_t more[] = {6, 7, 8, 9};
  EXPECT_EQ(t.Intern(more, 4), 0u);
  EXPECT_NE(t.Intern(more, 3), 0u);  // exactly fills the pool
}

TEST(StackTable, UnknownIdIsEmpty) {
  StackTable t(4, 16);
  EXPECT_TRUE(t.Get(0).empty());
  EXPECT_TRUE(t.Get(3).empty());
}

}  // namespace
}  // namespace pprof_agent::internal
