// Each checked wrapper (pprof_agent/checked.h) against its std counterpart
// on random operation sequences: same results, same size, and the same
// iteration order where the std type defines one (map, set, vector) or the
// same contents otherwise. Without the agent: single-threaded use detects
// nothing (pprof_agent::UnreportedRaces() stays 0), and a real detection is
// only counted.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "pprof_agent/checked.h"

namespace {

template <class C>
std::vector<typename C::value_type> Items(const C& c) {
  return std::vector<typename C::value_type>(c.begin(), c.end());
}
template <class T>
std::vector<T> Sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

template <class Checked, class Std, bool kOrdered>
void MapSequence(uint32_t seed) {
  std::mt19937 rng(seed);
  Checked c;
  Std s;
  for (int step = 0; step < 20000; ++step) {
    const int k = static_cast<int>(rng() % 200);
    const int v = static_cast<int>(rng() % 1000);
    switch (rng() % 9) {
      case 0: ASSERT_EQ(c.insert({k, v}).second, s.insert({k, v}).second); break;
      case 1: ASSERT_EQ(c.insert_or_assign(k, v).second, s.insert_or_assign(k, v).second); break;
      case 2: ASSERT_EQ(c.erase(k), s.erase(k)); break;
      case 3: c[k] += v; s[k] += v; break;
      case 4: {
        auto ci = c.find(k);
        auto si = s.find(k);
        ASSERT_EQ(ci == c.end(), si == s.end());
        if (si != s.end()) {
          ASSERT_EQ(ci->second, si->second);
          if (rng() % 2) { c.erase(ci); s.erase(si); }
        }
        break;
      }
      case 5: ASSERT_EQ(c.count(k), s.count(k)); ASSERT_EQ(c.contains(k), s.contains(k)); break;
      case 6: ASSERT_EQ(c.try_emplace(k, v).second, s.try_emplace(k, v).second); break;
      case 7: ASSERT_EQ(c.emplace(k, v).second, s.emplace(k, v).second); break;
      case 8: if (rng() % 50 == 0) { c.clear(); s.clear(); } break;
    }
    ASSERT_EQ(c.size(), s.size());
    ASSERT_EQ(c.empty(), s.empty());
    if (step % 500 == 0) {
      std::vector<std::pair<int, int>> ci(c.begin(), c.end()), si(s.begin(), s.end());
      if (kOrdered) ASSERT_EQ(ci, si);
      else ASSERT_EQ(Sorted(ci), Sorted(si));
    }
  }
  Checked copy = c;
  ASSERT_TRUE(copy == c);
  Checked moved = std::move(copy);
  ASSERT_EQ(moved.size(), s.size());
}

template <class Checked, class Std, bool kOrdered>
void SetSequence(uint32_t seed) {
  std::mt19937 rng(seed);
  Checked c;
  Std s;
  for (int step = 0; step < 20000; ++step) {
    const int k = static_cast<int>(rng() % 300);
    switch (rng() % 5) {
      case 0: ASSERT_EQ(c.insert(k).second, s.insert(k).second); break;
      case 1: ASSERT_EQ(c.erase(k), s.erase(k)); break;
      case 2: ASSERT_EQ(c.count(k), s.count(k)); break;
      case 3: {
        auto ci = c.find(k);
        auto si = s.find(k);
        ASSERT_EQ(ci == c.end(), si == s.end());
        if (si != s.end() && rng() % 2) { c.erase(ci); s.erase(si); }
        break;
      }
      case 4: ASSERT_EQ(c.emplace(k).second, s.emplace(k).second); break;
    }
    ASSERT_EQ(c.size(), s.size());
    if (step % 500 == 0) {
      if (kOrdered) ASSERT_EQ(Items(c), Items(s));
      else ASSERT_EQ(Sorted(Items(c)), Sorted(Items(s)));
    }
  }
}

TEST(CheckedWrappers, UnorderedMapMatchesStd) {
  for (uint32_t seed : {1u, 2u, 3u})
    MapSequence<pprof_agent::checked_unordered_map<int, int>, std::unordered_map<int, int>, false>(seed);
  EXPECT_EQ(pprof_agent::UnreportedRaces(), 0u);
}

TEST(CheckedWrappers, MapMatchesStdIncludingOrder) {
  for (uint32_t seed : {1u, 2u, 3u})
    MapSequence<pprof_agent::checked_map<int, int>, std::map<int, int>, true>(seed);
  pprof_agent::checked_map<int, int> m{{3, 1}, {1, 2}, {2, 3}};
  std::map<int, int> s{{3, 1}, {1, 2}, {2, 3}};
  EXPECT_EQ(m.lower_bound(2)->first, s.lower_bound(2)->first);
  EXPECT_EQ(m.upper_bound(2)->first, s.upper_bound(2)->first);
  EXPECT_EQ(m.rbegin()->first, s.rbegin()->first);
  EXPECT_EQ(pprof_agent::UnreportedRaces(), 0u);
}

TEST(CheckedWrappers, UnorderedSetMatchesStd) {
  for (uint32_t seed : {1u, 2u, 3u})
    SetSequence<pprof_agent::checked_unordered_set<int>, std::unordered_set<int>, false>(seed);
  EXPECT_EQ(pprof_agent::UnreportedRaces(), 0u);
}

TEST(CheckedWrappers, SetMatchesStdIncludingOrder) {
  for (uint32_t seed : {1u, 2u, 3u})
    SetSequence<pprof_agent::checked_set<int>, std::set<int>, true>(seed);
  EXPECT_EQ(pprof_agent::UnreportedRaces(), 0u);
}

TEST(CheckedWrappers, VectorMatchesStdIncludingOrder) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    std::mt19937 rng(seed);
    pprof_agent::checked_vector<int> c;
    std::vector<int> s;
    for (int step = 0; step < 20000; ++step) {
      const int v = static_cast<int>(rng() % 1000);
      switch (rng() % 7) {
        case 0: c.push_back(v); s.push_back(v); break;
        case 1: if (!s.empty()) { c.pop_back(); s.pop_back(); } break;
        case 2:
          if (!s.empty()) {
            size_t i = rng() % s.size();
            ASSERT_EQ(c[i], s[i]);
            c[i] = v;
            s[i] = v;
          }
          break;
        case 3: {
          long i = static_cast<long>(rng() % (s.size() + 1));
          c.insert(c.begin() + i, v);
          s.insert(s.begin() + i, v);
          break;
        }
        case 4:
          if (!s.empty()) {
            long i = static_cast<long>(rng() % s.size());
            c.erase(c.begin() + i);
            s.erase(s.begin() + i);
          }
          break;
        case 5: if (rng() % 100 == 0) { c.resize(s.size() / 2); s.resize(s.size() / 2); } break;
        case 6: c.emplace_back(v); s.emplace_back(v); break;
      }
      ASSERT_EQ(c.size(), s.size());
      if (!s.empty()) {
        ASSERT_EQ(c.front(), s.front());
        ASSERT_EQ(c.back(), s.back());
      }
      if (step % 500 == 0) {
        ASSERT_EQ(Items(c), s);
      }
    }
    std::sort(c.begin(), c.end());
    std::sort(s.begin(), s.end());
    ASSERT_EQ(Items(c), s);
    ASSERT_EQ(c.end() - c.begin(), static_cast<long>(s.size()));
  }
  EXPECT_EQ(pprof_agent::UnreportedRaces(), 0u);
}

// Without the agent a real detection is only counted (the weak entry point
// is null): a write section open on another thread while this one reads.
TEST(CheckedWrappers, WithoutTheAgentDetectionsAreCountedOnly) {
  pprof_agent::AccessChecker checker{"Standalone"};
  std::atomic<int> stage{0};
  std::thread writer([&] {
    pprof_agent::WriteScope w(checker);
    stage = 1;
    while (stage.load() != 2) {
    }
  });
  while (stage.load() != 1) {
  }
  const uint64_t before = pprof_agent::UnreportedRaces();
  { pprof_agent::ReadScope r(checker); }
  stage = 2;
  writer.join();
  EXPECT_EQ(pprof_agent::UnreportedRaces(), before + 2);  // on entry and on exit
  { pprof_agent::ReadScope r(checker); }                   // the section is closed
  EXPECT_EQ(pprof_agent::UnreportedRaces(), before + 2);
}

}  // namespace
