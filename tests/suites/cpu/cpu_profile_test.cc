// CPU profile suite: real processes (tests/suites/cpu/programs/cpu_program.cc)
// with the agent preloaded or linked, profiled over HTTP and read with
// `go tool pprof`. Profiles are 1-3 s long so the suite stays well under
// its time budget; the tests hold one ctest resource lock so that two of
// them never compete for the machine's two CPUs (or its SigQ count).
//
// Tolerances, and why they do not flake:
//  - 3:1 ratio at 250 Hz for 3 s on 2 threads: >= 300 samples even when the
//    threads get half a CPU each; samples of a random alternation are close
//    to binomial, sd <= 2.5 pp, and the issue's band is +-5 pp.
//  - Sampled CPU vs the process's CPU: per-thread CPU timers count every
//    period (overruns included), so the error is the cut first and last
//    period of each thread plus the window edges: ~1%. Band: +-10%.
//  - Fairness: a thread's samples are its CPU time / period (+-1), so the
//    spread is the scheduler's; equal threads of one process get equal CPU
//    within a few percent over 3 s. Band: +-20% of the mean.
#include <arpa/inet.h>
#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <cstdio>
#include <fstream>
#include <future>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/integration_util.h"

namespace pprof_agent::integration {
namespace {

using ::testing::HasSubstr;

constexpr char kProgram[] = "cpu_program";
constexpr char kBusyFunction[] = "it::CpuBusyLoop";

std::string Comments(const RawProfile& p) {
  std::string all;
  for (const auto& c : p.comments) all += c + "\n";
  return all;
}

// "name: created=5 deleted=5" -> {5, 5} from the profile's comments.
std::pair<int64_t, int64_t> TimerCounts(const RawProfile& p, const std::string& which) {
  static const std::regex kCounts(R"(created=([0-9]+) deleted=([0-9]+))");
  for (const auto& c : p.comments) {
    if (c.rfind(which, 0) != 0) continue;
    std::smatch m;
    if (std::regex_search(c, m, kCounts)) {
      return {std::stoll(m[1].str()), std::stoll(m[2].str())};
    }
  }
  return {-1, -2};
}

class CpuProfile : public ::testing::Test {
 public:
  void SetUp() override {
    if (GoBinaryPath()[0] == '\0') GTEST_SKIP() << "go not found";
  }

  std::optional<AgentProgram> Start(const std::vector<std::string>& args,
                                    Flavour flavour = Flavour::kPreloaded,
                                    EnvChanges env = {}) {
    std::string error;
    auto program = StartProgram(kProgram, flavour, args, std::move(env),
                                /*expect_server=*/true, &error);
    EXPECT_TRUE(program.has_value()) << error;
    return program;
  }

  std::optional<RawProfile> Fetch(const AgentProgram& program,
                                  const std::string& query) {
    std::string error;
    auto profile = FetchRawProfile(tmp_, program.port,
                                   "/debug/pprof/profile?" + query,
                                   "cpu" + std::to_string(++fetches_) + ".pb.gz",
                                   &error);
    EXPECT_TRUE(profile.has_value()) << error;
    return profile;
  }

  TempDir tmp_;
  int fetches_ = 0;
};

// --- what the profile says -------------------------------------------------------

class CpuProfileFlavours : public CpuProfile,
                           public ::testing::WithParamInterface<Flavour> {};

TEST_P(CpuProfileFlavours, ThreeToOneWorkShowsAsSeventyFivePercent) {
  auto program = Start({"ratio"}, GetParam());
  ASSERT_TRUE(program.has_value());
  // 600 samples make the +-5 pp band 2.8 standard deviations wide. One 3 s
  // profile has ~1500 on an idle 2-CPU machine; on a loaded one, add more.
  int64_t three = 0, one = 0;
  for (int round = 0; round < 4 && three + one < 600; ++round) {
    auto profile = Fetch(*program, "seconds=3&hz=250");
    ASSERT_TRUE(profile.has_value());
    ASSERT_EQ(profile->sample_types,
              (std::vector<std::string>{"samples/count", "cpu/nanoseconds"}));
    EXPECT_EQ(profile->period_type, "cpu nanoseconds");
    EXPECT_EQ(profile->period, 4000000);
    // cpu/nanoseconds is samples x period, sample by sample.
    EXPECT_EQ(profile->Total("cpu"), profile->Total("samples") * 4000000);
    three += profile->SumFor("samples", "it::CpuThreeQuarters");
    one += profile->SumFor("samples", "it::CpuOneQuarter");
  }
  ASSERT_GE(three + one, 300) << "too few samples for a +-5 pp check";
  const double share = static_cast<double>(three) / static_cast<double>(three + one);
  EXPECT_NEAR(share, 0.75, 0.05) << three << " vs " << one;
  std::printf("3:1 work: %.1f%% of %lld samples\n", 100 * share,
              static_cast<long long>(three + one));
}

INSTANTIATE_TEST_SUITE_P(, CpuProfileFlavours,
                         ::testing::Values(Flavour::kPreloaded, Flavour::kLinked),
                         [](const auto& info) {
                           return std::string(FlavourName(info.param));
                         });

int64_t WallNanosNow() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// CPU time of each application thread (schedstat, ns; agent threads named
// pprof-* left out), read every 10 ms on a thread of the test while a
// profile runs, so that it can be interpolated at the exact window the
// profile reports (its "cpu window" comment): connecting, arming and
// building the profile then do not count.
class CpuTimeline {
 public:
  explicit CpuTimeline(pid_t pid) : pid_(pid), reader_([this] { Run(); }) {}
  ~CpuTimeline() { Stop(); }

