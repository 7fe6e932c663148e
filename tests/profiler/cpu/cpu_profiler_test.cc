// Tests of the CPU profiler's pure parts (sample ring, signal names, clock
// ids, conversion to Go's profile) and of a real session in this process:
// timers on this process's threads, samples from the signal handler, every
// timer deleted at the end. The pthread_create hook lives only in the shared
// library, so threads started here are covered by the enumeration at Start.
#include "profiler/cpu/cpu_profiler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "profiler/cpu/cpu_sample_ring.h"

namespace pprof_agent::internal {
namespace {

using ::testing::HasSubstr;

// --- ring ---------------------------------------------------------------------

CpuSampleRecord MakeRecord(int32_t tid, int depth, uint64_t base) {
  CpuSampleRecord r{};
  r.generation = 7;
  r.tid = tid;
  r.depth = depth;
  r.weight = 1;
  for (int i = 0; i < depth; ++i) r.pcs[i] = base + static_cast<uint64_t>(i);
  return r;
}

TEST(LoaderLock, BusyOnlyForItsOwnHolder) {
  ASSERT_TRUE(FindLoaderLock()) << "glibc's loader lock not found in _rtld_global";
  EXPECT_FALSE(LoaderLockBusy());
  // Inside a dl_iterate_phdr() callback this thread holds the lock: an
  // unwind here (in a signal handler) would wait for itself.
  bool busy_inside = false;
  dl_iterate_phdr(
      [](dl_phdr_info*, size_t, void* data) {
        *static_cast<bool*>(data) = LoaderLockBusy();
        return 1;
      },
      &busy_inside);
  EXPECT_TRUE(busy_inside);
  // Another thread holding it (as every thread does that unwinds in a
  // thread dump): this thread may unwind, it only waits. Treating that as
  // busy cut stacks to their leaf whenever two threads unwound at once.
  struct Shared {
    std::atomic<int> stage{0};
  } shared;
  std::thread holder([&shared] {
    dl_iterate_phdr(
        [](dl_phdr_info*, size_t, void* data) {
          auto* sh = static_cast<Shared*>(data);
          sh->stage.store(1);
          while (sh->stage.load() != 2) std::this_thread::yield();
          return 1;
        },
        &shared);
  });
  while (shared.stage.load() != 1) std::this_thread::yield();
  EXPECT_FALSE(LoaderLockBusy());
  shared.stage.store(2);
  holder.join();
  EXPECT_FALSE(LoaderLockBusy());
}

TEST(CpuSampleRing, PopsInOrderWhatWasPushed) {
  CpuSampleRing ring;
  ASSERT_TRUE(ring.Allocate(8));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(ring.TryPush(MakeRecord(i, i + 1, 100 * i)));
  CpuSampleRecord out;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(ring.TryPop(&out));
    EXPECT_EQ(out.tid, i);
    ASSERT_EQ(out.depth, i + 1);
    EXPECT_EQ(out.pcs[out.depth - 1], 100u * i + i);
  }
  EXPECT_FALSE(ring.TryPop(&out));
}

TEST(CpuSampleRing, FullRingRefusesAndRecoversAfterPop) {
  CpuSampleRing ring;
  ASSERT_TRUE(ring.Allocate(4));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(ring.TryPush(MakeRecord(i, 1, 0)));
  EXPECT_FALSE(ring.TryPush(MakeRecord(9, 1, 0)));
  CpuSampleRecord out;
  ASSERT_TRUE(ring.TryPop(&out));
  EXPECT_TRUE(ring.TryPush(MakeRecord(9, 1, 0)));
  // Wraps around many times without losing its place.
  for (int round = 0; round < 100; ++round) {
    ASSERT_TRUE(ring.TryPop(&out));
    ASSERT_TRUE(ring.TryPush(MakeRecord(round, 2, 0)));
  }
}

TEST(CpuSampleRing, RejectsBadCapacityAndClampsDepth) {
  CpuSampleRing bad;
  EXPECT_FALSE(bad.Allocate(6));
  EXPECT_FALSE(bad.TryPush(MakeRecord(1, 1, 0)));  // not allocated: drop
  CpuSampleRing ring;
  ASSERT_TRUE(ring.Allocate(2));
  CpuSampleRecord r = MakeRecord(1, 1, 0);
  r.depth = 1000;
  ASSERT_TRUE(ring.TryPush(r));
  CpuSampleRecord out;
  ASSERT_TRUE(ring.TryPop(&out));
  EXPECT_EQ(out.depth, kCpuMaxFrames);
}

// Several producers and one consumer: every record arrives exactly once
// (pushes that found the ring full are retried, as counted drops would be).
TEST(CpuSampleRing, ManyProducersOneConsumerLoseNothing) {
  CpuSampleRing ring;
  ASSERT_TRUE(ring.Allocate(64));
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 5000;
  std::atomic<int> done{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&ring, &done, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        const CpuSampleRecord r = MakeRecord(p, 3, static_cast<uint64_t>(i));
        while (!ring.TryPush(r)) std::this_thread::yield();
      }
      done.fetch_add(1);
    });
  }
  std::vector<int> next(kProducers, 0);
  int received = 0;
  CpuSampleRecord out;
  while (received < kProducers * kPerProducer) {
    if (!ring.TryPop(&out)) {
      std::this_thread::yield();
      continue;
    }
    ASSERT_GE(out.tid, 0);
    ASSERT_LT(out.tid, kProducers);
    // Per producer, records arrive in the order it pushed them, intact.
    ASSERT_EQ(out.pcs[0], static_cast<uint64_t>(next[out.tid]));
    ASSERT_EQ(out.pcs[2], static_cast<uint64_t>(next[out.tid]) + 2);
    ++next[out.tid];
    ++received;
  }
  for (auto& t : producers) t.join();
  EXPECT_FALSE(ring.TryPop(&out));
}

