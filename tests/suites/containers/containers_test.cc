// Issue 7 end to end: the container labels of allocs/heap samples, the
// /debug/pprof/lifetimes profile and the thread of origin, on a real
// program (programs/container_program.cc) with the agent preloaded or
// linked. Profiles are decoded with the generated protobuf classes for exact
// label checks, and read with `go tool pprof` as a user would.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proto/profile.pb.h"
#include "tests/integration/integration_util.h"

namespace pprof_agent::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

#define SKIP_WITHOUT_GO() \
  if (*GoBinaryPath() == '\0') GTEST_SKIP() << "go not found at configure time"

constexpr char kChurn[] = "ct::ChurnShortLivedMaps";
constexpr char kGrowth[] = "ct::GrowWithoutReserve";
constexpr char kIndex[] = "ct::BuildLongLivedIndex";

// Rate of the program's runs: 64 KiB, so each site gets hundreds of
// samples (churn ~70 MB, growth ~100 MB, index ~10 MB allocated).
constexpr char kRate[] = "65536";

std::string Gunzip(const std::string& gz) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return "";
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;
  }
  inflateEnd(&zs);
  return rc == Z_STREAM_END ? out : "";
}

// One decoded sample: values, string labels, and the functions of its stack.
struct DecodedSample {
  std::vector<int64_t> values;
  std::map<std::string, std::string> labels;
  std::set<std::string> functions;  // names without the parameter list
};

struct Decoded {
  std::vector<std::string> types;
  std::vector<DecodedSample> samples;
  int64_t duration_nanos = 0;

  int Index(const std::string& type) const {
    for (size_t i = 0; i < types.size(); ++i) {
      if (types[i] == type) return static_cast<int>(i);
    }
    return -1;
  }
  // Sum of `type` over samples through `function` (any when empty) whose
  // label `key` is `value` (any when key is empty).
  int64_t Sum(const std::string& type, const std::string& function,
              const std::string& key = "", const std::string& value = "") const {
    const int index = Index(type);
    int64_t sum = 0;
    for (const DecodedSample& s : samples) {
      if (!function.empty() && s.functions.count(function) == 0) continue;
      if (!key.empty()) {
        auto it = s.labels.find(key);
        if (it == s.labels.end() || it->second != value) continue;
      }
      sum += s.values[index];
    }
    return sum;
  }
};

std::string StripParams(const std::string& name) {
  const size_t paren = name.find('(');
  return paren == std::string::npos ? name : name.substr(0, paren);
}

std::optional<Decoded> Fetch(int port, const std::string& path, std::string* error) {
  const HttpResult r = HttpGet(port, path);
  if (r.status != 200) {
    *error = "GET " + path + ": " + std::to_string(r.status) + " " + r.error + r.body;
    return std::nullopt;
  }
  pprof_agent::profiles::Profile p;
  if (!p.ParseFromString(Gunzip(r.body))) {
    *error = "GET " + path + ": not a gzipped profile";
    return std::nullopt;
  }
  auto str = [&p](int64_t i) { return p.string_table(static_cast<int>(i)); };
  std::map<uint64_t, std::string> functions;
  for (const auto& f : p.function()) functions[f.id()] = StripParams(str(f.name()));
  std::map<uint64_t, std::vector<std::string>> locations;
  for (const auto& l : p.location()) {
    for (const auto& line : l.line()) locations[l.id()].push_back(functions[line.function_id()]);
  }
  Decoded d;
  d.duration_nanos = p.duration_nanos();
  for (const auto& t : p.sample_type()) d.types.push_back(str(t.type()));
  for (const auto& s : p.sample()) {
    DecodedSample out;
    out.values.assign(s.value().begin(), s.value().end());
    for (const auto& l : s.label()) {
      if (l.str() != 0) out.labels[str(l.key())] = str(l.str());
    }
    for (uint64_t id : s.location_id()) {
      for (const std::string& f : locations[id]) out.functions.insert(f);
    }
    d.samples.push_back(std::move(out));
  }
  return d;
}

class Containers : public ::testing::TestWithParam<Flavour> {
 protected:
  void SetUp() override {
    std::string error;
    EnvChanges env;
    env.set["PPROF_AGENT_HEAP_RATE"] = kRate;
    program_ = StartProgram("ct_program", GetParam(), {}, env, true, &error);
    ASSERT_TRUE(program_.has_value()) << error;
  }
  void TearDown() override {
    if (program_.has_value()) {
      program_->process->CloseStdin();
      const ExitStatus status = program_->process->Wait(kExitTimeout);
      EXPECT_TRUE(status.exited && status.code == 0) << status.Describe();
    }
  }
  Decoded Get(const std::string& path) {
    std::string error;
    auto d = Fetch(program_->port, path, &error);
    EXPECT_TRUE(d.has_value()) << error;
    return d.value_or(Decoded{});
  }
  std::string Url(const std::string& profile) const {
    return program_->BaseUrl() + "/debug/pprof/" + profile;
  }

