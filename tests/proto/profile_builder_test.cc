// Unit tests of proto/profile_builder: the Profile message checked the way
// pprof's reader checks it, address adjustment, deduplication, gzip, and Go's
// legacy heap text. Most tests use fixed symbols (FakeSymbols) so they state
// exact names, lines and inlining; the last ones go through the real
// Symbolizer with functions of this binary.
#include "proto/profile_builder.h"

#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/profile.pb.h"

// Functions the real-symbolizer tests look up by address. Outside
// pprof_agent:: on purpose: drop_frames hides that namespace.
namespace builder_test_symbols {
[[gnu::noinline]] int LeafForBuilderTest(int x) {
  asm volatile("" ::: "memory");
  return x * 3 + 1;
}
[[gnu::noinline]] int CallerForBuilderTest(int x) {
  asm volatile("" ::: "memory");
  return LeafForBuilderTest(x) + 2;
}
}  // namespace builder_test_symbols

namespace pprof_agent::internal {
namespace {

namespace pb = ::pprof_agent::profiles;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// --- helpers -----------------------------------------------------------------

// Fixed symbols; counts Symbolize() calls per address.
class FakeSymbols : public SymbolSource {
 public:
  std::vector<MappingInfo> Mappings() override {
    ++mapping_calls;
    return mappings;
  }
  LocationInfo Symbolize(uint64_t address) override {
    ++calls[address];
    auto it = symbols.find(address);
    return it == symbols.end() ? LocationInfo{} : it->second;
  }

  std::vector<MappingInfo> mappings;
  std::map<uint64_t, LocationInfo> symbols;
  std::map<uint64_t, int> calls;
  int mapping_calls = 0;
};

FrameInfo Frame(std::string name, std::string file = "", int64_t line = 0,
                std::string system_name = "", int64_t start_line = 0,
                int64_t column = 0) {
  FrameInfo f;
  f.name = std::move(name);
  f.system_name = std::move(system_name);
  f.file = std::move(file);
  f.line = line;
  f.column = column;
  f.start_line = start_line;
  return f;
}

LocationInfo Loc(int mapping, std::vector<FrameInfo> frames) {
  LocationInfo l;
  l.mapping = mapping;
  l.frames = std::move(frames);
  return l;
}

Snapshot HeapSnapshot() {
  Snapshot s;
  s.sample_types = {{"alloc_objects", "count"},
                    {"alloc_space", "bytes"},
                    {"inuse_objects", "count"},
                    {"inuse_space", "bytes"}};
  s.period_type = {"space", "bytes"};
  s.period = 524288;
  s.default_sample_type = "inuse_space";
  s.time_nanos = 1700000000123456789;
  s.duration_nanos = 0;
  return s;
}

Snapshot CpuSnapshot() {
  Snapshot s;
  s.sample_types = {{"samples", "count"}, {"cpu", "nanoseconds"}};
  s.period_type = {"cpu", "nanoseconds"};
  s.period = 10000000;
  s.time_nanos = 1700000000000000000;
  s.duration_nanos = 30000000000;
  return s;
}

pb::Profile Parse(const std::string& bytes) {
  pb::Profile p;
  EXPECT_TRUE(p.ParseFromString(bytes));
  return p;
}

// What pprof's reader (profile.Parse, then CheckValid) rejects, one line per
// problem; empty when pprof would accept the profile.
std::vector<std::string> PprofValidationErrors(const pb::Profile& p) {
  std::vector<std::string> errors;
  const int64_t n = p.string_table_size();
  if (n == 0 || !p.string_table(0).empty()) {
    errors.push_back("string_table[0] is not \"\"");
  }
  auto str = [&](int64_t i, const std::string& what) {
    if (i < 0 || i >= n) {
      errors.push_back(what + ": string index " + std::to_string(i) +
                       " out of range");
    }
  };
  for (const pb::ValueType& t : p.sample_type()) {
    str(t.type(), "sample_type.type");
    str(t.unit(), "sample_type.unit");
  }
  if (p.has_period_type()) {
    str(p.period_type().type(), "period_type.type");
    str(p.period_type().unit(), "period_type.unit");
  }
  str(p.drop_frames(), "drop_frames");
  str(p.keep_frames(), "keep_frames");
  str(p.doc_url(), "doc_url");
  str(p.default_sample_type(), "default_sample_type");
  for (int64_t c : p.comment()) str(c, "comment");
  if (p.default_sample_type() != 0 && p.default_sample_type() < n) {
    bool found = false;
    for (const pb::ValueType& t : p.sample_type()) {
      found |= t.type() == p.default_sample_type();
    }
    if (!found) errors.push_back("default_sample_type names no sample type");
  }

  std::set<uint64_t> mappings, functions, locations;
  for (const pb::Mapping& m : p.mapping()) {
    if (m.id() == 0 || !mappings.insert(m.id()).second) {
      errors.push_back("mapping id zero or repeated");
    }
    str(m.filename(), "mapping.filename");
    str(m.build_id(), "mapping.build_id");
  }
  for (const pb::Function& f : p.function()) {
    if (f.id() == 0 || !functions.insert(f.id()).second) {
      errors.push_back("function id zero or repeated");
    }
    str(f.name(), "function.name");
    str(f.system_name(), "function.system_name");
    str(f.filename(), "function.filename");
  }
  for (const pb::Location& l : p.location()) {
    if (l.id() == 0 || !locations.insert(l.id()).second) {
      errors.push_back("location id zero or repeated");
    }
    if (l.mapping_id() != 0 && !mappings.count(l.mapping_id())) {
      errors.push_back("location " + std::to_string(l.id()) +
                       ": unknown mapping " + std::to_string(l.mapping_id()));
    }
    for (const pb::Line& line : l.line()) {
      if (!functions.count(line.function_id())) {
        errors.push_back("location " + std::to_string(l.id()) +
                         ": unknown function " +
                         std::to_string(line.function_id()));
      }
    }
  }
  for (const pb::Sample& s : p.sample()) {
    if (s.value_size() != p.sample_type_size()) {
      errors.push_back("sample has " + std::to_string(s.value_size()) +
                       " values, want " + std::to_string(p.sample_type_size()));
    }
    for (uint64_t id : s.location_id()) {
      if (!locations.count(id)) {
        errors.push_back("sample: unknown location " + std::to_string(id));
      }
    }
    for (const pb::Label& l : s.label()) {
      str(l.key(), "label.key");
      str(l.str(), "label.str");
      str(l.num_unit(), "label.num_unit");
      if (l.str() != 0 && l.num() != 0) {
        errors.push_back("label has both str and num");
      }
    }
  }
  return errors;
}

const std::string& S(const pb::Profile& p, int64_t i) {
  static const std::string kBad = "<bad string index>";
  return i >= 0 && i < p.string_table_size() ? p.string_table(i) : kBad;
}

const pb::Location& LocationById(const pb::Profile& p, uint64_t id) {
  for (const pb::Location& l : p.location()) {
    if (l.id() == id) return l;
  }
  ADD_FAILURE() << "no location " << id;
  static const pb::Location kNone;
  return kNone;
}

const pb::Function& FunctionById(const pb::Profile& p, uint64_t id) {
  for (const pb::Function& f : p.function()) {
    if (f.id() == id) return f;
  }
  ADD_FAILURE() << "no function " << id;
  static const pb::Function kNone;
  return kNone;
}

std::vector<uint64_t> SampleAddresses(const pb::Profile& p,
                                      const pb::Sample& s) {
  std::vector<uint64_t> out;
  for (uint64_t id : s.location_id())
    out.push_back(LocationById(p, id).address());
  return out;
}

std::string Gunzip(const std::string& gz) {
  z_stream zs{};
  EXPECT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  char buf[1 << 16];
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - zs.avail_out);
  } while (rc == Z_OK);
  EXPECT_EQ(rc, Z_STREAM_END);
  EXPECT_EQ(zs.avail_in, 0u) << "trailing bytes after the gzip stream";
  inflateEnd(&zs);
  return out;
}

