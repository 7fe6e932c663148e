// Contention profiles of real processes (programs/contention_program.cc):
// Go's contention test adapted (a holder keeps a lock D ms, N times, while a
// waiter waits), for std::mutex, std::shared_mutex and
// std::condition_variable; the semantics matrix over every mutex kind
// compared with a run without the agent; Go's text format; deltas; and
// `go tool pprof` reading both endpoints over HTTP.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/integration_util.h"

namespace pprof_agent::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

#define SKIP_WITHOUT_GO()                                        \
  if (*GoBinaryPath() == '\0') GTEST_SKIP() << "go not found at configure time"

constexpr int kHoldMs = 20;
constexpr int kRounds = 10;

// The "MEASURED <name> <ns>" line of the program: the waiters' true total.
int64_t Measured(const std::string& out, const std::string& name) {
  std::istringstream in(out);
  std::string line;
  const std::string prefix = "MEASURED " + name + " ";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::atoll(line.c_str() + prefix.size());
  }
  return -1;
}

class Contention : public ::testing::Test {
 protected:
  void TearDown() override {
    if (program_.process == nullptr) return;
    program_.process->CloseStdin();
    const ExitStatus status = program_.process->Wait(kExitTimeout);
    EXPECT_TRUE(status.exited && status.code == 0)
        << status.Describe() << "\n" << program_.process->err();
  }

  void Start(const std::string& mode, Flavour flavour, EnvChanges env = {},
             std::vector<std::string> args = {}) {
    std::string error;
    std::vector<std::string> argv = {mode, std::to_string(kHoldMs),
                                     std::to_string(kRounds)};
    if (!args.empty()) argv = args;
    auto program = StartProgram("contention_program", flavour, argv,
                                std::move(env), true, &error);
    ASSERT_TRUE(program.has_value()) << error;
    program_ = std::move(*program);
  }

  RawProfile Fetch(const std::string& path, const std::string& file) {
    std::string error;
    auto profile = FetchRawProfile(tmp_, program_.port, path, file, &error);
    EXPECT_TRUE(profile.has_value()) << error;
    return profile.value_or(RawProfile{});
  }

  // Go's TestMutexProfile/TestBlockProfile, adapted: the waiter's block
  // delay is its own measured wait within +-10%, every one of its waits is
  // one contention, and the mutex profile charges the holder.
  //
  // Tolerance: every wait is >= kHoldMs - 1 ms, far above the default block
  // rate (10 us), so each is recorded exactly, not sampled; what differs
  // from the program's own measurement is the clock reads around the
  // hook (microseconds against 19 ms waits), so 10% is a wide margin.
  void ExpectWaiterAndHolder(const std::string& waiter, const std::string& holder) {
    const int64_t measured = Measured(program_.process->out(), waiter);
    ASSERT_GT(measured, 0) << program_.process->out();
    EXPECT_GT(measured, int64_t{kRounds} * (kHoldMs - 2) * 1000000 * 9 / 10);

    const RawProfile block = Fetch("/debug/pprof/block", waiter + "_block.pb.gz");
    EXPECT_EQ(block.sample_types,
              (std::vector<std::string>{"contentions/count", "delay/nanoseconds"}));
    EXPECT_EQ(block.period_type, "contentions count");
    EXPECT_EQ(block.period, 1);
    const int64_t blocked = block.SumFor("delay", "it::" + waiter);
    EXPECT_GE(blocked, measured * 9 / 10) << "measured " << measured;
    EXPECT_LE(blocked, measured * 11 / 10) << "measured " << measured;
    EXPECT_EQ(block.SumFor("contentions", "it::" + waiter), kRounds);

    if (holder.empty()) return;
    const RawProfile mutex = Fetch("/debug/pprof/mutex", waiter + "_mutex.pb.gz");
    EXPECT_EQ(mutex.sample_types,
              (std::vector<std::string>{"contentions/count", "delay/nanoseconds"}));
    const int64_t held = mutex.SumFor("delay", "it::" + holder);
    // The holder's delay runs from the waiter's registration to the unlock:
    // the waiter's wait less its wake-up.
    EXPECT_GE(held, measured * 8 / 10) << "measured " << measured;
    EXPECT_LE(held, measured * 11 / 10) << "measured " << measured;
    EXPECT_EQ(mutex.SumFor("contentions", "it::" + holder), kRounds);
    // Nothing of the holder's delay is charged to the waiter's unlock.
    EXPECT_EQ(mutex.SumFor("delay", "it::" + waiter), 0);
  }

  TempDir tmp_;
  AgentProgram program_;
};

TEST_F(Contention, MutexWaiterBlockTotalMatchesAndHolderIsCharged) {
  SKIP_WITHOUT_GO();
  Start("mutex", Flavour::kPreloaded);
  ExpectWaiterAndHolder("WaitForMutex", "HoldMutex");
}