// --- names, clocks ------------------------------------------------------------

TEST(CpuSignal, ParsesNamesNumbersAndRealTimeOffsets) {
  int s = 0;
  EXPECT_TRUE(ParseCpuSignal("SIGPROF", &s));
  EXPECT_EQ(s, SIGPROF);
  EXPECT_TRUE(ParseCpuSignal("prof", &s));
  EXPECT_EQ(s, SIGPROF);
  EXPECT_TRUE(ParseCpuSignal(std::to_string(SIGUSR2), &s));
  EXPECT_EQ(s, SIGUSR2);
  EXPECT_TRUE(ParseCpuSignal("SIGVTALRM", &s));
  EXPECT_EQ(s, SIGVTALRM);
  EXPECT_TRUE(ParseCpuSignal("SIGRTMIN+3", &s));
  EXPECT_EQ(s, SIGRTMIN + 3);
  EXPECT_TRUE(ParseCpuSignal("rtmax-1", &s));
  EXPECT_EQ(s, SIGRTMAX - 1);
  EXPECT_TRUE(ParseCpuSignal("SIGRTMIN", &s));
  EXPECT_EQ(s, SIGRTMIN);
}

TEST(CpuSignal, RejectsSignalsThatMustNotBeUsed) {
  int s = -1;
  for (const char* bad :
       {"", "SIG", "SIGKILL", "9", "SIGSEGV", "11", "SIGCHLD", "SIGINT", "0",
        "-27", "27x", "SIGRTMIN-1", "SIGRTMAX+1", "SIGRTMIN+100", "1000",
        "SIGPROF ", "32"}) {
    EXPECT_FALSE(ParseCpuSignal(bad, &s)) << bad;
  }
  EXPECT_EQ(s, -1);
}

TEST(CpuSignal, NamesRoundTrip) {
  for (int signo : {SIGPROF, SIGVTALRM, SIGALRM, SIGUSR1, SIGUSR2, SIGRTMIN,
                    SIGRTMIN + 4, SIGRTMAX}) {
    int parsed = 0;
    ASSERT_TRUE(ParseCpuSignal(CpuSignalName(signo), &parsed)) << signo;
    EXPECT_EQ(parsed, signo);
  }
  EXPECT_EQ(CpuSignalName(SIGPROF), "SIGPROF");
  EXPECT_EQ(CpuSignalName(SIGRTMIN + 2), "SIGRTMIN+2");
}

TEST(CpuClock, ThreadClockIdMatchesTheKernelsEncoding) {
  clockid_t mine;
  ASSERT_EQ(pthread_getcpuclockid(pthread_self(), &mine), 0);
  const auto tid = static_cast<int32_t>(syscall(SYS_gettid));
  EXPECT_EQ(ThreadCpuClock(tid), mine);
  timespec ts;
  EXPECT_EQ(clock_gettime(ThreadCpuClock(tid), &ts), 0);
}

TEST(CpuClock, CookiePacksGenerationAndSlot) {
  const uint64_t c = PackTimerCookie(0xdeadbeef, 12345);
  EXPECT_EQ(static_cast<uint32_t>(c >> 32), 0xdeadbeefu);
  EXPECT_EQ(static_cast<uint32_t>(c), 12345u);
}

// --- conversion ---------------------------------------------------------------