// --- the Profile message -----------------------------------------------------

TEST(ProfileBuilderTest, OutputParsesBackAndPassesPprofValidation) {
  FakeSymbols symbols;
  symbols.mappings = {{0x1000, 0x9000, 0, "/usr/bin/service", "abcdef", true,
                       true, true, true}};
  symbols.symbols[0x1fff] = Loc(0, {Frame("Alloc()", "a.cc", 3)});
  symbols.symbols[0x2fff] = Loc(0, {Frame("main", "main.cc", 9)});
  Snapshot snap = HeapSnapshot();
  snap.duration_nanos = 5000000000;
  snap.stacks = {{{0x2000, 0x3000}, false}, {{0x3000}, false}};
  snap.samples = {
      {0, {1, 16, 1, 16}, {Label::Num("bytes", 16)}},
      {1, {2, 64, 0, 0}, {Label::Num("bytes", 32)}},
  };

  const pb::Profile p = Parse(BuildProfileProto(snap, symbols));

  EXPECT_THAT(PprofValidationErrors(p), ElementsAre());
  ASSERT_EQ(p.sample_type_size(), 4);
  EXPECT_EQ(S(p, p.sample_type(0).type()), "alloc_objects");
  EXPECT_EQ(S(p, p.sample_type(1).unit()), "bytes");
  EXPECT_EQ(S(p, p.sample_type(3).type()), "inuse_space");
  EXPECT_EQ(S(p, p.period_type().type()), "space");
  EXPECT_EQ(S(p, p.period_type().unit()), "bytes");
  EXPECT_EQ(p.period(), 524288);
  EXPECT_EQ(p.time_nanos(), 1700000000123456789);
  EXPECT_EQ(p.duration_nanos(), 5000000000);
  EXPECT_EQ(S(p, p.drop_frames()), kDropFrames);
  ASSERT_EQ(p.sample_size(), 2);
  EXPECT_THAT(p.sample(0).value(), ElementsAre(1, 16, 1, 16));
  EXPECT_THAT(p.sample(1).value(), ElementsAre(2, 64, 0, 0));
  EXPECT_EQ(p.location_size(), 2);
  EXPECT_EQ(symbols.mapping_calls, 1);
}

TEST(ProfileBuilderTest, CallerAddressesAreReturnAddressMinusOne) {
  FakeSymbols symbols;
  Snapshot snap = CpuSnapshot();
  snap.stacks = {{{0x1000, 0x2000, 0x3000}, /*leaf_is_pc=*/false}};
  snap.samples = {{0, {1, 10000000}, {}}};

  const pb::Profile p = Parse(BuildProfileProto(snap, symbols));

  ASSERT_EQ(p.sample_size(), 1);
  // Not an exact PC either: the leaf of a hook's stack is a return address.
  EXPECT_THAT(SampleAddresses(p, p.sample(0)),
              ElementsAre(0xfff, 0x1fff, 0x2fff));
  EXPECT_EQ(symbols.calls.count(0x1000), 0u);
  EXPECT_EQ(symbols.calls[0x1fff], 1);
}

