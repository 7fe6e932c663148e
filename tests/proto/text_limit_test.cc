// The size limit of the legacy texts (kMaxTextBytes in
// proto/profile_builder.h): every writer stops adding records at the limit,
// says how many it left out in a closing "#" line, and keeps its header
// totals over all records. Small limits here, so each test builds a few
// hundred records rather than 32 MiB.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <regex>
#include <string>
#include <vector>

#include "profiler/threads/thread_dump.h"
#include "proto/profile_builder.h"
#include "proto/thread_dump_text.h"

namespace pprof_agent::internal {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// Every address is a function with a 40-character name, so each record has
// a known, sizeable shape.
class NamedSymbols : public SymbolSource {
 public:
  std::vector<MappingInfo> Mappings() override { return {}; }
  LocationInfo Symbolize(uint64_t address) override {
    ++calls;
    LocationInfo loc;
    FrameInfo f;
    f.name = "Function_" + std::to_string(address) + std::string(24, 'x');
    f.file = "file.cc";
    f.line = 1;
    loc.frames.push_back(f);
    return loc;
  }
  int calls = 0;
};

constexpr int kRecords = 300;

// kRecords samples, sample i with i+1 objects of 100 bytes on a stack of
// four distinct addresses.
Snapshot Samples(std::vector<ValueType> types) {
  Snapshot s;
  s.sample_types = std::move(types);
  s.period_type = {"space", "bytes"};
  s.period = 1;  // heap values printed unscaled
  for (int i = 0; i < kRecords; ++i) {
    const uint64_t base = 0x10000 + 0x100 * static_cast<uint64_t>(i);
    s.stacks.push_back({{base, base + 0x10, base + 0x20, base + 0x30}, false});
    Sample sample;
    sample.stack = static_cast<size_t>(i);
    for (size_t t = 0; t < s.sample_types.size(); ++t) {
      sample.values.push_back((i + 1) * (t % 2 == 0 ? 1 : 100));
    }
    s.samples.push_back(sample);
  }
  s.comments = {"a comment from the recorder"};
  return s;
}

Snapshot Heap() {
  return Samples({{"alloc_objects", "count"},
                  {"alloc_space", "bytes"},
                  {"inuse_objects", "count"},
                  {"inuse_space", "bytes"}});
}

// Records are the lines with " @ " (heap, contention, count and generic
// texts alike).
int CountRecords(const std::string& text) {
  int n = 0;
  for (size_t pos = text.find('\n'); pos != std::string::npos;
       pos = text.find('\n', pos + 1)) {
    const size_t end = text.find('\n', pos + 1);
    const std::string line = text.substr(pos + 1, end - pos - 1);
    if (!line.empty() && line[0] != '#' &&
        line.find(" @ ") != std::string::npos) {
      ++n;
    }
  }
  return n;
}

// The left-out count of the truncation line, or -1 when there is none.
int LeftOut(const std::string& text, size_t limit, const std::string& what) {
  const std::regex re("\n# pprof-agent: text truncated at " +
                      std::to_string(limit) + " bytes: ([0-9]+) of ([0-9]+) " +
                      what + " left out \\(debug=0 has them all\\)\n");
  std::smatch m;
  if (!std::regex_search(text, m, re)) return -1;
  EXPECT_EQ(std::stoi(m[2]), kRecords);
  return std::stoi(m[1]);
}

// What every capped text must satisfy: records written + left out = all of
// them, and the text passed the limit by less than one record plus the
// closing comments (`slack`).
void ExpectCut(const std::string& text, size_t limit, size_t slack) {
  const int left_out = LeftOut(text, limit, "records");
  ASSERT_GT(left_out, 0) << text.substr(text.size() > 600 ? text.size() - 600
                                                          : 0);
  EXPECT_EQ(CountRecords(text) + left_out, kRecords);
  EXPECT_GE(text.size(), limit);
  EXPECT_LT(text.size(), limit + slack);
  // The recorder's own comments are still there, after the truncation line.
  EXPECT_THAT(text, EndsWith("# a comment from the recorder\n"));
}

TEST(TextLimit, HeapTextStopsAtTheLimitAndKeepsTotalsOfAllRecords) {
  NamedSymbols symbols;
  const std::string full = LegacyHeapText(Heap(), symbols);
  ASSERT_EQ(LeftOut(full, kMaxTextBytes, "records"), -1);
  ASSERT_EQ(CountRecords(full), kRecords);
  const size_t limit = full.size() / 4;

  NamedSymbols capped_symbols;
  const std::string cut = LegacyHeapText(Heap(), capped_symbols, limit);

  ExpectCut(cut, limit, 1024);
  // Same header: the totals count every record, printed or not.
  const std::string header = full.substr(0, full.find('\n') + 1);
  EXPECT_THAT(cut, StartsWith(header));
  EXPECT_EQ(header, "heap profile: 45150: 4515000 [45150: 4515001] @ heap/2\n");
  // Largest in-use first, so what is left out is the smallest.
  EXPECT_THAT(cut, HasSubstr("\n300: 30000 [300: 30000] @ "));
  EXPECT_THAT(cut, Not(HasSubstr("\n1: 100 [1: 100] @ ")));
  // Records not written are not symbolized either.
  EXPECT_LT(capped_symbols.calls, symbols.calls / 2);
}

TEST(TextLimit, TextUnderTheLimitHasNoTruncationLine) {
  NamedSymbols symbols;
  const std::string full = LegacyHeapText(Heap(), symbols);
  const std::string same = LegacyHeapText(Heap(), symbols, full.size() + 1);
  EXPECT_EQ(same, full);
  EXPECT_THAT(same, Not(HasSubstr("truncated")));
}

TEST(TextLimit, ContentionTextStopsAtTheLimit) {
  NamedSymbols symbols;
  const Snapshot snap =
      Samples({{"contentions", "count"}, {"delay", "nanoseconds"}});
  const std::string full = LegacyContentionText(snap, "mutex", 1, symbols);
  const std::string cut =
      LegacyContentionText(snap, "mutex", 1, symbols, full.size() / 3);
  ExpectCut(cut, full.size() / 3, 1024);
  EXPECT_THAT(cut, StartsWith("--- mutex:\ncycles/second=1000000000\n"
                              "sampling period=1\n30000 300 @ "));
}

// Counts near INT64_MAX (any snapshot a caller builds; the fuzzer found it):
// the total and the per-stack sums wrap, as Go's int64 sums do, and the
// text is still written. Under UBSan (the ASan build) an overflow here halts.
TEST(TextLimit, CountTextSumsOfHugeCountsDoNotOverflow) {
  NamedSymbols symbols;
  Snapshot snap = Samples({{"goroutine", "count"}});
  for (Sample& sample : snap.samples) sample.values[0] = INT64_MAX - 1;
  snap.samples.push_back(snap.samples[0]);  // the same stack twice
  const std::string text = LegacyCountProfileText(snap, "goroutine", symbols);
  EXPECT_THAT(text, StartsWith("goroutine profile: total "));
  EXPECT_EQ(CountRecords(text), kRecords);
}

TEST(TextLimit, CountTextStopsAtTheLimitAndKeepsTheTotal) {
  NamedSymbols symbols;
  const Snapshot snap = Samples({{"goroutine", "count"}});
  const std::string full = LegacyCountProfileText(snap, "goroutine", symbols);
  const std::string cut =
      LegacyCountProfileText(snap, "goroutine", symbols, full.size() / 3);
  ExpectCut(cut, full.size() / 3, 1024);
  EXPECT_THAT(cut, StartsWith("goroutine profile: total 45150\n300 @ "));
}

TEST(TextLimit, GenericTextStopsAtTheLimit) {
  NamedSymbols symbols;
  const Snapshot snap = Samples({{"samples", "count"}, {"cpu", "nanoseconds"}});
  const std::string full = LegacyHeapText(snap, symbols);
  ASSERT_THAT(full, StartsWith("profile: samples/count"));
  const std::string cut = LegacyHeapText(snap, symbols, full.size() / 2);
  ExpectCut(cut, full.size() / 2, 1024);
}

TEST(TextLimit, ThreadDumpStopsListingThreadsAtTheLimit) {
  NamedSymbols symbols;
  ThreadDump dump;
  dump.pid = 42;
  for (int i = 0; i < kRecords; ++i) {
    DumpedThread t;
    t.tid = 1000 + i;
    t.name = "worker";
    t.state = 'S';
    t.has_stack = true;
    t.pcs = {0x1000 + 0x100 * static_cast<uint64_t>(i), 0x2000};
    dump.threads.push_back(t);
  }
  dump.comments = {"a comment from the dump"};
  const std::string full = ThreadDumpText(dump, symbols);
  ASSERT_THAT(full, Not(HasSubstr("truncated")));
  const size_t limit = full.size() / 2;

  const std::string cut = ThreadDumpText(dump, symbols, limit);

  const int left_out = LeftOut(cut, limit, "threads");
  ASSERT_GT(left_out, 0);
  int listed = 0;
  for (size_t pos = cut.find("\nthread "); pos != std::string::npos;
       pos = cut.find("\nthread ", pos + 1)) {
    ++listed;
  }
  EXPECT_EQ(listed + left_out, kRecords);
  EXPECT_LT(cut.size(), limit + 1024);
  // The header still counts every thread.
  EXPECT_THAT(cut, StartsWith("pprof-agent thread dump: pid 42, 300 threads"));
  EXPECT_THAT(cut, EndsWith("# a comment from the dump\n"));
}

// Past kTextReserveAfterBytes the buffer is reserved once for the whole
// budget: building never reallocates to twice the limit.
TEST(TextLimit, BufferIsReservedOnceForTheWholeBudget) {
  std::string out(kTextReserveAfterBytes - 1, 'x');
  const size_t limit = 4 * kTextReserveAfterBytes;
  ASSERT_TRUE(TextHasRoom(&out, limit));
  EXPECT_LT(out.capacity(), limit);  // not yet: small texts stay small
  out.push_back('x');
  ASSERT_TRUE(TextHasRoom(&out, limit));
  const size_t reserved = out.capacity();
  EXPECT_GE(reserved, limit);
  EXPECT_LT(reserved, 2 * limit);
  while (TextHasRoom(&out, limit)) out.append(1000, 'y');
  EXPECT_EQ(out.capacity(), reserved);
  EXPECT_GE(out.size(), limit);
  EXPECT_LT(out.size(), limit + 1000);
}

}  // namespace
}  // namespace pprof_agent::internal
