// rel_program_{plain,linked}: the host programs of the reliability suite
// (tests/suites/reliability/reliability_test.cc). One mode per scenario:
//
//   serve          a worker thread allocates and counts, printing "WORK n"
//                  every 100 ms (the host's own work, which must go on while
//                  the agent is attacked with bad requests); READY; runs until
//                  stdin closes.
//   forkstorm N    8 threads allocate and lock; the main thread runs N each of
//                  fork+allocate+exit, fork+exec, posix_spawn, vfork+exec and
//                  popen, every wait bounded. Children exec this program in
//                  "child" mode, which checks that it inherited no listening
//                  socket (the agent's port stays the parent's). Prints one
//                  "FORKSTORM ..." summary line; exit 0 if all children ended
//                  well.
//                  With a file name GO as 3rd argument: READY once the
//                  threads run, and the storm starts when GO exists.
//   child          see above: exit 0 when clean, 3 when a listening socket
//                  was inherited.
//   ctorlib LIB    dlopen()s LIB, whose constructor starts an allocating
//                  thread; waits for it through LIB's rel_ctorlib_join(),
//                  dlclose()s, prints "CTORLIB ok".
//   dlopen LIB N GO  READY; once file GO exists, 4 threads each
//                  dlopen/call/dlclose LIB N times; prints "DLOPEN done
//                  cycles=..." and waits for stdin.
//   churn N [GO]   N short-lived threads in waves of 16: each allocates,
//                  locks, and has thread_local objects whose destructors
//                  allocate. Prints "RSS baseline=KiB after=KiB threads=N".
//                  With GO: READY after the warm-up, churns once file GO
//                  exists (the test runs a CPU profile meanwhile), then
//                  waits for stdin to close.
//   flood BITS     2^BITS allocations from 2^BITS distinct call paths (a
//                  recursion that takes one of two call sites per level),
//                  each freed at once. Prints "FLOOD rss_before=KiB
//                  rss_after=KiB stacks=N", then READY, and waits for stdin.
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/programs/program_common.h"

extern char** environ;