TEST_F(Contention, LinkedProgramMutexWaiterAndHolder) {
  SKIP_WITHOUT_GO();
  Start("mutex", Flavour::kLinked);
  ExpectWaiterAndHolder("WaitForMutex", "HoldMutex");
}

TEST_F(Contention, SharedMutexReaderWaitsForWriter) {
  SKIP_WITHOUT_GO();
  Start("shared", Flavour::kPreloaded);
  ExpectWaiterAndHolder("ReadShared", "HoldExclusive");
}

TEST_F(Contention, ConditionVariableWaitIsBlocking) {
  SKIP_WITHOUT_GO();
  Start("condvar", Flavour::kPreloaded);
  // A condvar wait waits for a notify, not for a lock holder: block only.
  ExpectWaiterAndHolder("WaitForSignal", "");
}

TEST_F(Contention, RatesZeroTurnBothProfilesOff) {
  SKIP_WITHOUT_GO();
  EnvChanges env;
  env.set["PPROF_AGENT_MUTEX_RATE"] = "0";
  env.set["PPROF_AGENT_BLOCK_RATE"] = "0";
  Start("mutex", Flavour::kPreloaded, env);
  EXPECT_EQ(Fetch("/debug/pprof/block", "b.pb.gz").samples.size(), 0u);
  EXPECT_EQ(Fetch("/debug/pprof/mutex", "m.pb.gz").samples.size(), 0u);
}