  void Stop() {
    done_ = true;
    if (reader_.joinable()) reader_.join();
  }

  // CPU used in [start, start + duration) by thread `tid` (0: all).
  double Used(int64_t tid, int64_t start, int64_t duration) const {
    return At(tid, start + duration) - At(tid, start);
  }

 private:
  struct Reading {
    int64_t wall;
    std::map<int64_t, int64_t> cpu;  // tid -> ns
  };

  void Run() {
    while (!done_.load()) {
      Read();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Read();
  }

  void Read() {
    Reading r;
    for (const std::string& tid : Tasks(pid_)) {
      const std::string base = "/proc/" + std::to_string(pid_) + "/task/" + tid;
      if (ReadFileText(base + "/comm").rfind("pprof-", 0) == 0) continue;
      std::istringstream stat(ReadFileText(base + "/schedstat"));
      int64_t ns = 0;
      if (stat >> ns) r.cpu[std::stoll(tid)] = ns;
    }
    r.wall = WallNanosNow();
    readings_.push_back(std::move(r));
  }

  static double Cpu(const Reading& r, int64_t tid) {
    if (tid != 0) {
      auto it = r.cpu.find(tid);
      return it == r.cpu.end() ? 0 : static_cast<double>(it->second);
    }
    double sum = 0;
    for (const auto& [t, ns] : r.cpu) sum += static_cast<double>(ns);
    return sum;
  }

  double At(int64_t tid, int64_t t) const {
    for (size_t i = 1; i < readings_.size(); ++i) {
      if (readings_[i].wall < t) continue;
      const Reading& a = readings_[i - 1];
      const Reading& b = readings_[i];
      const double f = b.wall == a.wall ? 1.0
                                        : static_cast<double>(t - a.wall) /
                                              static_cast<double>(b.wall - a.wall);
      return Cpu(a, tid) + (Cpu(b, tid) - Cpu(a, tid)) * f;
    }
    ADD_FAILURE() << "no CPU reading after the profile's window";
    return 0;
  }

  const pid_t pid_;
  std::atomic<bool> done_{false};
  std::vector<Reading> readings_;
  std::thread reader_;
};

// The profile's window from its comments: {start unix ns, duration ns}.
std::pair<int64_t, int64_t> Window(const RawProfile& profile) {
  static const std::regex kWindow(R"(start_unix_nanos=([0-9]+) duration_nanos=([0-9]+))");
  std::smatch m;
  const std::string comments = Comments(profile);
  if (!std::regex_search(comments, m, kWindow)) {
    ADD_FAILURE() << "no window in the comments:\n" << comments;
    return {0, 0};
  }
  return {std::stoll(m[1].str()), std::stoll(m[2].str())};
}

void ExpectSampledCpuMatchesProcessCpu(CpuProfile* test, const AgentProgram& program,
                                       int hz, std::optional<RawProfile>* out) {
  CpuTimeline timeline(program.process->pid());
  auto profile = test->Fetch(program, "seconds=3&hz=" + std::to_string(hz));
  timeline.Stop();
  ASSERT_TRUE(profile.has_value());
  const auto [start, duration] = Window(*profile);
  EXPECT_NEAR(static_cast<double>(duration) / 1e9, 3.0, 0.1);
  const double expected_ns = timeline.Used(0, start, duration);
  const double sampled_ns = static_cast<double>(profile->Total("cpu"));
  ASSERT_GT(expected_ns, 3e8) << "the busy threads barely ran";
  EXPECT_NEAR(sampled_ns / expected_ns, 1.0, 0.10)
      << "hz=" << hz << ": sampled " << sampled_ns / 1e6 << " ms, threads used "
      << expected_ns / 1e6 << " ms in the window\n"
      << Comments(*profile);
  std::printf("hz=%d: sampled %.0f ms, process used %.0f ms (ratio %.3f)\n", hz,
              sampled_ns / 1e6, expected_ns / 1e6, sampled_ns / expected_ns);
  *out = std::move(profile);
}

TEST_F(CpuProfile, SampledCpuMatchesTheProcessCpuAtTheDefaultRate) {
  auto program = Start({"busy", "2"});
  ASSERT_TRUE(program.has_value());
  std::optional<RawProfile> profile;
  ExpectSampledCpuMatchesProcessCpu(this, *program, 100, &profile);
  ASSERT_TRUE(profile.has_value());
  EXPECT_EQ(profile->period, 10000000);
  EXPECT_GT(profile->SumFor("samples", kBusyFunction), 0);
}

TEST_F(CpuProfile, SampledCpuMatchesTheProcessCpuAt1000Hz) {
  // Above the kernel's tick rate (250 Hz here): fewer signals than periods,
  // each weighted by 1 + si_overrun, so the totals stay right.
  auto program = Start({"busy", "2"});
  ASSERT_TRUE(program.has_value());
  std::optional<RawProfile> profile;
  ExpectSampledCpuMatchesProcessCpu(this, *program, 1000, &profile);
  ASSERT_TRUE(profile.has_value());
  EXPECT_EQ(profile->period, 1000000);
  EXPECT_THAT(Comments(*profile), HasSubstr("hz=1000"));
}

TEST_F(CpuProfile, FourIdenticalThreadsGetFairSampleCounts) {
  // Two checks per 3 s profile at 250 Hz. (1) The sampler is fair: each
  // thread's sampled CPU is within 10% of the CPU it really used in the
  // window (what setitimer gets wrong). (2) The issue's check: the four
  // sample counts are within 20% of their mean. (2) presumes the scheduler
  // gave the four threads equal CPU; on a machine loaded by other processes
  // it may not have (two threads sharing a CPU with a stranger), so a round
  // whose real CPU times already differ by over 10% from their mean is
  // retried, up to 4 rounds.
  auto program = Start({"busy", "4"});
  ASSERT_TRUE(program.has_value());
  bool judged = false;
  for (int round = 0; round < 4 && !judged; ++round) {
    CpuTimeline timeline(program->process->pid());
    auto profile = Fetch(*program, "seconds=3&hz=250");
    timeline.Stop();
    ASSERT_TRUE(profile.has_value());
    const auto [start, duration] = Window(*profile);
    const int samples = profile->TypeIndex("samples");
    std::map<int64_t, int64_t> per_thread;
    for (const auto& s : profile->samples) {
      if (!profile->SampleHasFunction(s, kBusyFunction)) continue;
      auto tid = s.num_labels.find("thread_id");
      ASSERT_NE(tid, s.num_labels.end()) << "sample without a thread_id label";
      per_thread[tid->second.at(0)] += s.values[samples];
    }
    ASSERT_EQ(per_thread.size(), 4u) << Comments(*profile);
    double mean = 0, cpu_mean = 0;
    std::map<int64_t, double> used;
    for (const auto& [tid, n] : per_thread) {
      used[tid] = timeline.Used(tid, start, duration);
      mean += static_cast<double>(n) / 4;
      cpu_mean += used[tid] / 4;
    }
    ASSERT_GT(mean, 30) << "too few samples to judge fairness";
    bool scheduler_fair = true;
    std::string counts;
    for (const auto& [tid, n] : per_thread) {
      const double sampled_ns = static_cast<double>(n) * 4e6;
      EXPECT_NEAR(sampled_ns / used[tid], 1.0, 0.10)
          << "thread " << tid << ": sampled " << sampled_ns / 1e6 << " ms, used "
          << used[tid] / 1e6 << " ms";
      scheduler_fair = scheduler_fair && std::abs(used[tid] / cpu_mean - 1) <= 0.10;
      char buf[64];
      std::snprintf(buf, sizeof(buf), " %lld (%.0f ms)", static_cast<long long>(n),
                    used[tid] / 1e6);
      counts += buf;
    }
    std::printf("round %d per-thread samples (CPU used):%s\n", round, counts.c_str());
    if (!scheduler_fair) continue;
    judged = true;
    for (const auto& [tid, n] : per_thread) {
      EXPECT_NEAR(static_cast<double>(n) / mean, 1.0, 0.20)
          << "thread " << tid << ": " << n << " samples, mean " << mean;
    }
  }
  if (!judged) {
    std::printf("the scheduler never gave the 4 threads equal CPU (+-10%%) in 4 "
                "rounds: only the per-thread check was made\n");
  }
}

// --- resources --------------------------------------------------------------

TEST_F(CpuProfile, TwentyBackToBackProfilesLeakNoTimersSignalsOrThreads) {
  auto program = Start({"busy", "2"});
  ASSERT_TRUE(program.has_value());
  const pid_t pid = program->process->pid();
  // The agent's workers start with its first request: make them exist
  // before counting, so that the count compares like with like.
  ASSERT_EQ(HttpGet(program->port, "/debug/pprof/").status, 200);
  const size_t threads_before = Tasks(pid).size();
  const int64_t sigq_before = SigQ(pid);
  ASSERT_EQ(PosixTimers(pid), 0);
  std::optional<RawProfile> last;
  for (int i = 0; i < 20; ++i) {
    last = Fetch(*program, "seconds=1");
    ASSERT_TRUE(last.has_value()) << "profile " << i;
    ASSERT_GT(last->SumFor("samples", kBusyFunction), 0) << "profile " << i;
    const auto [created, deleted] = TimerCounts(*last, "cpu timers this profile");
    EXPECT_EQ(created, deleted) << "profile " << i << "\n" << Comments(*last);
    EXPECT_GE(created, 3);  // main and two busy threads
  }
  const auto [created, deleted] = TimerCounts(*last, "cpu timers process lifetime");
  EXPECT_EQ(created, deleted);
  EXPECT_GE(created, 60);
  EXPECT_EQ(PosixTimers(pid), 0) << ReadFileText("/proc/" + std::to_string(pid) + "/timers");
  EXPECT_EQ(Tasks(pid).size(), threads_before);
  // No signal left pending anywhere in the process (a timer deleted with its
  // signal queued on a thread that never ran again would show here).
  EXPECT_EQ(PendingSignals(pid), "") << "pending signals";
  // SigQ counts this user's queued signals and live POSIX timers over every
  // process: another process of the user may move it by one or two, but one
  // leaked timer or signal per profile would add 20 or more.
  int64_t sigq_after = SigQ(pid);
  for (int i = 0; i < 20 && sigq_after > sigq_before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    sigq_after = SigQ(pid);
  }
  EXPECT_LT(sigq_after - sigq_before, 3) << "SigQ " << sigq_before << " -> " << sigq_after;
}

TEST_F(CpuProfile, ThreadsCreatedDuringTheProfileAreSampledAndCleanedUp) {
  auto program = Start({"churn"});
  ASSERT_TRUE(program.has_value());
  const pid_t pid = program->process->pid();
  const std::string file = tmp_.File("churn.pb.gz");
  auto request = std::async(std::launch::async, [&] {
    return HttpGet(program->port, "/debug/pprof/profile?seconds=2&hz=250");
  });
  // Mid-profile, ~300 short-lived threads have come and gone: had their
  // timers waited for the end of the profile, hundreds would be live now.
  // Live: main, the busy thread, the churning one, late-worker and the
  // current short-lived thread.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  const int live_timers = PosixTimers(pid);
  EXPECT_GE(live_timers, 2);
  EXPECT_LE(live_timers, 8);
  const HttpResult r = request.get();
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  ASSERT_TRUE(WriteFile(file, r.body));
  const CommandResult tags = GoPprof(tmp_, {"-tags", file});
  ASSERT_TRUE(tags.ok()) << tags.err;
  EXPECT_THAT(tags.out, HasSubstr("late-worker"));
  const CommandResult raw_run = GoPprof(tmp_, {"-raw", file});
  ASSERT_TRUE(raw_run.ok()) << raw_run.err;
  std::string error;
  auto profile = ParseRawProfile(raw_run.out, &error);
  ASSERT_TRUE(profile.has_value()) << error;
  EXPECT_GT(profile->SumFor("samples", "it::LateWorker"), 0) << Comments(*profile);
  EXPECT_GT(profile->SumFor("samples", "it::ShortLived"), 0) << Comments(*profile);
  static const std::regex kLater(R"(armed later=([0-9]+))");
  std::smatch m;
  const std::string comments = Comments(*profile);
  ASSERT_TRUE(std::regex_search(comments, m, kLater)) << comments;
  EXPECT_GE(std::stoll(m[1].str()), 10) << comments;
  const auto [created, deleted] = TimerCounts(*profile, "cpu timers this profile");
  EXPECT_EQ(created, deleted) << comments;
  EXPECT_EQ(PosixTimers(pid), 0);
  program->process->CloseStdin();
  const ExitStatus status = program->process->Wait(kExitTimeout);
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe();
  EXPECT_THAT(program->process->out(), HasSubstr("CHURN threads="));
}

// --- signals ------------------------------------------------------------------

TEST_F(CpuProfile, BlockedSystemCallsBehaveAsWithoutProfiling) {
  auto program = Start({"eintr"});
  ASSERT_TRUE(program.has_value());
  auto profile_future = std::async(std::launch::async, [&] {
    return HttpGet(program->port, "/debug/pprof/profile?seconds=3&hz=1000");
  });
  Subprocess& p = *program->process;
  ASSERT_TRUE(p.WaitForStdoutLine("EINTR_DONE", Millis(20000))) << p.out();
  const HttpResult r = profile_future.get();
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string out = p.out();
  static const std::regex kRead(R"(READ rc=1 eintr=0 ms=([0-9]+))");
  static const std::regex kSleep(R"(NANOSLEEP rc=0 eintr=0 ms=([0-9]+))");
  static const std::regex kPoll(R"(POLL rc=0 eintr=0 max_ms=([0-9]+))");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, kRead)) << out;
  EXPECT_GE(std::stoi(m[1].str()), 1900);
  ASSERT_TRUE(std::regex_search(out, m, kSleep)) << out;
  EXPECT_GE(std::stoi(m[1].str()), 2000);
  EXPECT_LE(std::stoi(m[1].str()), 2200);
  ASSERT_TRUE(std::regex_search(out, m, kPoll)) << out;
  EXPECT_GE(std::stoi(m[1].str()), 999);
  EXPECT_LE(std::stoi(m[1].str()), 1100);
}

TEST_F(CpuProfile, AnApplicationHandlerIsNeverReplaced) {
  auto program = Start({"app-handler"});
  ASSERT_TRUE(program.has_value());
  const auto start = Clock::now();
  const HttpResult r = HttpGet(program->port, "/debug/pprof/profile?seconds=2");
  EXPECT_LT(Clock::now() - start, Millis(1500)) << "refused only after profiling";
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.Header("X-Go-Pprof"), "1");
  EXPECT_THAT(r.body, HasSubstr("Could not enable CPU profiling: SIGPROF already "
                                "has a handler installed by the application"));
  EXPECT_THAT(r.body, HasSubstr("PPROF_AGENT_CPU_SIGNAL"));
  program->process->CloseStdin();
  program->process->Wait(kExitTimeout);
  EXPECT_THAT(program->process->out(), HasSubstr("APP_HANDLER intact=1"));
}

