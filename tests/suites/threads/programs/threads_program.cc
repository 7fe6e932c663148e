// threads_program_{plain,linked}: thread workloads for the threads suite
// (goroutine and threadcreate endpoints). Every mode sets up its threads,
// prints what the test needs to check against ("TID <tid> <name> <site>"
// lines, "LOCK <name> 0x<addr>"), prints READY and waits for stdin to
// close.
//
//   deadlock      dl-alpha locks A then B, dl-beta locks B then A (a
//                 lock-order inversion that deadlocks for good); dl-late then
//                 waits for A behind them
//   rwdeadlock    rw-reader holds a std::shared_mutex for reading and wants a
//                 std::mutex that rw-writer holds while it wants the
//                 shared_mutex exclusively
//   sleepers N    N threads parked in it::SleepInAlpha/Beta/Gamma (i % 3),
//                 named sl-a-<i>, sl-b-<i>, sl-c-<i>, and one thread "masked"
//                 that blocks every signal, parked in it::SleepMasked
//   create N M    it::SpawnWithPthread creates N threads with pthread_create
//                 and it::SpawnWithStdThread creates M with std::thread (all
//                 joined); prints "CREATED <N> <M>"
//   churn         threads are created and exit continuously until stdin
//                 closes (READY first)
//   mainexits     main calls pthread_exit; thread "waiter" waits for stdin
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/programs/program_common.h"