TEST(ProfileBuilderTest, ExactLeafPcIsNotAdjusted) {
  FakeSymbols symbols;
  Snapshot snap = CpuSnapshot();
  snap.stacks = {{{0x1000, 0x2000, 0x3000}, /*leaf_is_pc=*/true}};
  snap.samples = {{0, {1, 10000000}, {}}};

  const pb::Profile p = Parse(BuildProfileProto(snap, symbols));

  ASSERT_EQ(p.sample_size(), 1);
  EXPECT_THAT(SampleAddresses(p, p.sample(0)),
              ElementsAre(0x1000, 0x1fff, 0x2fff));
}

TEST(ProfileBuilderTest, EachDistinctAddressIsOneLocationSymbolizedOnce) {
  FakeSymbols symbols;
  Snapshot snap = CpuSnapshot();
  // 0x2000 as an exact PC and 0x2001 as a return address are both 0x2000.
  snap.stacks = {{{0x2000, 0x5000}, true},
                 {{0x1000, 0x2001, 0x5000}, true},
                 {{0x1000, 0x2001, 0x5000}, true}};
  snap.samples = {
      {0, {1, 1}, {}}, {1, {2, 2}, {}}, {2, {3, 3}, {}}, {1, {4, 4}, {}}};

  const pb::Profile p = Parse(BuildProfileProto(snap, symbols));

  EXPECT_THAT(PprofValidationErrors(p), ElementsAre());
  EXPECT_EQ(p.location_size(), 3);  // 0x1000, 0x2000, 0x4fff
  EXPECT_EQ(p.sample(0).location_id(0), p.sample(1).location_id(1));
  EXPECT_THAT(
      p.sample(1).location_id(),
      ElementsAre(p.sample(2).location_id(0), p.sample(2).location_id(1),
                  p.sample(2).location_id(2)));
  for (const auto& [address, count] : symbols.calls) {
    EXPECT_EQ(count, 1) << std::hex << address;
  }
  EXPECT_EQ(symbols.calls.size(), 3u);
}

TEST(ProfileBuilderTest, StringsAreDeduplicatedAndTableStartsEmpty) {
  FakeSymbols symbols;
  symbols.symbols[0xfff] = Loc(-1, {Frame("f", "count")});
  Snapshot snap = HeapSnapshot();
  snap.comments = {"bytes", "note", "note"};
  snap.stacks = {{{0x1000}, false}};
  snap.samples = {{0, {1, 2, 3, 4}, {Label::Str("count", "bytes")}}};

  const pb::Profile p = Parse(BuildProfileProto(snap, symbols));

  ASSERT_GT(p.string_table_size(), 0);
  EXPECT_EQ(p.string_table(0), "");
  std::set<std::string> seen;
  for (const std::string& s : p.string_table()) {
    EXPECT_TRUE(seen.insert(s).second) << "duplicate string '" << s << "'";
  }
  // Same string, same index wherever it is used.
  EXPECT_EQ(p.sample_type(0).unit(), p.sample_type(2).unit());
  EXPECT_EQ(p.comment(0), p.sample_type(1).unit());
  EXPECT_EQ(p.comment(1), p.comment(2));
  EXPECT_EQ(p.sample(0).label(0).key(), p.sample_type(0).unit());
}

TEST(ProfileBuilderTest, LabelsCarryEitherStringOrNumberWithUnit) {
  FakeSymbols symbols;
  Snapshot snap = HeapSnapshot();
  snap.stacks = {{{0x1000}, false}};
  snap.samples = {{0,
                   {1, 2, 3, 4},
                   {Label::Str("thread", "worker-1"),
                    Label::Num("bytes", 4096, "bytes"), Label::Num("n", 7)}}};

  const pb::Profile p = Parse(BuildProfileProto(snap, symbols));

  EXPECT_THAT(PprofValidationErrors(p), ElementsAre());
  ASSERT_EQ(p.sample(0).label_size(), 3);
  const pb::Label& str = p.sample(0).label(0);
  EXPECT_EQ(S(p, str.key()), "thread");
  EXPECT_EQ(S(p, str.str()), "worker-1");
  EXPECT_EQ(str.num(), 0);
  EXPECT_EQ(str.num_unit(), 0);
  const pb::Label& num = p.sample(0).label(1);
  EXPECT_EQ(S(p, num.key()), "bytes");
  EXPECT_EQ(num.str(), 0);
  EXPECT_EQ(num.num(), 4096);
  EXPECT_EQ(S(p, num.num_unit()), "bytes");
  const pb::Label& unitless = p.sample(0).label(2);
  EXPECT_EQ(unitless.num(), 7);
  EXPECT_EQ(unitless.num_unit(), 0);
}