TEST_F(CpuProfile, AnotherSignalWorksBesideTheApplicationsHandler) {
  EnvChanges env;
  env.set["PPROF_AGENT_CPU_SIGNAL"] = "SIGRTMIN+4";
  auto program = Start({"app-handler"}, Flavour::kPreloaded, env);
  ASSERT_TRUE(program.has_value());
  auto profile = Fetch(*program, "seconds=1");
  ASSERT_TRUE(profile.has_value());
  EXPECT_GT(profile->SumFor("samples", kBusyFunction), 0) << Comments(*profile);
  EXPECT_THAT(Comments(*profile), HasSubstr("signal=SIGRTMIN+4"));
  program->process->CloseStdin();
  program->process->Wait(kExitTimeout);
  EXPECT_THAT(program->process->out(), HasSubstr("APP_HANDLER intact=1"));
}

TEST_F(CpuProfile, ASignalBlockedInEveryThreadIsAClearError) {
  auto program = Start({"blocked"});
  ASSERT_TRUE(program.has_value());
  const HttpResult r = HttpGet(program->port, "/debug/pprof/profile?seconds=2");
  EXPECT_EQ(r.status, 500);
  EXPECT_THAT(r.body, HasSubstr("Could not enable CPU profiling: SIGPROF is "
                                "blocked in every application thread"));
}