  std::optional<AgentProgram> program_;
  TempDir tmp_;
};

// Each pattern is attributed to its container and to the function that used
// it; the growth site shows its bucket arrays as rehash allocations.
TEST_P(Containers, AllocsAttributeEachPatternToContainerAndSite) {
  const Decoded allocs = Get("/debug/pprof/allocs");
  ASSERT_FALSE(allocs.samples.empty());
  const std::vector<std::pair<const char*, const char*>> sites = {
      {kChurn, "std::unordered_map"},
      {kGrowth, "std::unordered_map"},
      {kIndex, "std::map"},
  };
  for (const auto& [site, family] : sites) {
    const int64_t total = allocs.Sum("alloc_space", site);
    const int64_t labelled = allocs.Sum("alloc_space", site, "container", family);
    const int64_t sited = allocs.Sum("alloc_space", site, "container_site", site);
    ASSERT_GT(total, 0) << site;
    // Every byte these sites allocate goes through the container.
    EXPECT_GE(labelled, total * 95 / 100) << site << ": " << labelled << " of " << total;
    EXPECT_GE(sited, total * 95 / 100) << site << ": " << sited << " of " << total;
  }
  // Growth: bucket arrays reallocated by inserts, next to its nodes.
  EXPECT_GE(allocs.Sum("alloc_objects", kGrowth, "container_op", "rehash"), 5);
  EXPECT_GT(allocs.Sum("alloc_space", kGrowth, "container_op", "node"), 0);
  EXPECT_GE(allocs.Sum("alloc_space", kGrowth, "container_op", "rehash"), 16 << 20)
      << "2M entries need a bucket array of ~16 MiB";
  // The tree allocates nodes only.
  EXPECT_EQ(allocs.Sum("alloc_space", kIndex, "container_op", "node"),
            allocs.Sum("alloc_space", kIndex));
  // Nothing is labelled with a container it did not use.
  EXPECT_EQ(allocs.Sum("alloc_space", kIndex, "container", "std::unordered_map"), 0);
}

// Churn dies young, the index lives: lifetimes tell them apart.
TEST_P(Containers, LifetimesSeparateChurnFromLongLived) {
  const Decoded lifetimes = Get("/debug/pprof/lifetimes");
  EXPECT_EQ(lifetimes.types, (std::vector<std::string>{"alloc_objects", "alloc_space"}));
  const int64_t churn = lifetimes.Sum("alloc_space", kChurn);
  ASSERT_GT(churn, 0);
  const int64_t young = lifetimes.Sum("alloc_space", kChurn, "lifetime", "<1ms") +
                        lifetimes.Sum("alloc_space", kChurn, "lifetime", "1-10ms");
  // Each map lives microseconds; 80% leaves room for a preempted one.
  EXPECT_GE(young, churn * 80 / 100) << young << " of " << churn;
  const int64_t index = lifetimes.Sum("alloc_space", kIndex);
  ASSERT_GT(index, 0);
  EXPECT_EQ(lifetimes.Sum("alloc_space", kIndex, "lifetime", "live"), index);
  // Container labels ride along.
  EXPECT_EQ(lifetimes.Sum("alloc_space", kIndex, "container", "std::map"), index);
  // The allocs profile and the lifetimes profile count the same bytes.
  const Decoded allocs = Get("/debug/pprof/allocs");
  const int64_t allocs_churn = allocs.Sum("alloc_space", kChurn);
  EXPECT_NEAR(static_cast<double>(churn), static_cast<double>(allocs_churn),
              0.01 * static_cast<double>(allocs_churn) + 4096);
}

// Memory of the exited builder thread is one tag away.
TEST_P(Containers, HeapSamplesCarryTheThreadOfOrigin) {
  const Decoded heap = Get("/debug/pprof/heap");
  const int64_t index = heap.Sum("inuse_space", kIndex);
  ASSERT_GT(index, 0);
  EXPECT_EQ(heap.Sum("inuse_space", kIndex, "thread_state", "exited"), index);
  EXPECT_EQ(heap.Sum("inuse_space", kIndex, "thread_name", "ct-builder"), index);
  const int64_t grown = heap.Sum("inuse_space", kGrowth);
  ASSERT_GT(grown, 0);
  EXPECT_EQ(heap.Sum("inuse_space", kGrowth, "thread_state", "alive"), grown);
  // Totals are unchanged by the split into per-thread samples.
  EXPECT_EQ(heap.Sum("inuse_space", kIndex, "container", "std::map"), index);
}