TEST(ProfileBuilderTest, MappingsKeepSymbolizerOrderIdsAndFlags) {
  FakeSymbols symbols;
  symbols.mappings = {
      {0x10000, 0x20000, 0x1000, "/usr/bin/service", "0a1b2c", true, true, true,
       true},
      {0x70000, 0x80000, 0x2000, "/lib/libc.so.6", "", true, false, false,
       false},
  };
  symbols.symbols[0x1ffff] = Loc(0, {Frame("main", "main.cc", 3)});
  symbols.symbols[0x7ffff] = Loc(1, {Frame("start")});
  symbols.symbols[0x10fff] = Loc(-1, {});  // inside mapping 1, index unknown
  symbols.symbols[0x70fff] = Loc(5, {});   // stale index: found by address
  Snapshot snap = CpuSnapshot();
  snap.stacks = {{{0x20000, 0x80000, 0x11000, 0x71000, 0x999000}, false}};
  snap.samples = {{0, {1, 1}, {}}};

  const pb::Profile p = Parse(BuildProfileProto(snap, symbols));

  EXPECT_THAT(PprofValidationErrors(p), ElementsAre());
  ASSERT_EQ(p.mapping_size(), 2);
  const pb::Mapping& exe = p.mapping(0);
  EXPECT_EQ(exe.id(), 1u);
  EXPECT_EQ(exe.memory_start(), 0x10000u);
  EXPECT_EQ(exe.memory_limit(), 0x20000u);
  EXPECT_EQ(exe.file_offset(), 0x1000u);
  EXPECT_EQ(S(p, exe.filename()), "/usr/bin/service");
  EXPECT_EQ(S(p, exe.build_id()), "0a1b2c");
  EXPECT_TRUE(exe.has_functions() && exe.has_filenames() &&
              exe.has_line_numbers() && exe.has_inline_frames());
  const pb::Mapping& libc = p.mapping(1);
  EXPECT_EQ(libc.id(), 2u);
  EXPECT_EQ(S(p, libc.filename()), "/lib/libc.so.6");
  EXPECT_EQ(libc.build_id(), 0);
  EXPECT_TRUE(libc.has_functions());
  EXPECT_FALSE(libc.has_filenames() || libc.has_line_numbers() ||
               libc.has_inline_frames());

  std::vector<uint64_t> mapping_ids;
  for (uint64_t id : p.sample(0).location_id()) {
    mapping_ids.push_back(LocationById(p, id).mapping_id());
  }
  EXPECT_THAT(mapping_ids, ElementsAre(1, 2, 1, 2, 0));
}

TEST(ProfileBuilderTest, InlinedFramesAreLinesInnermostFirstSharingFunctions) {
  FakeSymbols symbols;
  // Two addresses in Outer; the first has Inner inlined into it.
  symbols.symbols[0x1fff] =
      Loc(-1, {Frame("Inner(int)", "inner.h", 12, "_Z5Inneri", 10, 5),
               Frame("Outer()", "outer.cc", 40, "_Z5Outerv", 30, 7)});
  symbols.symbols[0x2fff] =
      Loc(-1, {Frame("Outer()", "outer.cc", 44, "_Z5Outerv", 30, 3)});
  Snapshot snap = CpuSnapshot();
  snap.stacks = {{{0x2000, 0x3000}, false}};
  snap.samples = {{0, {1, 1}, {}}};

  const pb::Profile p = Parse(BuildProfileProto(snap, symbols));

  EXPECT_THAT(PprofValidationErrors(p), ElementsAre());
  EXPECT_EQ(p.function_size(), 2);
  const pb::Location& leaf = LocationById(p, p.sample(0).location_id(0));
  ASSERT_EQ(leaf.line_size(), 2);
  const pb::Function& inner = FunctionById(p, leaf.line(0).function_id());
  EXPECT_EQ(S(p, inner.name()), "Inner(int)");
  EXPECT_EQ(S(p, inner.system_name()), "_Z5Inneri");
  EXPECT_EQ(S(p, inner.filename()), "inner.h");
  EXPECT_EQ(inner.start_line(), 10);
  EXPECT_EQ(leaf.line(0).line(), 12);
  EXPECT_EQ(leaf.line(0).column(), 5);
  EXPECT_EQ(S(p, FunctionById(p, leaf.line(1).function_id()).name()),
            "Outer()");
  EXPECT_EQ(leaf.line(1).line(), 40);
  const pb::Location& caller = LocationById(p, p.sample(0).location_id(1));
  ASSERT_EQ(caller.line_size(), 1);
  EXPECT_EQ(caller.line(0).function_id(), leaf.line(1).function_id());
  EXPECT_EQ(caller.line(0).line(), 44);
  EXPECT_EQ(caller.line(0).column(), 3);
}

TEST(ProfileBuilderTest, FunctionsDifferingInFileOrStartLineAreDistinct) {
  FakeSymbols symbols;
  symbols.symbols[0xfff] = Loc(-1, {Frame("f", "a.cc", 1, "", 1)});
  symbols.symbols[0x1fff] = Loc(-1, {Frame("f", "b.cc", 1, "", 1)});
  symbols.symbols[0x2fff] = Loc(-1, {Frame("f", "a.cc", 9, "", 2)});
  symbols.symbols[0x3fff] = Loc(-1, {Frame("f", "a.cc", 5, "", 1)});
  Snapshot snap = CpuSnapshot();
  snap.stacks = {{{0x1000, 0x2000, 0x3000, 0x4000}, false}};
  snap.samples = {{0, {1, 1}, {}}};

  const pb::Profile p = Parse(BuildProfileProto(snap, symbols));

  EXPECT_EQ(p.function_size(), 3);
}

TEST(ProfileBuilderTest, AddressWithoutSymbolsHasNoLines) {
  FakeSymbols symbols;
  symbols.symbols[0x1fff] = Loc(-1, {Frame("", "", 0)});  // says nothing
  Snapshot snap = CpuSnapshot();
  snap.stacks = {{{0x1000, 0x2000}, true}};
  snap.samples = {{0, {1, 1}, {}}};

  const pb::Profile p = Parse(BuildProfileProto(snap, symbols));

  EXPECT_THAT(PprofValidationErrors(p), ElementsAre());
  ASSERT_EQ(p.location_size(), 2);
  EXPECT_EQ(p.location(0).line_size(), 0);
  EXPECT_EQ(p.location(1).line_size(), 0);
  EXPECT_EQ(p.function_size(), 0);
}

