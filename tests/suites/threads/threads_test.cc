// Thread dumps and thread-creation stacks of real processes
// (programs/threads_program.cc): /debug/pprof/goroutine in its three forms
// and /debug/pprof/threadcreate, read with our own parsers and with
// `go tool pprof` over HTTP.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/integration_util.h"

namespace pprof_agent::integration {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A thread the program announced: "TID <tid> <name> <site>".
struct Announced {
  int tid = 0;
  std::string name;
  std::string site;
};

std::vector<Announced> AnnouncedThreads(const std::string& out) {
  std::vector<Announced> threads;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string tag;
    Announced a;
    if (fields >> tag >> a.tid >> a.name >> a.site && tag == "TID") threads.push_back(a);
  }
  return threads;
}

// "LOCK <name> <decimal address>" as "0x<hex>".
std::string LockAddress(const std::string& out, const std::string& name) {
  std::istringstream in(out);
  std::string line;
  const std::string prefix = "LOCK " + name + " ";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "0x%llx",
                    std::strtoull(line.c_str() + prefix.size(), nullptr, 10));
      return buf;
    }
  }
  return "";
}

// The section of a debug=2 dump about thread `tid`: from its header line to
// the blank line that ends it.
std::string Section(const std::string& dump, int tid) {
  const std::string header = "\nthread " + std::to_string(tid) + " \"";
  const size_t start = dump.find(header);
  if (start == std::string::npos) return "";
  const size_t end = dump.find("\n\n", start + 1);
  return dump.substr(start + 1, end == std::string::npos ? std::string::npos : end - start);
}

// The summary that opens a debug=2 dump (up to the first thread section).
std::string Summary(const std::string& dump) {
  const size_t end = dump.find("\nthread ");
  return dump.substr(0, end);
}