TEST(CpuProfileSnapshot, GoSampleTypesPeriodAndThreadLabels) {
  CpuRaw raw;
  raw.hz = 250;
  raw.start_wall_nanos = 1000;
  raw.duration_nanos = 2000000000;
  raw.records.push_back({{0x10, 0x20, 0x30}, 11, 3});
  raw.records.push_back({{0x10, 0x20, 0x30}, 12, 1});  // same stack, other thread
  raw.records.push_back({{0x40}, 11, 2});
  raw.records.push_back({{0x50}, 11, 0});  // empty: dropped
  raw.thread_names[11] = "worker";
  raw.comments = {"note"};
  const Snapshot s = CpuProfileSnapshot(raw);
  ASSERT_EQ(s.sample_types.size(), 2u);
  EXPECT_EQ(s.sample_types[0].type, "samples");
  EXPECT_EQ(s.sample_types[0].unit, "count");
  EXPECT_EQ(s.sample_types[1].type, "cpu");
  EXPECT_EQ(s.sample_types[1].unit, "nanoseconds");
  EXPECT_EQ(s.period_type.type, "cpu");
  EXPECT_EQ(s.period_type.unit, "nanoseconds");
  EXPECT_EQ(s.period, 4000000);
  EXPECT_EQ(s.default_sample_type, "");  // pprof's default: the last, cpu
  EXPECT_EQ(s.time_nanos, 1000);
  EXPECT_EQ(s.duration_nanos, 2000000000);
  EXPECT_EQ(s.comments, std::vector<std::string>{"note"});
  ASSERT_EQ(s.stacks.size(), 2u);  // deduplicated
  for (const Stack& st : s.stacks) EXPECT_TRUE(st.leaf_is_pc);
  ASSERT_EQ(s.samples.size(), 3u);
  EXPECT_EQ(s.samples[0].values, (std::vector<int64_t>{3, 12000000}));
  EXPECT_EQ(s.samples[0].stack, s.samples[1].stack);
  ASSERT_EQ(s.samples[0].labels.size(), 2u);
  EXPECT_EQ(s.samples[0].labels[0].key, "thread_id");
  EXPECT_TRUE(s.samples[0].labels[0].is_num);
  EXPECT_EQ(s.samples[0].labels[0].num, 11);
  EXPECT_EQ(s.samples[0].labels[1].key, "thread_name");
  EXPECT_EQ(s.samples[0].labels[1].str, "worker");
  EXPECT_EQ(s.samples[1].labels[1].str, "unknown");  // tid 12 has no name
}

// --- a real session -------------------------------------------------------------

// CPU time of the calling thread.
int64_t ThreadCpuNanos() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

volatile uint64_t g_sink;

int64_t MonotonicNow() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no system call
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// Busy for `wall_nanos` of wall time. Deliberately no system call in the
// loop: on this kernel a thread that reads its own CPU clock
// (CLOCK_THREAD_CPUTIME_ID, a real system call) tens of thousands of times a
// second gets its CPU timer checked much less often (see cpu_profiler.cc).
__attribute__((noinline)) void SpinFor(int64_t wall_nanos) {
  const int64_t end = MonotonicNow() + wall_nanos;
  uint64_t x = 1;
  while (MonotonicNow() < end) {
    for (int i = 0; i < 10000; ++i) x = x * 6364136223846793005ULL + 1;
  }
  g_sink = x;
}

int CountTimers() {
  std::ifstream f("/proc/self/timers");
  std::string line;
  int n = 0;
  while (std::getline(f, line)) n += line.rfind("ID:", 0) == 0;
  return n;
}

int64_t Sum(const CpuRaw& raw, int32_t tid = 0) {
  int64_t sum = 0;
  for (const auto& r : raw.records) {
    if (tid == 0 || r.tid == tid) sum += r.samples;
  }
  return sum;
}