TEST(ProfileBuilderTest, DefaultSampleTypeIsAStringIndexOfItsName) {
  FakeSymbols symbols;
  Snapshot snap = HeapSnapshot();
  snap.default_sample_type = "alloc_space";

  const pb::Profile p = Parse(BuildProfileProto(snap, symbols));

  ASSERT_NE(p.default_sample_type(), 0);
  EXPECT_EQ(S(p, p.default_sample_type()), "alloc_space");
  EXPECT_EQ(p.default_sample_type(), p.sample_type(1).type());
}

TEST(ProfileBuilderTest, EmptyDefaultSampleTypeIsNotSet) {
  FakeSymbols symbols;
  const pb::Profile p = Parse(BuildProfileProto(CpuSnapshot(), symbols));
  EXPECT_EQ(p.default_sample_type(), 0);
}

TEST(ProfileBuilderTest, UnknownDefaultSampleTypeIsLeftOutWithAComment) {
  FakeSymbols symbols;
  Snapshot snap = CpuSnapshot();
  snap.default_sample_type = "inuse_space";

  const pb::Profile p = Parse(BuildProfileProto(snap, symbols));

  EXPECT_EQ(p.default_sample_type(), 0);
  EXPECT_THAT(PprofValidationErrors(p), ElementsAre());
  ASSERT_EQ(p.comment_size(), 1);
  EXPECT_THAT(S(p, p.comment(0)), HasSubstr("inuse_space"));
}

TEST(ProfileBuilderTest, CommentsAreKeptInOrder) {
  FakeSymbols symbols;
  Snapshot snap = HeapSnapshot();
  snap.comments = {"dropped 3 samples: table full", "heap rate 524288"};

  const pb::Profile p = Parse(BuildProfileProto(snap, symbols));

  ASSERT_EQ(p.comment_size(), 2);
  EXPECT_EQ(S(p, p.comment(0)), "dropped 3 samples: table full");
  EXPECT_EQ(S(p, p.comment(1)), "heap rate 524288");
}

TEST(ProfileBuilderTest, EmptySnapshotIsStillValid) {
  FakeSymbols symbols;
  const std::string bytes = BuildProfileProto(Snapshot{}, symbols);

  const pb::Profile p = Parse(bytes);

  EXPECT_THAT(PprofValidationErrors(p), ElementsAre());
  EXPECT_EQ(p.sample_size(), 0);
  EXPECT_EQ(p.sample_type_size(), 0);
  EXPECT_FALSE(p.has_period_type());
  EXPECT_EQ(S(p, p.drop_frames()), kDropFrames);
  EXPECT_EQ(Gunzip(Gzip(bytes)), bytes);
}

// --- robustness (the builder is fuzzed) --------------------------------------

TEST(ProfileBuilderTest, MalformedSamplesAreSkippedAndCounted) {
  FakeSymbols symbols;
  Snapshot snap = HeapSnapshot();
  snap.stacks = {{{0x1000}, false}};
  snap.samples = {
      {0, {1, 2, 3, 4}, {}},
      {7, {1, 2, 3, 4}, {}},          // stack index out of range
      {0, {1, 2}, {}},                // too few values
      {0, {1, 2, 3, 4, 5}, {}},       // too many
      {UINT32_MAX, {1, 2, 3, 4}, {}}  // far out of range
  };

  const pb::Profile p = Parse(BuildProfileProto(snap, symbols));

  EXPECT_THAT(PprofValidationErrors(p), ElementsAre());
  EXPECT_EQ(p.sample_size(), 1);
  ASSERT_EQ(p.comment_size(), 1);
  EXPECT_THAT(S(p, p.comment(0)), HasSubstr("dropped 4 malformed samples"));

  const std::string text = LegacyHeapText(snap, symbols);
  EXPECT_THAT(text, HasSubstr("# pprof-agent: dropped 4 malformed samples"));
  Snapshot cpu = CpuSnapshot();
  cpu.samples = {{3, {1, 1}, {}}};
  EXPECT_THAT(LegacyHeapText(cpu, symbols),
              HasSubstr("dropped 1 malformed samples"));
}