namespace rel {

char* volatile g_sink;
std::atomic<bool> g_stop{false};
std::string g_self;  // path of this executable

long RssKiB() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return -1;
  long size = 0, resident = 0;
  if (std::fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
  std::fclose(f);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

IT_SITE void AllocateSome(int n) {
  for (int i = 0; i < n; ++i) {
    char* p = static_cast<char*>(std::malloc(16 + (i % 7) * 40));
    p[0] = static_cast<char>(i);
    g_sink = p;
    std::free(p);
  }
}

// --- serve ---------------------------------------------------------------

int Serve() {
  std::atomic<long> work{0};
  std::thread worker([&work] {
    auto next = std::chrono::steady_clock::now();
    while (!g_stop.load()) {
      AllocateSome(100);
      ++work;
      if (std::chrono::steady_clock::now() >= next) {
        std::printf("WORK %ld\n", work.load());
        std::fflush(stdout);
        next += std::chrono::milliseconds(100);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  it::AnnounceReady();
  const bool ok = it::WaitForStdinClose(600);
  g_stop = true;
  worker.join();
  return ok ? 0 : 1;
}

// --- child / forkstorm ---------------------------------------------------

// Any inherited listening socket: the agent's port must stay the parent's.
bool HasListeningSocket() {
  for (int fd = 3; fd < 1024; ++fd) {
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 &&
        listening) {
      return true;
    }
  }
  return false;
}

int Child() {
  AllocateSome(200);
  if (HasListeningSocket()) {
    std::printf("CHILD listening-socket\n");
    return 3;
  }
  std::printf("CHILD ok\n");
  return 0;
}

// Waits for `pid` at most `timeout`; kills it on timeout. Returns the
// waitpid status, or -1 on timeout.
int WaitBounded(pid_t pid, std::chrono::milliseconds timeout, int* hangs) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return -2;
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ++*hangs;
      return -1;
    }
    usleep(500);
  }
}

// vfork()+execve() in a function of its own: the parent's locals elsewhere
// are then safe from what vfork's shared stack may do to them.
__attribute__((noinline)) pid_t VforkExec(const char* path, char* const argv[]) {
  const pid_t pid = vfork();
  if (pid == 0) {
    execve(path, argv, environ);
    _exit(127);
  }
  return pid;
}

bool ExitedZero(int status) {
  return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int ForkStorm(int n, const char* go_file) {
  std::mutex mu;
  std::vector<std::thread> threads;
  std::atomic<long> thread_work{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      std::vector<std::unique_ptr<char[]>> keep(64);
      unsigned i = 0;
      while (!g_stop.load()) {
        keep[i % keep.size()].reset(new char[32 + (i % 13) * 64]);
        {
          std::lock_guard<std::mutex> lock(mu);
          AllocateSome(4);
        }
        ++thread_work;
        ++i;
      }
    });
  }
  // Children run this program in "child" mode without a server of their own
  // (the agent reads its environment once, at load, so this changes only
  // what the children see).
  setenv("PPROF_AGENT_ADDR", "off", 1);
  if (*go_file) {
    // Served mode: the test starts a CPU profile, then creates `go_file`.
    it::AnnounceReady();
    for (int waited = 0; access(go_file, F_OK) != 0 && waited < 60000; waited += 10) {
      usleep(10000);
    }
  }
  const std::chrono::milliseconds timeout(20000);
  int hangs = 0, failures = 0;
  int counts[5] = {0, 0, 0, 0, 0};
  char* const child_argv[] = {const_cast<char*>(g_self.c_str()),
                              const_cast<char*>("child"), nullptr};
  const std::string popen_cmd = "'" + g_self + "' child";
  for (int i = 0; i < n; ++i) {
    // fork + allocate + exit
    pid_t pid = fork();
    if (pid == 0) {
      AllocateSome(500);
      std::vector<std::string> v(100, std::string(100, 'x'));
      // A lock of the child's own (the parent's `mu` may have been held by
      // another thread at fork(); that is the host's problem, not ours).
      std::mutex child_mu;
      { std::lock_guard<std::mutex> lock(child_mu); }
      const int rc = HasListeningSocket() ? 3 : 0;
      std::exit(rc);
    }
    if (pid < 0 || !ExitedZero(WaitBounded(pid, timeout, &hangs))) ++failures;
    ++counts[0];
    // fork + exec
    pid = fork();
    if (pid == 0) {
      execve(g_self.c_str(), child_argv, environ);
      _exit(127);
    }
    if (pid < 0 || !ExitedZero(WaitBounded(pid, timeout, &hangs))) ++failures;
    ++counts[1];
    // posix_spawn
    if (posix_spawn(&pid, g_self.c_str(), nullptr, nullptr, child_argv,
                    environ) != 0 ||
        !ExitedZero(WaitBounded(pid, timeout, &hangs))) {
      ++failures;
    }
    ++counts[2];
    // vfork + exec
    pid = VforkExec(g_self.c_str(), child_argv);
    if (pid < 0 || !ExitedZero(WaitBounded(pid, timeout, &hangs))) ++failures;
    ++counts[3];
    // popen
    FILE* p = popen(popen_cmd.c_str(), "r");
    if (p == nullptr) {
      ++failures;
    } else {
      char line[128] = {0};
      const bool got = std::fgets(line, sizeof(line), p) != nullptr;
      const int status = pclose(p);
      if (!got || std::strncmp(line, "CHILD ok", 8) != 0 || !ExitedZero(status)) {
        ++failures;
      }
    }
    ++counts[4];
  }
  g_stop = true;
  for (std::thread& t : threads) t.join();
  std::printf(
      "FORKSTORM fork=%d forkexec=%d spawn=%d vfork=%d popen=%d failures=%d "
      "hangs=%d thread_work=%ld\n",
      counts[0], counts[1], counts[2], counts[3], counts[4], failures, hangs,
      thread_work.load());
  std::fflush(stdout);
  if (*go_file && !it::WaitForStdinClose(600)) return 1;
  return failures == 0 && hangs == 0 ? 0 : 1;
}

// --- ctorlib ---------------------------------------------------------------

int CtorLib(const char* lib) {
  void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    std::printf("CTORLIB dlopen failed: %s\n", dlerror());
    return 1;
  }
  auto join = reinterpret_cast<long (*)()>(dlsym(h, "rel_ctorlib_join"));
  if (join == nullptr) return 1;
  const long allocations = join();
  dlclose(h);
  std::printf("CTORLIB ok allocations=%ld\n", allocations);
  return 0;
}

// --- dlopen storm ------------------------------------------------------------