// Go's writeProfileInternal with debug=1, field for field.
TEST_F(Contention, LegacyTextIsGosFormat) {
  Start("mutex", Flavour::kPreloaded);
  const HttpResult mutex = HttpGet(program_.port, "/debug/pprof/mutex?debug=1");
  ASSERT_EQ(mutex.status, 200) << mutex.error;
  EXPECT_EQ(mutex.Header("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_THAT(mutex.body,
              StartsWith("--- mutex:\ncycles/second=1000000000\nsampling period=1\n"));
  EXPECT_TRUE(std::regex_search(mutex.body,
                                std::regex("\n[0-9]+ [0-9]+ @( 0x[0-9a-f]+)+\n#\t0x")))
      << mutex.body;
  EXPECT_THAT(mutex.body, HasSubstr("\tit::HoldMutex"));

  const HttpResult block = HttpGet(program_.port, "/debug/pprof/block?debug=1");
  ASSERT_EQ(block.status, 200) << block.error;
  EXPECT_THAT(block.body, StartsWith("--- block:\ncycles/second=1000000000\n"));
  EXPECT_THAT(block.body, Not(HasSubstr("sampling period")));
  EXPECT_THAT(block.body, HasSubstr("\tit::WaitForMutex"));
}

TEST_F(Contention, IndexListsMutexAndBlockWithCounts) {
  Start("mutex", Flavour::kPreloaded);
  const HttpResult index = HttpGet(program_.port, "/debug/pprof/");
  ASSERT_EQ(index.status, 200) << index.error;
  EXPECT_TRUE(std::regex_search(
      index.body, std::regex("<td>[1-9][0-9]*</td><td><a href='block\\?debug=1'>")))
      << index.body;
  EXPECT_TRUE(std::regex_search(
      index.body, std::regex("<td>[1-9][0-9]*</td><td><a href='mutex\\?debug=1'>")))
      << index.body;
}

TEST_F(Contention, GoPprofReadsBothEndpointsOverHttp) {
  SKIP_WITHOUT_GO();
  Start("mutex", Flavour::kPreloaded);
  const std::string url = program_.BaseUrl() + "/debug/pprof/";
  const CommandResult mutex = GoPprof(tmp_, {"-top", url + "mutex"});
  ASSERT_TRUE(mutex.ok()) << mutex.status.Describe() << "\n" << mutex.err;
  EXPECT_THAT(mutex.out, HasSubstr("it::HoldMutex"));
  EXPECT_THAT(mutex.out, HasSubstr("Type: delay"));
  const CommandResult block =
      GoPprof(tmp_, {"-top", "-sample_index=contentions", url + "block"});
  ASSERT_TRUE(block.ok()) << block.status.Describe() << "\n" << block.err;
  EXPECT_THAT(block.out, HasSubstr("it::WaitForMutex"));
  EXPECT_THAT(block.out, HasSubstr("Type: contentions"));
}

// seconds=N: contentions and delay are cumulative, so the delta holds only
// the window's events; delta_block (Pyroscope) covers the time since the
// previous delta_block request.
TEST_F(Contention, DeltaProfilesCoverOnlyTheirWindow) {
  SKIP_WITHOUT_GO();
  Start("loop", Flavour::kPreloaded, {}, {"loop"});
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const RawProfile delta = Fetch("/debug/pprof/block?seconds=1", "delta.pb.gz");
  EXPECT_NEAR(delta.duration_seconds, 1.0, 0.2);
  const int64_t window = delta.SumFor("delay", "it::LoopWaiter");
  // The waiter is blocked at most the whole window, and some of it.
  EXPECT_GT(window, 100 * 1000000);
  EXPECT_LT(window, 1300 * 1000000);
  const RawProfile total = Fetch("/debug/pprof/block", "total.pb.gz");
  EXPECT_GT(total.SumFor("delay", "it::LoopWaiter"), window);

  const RawProfile first = Fetch("/debug/pprof/delta_mutex", "d1.pb.gz");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const RawProfile second = Fetch("/debug/pprof/delta_mutex", "d2.pb.gz");
  const int64_t d1 = first.SumFor("delay", "it::LoopHolder");
  const int64_t d2 = second.SumFor("delay", "it::LoopHolder");
  EXPECT_GT(d1, 0);
  EXPECT_GT(d2, 0);
  EXPECT_LT(d2, 700 * 1000000) << "second delta_mutex is not a delta";
  EXPECT_LT(d2, d1);
  const HttpResult bad = HttpGet(program_.port, "/debug/pprof/delta_block?seconds=1");
  EXPECT_EQ(bad.status, 400);
}

// The semantics matrix: every mutex kind (normal, error-checking, recursive,
// adaptive, robust, priority-inheriting, priority-protected), rwlocks,
// condvars and spinlocks, uncontended and contended, with timeouts, owner
// death, self-deadlock and non-owner unlock: return values and errno must
// be exactly those of a run without the agent. Block rate 1 and a huge
// capture budget put every slow path through recording.
class ContentionMatrix : public ::testing::Test {
 protected:
  std::string Run(Flavour flavour) {
    EnvChanges env;
    for (const char* name : {"LD_PRELOAD", "PPROF_AGENT_ADDR"}) env.unset.push_back(name);
    env.set["PPROF_AGENT_ADDR"] = "off";
    env.set["PPROF_AGENT_BLOCK_RATE"] = "1";
    env.set["PPROF_AGENT_LOCK_STACKS_PER_SEC"] = "0";
    SetAgentEnv(flavour, &env);
    const std::string program =
        ProgramPath(std::string("contention_program") +
                    (flavour == Flavour::kLinked ? "_linked" : "_plain"));
    const CommandResult r = RunCommand({program, "matrix"}, env, kPprofTimeout);
    EXPECT_TRUE(r.ok()) << r.status.Describe() << "\n" << r.err;
    std::string out;
    for (const std::string& line : SplitLines(r.out)) {
      if (line.rfind("START ", 0) == 0) continue;  // the linked flavour's
      out += line + "\n";
    }
    return out;
  }
};

TEST_F(ContentionMatrix, ResultsAndErrnoAreThoseOfARunWithoutTheAgent) {
  const std::string plain = Run(Flavour::kNone);
  ASSERT_THAT(plain, HasSubstr("MATRIX DONE"));
  // Spot checks that the matrix exercises what it claims to.
  EXPECT_THAT(plain, HasSubstr("normal.timedlock_timeout: rc=ETIMEDOUT errno=unchanged"));
  EXPECT_THAT(plain, HasSubstr("errorcheck.relock: rc=EDEADLK"));
  EXPECT_THAT(plain, HasSubstr("errorcheck.unlock_not_owner: rc=EPERM"));
  EXPECT_THAT(plain, HasSubstr("recursive.relock: rc=0"));
  EXPECT_THAT(plain, HasSubstr("robust.lock_owner_died: rc=EOWNERDEAD"));
  EXPECT_THAT(plain, HasSubstr("robust.lock_contended_owner_died: rc=EOWNERDEAD"));
  EXPECT_THAT(plain, HasSubstr("robust.lock_not_recoverable: rc=ENOTRECOVERABLE"));
  EXPECT_THAT(plain, HasSubstr("normal.lock_contended: rc=0 errno=unchanged"));
  EXPECT_THAT(plain, HasSubstr("rwlock.wrlock_self: rc=EDEADLK"));
  EXPECT_THAT(plain, HasSubstr("rwlock.timedrdlock_badtime_free: rc=EINVAL"));
  EXPECT_THAT(plain, HasSubstr("cond.timedwait_timeout: rc=ETIMEDOUT"));
  EXPECT_EQ(Run(Flavour::kPreloaded), plain);
  EXPECT_EQ(Run(Flavour::kLinked), plain);
}

}  // namespace
}  // namespace pprof_agent::integration