TEST(CpuProfileSession, SamplesABusyThreadAndDeletesEveryTimer) {
  const int timers_before = CountTimers();
  const CpuCounters before = CpuCountersNow();
  std::atomic<bool> stop{false};
  std::atomic<int32_t> busy_tid{0};
  std::atomic<int64_t> busy_cpu{0};
  std::thread busy([&] {
    pthread_setname_np(pthread_self(), "cpu-test-busy");
    busy_tid = static_cast<int32_t>(syscall(SYS_gettid));
    const int64_t start = ThreadCpuNanos();
    while (!stop.load()) SpinFor(1000000);
    busy_cpu = ThreadCpuNanos() - start;
  });
  while (busy_tid.load() == 0) std::this_thread::yield();

  CpuStartError error;
  std::string message;
  CpuProfileOptions options;
  options.hz = 250;
  auto session = CpuProfileSession::Start(options, &error, &message);
  ASSERT_NE(session, nullptr) << message;
  EXPECT_EQ(CountTimers(), timers_before + 2);  // this thread and `busy`
  EXPECT_TRUE(CpuCountersNow().running);

  // A second profile is refused while this one runs.
  CpuStartError error2;
  std::string message2;
  EXPECT_EQ(CpuProfileSession::Start(options, &error2, &message2), nullptr);
  EXPECT_EQ(error2, CpuStartError::kBusy);
  EXPECT_EQ(message2, "cpu profiling already in use");

  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_TRUE(session->Poll());
  }
  const CpuRaw raw = session->Stop();
  stop = true;
  busy.join();

  EXPECT_EQ(CountTimers(), timers_before);
  const CpuCounters after = CpuCountersNow();
  EXPECT_FALSE(after.running);
  EXPECT_EQ(after.timers_created - before.timers_created, 2u);
  EXPECT_EQ(after.timers_deleted - before.timers_deleted, 2u);
  EXPECT_EQ(raw.hz, 250);
  EXPECT_GT(raw.duration_nanos, 900000000);
  // ~1 s of CPU at 250 Hz: about 250 periods, whatever the machine's load
  // (the busy thread may have had less than a whole CPU).
  const int64_t sampled = Sum(raw, busy_tid);
  EXPECT_GT(sampled, 20);
  EXPECT_EQ(raw.thread_names.at(busy_tid), "cpu-test-busy");
  bool leaf_in_spin = false;
  for (const auto& r : raw.records) {
    EXPECT_FALSE(r.pcs.empty());
    EXPECT_LE(r.pcs.size(), static_cast<size_t>(kCpuMaxFrames));
    if (r.tid == busy_tid) leaf_in_spin = true;
  }
  EXPECT_TRUE(leaf_in_spin);
  std::string comments;
  for (const auto& c : raw.comments) comments += c + "\n";
  EXPECT_THAT(comments, HasSubstr("cpu timers this profile: created=2 deleted=2"));
  EXPECT_THAT(comments, HasSubstr("dropped (buffer full)=0"));
}

