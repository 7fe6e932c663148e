// The container suite's test program: the three map problems of issue 7,
// each in a function of its own, so the profiles can be checked site by
// site (tests/suites/containers/containers_test.cc):
//
//   ct::ChurnShortLivedMaps   churn: thousands of small unordered_maps, each
//                             built and destroyed within microseconds (each
//                             rehashed 3 times on the way to 32 entries: more
//                             rehashes than the growth site, fewer bytes)
//   ct::GrowWithoutReserve    growth: one unordered_map grown to 2M entries
//                             without reserve(), rehashed ~20 times
//   ct::BuildLongLivedIndex   leak: a std::map built by a named thread
//                             ("ct-builder") that exits, kept until the end
//
// Then "READY" on stdout, and it waits for stdin to close.
#include <pthread.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <thread>
#include <unordered_map>

#include "tests/integration/programs/program_common.h"

namespace ct {

constexpr int kChurnMaps = 20000;
constexpr int kChurnEntries = 32;
constexpr uint64_t kGrowthEntries = 2000000;
constexpr int kIndexEntries = 200000;

std::unordered_map<uint64_t, uint64_t>* g_grown = nullptr;
std::map<int, int64_t>* g_index = nullptr;
volatile uint64_t g_sink = 0;

IT_SITE void ChurnShortLivedMaps() {
  for (int i = 0; i < kChurnMaps; ++i) {
    std::unordered_map<int, int> m;
    for (int k = 0; k < kChurnEntries; ++k) m[k * 7 + i] = k;
    g_sink = g_sink + m.size();
  }
}

IT_SITE void GrowWithoutReserve() {
  g_grown = new std::unordered_map<uint64_t, uint64_t>();
  for (uint64_t k = 0; k < kGrowthEntries; ++k) (*g_grown)[k * 0x9e3779b97f4a7c15ULL] = k;
}

IT_SITE void BuildLongLivedIndex() {
  g_index = new std::map<int, int64_t>();
  for (int k = 0; k < kIndexEntries; ++k) (*g_index)[k] = k;
}

}  // namespace ct

int main() {
  it::StartAgentIfLinked();
  ct::ChurnShortLivedMaps();
  ct::GrowWithoutReserve();
  std::thread builder([] {
    pthread_setname_np(pthread_self(), "ct-builder");
    ct::BuildLongLivedIndex();
  });
  builder.join();
  std::printf("sizes %zu %zu\n", ct::g_grown->size(), ct::g_index->size());
  it::AnnounceReady();
  return it::WaitForStdinClose() ? 0 : 1;
}