// --- HTTP behaviour -----------------------------------------------------------------

TEST_F(CpuProfile, GoToolPprofTopReadsTheEndpointOverHttp) {
  auto program = Start({"busy", "2"}, Flavour::kLinked);
  ASSERT_TRUE(program.has_value());
  const std::string url = program->BaseUrl() + "/debug/pprof/profile";
  const CommandResult top = GoPprof(tmp_, {"-top", "-seconds", "2", url});
  ASSERT_TRUE(top.ok()) << top.status.Describe() << "\n" << top.err;
  EXPECT_THAT(top.out, HasSubstr("Type: cpu"));
  EXPECT_THAT(top.out, HasSubstr(kBusyFunction));
  // thread_name labels: -tagfocus keeps one thread.
  const CommandResult one = GoPprof(
      tmp_, {"-top", "-seconds", "1", "-tagfocus", "thread_name=busy-1", url});
  ASSERT_TRUE(one.ok()) << one.err;
  EXPECT_THAT(one.out, HasSubstr(kBusyFunction));
  const CommandResult none = GoPprof(
      tmp_, {"-top", "-seconds", "1", "-tagfocus", "thread_name=no-such-thread", url});
  EXPECT_THAT(none.out + none.err, ::testing::Not(HasSubstr(kBusyFunction)));
}

