// /debug/pprof/threadcreate of real processes (programs/threads_program.cc):
// the stacks that called pthread_create, counted per creating function, in
// protobuf (read with `go tool pprof`) and in Go's debug=1 text.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "tests/integration/integration_util.h"

namespace pprof_agent::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class ThreadCreate : public ::testing::Test {
 protected:
  void TearDown() override {
    if (program_.process == nullptr) return;
    program_.process->CloseStdin();
    const ExitStatus status = program_.process->Wait(kExitTimeout);
    EXPECT_TRUE(status.exited && status.code == 0)
        << status.Describe() << "\n" << program_.process->err();
  }

  void Start(std::vector<std::string> args, Flavour flavour = Flavour::kPreloaded) {
    std::string error;
    auto program = StartProgram("threads_program", flavour, args, {},
                                /*expect_server=*/true, &error);
    ASSERT_TRUE(program.has_value()) << error;
    program_ = std::move(*program);
  }

  RawProfile Fetch(const std::string& path, const std::string& file) {
    std::string error;
    auto profile = FetchRawProfile(tmp_, program_.port, path, file, &error);
    EXPECT_TRUE(profile.has_value()) << error;
    return profile.value_or(RawProfile{});
  }

  TempDir tmp_;
  AgentProgram program_;
};

TEST_F(ThreadCreate, CountsTheCreatingFunction) {
  PA_IT_SKIP_WITHOUT_GO();
  Start({"create", "7", "5"});
  const RawProfile profile = Fetch("/debug/pprof/threadcreate", "threadcreate.pb.gz");
  EXPECT_EQ(profile.sample_types, std::vector<std::string>{"threadcreate/count"});
  EXPECT_EQ(profile.period_type, "threadcreate count");
  EXPECT_EQ(profile.period, 1);
  EXPECT_EQ(profile.SumFor("threadcreate", "it::SpawnWithPthread"), 7);
  EXPECT_EQ(profile.SumFor("threadcreate", "it::SpawnWithStdThread"), 5);
}

TEST_F(ThreadCreate, Debug1IsGosCountText) {
  Start({"create", "7", "5"});
  const HttpResult text = HttpGet(program_.port, "/debug/pprof/threadcreate?debug=1");
  ASSERT_EQ(text.status, 200);
  EXPECT_EQ(text.Header("Content-Type"), "text/plain; charset=utf-8");
  // 7 + 5; the agent's own server threads are counted apart.
  EXPECT_THAT(text.body, StartsWith("threadcreate profile: total 12\n"));
  EXPECT_THAT(text.body, HasSubstr("by pprof-agent for itself (not shown)"));
  EXPECT_TRUE(std::regex_search(
      text.body,
      std::regex(R"(\n7 @( 0x[0-9a-f]+)+\n(#\t[^\n]*\n)*#\t0x[0-9a-f]+\tit::SpawnWithPthread\(int\))")))
      << text.body;
  EXPECT_TRUE(std::regex_search(
      text.body,
      std::regex(R"(\n5 @( 0x[0-9a-f]+)+\n(#\t[^\n]*\n)*#\t0x[0-9a-f]+\tit::SpawnWithStdThread\(int\))")))
      << text.body;
}

TEST_F(ThreadCreate, LinkedProgramCountsToo) {
  PA_IT_SKIP_WITHOUT_GO();
  Start({"create", "4", "3"}, Flavour::kLinked);
  const RawProfile profile = Fetch("/debug/pprof/threadcreate", "threadcreate.pb.gz");
  EXPECT_EQ(profile.SumFor("threadcreate", "it::SpawnWithPthread"), 4);
  EXPECT_EQ(profile.SumFor("threadcreate", "it::SpawnWithStdThread"), 3);
}

TEST_F(ThreadCreate, GoPprofReadsThreadcreateOverHttp) {
  PA_IT_SKIP_WITHOUT_GO();
  Start({"sleepers", "12"});
  const std::string url =
      "http://127.0.0.1:" + std::to_string(program_.port) + "/debug/pprof/threadcreate";
  const CommandResult create = GoPprof(tmp_, {"-top", url});
  ASSERT_TRUE(create.ok()) << create.err;
  EXPECT_THAT(create.out, HasSubstr("Type: threadcreate"));
  EXPECT_THAT(create.out, HasSubstr("it::Sleepers"));
}

TEST_F(ThreadCreate, DeltaCountsOnlyItsWindow) {
  PA_IT_SKIP_WITHOUT_GO();
  Start({"create", "6", "0"});
  // Nothing is created during the window: an empty delta.
  const RawProfile delta = Fetch("/debug/pprof/threadcreate?seconds=1", "delta.pb.gz");
  EXPECT_EQ(delta.SumFor("threadcreate", "it::SpawnWithPthread"), 0);
  EXPECT_GT(delta.duration_seconds, 0.5);
}

}  // namespace
}  // namespace pprof_agent::integration