TEST(ProfileBuilderTest, RandomSnapshotsNeverCrashAndStayValid) {
  std::mt19937_64 rng(20240611);
  auto pick = [&](uint64_t n) { return n == 0 ? 0 : rng() % n; };
  const std::vector<std::string> names = {"",
                                          "malloc",
                                          "operator new(unsigned long)",
                                          "main",
                                          "pprof_agent::internal::X()",
                                          std::string(5000, 'x') + "(int)"};
  for (int round = 0; round < 300; ++round) {
    FakeSymbols symbols;
    for (int i = 0, n = pick(4); i < n; ++i) {
      const uint64_t start = rng();
      symbols.mappings.push_back(
          {start, start + pick(1 << 20), rng(), "m" + std::to_string(i),
           pick(2) ? "" : "beef", !!pick(2), !!pick(2), !!pick(2), !!pick(2)});
    }
    Snapshot snap;
    const int types = pick(5);
    for (int i = 0; i < types; ++i) {
      snap.sample_types.push_back({names[pick(names.size())], "u"});
    }
    if (pick(3) == 0) snap = HeapSnapshot();
    snap.period = static_cast<int64_t>(rng());
    snap.default_sample_type = names[pick(names.size())];
    for (int i = 0, n = pick(6); i < n; ++i) {
      Stack stack;
      stack.leaf_is_pc = pick(2);
      for (int j = 0, d = pick(8); j < d; ++j) {
        const uint64_t pc = pick(4) == 0 ? pick(3) : rng();
        stack.pcs.push_back(pc);
        if (pick(2)) {
          LocationInfo info;
          info.mapping = static_cast<int>(pick(8)) - 2;
          for (int k = 0, f = pick(4); k < f; ++k) {
            info.frames.push_back(
                Frame(names[pick(names.size())], pick(2) ? "f.cc" : "",
                      static_cast<int64_t>(rng()), "", pick(3)));
          }
          symbols.symbols[pc - 1] = info;
          symbols.symbols[pc] = info;
        }
      }
      snap.stacks.push_back(stack);
    }
    for (int i = 0, n = pick(10); i < n; ++i) {
      Sample s;
      s.stack = static_cast<uint32_t>(pick(snap.stacks.size() + 2));
      const size_t values = pick(4) == 0 ? pick(6) : snap.sample_types.size();
      for (size_t v = 0; v < values; ++v) {
        s.values.push_back(static_cast<int64_t>(rng()));
      }
      if (pick(2)) s.labels.push_back(Label::Num("bytes", rng(), "bytes"));
      if (pick(2))
        s.labels.push_back(Label::Str("k", names[pick(names.size())]));
      snap.samples.push_back(s);
    }
    snap.comments = {"c\nwith newline"};

    SCOPED_TRACE(round);
    const std::string bytes = BuildProfileProto(snap, symbols);
    const pb::Profile p = Parse(bytes);
    EXPECT_THAT(PprofValidationErrors(p), ElementsAre());
    EXPECT_EQ(Gunzip(BuildProfileGzip(snap, symbols)), bytes);
    const std::string text = LegacyHeapText(snap, symbols);
    EXPECT_THAT(text, HasSubstr("# c with newline\n"));
  }
}

// --- gzip --------------------------------------------------------------------

TEST(GzipTest, RoundTripsThroughZlibInflate) {
  std::mt19937 rng(7);
  std::string random(3 << 20, '\0');  // incompressible: output must grow
  for (char& c : random) c = static_cast<char>(rng());
  for (const std::string& data : {std::string(), std::string("hello, pprof"),
                                  std::string(1 << 20, 'a'), random}) {
    const std::string gz = Gzip(data);
    ASSERT_GE(gz.size(), 18u);  // 10-byte header + 8-byte trailer at least
    // A real gzip member: magic, deflate, as gunzip and pprof expect.
    EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);
    EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
    EXPECT_EQ(gz[2], 8);
    EXPECT_EQ(Gunzip(gz), data);
  }
}

TEST(GzipTest, BuildProfileGzipIsTheGzippedProto) {
  FakeSymbols symbols;
  Snapshot snap = HeapSnapshot();
  snap.stacks = {{{0x1000, 0x2000}, false}};
  snap.samples = {{0, {1, 2, 3, 4}, {}}};

  const std::string gz = BuildProfileGzip(snap, symbols);

  EXPECT_EQ(Gunzip(gz), BuildProfileProto(snap, symbols));
  EXPECT_THAT(PprofValidationErrors(Parse(Gunzip(gz))), ElementsAre());
}

// --- drop_frames -------------------------------------------------------------

// pprof matches drop_frames anchored, against the name without its argument
// list (simplifyFunc); `simplified` is that name.
struct DropCase {
  std::string name;
  std::string simplified;
  bool dropped;
};

const std::vector<DropCase>& DropCases() {
  static const std::vector<DropCase> kCases = {
      {"malloc", "malloc", true},
      {"calloc", "calloc", true},
      {"realloc", "realloc", true},
      {"free", "free", true},
      {"posix_memalign", "posix_memalign", true},
      {"aligned_alloc", "aligned_alloc", true},
      {"__libc_malloc", "__libc_malloc", true},
      {"malloc@@GLIBC_2.2.5", "malloc@@GLIBC_2.2.5", true},
      {"__libc_free@GLIBC_2.2.5", "__libc_free@GLIBC_2.2.5", true},
      {"mallocx@@JEMALLOC", "mallocx@@JEMALLOC", false},
      {"__libc_start_main@@GLIBC_2.34", "__libc_start_main@@GLIBC_2.34", false},
      {"operator new(unsigned long)", "operator new", true},
      {"operator new[](unsigned long, std::align_val_t)", "operator new[]",
       true},
      {"operator delete(void*, unsigned long)", "operator delete", true},
      {"pprof_agent::internal::HeapProfiler::RecordSlow(unsigned long)",
       "pprof_agent::internal::HeapProfiler::RecordSlow", true},
      {"pprof_agent::internal::(anonymous namespace)::Hook()",
       "pprof_agent::internal::(anonymous namespace)::Hook", true},
      {"void pprof_agent::internal::Record<int>(int)",
       "void pprof_agent::internal::Record<int>", true},
      {"std::allocator_traits<std::allocator<int> >::allocate("
       "std::allocator<int>&, unsigned long)",
       "std::allocator_traits<std::allocator<int> >::allocate", false},
      {"__gnu_cxx::new_allocator<int>::allocate(unsigned long, void const*)",
       "__gnu_cxx::new_allocator<int>::allocate", false},
      {"std::vector<int, std::allocator<int> >::push_back(int const&)",
       "std::vector<int, std::allocator<int> >::push_back", false},
      {"my::mallocator::get()", "my::mallocator::get", false},
      {"mallocx", "mallocx", false},
      {"pprof_agent_demo::Work()", "pprof_agent_demo::Work", false},
      {"std::vector<pprof_agent::X, std::allocator<pprof_agent::X> >::"
       "reserve(unsigned long)",
       "std::vector<pprof_agent::X, std::allocator<pprof_agent::X> >::reserve",
       false},
      {"main", "main", false},
  };
  return kCases;
}