TEST_F(CpuProfile, ASecondConcurrentRequestGets409AtOnce) {
  auto program = Start({"busy", "1"});
  ASSERT_TRUE(program.has_value());
  auto first = std::async(std::launch::async, [&] {
    return HttpGet(program->port, "/debug/pprof/profile?seconds=3");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto start = Clock::now();
  const HttpResult second = HttpGet(program->port, "/debug/pprof/profile?seconds=1");
  EXPECT_LT(Clock::now() - start, Millis(1000));
  EXPECT_EQ(second.status, 409);
  EXPECT_EQ(second.body,
            "Could not enable CPU profiling: cpu profiling already in use\n");
  EXPECT_EQ(second.Header("X-Go-Pprof"), "1");
  EXPECT_EQ(first.get().status, 200);
}

TEST_F(CpuProfile, AClientThatDisconnectsStopsTheProfile) {
  auto program = Start({"busy", "1"});
  ASSERT_TRUE(program.has_value());
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(program->port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string request =
      "GET /debug/pprof/profile?seconds=60 HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(write(fd, request.data(), request.size()),
            static_cast<ssize_t>(request.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  close(fd);
  const auto start = Clock::now();
  // Within a poll interval (100 ms) or so the 60 s profile is gone and a new
  // one can start.
  HttpResult next;
  do {
    next = HttpGet(program->port, "/debug/pprof/profile?seconds=1");
  } while (next.status == 409 && Clock::now() - start < Millis(3000));
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_LT(Clock::now() - start, Millis(3000));
}

TEST_F(CpuProfile, BadParametersAre400WithOneLine) {
  auto program = Start({"busy", "1"});
  ASSERT_TRUE(program.has_value());
  const struct {
    const char* query;
    const char* body;
  } cases[] = {
      {"seconds=abc", "invalid value for \"seconds\" - must be a positive integer\n"},
      {"seconds=0", "invalid value for \"seconds\" - must be a positive integer\n"},
      {"seconds=301",
       "invalid value for \"seconds\" - must be at most 300 (the agent's limit, "
       "PPROF_AGENT_MAX_SECONDS)\n"},
      {"hz=0", "invalid value for \"hz\" - must be an integer from 1 to 1000\n"},
      {"hz=1001", "invalid value for \"hz\" - must be an integer from 1 to 1000\n"},
      {"hz=fast", "invalid value for \"hz\" - must be an integer from 1 to 1000\n"},
  };
  for (const auto& c : cases) {
    const HttpResult r =
        HttpGet(program->port, std::string("/debug/pprof/profile?") + c.query);
    EXPECT_EQ(r.status, 400) << c.query;
    EXPECT_EQ(r.body, c.body) << c.query;
    EXPECT_EQ(r.Header("X-Go-Pprof"), "1") << c.query;
  }
  const HttpResult index = HttpGet(program->port, "/debug/pprof/");
  EXPECT_THAT(index.body, HasSubstr("href='profile?debug=1'>profile</a>"));
}

}  // namespace
}  // namespace pprof_agent::integration
