// /debug/pprof/races and the checked containers on real processes
// (programs/races_program.cc): the seed program is reported with
// both sides over HTTP (text and protobuf); the same work under a
// shared_mutex, with readers only, and through an AccessChecker class under
// a mutex reports nothing over >= 1e7 operations; PPROF_AGENT_RACES=abort
// ends the process with SIGABRT, Go's message and both sides.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <regex>
#include <string>
#include <vector>

#include "tests/integration/integration_util.h"

namespace pprof_agent::integration {
namespace {

using ::testing::HasSubstr;

class Races : public ::testing::Test {
 protected:
  void TearDown() override {
    if (program_.process == nullptr) return;
    program_.process->CloseStdin();
    const ExitStatus status = program_.process->Wait(kExitTimeout);
    EXPECT_TRUE(status.exited && status.code == 0)
        << status.Describe() << "\n" << program_.process->err();
  }

  void Start(std::vector<std::string> args, Flavour flavour = Flavour::kLinked) {
    std::string error;
    auto program = StartProgram("races_program", flavour, args, {},
                                /*expect_server=*/true, &error);
    ASSERT_TRUE(program.has_value()) << error;
    program_ = std::move(*program);
  }

  long Ops() const {
    std::smatch m;
    const std::string& out = program_.process->out();
    static const std::regex re("OPS ([0-9]+)");
    return std::regex_search(out, m, re) ? std::stol(m[1]) : -1;
  }

  std::string Text() {
    HttpResult r = HttpGet(program_.port, "/debug/pprof/races?debug=1");
    EXPECT_EQ(r.status, 200) << r.error << r.body;
    return r.body;
  }

  TempDir tmp_;
  AgentProgram program_;
};

TEST_F(Races, SeedProgramIsReportedWithBothSides) {
  for (Flavour f : {Flavour::kLinked, Flavour::kPreloaded}) {
    SCOPED_TRACE(FlavourName(f));
    Start({"seed", "200000"}, f);
    const std::string text = Text();
    EXPECT_THAT(text, HasSubstr("WARNING: concurrent map"));
    EXPECT_THAT(text, HasSubstr("on std::unordered_map<int, long, std::hash<int>"));
    // Current side: a captured stack through the writer or the reader.
    EXPECT_TRUE(std::regex_search(text, std::regex("(Write|Iterate|Read) at 0x[0-9a-f]+ by thread [0-9]+")))
        << text;
    EXPECT_TRUE(std::regex_search(text, std::regex("#[1-9][0-9]* 0x[0-9a-f]+ it::(Writer|Reader)")))
        << text;
    // Previous side: the open write section, named by its code address,
    // which symbolizes into the writer.
    EXPECT_TRUE(std::regex_search(text, std::regex("Previous write at 0x[0-9a-f]+ by thread [0-9]+")))
        << text;
    const size_t prev = text.find("Previous write at");
    ASSERT_NE(prev, std::string::npos);
    EXPECT_THAT(text.substr(prev, 2000), HasSubstr("it::Writer"));
    EXPECT_THAT(text, HasSubstr("reports: "));
    // The index lists the endpoint.
    HttpResult index = HttpGet(program_.port, "/debug/pprof/");
    EXPECT_THAT(index.body, HasSubstr("races?debug=1"));
    program_.process->CloseStdin();
    ExitStatus st = program_.process->Wait(kExitTimeout);
    EXPECT_TRUE(st.exited && st.code == 0) << st.Describe();
    program_ = AgentProgram{};
  }
}

TEST_F(Races, ProtobufHasTwoSamplesPerReport) {
  PA_IT_SKIP_WITHOUT_GO();
  Start({"seed", "200000"});
  const std::string file = tmp_.File("races.pb.gz");
  HttpResult r = HttpGet(program_.port, "/debug/pprof/races");
  ASSERT_EQ(r.status, 200) << r.error;
  ASSERT_TRUE(WriteFile(file, r.body));
  CommandResult raw = GoPprof(tmp_, {"-raw", file});
  ASSERT_TRUE(raw.ok()) << raw.err;
  EXPECT_THAT(raw.out, HasSubstr("races/count"));
  CommandResult tags = GoPprof(tmp_, {"-tags", file});
  ASSERT_TRUE(tags.ok()) << tags.err;
  EXPECT_THAT(tags.out, HasSubstr("role"));
  EXPECT_THAT(tags.out, HasSubstr("current"));
  EXPECT_THAT(tags.out, HasSubstr("previous"));
  EXPECT_THAT(tags.out, HasSubstr("race_id"));
  EXPECT_THAT(tags.out, HasSubstr("detector"));
  EXPECT_THAT(tags.out, HasSubstr("checked"));
  EXPECT_THAT(tags.out, HasSubstr("container"));
  // Each race_id is on exactly two samples: current counts equal previous.
  CommandResult cur = GoPprof(tmp_, {"-top", "-tagfocus=role=current", file});
  CommandResult prev = GoPprof(tmp_, {"-top", "-tagfocus=role=previous", file});
  ASSERT_TRUE(cur.ok() && prev.ok()) << cur.err << prev.err;
  std::smatch a, b;
  static const std::regex total("of ([0-9]+) total");
  ASSERT_TRUE(std::regex_search(cur.out, a, total)) << cur.out;
  ASSERT_TRUE(std::regex_search(prev.out, b, total)) << prev.out;
  EXPECT_EQ(a[1], b[1]);
  EXPECT_GT(std::stol(a[1]), 0);
}

TEST_F(Races, SynchronisedWorkReportsNothing) {
  for (const char* mode : {"shared_mutex", "readers", "checker"}) {
    SCOPED_TRACE(mode);
    Start({mode, "10000000"});
    EXPECT_GE(Ops(), 10000000) << program_.process->out();
    const std::string text = Text();
    EXPECT_THAT(text, HasSubstr("reports: 0, detections: 0, dropped: 0")) << text;
    HttpResult pb = HttpGet(program_.port, "/debug/pprof/races");
    EXPECT_EQ(pb.status, 200);
    program_.process->CloseStdin();
    ExitStatus st = program_.process->Wait(kExitTimeout);
    EXPECT_TRUE(st.exited && st.code == 0) << st.Describe();
    program_ = AgentProgram{};
  }
}

TEST_F(Races, AbortModePrintsGosMessageAndBothSides) {
  EnvChanges env;
  SetAgentEnv(Flavour::kLinked, &env);
  env.set["PPROF_AGENT_RACES"] = "abort";
  env.set["PPROF_AGENT_ADDR"] = "127.0.0.1:0";
  std::string error;
  auto p = Subprocess::Start({ProgramPath("races_program_linked"), "seed", "2000000"}, env, &error);
  ASSERT_NE(p, nullptr) << error;
  ExitStatus st = p->Wait(kExitTimeout);
  EXPECT_EQ(st.signal, SIGABRT) << st.Describe() << p->err();
  EXPECT_TRUE(std::regex_search(p->err(), std::regex("fatal error: concurrent map (writes|iteration and map write|read and map write)")))
      << p->err();
  EXPECT_TRUE(std::regex_search(p->err(), std::regex("(Write|Iterate|Read) at 0x[0-9a-f]+ by thread")))
      << p->err();
  EXPECT_THAT(p->err(), HasSubstr("Previous write at"));
  EXPECT_THAT(p->err(), HasSubstr("it::Writer"));
}

}  // namespace
}  // namespace pprof_agent::integration