TEST(DropFramesTest, HidesAgentAndAllocationEntryPointsButNotStdAllocator) {
  // ECMAScript and RE2 agree on this subset of syntax.
  const std::regex drop("^(" + std::string(kDropFrames) + ")$");
  for (const DropCase& c : DropCases()) {
    EXPECT_EQ(std::regex_match(c.simplified, drop), c.dropped) << c.name;
  }
}

// --- legacy heap text --------------------------------------------------------

TEST(LegacyHeapTextTest, PrintsGoHeaderRecordsAndFrameLines) {
  FakeSymbols symbols;
  symbols.symbols[0x1fff] = Loc(0, {Frame("Small()", "small.cc", 7)});
  symbols.symbols[0x3fff] =
      Loc(0, {Frame("Inlined()", "big.h", 2), Frame("Big()", "big.cc", 20)});
  symbols.symbols[0x4fff] = Loc(0, {Frame("main")});  // no file known
  Snapshot snap = HeapSnapshot();
  snap.period = 1;  // every allocation recorded: values are printed as is
  snap.stacks = {{{0x2000, 0x5000}, false}, {{0x4000, 0x5000, 0x6000}, false}};
  snap.samples = {{0, {2, 200, 1, 100}, {}}, {1, {4, 4000, 3, 3000}, {}}};

  const std::string text = LegacyHeapText(snap, symbols);

  EXPECT_EQ(text,
            "heap profile: 4: 3100 [6: 4200] @ heap/2\n"
            "3: 3000 [4: 4000] @ 0x4000 0x5000 0x6000\n"
            "#\t0x4000\tInlined()\tbig.h:2\n"
            "#\t0x4000\tBig()\tbig.cc:20\n"
            "#\t0x5000\tmain\n"
            "#\t0x6000\n"
            "\n"
            "1: 100 [2: 200] @ 0x2000 0x5000\n"
            "#\t0x2000\tSmall()\tsmall.cc:7\n"
            "#\t0x5000\tmain\n"
            "\n");
}

TEST(LegacyHeapTextTest, RateIsTwiceTheSamplingPeriodAsGoPrintsIt) {
  FakeSymbols symbols;
  const std::string text = LegacyHeapText(HeapSnapshot(), symbols);
  EXPECT_EQ(text, "heap profile: 0: 0 [0: 1] @ heap/1048576\n");
}

TEST(LegacyHeapTextTest, AllocBytesAreNudgedWhenEqualToInuseBytes) {
  FakeSymbols symbols;
  Snapshot snap = HeapSnapshot();
  snap.period = 1;
  snap.stacks = {{{0x1000}, false}};
  snap.samples = {{0, {5, 500, 5, 500}, {}}};

  EXPECT_THAT(LegacyHeapText(snap, symbols),
              testing::StartsWith("heap profile: 5: 500 [5: 501] @ heap/2\n"
                                  "5: 500 [5: 500] @ 0x1000\n"));
}

TEST(LegacyHeapTextTest, PrintsRawSampleCountsThatPprofScalesBack) {
  FakeSymbols symbols;
  Snapshot snap = HeapSnapshot();  // rate 512 KiB
  // How the recorder scales n sampled allocations of `size` bytes.
  auto scaled = [&](int64_t n, int64_t size) {
    const double s = 1 / -std::expm1(-static_cast<double>(size) / 524288);
    return std::vector<int64_t>{std::llround(n * s),
                                std::llround(n * size * s)};
  };
  auto values = [&](int64_t alloc, int64_t inuse, int64_t size) {
    std::vector<int64_t> v = scaled(alloc, size);
    for (int64_t x : scaled(inuse, size)) v.push_back(x);
    return v;
  };
  snap.stacks = {{{0x1000}, false}, {{0x2000}, false}, {{0x3000}, false}};
  snap.samples = {
      {0, values(1, 1, 16), {Label::Num("bytes", 16)}},
      // Few, large objects: rounding the scaled count would spoil the
      // average size, so the exact size comes from the `bytes` label.
      {1, values(3, 2, 1048576), {Label::Num("bytes", 1048576)}},
      // No label: the average size is used.
      {2, values(2, 2, 64), {}},
  };

  EXPECT_EQ(LegacyHeapText(snap, symbols),
            "heap profile: 5: 2097296 [6: 3145872] @ heap/1048576\n"
            "2: 2097152 [3: 3145728] @ 0x2000\n#\t0x2000\n\n"
            "2: 128 [2: 128] @ 0x3000\n#\t0x3000\n\n"
            "1: 16 [1: 16] @ 0x1000\n#\t0x1000\n\n");
}

TEST(LegacyHeapTextTest, HidesLeadingDropFramesLikeGoHidesRuntimeFrames) {
  for (const DropCase& c : DropCases()) {
    FakeSymbols symbols;
    symbols.symbols[0xfff] = Loc(-1, {Frame(c.name)});
    symbols.symbols[0x1fff] = Loc(-1, {Frame("UserCode()")});
    Snapshot snap = HeapSnapshot();
    snap.stacks = {{{0x1000, 0x2000}, false}};
    snap.samples = {{0, {1, 1, 1, 1}, {}}};

    const std::string text = LegacyHeapText(snap, symbols);

    EXPECT_THAT(text, HasSubstr("#\t0x2000\tUserCode()\n"));
    if (c.dropped) {
      EXPECT_THAT(text, Not(HasSubstr("#\t0x1000"))) << c.name;
    } else {
      EXPECT_THAT(text, HasSubstr("#\t0x1000\t" + c.name + "\n")) << c.name;
    }
  }
}