const Announced* Named(const std::vector<Announced>& threads, const std::string& name) {
  for (const Announced& a : threads) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

class Threads : public ::testing::Test {
 protected:
  void TearDown() override {
    if (program_.process == nullptr) return;
    program_.process->CloseStdin();
    const ExitStatus status = program_.process->Wait(kExitTimeout);
    EXPECT_TRUE(status.exited && status.code == 0)
        << status.Describe() << "\n" << program_.process->err();
  }

  void Start(std::vector<std::string> args, Flavour flavour = Flavour::kPreloaded,
             EnvChanges env = {}) {
    std::string error;
    auto program = StartProgram("threads_program", flavour, args, std::move(env),
                                /*expect_server=*/true, &error);
    ASSERT_TRUE(program.has_value()) << error;
    program_ = std::move(*program);
  }

  HttpResult Get(const std::string& path) { return HttpGet(program_.port, path); }

  std::string Dump() {
    const HttpResult r = Get("/debug/pprof/goroutine?debug=2");
    EXPECT_EQ(r.status, 200) << r.error << r.body;
    EXPECT_EQ(r.Header("Content-Type"), "text/plain; charset=utf-8");
    return r.body;
  }

  // Dumps until `needle` appears (the program's threads reach their
  // blocking calls a moment after READY), at most ~5 s.
  std::string DumpUntil(const std::string& needle) {
    std::string dump;
    for (int i = 0; i < 50; ++i) {
      dump = Dump();
      if (dump.find(needle) != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return dump;
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

TEST_F(Threads, DeadlockByLockOrderInversionNamesBothThreadsLocksAndCycle) {
  Start({"deadlock"});
  const std::vector<Announced> threads = AnnouncedThreads(program_.process->out());
  const Announced* alpha = Named(threads, "dl-alpha");
  const Announced* beta = Named(threads, "dl-beta");
  ASSERT_NE(alpha, nullptr) << program_.process->out();
  ASSERT_NE(beta, nullptr);
  const std::string a = LockAddress(program_.process->out(), "A");
  const std::string b = LockAddress(program_.process->out(), "B");
  const std::string alpha_name =
      "thread " + std::to_string(alpha->tid) + " (dl-alpha)";
  const std::string beta_name = "thread " + std::to_string(beta->tid) + " (dl-beta)";
  // The cycle starts at the smaller tid; dl-alpha was started first.
  const std::string expected =
      alpha->tid < beta->tid
          ? "DEADLOCK: " + alpha_name + " waits for mutex " + b + " held by " +
                beta_name + ", which waits for mutex " + a + " held by " + alpha_name
          : "DEADLOCK: " + beta_name + " waits for mutex " + a + " held by " +
                alpha_name + ", which waits for mutex " + b + " held by " + beta_name;
  const std::string dump = DumpUntil(expected);
  const std::string summary = Summary(dump);
  EXPECT_THAT(summary, HasSubstr(expected + "\n")) << dump;
  EXPECT_THAT(dump, StartsWith("pprof-agent thread dump: pid "));

  // Each thread's own entry: the lock it waits for, the holder, how long,
  // its stack, and the holder's stack.
  const std::string alpha_section = Section(dump, alpha->tid);
  EXPECT_THAT(alpha_section, HasSubstr("thread " + std::to_string(alpha->tid) +
                                       " \"dl-alpha\" [S (sleeping)]:\n"));
  EXPECT_THAT(alpha_section,
              HasSubstr("for mutex " + b + ", held by thread " +
                        std::to_string(beta->tid) + " \"dl-beta\"\n"));
  EXPECT_THAT(alpha_section, HasSubstr("it::LockAlphaThenBeta()\n\t"));
  EXPECT_THAT(alpha_section, HasSubstr("threads_program.cc:"));
  EXPECT_THAT(alpha_section, HasSubstr("  holder thread " + std::to_string(beta->tid) +
                                       " \"dl-beta\" [S (sleeping)], itself waiting"));
  EXPECT_THAT(alpha_section, HasSubstr("      it::LockBetaThenAlpha()"));
  const std::string beta_section = Section(dump, beta->tid);
  EXPECT_THAT(beta_section, HasSubstr("for mutex " + a + ", held by thread " +
                                      std::to_string(alpha->tid) + " \"dl-alpha\"\n"));
  EXPECT_THAT(beta_section, HasSubstr("it::LockBetaThenAlpha()\n\t"));
  std::smatch m;
  EXPECT_TRUE(std::regex_search(alpha_section, m, std::regex(R"(  waiting \d+(\.\d+s|ms|us) for mutex)")))
      << alpha_section;
}

TEST_F(Threads, ThirdWaiterChainEndsInTheDeadlock) {
  Start({"deadlock"});
  const std::vector<Announced> threads = AnnouncedThreads(program_.process->out());
  const Announced* alpha = Named(threads, "dl-alpha");
  const Announced* late = Named(threads, "dl-late");
  ASSERT_NE(alpha, nullptr);
  ASSERT_NE(late, nullptr);
  const std::string a = LockAddress(program_.process->out(), "A");
  const std::string chain = "  thread " + std::to_string(late->tid) +
                            " (dl-late) waits for mutex " + a + " held by thread " +
                            std::to_string(alpha->tid) +
                            " (dl-alpha), which is in DEADLOCK 1 [";
  const std::string dump = DumpUntil(chain);
  const std::string summary = Summary(dump);
  EXPECT_THAT(summary, HasSubstr("3 threads blocked in hooked lock calls, 1 deadlock\n"))
      << dump;
  EXPECT_THAT(summary, HasSubstr("wait chains:\n" + chain)) << dump;
  EXPECT_THAT(summary, HasSubstr("blocked longest:\n"));
  // dl-late is not part of the cycle itself.
  EXPECT_THAT(summary, Not(HasSubstr("also in this deadlock")));
  EXPECT_THAT(Section(dump, late->tid), HasSubstr("it::WaitBehindDeadlock()"));
}

TEST_F(Threads, DeadlockThroughAReadHeldRwlockNamesTheReader) {
  Start({"rwdeadlock"});
  const std::vector<Announced> threads = AnnouncedThreads(program_.process->out());
  const Announced* reader = Named(threads, "rw-reader");
  const Announced* writer = Named(threads, "rw-writer");
  ASSERT_NE(reader, nullptr) << program_.process->out();
  ASSERT_NE(writer, nullptr);
  const std::string rw = LockAddress(program_.process->out(), "RW");
  const std::string mu = LockAddress(program_.process->out(), "M");
  const std::string r = "thread " + std::to_string(reader->tid) + " (rw-reader)";
  const std::string w = "thread " + std::to_string(writer->tid) + " (rw-writer)";
  const std::string expected =
      reader->tid < writer->tid
          ? "DEADLOCK: " + r + " waits for mutex " + mu + " held by " + w +
                ", which waits for rwlock " + rw + " (to write) held by " + r
          : "DEADLOCK: " + w + " waits for rwlock " + rw + " (to write) held by " + r +
                ", which waits for mutex " + mu + " held by " + w;
  const std::string dump = DumpUntil(expected);
  EXPECT_THAT(Summary(dump), HasSubstr(expected + "\n")) << dump;
  EXPECT_THAT(Section(dump, writer->tid),
              HasSubstr("for rwlock " + rw + " (to write), held by thread " +
                        std::to_string(reader->tid) + " \"rw-reader\"\n"));
}

TEST_F(Threads, WithBothContentionProfilesOffTheDumpSaysWhyThereIsNoGraph) {
  EnvChanges env;
  env.set["PPROF_AGENT_MUTEX_RATE"] = "0";
  env.set["PPROF_AGENT_BLOCK_RATE"] = "0";
  Start({"deadlock"}, Flavour::kPreloaded, env);
  const std::string dump = Dump();
  EXPECT_THAT(Summary(dump), HasSubstr("wait-for graph: not available: the lock hooks record "
                                       "waits only while a contention profile is on"));
  // The threads and their stacks are there all the same.
  EXPECT_THAT(dump, HasSubstr("it::LockAlphaThenBeta()"));
}

TEST_F(Threads, FiveHundredSleepingThreadsAllAppearWithTheirStacks) {
  Start({"sleepers", "500"});
  const std::vector<Announced> threads = AnnouncedThreads(program_.process->out());
  ASSERT_EQ(threads.size(), 501u);
  const std::string dump = Dump();
  int checked = 0;
  for (const Announced& t : threads) {
    if (t.name == "masked") continue;
    const std::string section = Section(dump, t.tid);
    ASSERT_FALSE(section.empty()) << "thread " << t.tid << " missing";
    // Sleeping, or caught in the moment it wakes to check its flag.
    EXPECT_THAT(section, AnyOf(HasSubstr("\"" + t.name + "\" [S (sleeping)]:\n"),
                               HasSubstr("\"" + t.name + "\" [R (running)]:\n")));
    EXPECT_THAT(section, HasSubstr(t.site + "(int)\n\t"))
        << section;
    EXPECT_THAT(section, Not(HasSubstr("stack missing")));
    ++checked;
  }
  EXPECT_EQ(checked, 500);

  // The protobuf, read by pprof: every thread once, its site in its stack.
  if (*GoBinaryPath() == '\0') return;  // the rest needs go tool pprof
  const RawProfile profile = Fetch("/debug/pprof/goroutine", "goroutine.pb.gz");
  EXPECT_EQ(profile.sample_types, std::vector<std::string>{"goroutine/count"});
  EXPECT_EQ(profile.period_type, "goroutine count");
  EXPECT_EQ(profile.SumFor("goroutine", "it::SleepInAlpha"), 167);
  EXPECT_EQ(profile.SumFor("goroutine", "it::SleepInBeta"), 167);
  EXPECT_EQ(profile.SumFor("goroutine", "it::SleepInGamma"), 166);
  // 500 sleepers and main, nothing of the agent. The masked thread is in
  // the protobuf as a sample without locations (label stack_missing), which
  // pprof leaves out of its views.
  EXPECT_EQ(profile.Total("goroutine"), 501);
}

TEST_F(Threads, ThreadWithAllSignalsBlockedIsListedWithItsState) {
  Start({"sleepers", "3"});
  const std::vector<Announced> threads = AnnouncedThreads(program_.process->out());
  const Announced* masked = Named(threads, "masked");
  ASSERT_NE(masked, nullptr);
  const std::string dump = Dump();
  const std::string section = Section(dump, masked->tid);
  const std::string header = "thread " + std::to_string(masked->tid) + " \"masked\" [";
  EXPECT_THAT(section, AnyOf(HasSubstr(header + "S (sleeping)]:\n"),
                             HasSubstr(header + "R (running)]:\n")));
  EXPECT_THAT(section, HasSubstr("  (stack missing: the thread blocks SIGRTMIN+6"));
  EXPECT_THAT(dump, HasSubstr(" 1 block the signal"));
  // debug=1 counts it in the total and says why it has no record.
  const HttpResult text = Get("/debug/pprof/goroutine?debug=1");
  ASSERT_EQ(text.status, 200);
  EXPECT_THAT(text.body, StartsWith("goroutine profile: total 5\n"));
  EXPECT_THAT(text.body, HasSubstr("# 1 without a stack: the thread blocks SIGRTMIN+6"));
}

TEST_F(Threads, DumpSignalIsConfigurable) {
  EnvChanges env;
  env.set["PPROF_AGENT_DUMP_SIGNAL"] = "SIGRTMIN+9";
  Start({"sleepers", "3"}, Flavour::kPreloaded, env);
  const std::string dump = Dump();
  EXPECT_THAT(dump, HasSubstr("(stack missing: the thread blocks SIGRTMIN+9"));
  EXPECT_THAT(dump, HasSubstr("with SIGRTMIN+9;"));
  EXPECT_THAT(dump, HasSubstr("it::SleepInAlpha(int)\n\t"));
}

TEST_F(Threads, GoroutineDebug1IsGosAggregatedText) {
  Start({"sleepers", "30"});
  const HttpResult r = Get("/debug/pprof/goroutine?debug=1");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_THAT(r.body, StartsWith("goroutine profile: total 32\n"));
  // Ten threads per site share one stack: one record of 10 each.
  for (const char* site : {"it::SleepInAlpha", "it::SleepInBeta", "it::SleepInGamma"}) {
    std::regex record(std::string(R"(\n10 @( 0x[0-9a-f]+)+\n# threads: [^\n]*\n(#\t0x[0-9a-f]+\t[^\n]*\n)*#\t0x[0-9a-f]+\t)") +
                      site + R"(\(int\)\t[^\n]*threads_program\.cc:\d+\n)");
    EXPECT_TRUE(std::regex_search(r.body, record)) << site << "\n" << r.body;
  }
}

TEST_F(Threads, GoPprofReadsGoroutineOverHttp) {
  PA_IT_SKIP_WITHOUT_GO();
  Start({"sleepers", "12"});
  const std::string url = "http://127.0.0.1:" + std::to_string(program_.port) + "/debug/pprof/";
  const CommandResult goroutine = GoPprof(tmp_, {"-top", url + "goroutine"});
  ASSERT_TRUE(goroutine.ok()) << goroutine.err;
  EXPECT_THAT(goroutine.out, HasSubstr("it::SleepInAlpha"));
  EXPECT_THAT(goroutine.out, HasSubstr("Type: goroutine"));
  const CommandResult tagged =
      GoPprof(tmp_, {"-tags", url + "goroutine"});
  ASSERT_TRUE(tagged.ok()) << tagged.err;
  EXPECT_THAT(tagged.out, HasSubstr("thread_name"));
  EXPECT_THAT(tagged.out, HasSubstr("sleeping"));
}

TEST_F(Threads, ThousandThreadsDumpInUnderOneSecond) {
  Start({"sleepers", "999"});
  // Warm the symbolizer once (its first pass reads DWARF), then time.
  ASSERT_EQ(Get("/debug/pprof/goroutine?debug=2").status, 200);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string dump = Dump();
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dump, m, std::regex(R"(thread dump of (\d+) threads \(\d+ of pprof-agent\) in ([0-9.]+) ms)")))
      << dump.substr(dump.size() > 2000 ? dump.size() - 2000 : 0);
  EXPECT_GE(std::stoi(m[1]), 1001);
  const double collect_ms = std::stod(m[2]);
  RecordProperty("collect_ms", std::to_string(collect_ms));
  RecordProperty("request_ms", std::to_string(ms));
  std::printf("1000 threads: collected in %.1f ms, debug=2 served in %lld ms\n", collect_ms,
              static_cast<long long>(ms));
  EXPECT_LT(collect_ms, 1000.0);
  EXPECT_LT(ms, 1000);
  EXPECT_THAT(dump, HasSubstr(" 0 did not answer in time"));
}

TEST_F(Threads, ThreadsExitingDuringDumpsDoNoHarm) {
  Start({"churn"});
  for (int i = 0; i < 15; ++i) {
    const HttpResult r = Get("/debug/pprof/goroutine?debug=2");
    ASSERT_EQ(r.status, 200) << r.error << r.body;
    EXPECT_THAT(r.body, StartsWith("pprof-agent thread dump: pid "));
    const HttpResult p = Get("/debug/pprof/goroutine");
    ASSERT_EQ(p.status, 200) << r.error;
  }
  // The process is still healthy and answers.
  EXPECT_EQ(Get("/debug/pprof/threadcreate?debug=1").status, 200);
}

TEST_F(Threads, ExitedMainThreadIsListedAndNotWaitedFor) {
  Start({"mainexits"});
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string dump = Dump();
  const std::string main_section = Section(dump, program_.process->pid());
  EXPECT_THAT(main_section, HasSubstr("(stack missing: the thread has exited (Z (zombie)))"))
      << dump;
  EXPECT_THAT(dump, HasSubstr(" 0 did not answer in time"));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dump, m, std::regex(R"(threads \(\d+ of pprof-agent\) in ([0-9.]+) ms)")));
  EXPECT_LT(std::stod(m[1]), 500.0);
  const std::vector<Announced> threads = AnnouncedThreads(program_.process->out());
  ASSERT_EQ(threads.size(), 1u);
  // The waiter answered with its stack. (Not checked by name: with the main
  // thread a zombie, /proc/self/maps reads empty, and the symbolizer, which
  // reads that file, finds no mapping.)
  const std::string waiter = Section(dump, threads[0].tid);
  EXPECT_THAT(waiter, HasSubstr("\"waiter\" [S (sleeping)]:\n"));
  EXPECT_THAT(waiter, Not(HasSubstr("stack missing")));
  EXPECT_GE(std::count(waiter.begin(), waiter.end(), '\n'), 4) << waiter;
}

TEST_F(Threads, ConcurrentDumpsAreSerializedOrRefusedNeverCorrupted) {
  Start({"sleepers", "300"});
  const std::vector<Announced> threads = AnnouncedThreads(program_.process->out());
  std::vector<HttpResult> results(4);
  std::vector<std::thread> requests;
  for (size_t i = 0; i < results.size(); ++i) {
    requests.emplace_back([this, &results, i] { results[i] = Get("/debug/pprof/goroutine?debug=2"); });
  }
  for (std::thread& t : requests) t.join();
  int served = 0;
  for (const HttpResult& r : results) {
    ASSERT_THAT(r.status, AnyOf(200, 409)) << r.error << r.body;
    if (r.status == 409) {
      EXPECT_EQ(r.body, "Could not take a thread dump: a thread dump is already being "
                        "taken; retry in a moment\n");
      EXPECT_EQ(r.Header("X-Go-Pprof"), "1");
      continue;
    }
    ++served;
    // Complete: every sleeper with its own stack.
    for (const Announced& t : threads) {
      if (t.name == "masked") continue;
      EXPECT_THAT(Section(r.body, t.tid), HasSubstr(t.site + "(int)\n\t")) << t.tid;
    }
  }
  EXPECT_GE(served, 1);
}

TEST_F(Threads, IndexListsGoroutineAndThreadcreate) {
  Start({"sleepers", "6"});
  const HttpResult r = Get("/debug/pprof/");
  ASSERT_EQ(r.status, 200);
  // Seven of ours and main: the agent's threads are not counted.
  EXPECT_THAT(r.body, HasSubstr("<tr>\n<td>8</td><td><a href='goroutine?debug=1'>goroutine</a></td>"));
  EXPECT_THAT(r.body, HasSubstr("<a href='threadcreate?debug=1'>threadcreate</a>"));
  EXPECT_THAT(r.body, HasSubstr("<a href=\"goroutine?debug=2\">full goroutine stack dump</a>"));
}

TEST_F(Threads, LinkedProgramDumpsTheDeadlockToo) {
  Start({"deadlock"}, Flavour::kLinked);
  const std::string dump = DumpUntil("DEADLOCK: thread ");
  EXPECT_THAT(Summary(dump), HasSubstr("(dl-alpha)"));
  EXPECT_THAT(Summary(dump), HasSubstr("(dl-beta)"));
}

}  // namespace
}  // namespace pprof_agent::integration
