// Thread dumps taken in this process (profiler/threads/thread_dump.h), without the
// agent's hooks: every thread answers with its own stack, a thread that
// blocks the signal is listed with its state, threads exiting during a dump
// do no harm, and concurrent dumps are serialized. The wait-for side needs
// the lock hooks and is tested with real processes (tests/suites/threads).
#include "profiler/threads/thread_dump.h"

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "profiler/symbols/symbolizer.h"

// Out of line and unmerged, so that stacks name them.
#define TD_SITE __attribute__((noinline, noipa))

namespace td_test {

std::atomic<bool> g_stop{false};
std::atomic<int> g_started{0};

TD_SITE void ParkInAlpha() {
  g_started.fetch_add(1);
  while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

TD_SITE void ParkInBeta() {
  g_started.fetch_add(1);
  while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

TD_SITE void ParkWithSignalsBlocked() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  g_started.fetch_add(1);
  while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

}  // namespace td_test

namespace pprof_agent::internal {
namespace {

using ::testing::HasSubstr;

#if defined(__SANITIZE_THREAD__)
#define SKIP_UNDER_TSAN() GTEST_SKIP() << "TSan defers and rewrites signal delivery"
#else
#define SKIP_UNDER_TSAN() (void)0
#endif

int32_t Tid() { return static_cast<int32_t>(syscall(SYS_gettid)); }

// True if some frame of `pcs` symbolizes to a function whose name contains
// `function`.
bool StackHas(const std::vector<uint64_t>& pcs, const std::string& function) {
  Symbolizer& symbols = Symbolizer::Global();
  symbols.Refresh();
  for (size_t i = 0; i < pcs.size(); ++i) {
    const uint64_t address = i == 0 ? pcs[i] : pcs[i] - 1;
    for (const FrameInfo& frame : symbols.Symbolize(address).frames) {
      if (frame.name.find(function) != std::string::npos) return true;
    }
  }
  return false;
}

class Parked {
 public:
  Parked(int alpha, int beta, int blocked) {
    td_test::g_stop = false;
    td_test::g_started = 0;
    auto start = [this](void (*fn)(), int n) {
      for (int i = 0; i < n; ++i) {
        threads_.emplace_back([this, fn] {
          {
            std::lock_guard<std::mutex> lock(mu_);
            tids_.push_back(Tid());
          }
          fn();
        });
      }
    };
    start(td_test::ParkInAlpha, alpha);
    start(td_test::ParkInBeta, beta);
    start(td_test::ParkWithSignalsBlocked, blocked);
    while (td_test::g_started.load() < alpha + beta + blocked) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // into the sleep
  }
  ~Parked() {
    td_test::g_stop = true;
    for (std::thread& t : threads_) t.join();
  }

 private:
  std::mutex mu_;
  std::vector<int32_t> tids_;
  std::vector<std::thread> threads_;
};

const DumpedThread* FindThread(const ThreadDump& dump, int32_t tid) {
  for (const DumpedThread& t : dump.threads) {
    if (t.tid == tid) return &t;
  }
  return nullptr;
}

TEST(ThreadDump, EveryThreadAnswersWithItsOwnStack) {
  SKIP_UNDER_TSAN();
  Parked parked(20, 10, 0);
  ThreadDump dump;
  std::string message;
  ASSERT_TRUE(CollectThreadDump(ThreadDumpOptions(), &dump, &message)) << message;
  EXPECT_TRUE(dump.stack_error.empty()) << dump.stack_error;
  int alpha = 0, beta = 0;
  for (const DumpedThread& t : dump.threads) {
    ASSERT_TRUE(t.has_stack) << t.tid << ": " << t.missing;
    EXPECT_NE(t.state, '?');
    alpha += StackHas(t.pcs, "td_test::ParkInAlpha") ? 1 : 0;
    beta += StackHas(t.pcs, "td_test::ParkInBeta") ? 1 : 0;
  }
  EXPECT_EQ(alpha, 20);
  EXPECT_EQ(beta, 10);
  // The requesting thread answered too (it is not an agent thread here).
  const DumpedThread* self = FindThread(dump, Tid());
  ASSERT_NE(self, nullptr);
  EXPECT_TRUE(self->has_stack);
  EXPECT_EQ(dump.timed_out, 0);
}

TEST(ThreadDump, ThreadBlockingTheSignalIsListedWithItsState) {
  SKIP_UNDER_TSAN();
  Parked parked(1, 0, 1);
  ThreadDump dump;
  std::string message;
  ASSERT_TRUE(CollectThreadDump(ThreadDumpOptions(), &dump, &message)) << message;
  EXPECT_EQ(dump.blocked, 1);
  int listed = 0;
  for (const DumpedThread& t : dump.threads) {
    if (t.has_stack) continue;
    ++listed;
    EXPECT_THAT(t.missing, HasSubstr("blocks SIGRTMIN+"));
    EXPECT_NE(t.state, '?');
  }
  EXPECT_EQ(listed, 1);
  // Nothing of the blocked signal is left queued for a later surprise: it
  // was never sent.
}

TEST(ThreadDump, ProfileAggregatesIdenticalStacks) {
  SKIP_UNDER_TSAN();
  Parked parked(8, 0, 1);
  ThreadDump dump;
  std::string message;
  ASSERT_TRUE(CollectThreadDump(ThreadDumpOptions(), &dump, &message)) << message;
  const Snapshot snap = GoroutineProfile(dump);
  ASSERT_EQ(snap.sample_types.size(), 1u);
  EXPECT_EQ(snap.sample_types[0].type, "goroutine");
  EXPECT_EQ(snap.period_type.type, "goroutine");
  EXPECT_EQ(snap.period, 1);
  int64_t total = 0, biggest = 0, missing = 0;
  for (const Sample& s : snap.samples) {
    total += s.values[0];
    biggest = std::max(biggest, s.values[0]);
    for (const Label& l : s.labels) {
      if (l.key == "stack_missing") missing += s.values[0];
    }
  }
  EXPECT_EQ(total, static_cast<int64_t>(dump.threads.size()));
  // The eight parked threads share name, state and stack, bar the return
  // address inside the sleep loop: at least a few of them aggregate.
  EXPECT_GE(biggest, 2);
  EXPECT_EQ(missing, 1);
}

TEST(ThreadDump, ThreadsExitingDuringDumpsDoNoHarm) {
  SKIP_UNDER_TSAN();
  std::atomic<bool> stop{false};
  std::thread churn([&stop] {
    while (!stop.load()) {
      std::vector<std::thread> batch;
      for (int i = 0; i < 8; ++i) batch.emplace_back([] {});
      for (std::thread& t : batch) t.join();
    }
  });
  for (int i = 0; i < 20; ++i) {
    ThreadDump dump;
    std::string message;
    ASSERT_TRUE(CollectThreadDump(ThreadDumpOptions(), &dump, &message)) << message;
    for (const DumpedThread& t : dump.threads) {
      EXPECT_TRUE(t.has_stack || !t.missing.empty());
    }
    // A thread that exited after it was signalled is noticed, not waited
    // out for the whole timeout.
    EXPECT_LT(dump.duration_nanos, 900 * 1000000LL);
  }
  stop = true;
  churn.join();
}

TEST(ThreadDump, ConcurrentDumpsAreSerializedOrRefused) {
  SKIP_UNDER_TSAN();
  Parked parked(50, 0, 0);
  std::atomic<int> ok{0}, refused{0};
  std::vector<std::thread> requests;
  for (int i = 0; i < 4; ++i) {
    requests.emplace_back([&] {
      ThreadDumpOptions options;
      options.busy_wait_ms = 0;  // refuse at once instead of waiting
      ThreadDump dump;
      std::string message;
      if (CollectThreadDump(options, &dump, &message)) {
        ++ok;
        // Every parked thread answered (a request thread still starting up
        // may block every signal: glibc starts threads that way).
        int parked_stacks = 0;
        for (const DumpedThread& t : dump.threads) {
          parked_stacks += t.has_stack && StackHas(t.pcs, "td_test::ParkInAlpha") ? 1 : 0;
        }
        EXPECT_EQ(parked_stacks, 50);
      } else {
        ++refused;
        EXPECT_THAT(message, HasSubstr("already being taken"));
      }
    });
  }
  for (std::thread& t : requests) t.join();
  EXPECT_GE(ok.load(), 1);
  EXPECT_EQ(ok.load() + refused.load(), 4);
  // With the default wait, all of them are served one after another.
  std::vector<std::thread> serialized;
  std::atomic<int> served{0};
  for (int i = 0; i < 3; ++i) {
    serialized.emplace_back([&] {
      ThreadDump dump;
      std::string message;
      if (CollectThreadDump(ThreadDumpOptions(), &dump, &message)) ++served;
    });
  }
  for (std::thread& t : serialized) t.join();
  EXPECT_EQ(served.load(), 3);
}

TEST(ThreadDump, ForeignSignalIsIgnored) {
  SKIP_UNDER_TSAN();
  {
    // Installs the handler.
    ThreadDump dump;
    std::string message;
    ASSERT_TRUE(CollectThreadDump(ThreadDumpOptions(), &dump, &message));
  }
  // A stray kill of the dump signal must neither crash nor kill us.
  ASSERT_EQ(kill(getpid(), ThreadDumpSignal()), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  union sigval value;
  value.sival_ptr = reinterpret_cast<void*>(uintptr_t{0xffffffff00000001});
  ASSERT_EQ(sigqueue(getpid(), ThreadDumpSignal(), value), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  SUCCEED();
}

TEST(ThreadDump, ApplicationHandlerOnTheSignalMeansNoStacksButAList) {
  SKIP_UNDER_TSAN();
  struct sigaction sa = {};
  sa.sa_handler = [](int) {};
  struct sigaction old;
  const int signo = SIGRTMIN + 9;
  ASSERT_EQ(sigaction(signo, &sa, &old), 0);
  ThreadDumpOptions options;
  options.signal = signo;
  ThreadDump dump;
  std::string message;
  ASSERT_TRUE(CollectThreadDump(options, &dump, &message));
  EXPECT_THAT(dump.stack_error, HasSubstr("already has a handler"));
  EXPECT_FALSE(dump.threads.empty());
  for (const DumpedThread& t : dump.threads) EXPECT_FALSE(t.has_stack);
  sigaction(signo, &old, nullptr);
}

TEST(ThreadDump, CountApplicationThreadsCountsThisProcess) {
  Parked parked(3, 0, 0);
  EXPECT_GE(CountApplicationThreads(), 4);
}

}  // namespace
}  // namespace pprof_agent::internal