TEST(LegacyHeapTextTest, KeepsDropFramesAfterUserCodeAndWhenAllWouldHide) {
  FakeSymbols symbols;
  symbols.symbols[0xfff] = Loc(-1, {Frame("operator new(unsigned long)")});
  symbols.symbols[0x1fff] = Loc(-1, {Frame("UserCode()")});
  symbols.symbols[0x2fff] = Loc(-1, {Frame("malloc")});
  Snapshot snap = HeapSnapshot();
  snap.period = 1;
  snap.stacks = {{{0x1000, 0x2000, 0x3000}, false}, {{0x1000, 0x3000}, false}};
  snap.samples = {{0, {1, 2, 1, 2}, {}}, {1, {1, 1, 1, 1}, {}}};

  EXPECT_EQ(LegacyHeapText(snap, symbols),
            "heap profile: 2: 3 [2: 4] @ heap/2\n"
            "1: 2 [1: 2] @ 0x1000 0x2000 0x3000\n"
            "#\t0x2000\tUserCode()\n"
            "#\t0x3000\tmalloc\n"
            "\n"
            "1: 1 [1: 1] @ 0x1000 0x3000\n"
            "#\t0x1000\toperator new(unsigned long)\n"
            "#\t0x3000\tmalloc\n"
            "\n");
}

TEST(LegacyHeapTextTest, EndsWithCommentLines) {
  FakeSymbols symbols;
  Snapshot snap = HeapSnapshot();
  snap.comments = {"dropped 2 samples", "two\nlines"};

  EXPECT_EQ(LegacyHeapText(snap, symbols),
            "heap profile: 0: 0 [0: 1] @ heap/1048576\n"
            "\n"
            "# dropped 2 samples\n"
            "# two lines\n");
}

TEST(LegacyHeapTextTest, OtherSampleTypesGetGenericRecords) {
  FakeSymbols symbols;
  symbols.symbols[0x1000] = Loc(-1, {Frame("malloc")});
  symbols.symbols[0x1fff] = Loc(-1, {Frame("Spin()", "spin.cc", 4)});
  Snapshot snap = CpuSnapshot();
  snap.stacks = {{{0x1000, 0x2000}, true}};
  snap.samples = {{0, {3, 30000000}, {}}};
  snap.comments = {"note"};

  EXPECT_EQ(LegacyHeapText(snap, symbols),
            "profile: samples/count cpu/nanoseconds @ cpu/nanoseconds "
            "10000000\n"
            "3 30000000 @ 0x1000 0x2000\n"
            "#\t0x1000\tmalloc\n"  // the leaf is kept: it is real CPU time
            "#\t0x2000\tSpin()\tspin.cc:4\n"
            "\n"
            "\n"
            "# note\n");
}

// --- the real Symbolizer -----------------------------------------------------

uint64_t AddressOf(int (*fn)(int)) { return reinterpret_cast<uint64_t>(fn); }

TEST(RealSymbolizerTest, ProfileNamesFunctionsOfThisBinary) {
  const uint64_t leaf = AddressOf(&builder_test_symbols::LeafForBuilderTest);
  const uint64_t caller =
      AddressOf(&builder_test_symbols::CallerForBuilderTest);
  ASSERT_EQ(builder_test_symbols::CallerForBuilderTest(1), 6);
  Snapshot snap = CpuSnapshot();
  // An exact leaf PC and a "return address" one past the caller's entry.
  snap.stacks = {{{leaf, caller + 1}, true}};
  snap.samples = {{0, {1, 10000000}, {}}};

  const pb::Profile p = Parse(BuildProfileProto(snap, Symbolizer::Global()));

  EXPECT_THAT(PprofValidationErrors(p), ElementsAre());
  ASSERT_GT(p.mapping_size(), 0);
  // The main executable is the first mapping.
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe");
  EXPECT_EQ(S(p, p.mapping(0).filename()), exe);
  EXPECT_TRUE(p.mapping(0).has_functions());
  ASSERT_EQ(p.sample_size(), 1);
  const std::vector<std::string> want = {"LeafForBuilderTest",
                                         "CallerForBuilderTest"};
  for (int i = 0; i < 2; ++i) {
    const pb::Location& loc = LocationById(p, p.sample(0).location_id(i));
    EXPECT_EQ(loc.mapping_id(), 1u);
    EXPECT_EQ(loc.address(), i == 0 ? leaf : caller);
    ASSERT_GE(loc.line_size(), 1);
    const pb::Function& fn =
        FunctionById(p, loc.line(loc.line_size() - 1).function_id());
    EXPECT_THAT(S(p, fn.name()), HasSubstr(want[i]));
  }
}

TEST(RealSymbolizerTest, LegacyTextNamesFunctionsOfThisBinary) {
  const uint64_t leaf = AddressOf(&builder_test_symbols::LeafForBuilderTest);
  Snapshot snap = HeapSnapshot();
  snap.stacks = {{{leaf + 1}, false}};
  snap.samples = {{0, {1, 16, 1, 16}, {}}};

  Symbolizer symbolizer;
  const std::string text = LegacyHeapText(snap, symbolizer);

  char address[40];
  std::snprintf(address, sizeof(address), "@ 0x%llx\n",
                static_cast<unsigned long long>(leaf + 1));
  EXPECT_THAT(text, HasSubstr(address));
  EXPECT_THAT(text, HasSubstr("LeafForBuilderTest"));
}

}  // namespace
}  // namespace pprof_agent::internal