int DlopenStorm(const char* lib, int iterations, const char* go_file) {
  it::AnnounceReady();
  // The test warms the symbolizer with a first profile, then creates
  // `go_file`: the storm then runs while profiles are being served.
  for (int waited = 0; *go_file && access(go_file, F_OK) != 0 && waited < 60000; waited += 10) {
    usleep(10000);
  }
  std::atomic<int> cycles{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < iterations; ++i) {
        void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
        if (h == nullptr) {
          ++failures;
          continue;
        }
        auto work = reinterpret_cast<long (*)(int)>(dlsym(h, "rel_dl_work"));
        if (work == nullptr || work(i) <= 0) ++failures;
        if (dlclose(h) != 0) ++failures;
        ++cycles;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::printf("DLOPEN done cycles=%d failures=%d\n", cycles.load(),
              failures.load());
  std::fflush(stdout);
  return it::WaitForStdinClose(300) && failures == 0 ? 0 : 1;
}

// --- churn -------------------------------------------------------------------

std::atomic<long> g_tl_destructors{0};

struct AllocatingOnExit {
  std::vector<int>* data = new std::vector<int>(64, 1);
  ~AllocatingOnExit() {
    std::string* s = new std::string(200, 'd');  // allocates in the destructor
    g_sink = s->data();
    delete s;
    delete data;
    ++g_tl_destructors;
  }
};
thread_local AllocatingOnExit t_on_exit;
thread_local std::unique_ptr<std::string> t_string;

int Churn(int n, const char* go_file) {
  std::mutex mu;
  long shared = 0;
  auto body = [&] {
    g_sink = reinterpret_cast<char*>(t_on_exit.data->data());
    t_string = std::make_unique<std::string>(300, 's');
    AllocateSome(20);
    std::lock_guard<std::mutex> lock(mu);
    ++shared;
  };
  auto wave = [&](int count) {
    for (int done = 0; done < count;) {
      std::vector<std::thread> ts;
      for (int i = 0; i < 16 && done < count; ++i, ++done) ts.emplace_back(body);
      for (std::thread& t : ts) t.join();
    }
  };
  wave(256);  // warm-up: arenas, stacks, tables
  if (*go_file) {
    // Served mode: the test starts a CPU profile, then creates `go_file`.
    it::AnnounceReady();
    for (int waited = 0; access(go_file, F_OK) != 0 && waited < 60000; waited += 10) {
      usleep(10000);
    }
  }
  const long baseline = RssKiB();
  wave(n);
  const long after = RssKiB();
  std::printf("RSS baseline=%ld after=%ld threads=%d destructors=%ld\n",
              baseline, after, n, g_tl_destructors.load());
  std::fflush(stdout);
  if (*go_file && !it::WaitForStdinClose(300)) return 1;
  return shared == 256 + n ? 0 : 1;
}

// --- flood -------------------------------------------------------------------

std::atomic<long> g_flood_allocs{0};
IT_SITE int Walk(int depth, uint32_t bits);
IT_SITE int WalkA(int depth, uint32_t bits) { return Walk(depth, bits) + 1; }
IT_SITE int WalkB(int depth, uint32_t bits) { return Walk(depth, bits) + 2; }
IT_SITE int Walk(int depth, uint32_t bits) {
  if (depth == 0) {
    char* p = static_cast<char*>(std::malloc(24));
    p[0] = 1;
    g_sink = p;
    std::free(p);
    ++g_flood_allocs;
    return 1;
  }
  const int r = (bits & 1) ? WalkA(depth - 1, bits >> 1)
                           : WalkB(depth - 1, bits >> 1);
  return r + static_cast<int>(bits & 3);
}

int Flood(int bits) {
  const long before = RssKiB();
  const uint32_t n = 1u << bits;
  for (uint32_t i = 0; i < n; ++i) Walk(bits, i);
  const long after = RssKiB();
  std::printf("FLOOD rss_before=%ld rss_after=%ld stacks=%u\n", before, after, n);
  it::AnnounceReady();
  return it::WaitForStdinClose(300) ? 0 : 1;
}

}  // namespace rel

int main(int argc, char** argv) {
  it::StartAgentIfLinked();
  char path[4096];
  const ssize_t len = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (len > 0) rel::g_self.assign(path, len);
  const std::string mode = argc > 1 ? argv[1] : "";
  const char* arg = argc > 2 ? argv[2] : "";
  if (mode == "serve") return rel::Serve();
  if (mode == "child") return rel::Child();
  if (mode == "forkstorm") {
    return rel::ForkStorm(std::atoi(arg), argc > 3 ? argv[3] : "");
  }
  if (mode == "ctorlib") return rel::CtorLib(arg);
  if (mode == "dlopen") {
    return rel::DlopenStorm(arg, argc > 3 ? std::atoi(argv[3]) : 100,
                            argc > 4 ? argv[4] : "");
  }
  if (mode == "churn") return rel::Churn(std::atoi(arg), argc > 3 ? argv[3] : "");
  if (mode == "flood") return rel::Flood(std::atoi(arg));
  std::fprintf(stderr, "usage: %s serve|forkstorm N|child|ctorlib LIB|dlopen LIB N|churn N|flood BITS\n", argv[0]);
  return 2;
}
