// Go's legacy text of the mutex and block profiles (LegacyContentionText in
// proto/profile_builder.h), with fixed symbols.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "proto/profile_builder.h"

namespace pprof_agent::internal {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class FixedSymbols : public SymbolSource {
 public:
  std::vector<MappingInfo> Mappings() override { return {}; }
  LocationInfo Symbolize(uint64_t address) override {
    auto it = names.find(address);
    LocationInfo loc;
    if (it == names.end()) return loc;
    FrameInfo f;
    f.name = it->second;
    f.file = "lock.cc";
    f.line = 7;
    loc.frames.push_back(f);
    return loc;
  }
  std::map<uint64_t, std::string> names;
};

Snapshot TwoSamples() {
  Snapshot s;
  s.sample_types = {{"contentions", "count"}, {"delay", "nanoseconds"}};
  s.period_type = {"contentions", "count"};
  s.period = 1;
  s.stacks = {Stack{{0x1001, 0x2001}, false}, Stack{{0x3001}, false}};
  Sample small;
  small.stack = 0;
  small.values = {2, 500};
  Sample big;
  big.stack = 1;
  big.values = {1, 9000};
  s.samples = {small, big};
  s.comments = {"a note"};
  return s;
}

TEST(ContentionText, MutexHeaderRecordsAndFramesAsGo) {
  FixedSymbols symbols;
  symbols.names = {{0x1000, "Unlocker"}, {0x2000, "main"}, {0x3000, "Other"}};
  const std::string text = LegacyContentionText(TwoSamples(), "mutex", 5, symbols);
  EXPECT_EQ(text,
            "--- mutex:\n"
            "cycles/second=1000000000\n"
            "sampling period=5\n"
            // Largest delay first; "<cycles> <count> @ <pcs>".
            "9000 1 @ 0x3001\n"
            "#\t0x3001\tOther\tlock.cc:7\n"
            "\n"
            "500 2 @ 0x1001 0x2001\n"
            "#\t0x1001\tUnlocker\tlock.cc:7\n"
            "#\t0x2001\tmain\tlock.cc:7\n"
            "\n"
            "\n"
            "# a note\n");
}

TEST(ContentionText, BlockHasNoSamplingPeriod) {
  FixedSymbols symbols;
  const std::string text = LegacyContentionText(TwoSamples(), "block", 5, symbols);
  EXPECT_THAT(text, StartsWith("--- block:\ncycles/second=1000000000\n9000 1 @"));
  EXPECT_THAT(text, Not(HasSubstr("sampling period")));
  // Unknown frames print their address alone, as Go does.
  EXPECT_THAT(text, HasSubstr("#\t0x3001\n"));
}

TEST(ContentionText, MalformedSamplesAreSkippedAndCounted) {
  FixedSymbols symbols;
  Snapshot s = TwoSamples();
  s.samples[0].stack = 99;
  const std::string text = LegacyContentionText(s, "block", 1, symbols);
  EXPECT_THAT(text, HasSubstr("9000 1 @ 0x3001"));
  EXPECT_THAT(text, HasSubstr("dropped 1 malformed"));
}

TEST(ContentionText, OtherSampleTypesGetTheGenericListing) {
  FixedSymbols symbols;
  Snapshot s = TwoSamples();
  s.sample_types = {{"samples", "count"}, {"cpu", "nanoseconds"}};
  EXPECT_THAT(LegacyContentionText(s, "mutex", 1, symbols), StartsWith("profile:"));
}

}  // namespace
}  // namespace pprof_agent::internal