// No anonymous namespace: stacks must name it::SleepInAlpha and friends.
namespace it {

int Tid() { return static_cast<int>(syscall(SYS_gettid)); }

std::mutex g_print_mu;

void PrintLine(const std::string& line) {
  std::lock_guard<std::mutex> lock(g_print_mu);
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
}

void AnnounceThread(const char* name, const char* site) {
  pthread_setname_np(pthread_self(), name);
  PrintLine("TID " + std::to_string(Tid()) + " " + name + " " + site);
}

// --- deadlock ---------------------------------------------------------------------

std::mutex g_lock_a;
std::mutex g_lock_b;
std::atomic<int> g_first_locks{0};

void AwaitBothFirstLocks() {
  while (g_first_locks.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

IT_SITE void LockAlphaThenBeta() {
  AnnounceThread("dl-alpha", "it::LockAlphaThenBeta");
  g_lock_a.lock();
  g_first_locks.fetch_add(1);
  AwaitBothFirstLocks();
  g_lock_b.lock();  // never returns: dl-beta holds B and waits for A
}

IT_SITE void LockBetaThenAlpha() {
  AnnounceThread("dl-beta", "it::LockBetaThenAlpha");
  g_lock_b.lock();
  g_first_locks.fetch_add(1);
  AwaitBothFirstLocks();
  g_lock_a.lock();
}

IT_SITE void WaitBehindDeadlock() {
  AnnounceThread("dl-late", "it::WaitBehindDeadlock");
  AwaitBothFirstLocks();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  g_lock_a.lock();
}

void* RunFn(void* fn) {
  reinterpret_cast<void (*)()>(fn)();
  return nullptr;
}

void StartDetached(void (*fn)()) {
  pthread_t thread;
  if (pthread_create(&thread, nullptr, RunFn, reinterpret_cast<void*>(fn)) != 0) {
    std::perror("pthread_create");
    std::exit(2);
  }
  pthread_detach(thread);
}

int Deadlock() {
  PrintLine("LOCK A " + std::to_string(reinterpret_cast<uintptr_t>(&g_lock_a)));
  PrintLine("LOCK B " + std::to_string(reinterpret_cast<uintptr_t>(&g_lock_b)));
  StartDetached(LockAlphaThenBeta);
  StartDetached(LockBetaThenAlpha);
  StartDetached(WaitBehindDeadlock);
  AwaitBothFirstLocks();
  // Let all three reach their blocking lock call.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  AnnounceReady();
  WaitForStdinClose();
  // The deadlocked threads can never be joined; exit takes them down.
  std::fflush(stdout);
  _exit(0);
}

// --- deadlock through a read-held rwlock -------------------------------------------

std::shared_mutex g_rw;
std::mutex g_rw_mu;
std::atomic<int> g_rw_first{0};

void AwaitBothRwFirst() {
  while (g_rw_first.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

// Holds the rwlock for reading (glibc does not record readers; the lock
// hooks keep a per-thread read set that the dump reads), then wants the
// mutex.
IT_SITE void ReadThenLock() {
  AnnounceThread("rw-reader", "it::ReadThenLock");
  g_rw.lock_shared();
  g_rw_first.fetch_add(1);
  AwaitBothRwFirst();
  g_rw_mu.lock();
}

IT_SITE void LockThenWrite() {
  AnnounceThread("rw-writer", "it::LockThenWrite");
  g_rw_mu.lock();
  g_rw_first.fetch_add(1);
  AwaitBothRwFirst();
  g_rw.lock();
}

int RwDeadlock() {
  PrintLine("LOCK RW " + std::to_string(reinterpret_cast<uintptr_t>(&g_rw)));
  PrintLine("LOCK M " + std::to_string(reinterpret_cast<uintptr_t>(&g_rw_mu)));
  StartDetached(ReadThenLock);
  StartDetached(LockThenWrite);
  AwaitBothRwFirst();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  AnnounceReady();
  WaitForStdinClose();
  std::fflush(stdout);
  _exit(0);
}

// --- sleepers ----------------------------------------------------------------------

std::atomic<bool> g_stop{false};
std::atomic<int> g_parked{0};

// Sleeps until stopped, in the calling function's own frame (a macro, not
// a call: a tail call would take the site's frame off the stack). sleep_for
// retries when the dump's signal interrupts the sleep (EINTR).
#define IT_PARK_UNTIL_STOPPED()                                              \
  do {                                                                       \
    g_parked.fetch_add(1);                                                   \
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100)); \
  } while (0)

IT_SITE void SleepInAlpha(int i) {
  AnnounceThread(("sl-a-" + std::to_string(i)).c_str(), "it::SleepInAlpha");
  IT_PARK_UNTIL_STOPPED();
}

IT_SITE void SleepInBeta(int i) {
  AnnounceThread(("sl-b-" + std::to_string(i)).c_str(), "it::SleepInBeta");
  IT_PARK_UNTIL_STOPPED();
}

IT_SITE void SleepInGamma(int i) {
  AnnounceThread(("sl-c-" + std::to_string(i)).c_str(), "it::SleepInGamma");
  IT_PARK_UNTIL_STOPPED();
}

IT_SITE void SleepMasked() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  AnnounceThread("masked", "it::SleepMasked");
  IT_PARK_UNTIL_STOPPED();
}

int Sleepers(int n) {
  std::vector<std::thread> threads;
  threads.reserve(n + 1);
  for (int i = 0; i < n; ++i) {
    switch (i % 3) {
      case 0: threads.emplace_back(SleepInAlpha, i); break;
      case 1: threads.emplace_back(SleepInBeta, i); break;
      default: threads.emplace_back(SleepInGamma, i); break;
    }
  }
  threads.emplace_back(SleepMasked);
  while (g_parked.load() < n + 1) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  AnnounceReady();
  WaitForStdinClose();
  g_stop = true;
  for (std::thread& t : threads) t.join();
  return 0;
}

// --- thread creation -----------------------------------------------------------------

void* Nothing(void*) { return nullptr; }

IT_SITE void SpawnWithPthread(int n) {
  for (int i = 0; i < n; ++i) {
    pthread_t thread;
    if (pthread_create(&thread, nullptr, Nothing, nullptr) != 0) std::exit(2);
    pthread_join(thread, nullptr);
  }
}

IT_SITE void SpawnWithStdThread(int m) {
  for (int i = 0; i < m; ++i) std::thread([] {}).join();
}

int Create(int n, int m) {
  SpawnWithPthread(n);
  SpawnWithStdThread(m);
  PrintLine("CREATED " + std::to_string(n) + " " + std::to_string(m));
  AnnounceReady();
  WaitForStdinClose();
  return 0;
}

// --- main thread exits first -----------------------------------------------------

// The main thread calls pthread_exit while "waiter" goes on: the kernel keeps
// the main thread as a zombie, which must not hold a dump up.
int MainExits() {
  std::thread([] {
    AnnounceThread("waiter", "it::MainExits");
    WaitForStdinClose();
    std::fflush(stdout);
    _exit(0);
  }).detach();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  AnnounceReady();
  pthread_exit(nullptr);
}

// --- churn -----------------------------------------------------------------------------

IT_SITE void ShortLived() { std::this_thread::sleep_for(std::chrono::microseconds(200)); }

int Churn() {
  std::thread churn([] {
    while (!g_stop.load()) {
      std::vector<std::thread> batch;
      for (int i = 0; i < 16; ++i) batch.emplace_back(ShortLived);
      for (std::thread& t : batch) t.join();
    }
  });
  AnnounceReady();
  WaitForStdinClose();
  g_stop = true;
  churn.join();
  return 0;
}

}  // namespace it

int main(int argc, char** argv) {
  it::StartAgentIfLinked();
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "deadlock") return it::Deadlock();
  if (mode == "rwdeadlock") return it::RwDeadlock();
  if (mode == "sleepers" && argc > 2) return it::Sleepers(std::atoi(argv[2]));
  if (mode == "create" && argc > 3) return it::Create(std::atoi(argv[2]), std::atoi(argv[3]));
  if (mode == "churn") return it::Churn();
  if (mode == "mainexits") return it::MainExits();
  std::fprintf(stderr, "usage: %s deadlock | rwdeadlock | sleepers N | create N M | churn | mainexits\n",
               argv[0]);
  return 2;
}