int64_t CpuNanosOf(int32_t tid) {
  timespec ts;
  if (clock_gettime(ThreadCpuClock(tid), &ts) != 0) return -1;
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

TEST(CpuProfileSession, SampledCpuMatchesTheThreadsCpuTime) {
  // One thread busy through the whole session; its CPU clock is read right
  // after Start() and right before Stop(). Expected: sampled periods x period
  // == that CPU time, within 10%. The timer starts at a random phase and its
  // last period is cut (< 1% of 250 periods); the kernel checks CPU timers
  // on its tick, and Stop() gives overdue timers a few ticks to fire.
  std::atomic<bool> stop{false};
  std::atomic<int32_t> tid{0};
  std::thread busy([&] {
    tid = static_cast<int32_t>(syscall(SYS_gettid));
    while (!stop.load()) SpinFor(100000);
  });
  while (tid.load() == 0) std::this_thread::yield();
  CpuStartError error;
  std::string message;
  CpuProfileOptions options;
  options.hz = 250;
  auto session = CpuProfileSession::Start(options, &error, &message);
  ASSERT_NE(session, nullptr) << message;
  const int64_t cpu_start = CpuNanosOf(tid);
  for (int i = 0; i < 15; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    session->Poll();
  }
  const int64_t cpu = CpuNanosOf(tid) - cpu_start;
  const CpuRaw raw = session->Stop();
  stop = true;
  busy.join();
  const double sampled_ns = static_cast<double>(Sum(raw, tid)) * 4e6;
  ASSERT_GT(cpu, 100000000) << "the busy thread barely ran";
  std::printf("sampled %.1f ms of %.1f ms CPU (ratio %.3f)\n", sampled_ns / 1e6,
              static_cast<double>(cpu) / 1e6, sampled_ns / static_cast<double>(cpu));
  for (const auto& c : raw.comments) std::printf("  %s\n", c.c_str());
  EXPECT_NEAR(sampled_ns / static_cast<double>(cpu), 1.0, 0.10)
      << "sampled " << sampled_ns / 1e6 << " ms, thread used " << cpu / 1e6
      << " ms";
}

TEST(CpuProfileSession, RefusesASignalWithAnApplicationHandler) {
  struct sigaction sa = {};
  sa.sa_handler = [](int) {};
  struct sigaction old;
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  CpuStartError error;
  std::string message;
  CpuProfileOptions options;
  options.signal = SIGUSR1;
  EXPECT_EQ(CpuProfileSession::Start(options, &error, &message), nullptr);
  EXPECT_EQ(error, CpuStartError::kSignalInUse);
  EXPECT_THAT(message, HasSubstr("SIGUSR1 already has a handler"));
  EXPECT_THAT(message, HasSubstr("PPROF_AGENT_CPU_SIGNAL"));
  // The application's handler is still there, untouched.
  struct sigaction now;
  ASSERT_EQ(sigaction(SIGUSR1, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, sa.sa_handler);
  sigaction(SIGUSR1, &old, nullptr);
  EXPECT_FALSE(CpuCountersNow().running);
}

TEST(CpuProfileSession, RefusesWhenEveryThreadBlocksTheSignal) {
  // This test's process has one thread here (gtest runs tests serially on
  // the main thread); block the signal in it.
  const int signo = SIGRTMIN + 5;
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, signo);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
  CpuStartError error;
  std::string message;
  CpuProfileOptions options;
  options.signal = signo;
  auto session = CpuProfileSession::Start(options, &error, &message);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_EQ(session, nullptr);
  EXPECT_EQ(error, CpuStartError::kSignalBlocked);
  EXPECT_THAT(message, HasSubstr("blocked in every application thread"));
  EXPECT_FALSE(CpuCountersNow().running);
}

TEST(CpuProfileSession, ReplacedHandlerEndsTheProfile) {
  const int signo = SIGRTMIN + 6;
  CpuStartError error;
  std::string message;
  CpuProfileOptions options;
  options.signal = signo;
  auto session = CpuProfileSession::Start(options, &error, &message);
  ASSERT_NE(session, nullptr) << message;
  EXPECT_TRUE(session->Poll());
  struct sigaction sa = {};
  sa.sa_handler = SIG_IGN;
  struct sigaction ours;
  sigaction(signo, &sa, &ours);
  EXPECT_FALSE(session->Poll());
  const CpuRaw raw = session->Stop();
  std::string comments;
  for (const auto& c : raw.comments) comments += c + "\n";
  EXPECT_THAT(comments, HasSubstr("the application replaced the"));
  sigaction(signo, &ours, nullptr);
}

TEST(CpuProfileSession, RejectsBadOptions) {
  CpuStartError error;
  std::string message;
  CpuProfileOptions options;
  options.hz = 0;
  EXPECT_EQ(CpuProfileSession::Start(options, &error, &message), nullptr);
  EXPECT_EQ(error, CpuStartError::kBadOptions);
  options.hz = 1001;
  EXPECT_EQ(CpuProfileSession::Start(options, &error, &message), nullptr);
  options.hz = 100;
  options.signal = SIGSEGV;
  EXPECT_EQ(CpuProfileSession::Start(options, &error, &message), nullptr);
  EXPECT_EQ(error, CpuStartError::kBadOptions);
}

TEST(CpuProfileSession, BackToBackProfilesLeaveNoTimers) {
  const int timers_before = CountTimers();
  const CpuCounters before = CpuCountersNow();
  for (int i = 0; i < 20; ++i) {
    CpuStartError error;
    std::string message;
    auto session = CpuProfileSession::Start(CpuProfileOptions(), &error, &message);
    ASSERT_NE(session, nullptr) << message;
    SpinFor(5000000);
    session->Poll();
    // Destroying the session without Stop() stops it too.
  }
  const CpuCounters after = CpuCountersNow();
  EXPECT_EQ(after.timers_created - before.timers_created,
            after.timers_deleted - before.timers_deleted);
  EXPECT_EQ(CountTimers(), timers_before);
  EXPECT_FALSE(after.running);
}

TEST(CpuProfileSession, AForkedChildCanProfileWhileTheParentDoes) {
  CpuStartError error;
  std::string message;
  auto session = CpuProfileSession::Start(CpuProfileOptions(), &error, &message);
  ASSERT_NE(session, nullptr) << message;
  const pid_t child = fork();
  if (child == 0) {
    // No timers and no session were inherited; the child starts its own.
    int code = 0;
    if (CpuCountersNow().running) code = 1;
    CpuStartError e;
    std::string m;
    auto own = CpuProfileSession::Start(CpuProfileOptions(), &e, &m);
    if (own == nullptr) code = 2;
    if (own != nullptr && CountTimers() != 1) code = 3;
    SpinFor(30000000);
    if (own != nullptr) {
      own->Poll();
      own->Stop();
    }
    if (CountTimers() != 0) code = 4;
    _exit(code);
  }
  ASSERT_GT(child, 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(CpuCountersNow().running);
  EXPECT_TRUE(session->Poll());
  session->Stop();
}

}  // namespace
}  // namespace pprof_agent::internal