TEST_P(Containers, EveryLabelInPprofTags) {
  SKIP_WITHOUT_GO();
  const CommandResult allocs = GoPprof(tmp_, {"-tags", Url("allocs")});
  ASSERT_TRUE(allocs.ok()) << allocs.err;
  for (const char* text : {"container:", "container_op:", "container_site:", "std::unordered_map",
                           "std::map", "rehash", "node", kChurn, kGrowth, kIndex}) {
    EXPECT_THAT(allocs.out, HasSubstr(text)) << allocs.out;
  }
  const CommandResult heap = GoPprof(tmp_, {"-tags", "-sample_index=inuse_space", Url("heap")});
  ASSERT_TRUE(heap.ok()) << heap.err;
  for (const char* text : {"thread_name:", "thread_state:", "ct-builder", "exited", "alive"}) {
    EXPECT_THAT(heap.out, HasSubstr(text)) << heap.out;
  }
  const CommandResult lifetimes = GoPprof(tmp_, {"-tags", Url("lifetimes")});
  ASSERT_TRUE(lifetimes.ok()) << lifetimes.err;
  for (const char* text : {"lifetime:", "<1ms", "live", "container:"}) {
    EXPECT_THAT(lifetimes.out, HasSubstr(text)) << lifetimes.out;
  }
}

// The commands of README's "Finding map problems", as written there.
TEST_P(Containers, ReadmeCommandsFindEachProblem) {
  SKIP_WITHOUT_GO();
  const CommandResult churn = GoPprof(
      tmp_, {"-top", "-tagfocus=container=std::unordered_map", Url("allocs")});
  ASSERT_TRUE(churn.ok()) << churn.err;
  EXPECT_THAT(churn.out, HasSubstr(kChurn));
  EXPECT_THAT(churn.out, HasSubstr(kGrowth));
  EXPECT_THAT(churn.out, Not(HasSubstr(kIndex)));

  // Growth by count of rehashes. pprof's -nodefraction is a fraction of
  // the unfiltered total, which the churn's millions of nodes dominate.
  const CommandResult growth =
      GoPprof(tmp_, {"-top", "-nodefraction=0", "-tagfocus=container_op=rehash",
                     "-sample_index=alloc_objects", Url("allocs")});
  ASSERT_TRUE(growth.ok()) << growth.err;
  EXPECT_THAT(growth.out, HasSubstr(kGrowth));
  EXPECT_THAT(growth.out, HasSubstr(kChurn));  // small maps rehash too
  EXPECT_THAT(growth.out, Not(HasSubstr(kIndex)));
  // ... and by bytes, where the big map's bucket arrays come first.
  const CommandResult growth_bytes =
      GoPprof(tmp_, {"-top", "-cum", "-tagfocus=container_op=rehash", "-sample_index=alloc_space",
                     Url("allocs")});
  ASSERT_TRUE(growth_bytes.ok()) << growth_bytes.err;
  const size_t grow_at = growth_bytes.out.find(kGrowth);
  ASSERT_NE(grow_at, std::string::npos) << growth_bytes.out;
  EXPECT_LT(grow_at, growth_bytes.out.find(kChurn)) << growth_bytes.out;

  const CommandResult young =
      GoPprof(tmp_, {"-top", "-tagfocus=lifetime=<1ms", Url("lifetimes")});
  ASSERT_TRUE(young.ok()) << young.err;
  EXPECT_THAT(young.out, HasSubstr(kChurn));

  const CommandResult leak =
      GoPprof(tmp_, {"-top", "-tagfocus=thread_state=exited", "-sample_index=inuse_space",
                     Url("heap")});
  ASSERT_TRUE(leak.ok()) << leak.err;
  EXPECT_THAT(leak.out, HasSubstr(kIndex));
  EXPECT_THAT(leak.out, Not(HasSubstr(kGrowth)));
}

TEST_P(Containers, LifetimesDelta) {
  const Decoded delta = Get("/debug/pprof/lifetimes?seconds=1");
  EXPECT_GE(delta.duration_nanos, 900000000);
  // Nothing was freed in the window; what is alive is still reported.
  EXPECT_EQ(delta.Sum("alloc_space", kChurn), 0);
  EXPECT_GT(delta.Sum("alloc_space", kIndex, "lifetime", "live"), 0);
  const HttpResult bad = HttpGet(program_->port, "/debug/pprof/lifetimes?seconds=x");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.Header("X-Go-Pprof"), "1");
}

INSTANTIATE_TEST_SUITE_P(Flavours, Containers,
                         ::testing::Values(Flavour::kPreloaded, Flavour::kLinked),
                         [](const auto& info) {
                           return std::string(FlavourName(info.param));
                         });

}  // namespace
}  // namespace pprof_agent::integration
