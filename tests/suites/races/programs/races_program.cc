// Test program of the races suite (tests/suites/races_test.cc):
//   seed         10 writer threads insert_or_assign, 5 readers iterate one
//                checked_unordered_map with no lock (the seed); the
//                key space is bounded and reserved, so the real race cannot
//                grow the table (the program must survive to be asked)
//   shared_mutex the same work under a std::shared_mutex
//   readers      5 readers only, no lock
//   checker      a class guarded by a std::mutex and an AccessChecker
// Each prints "OPS <n>" (operations done), then READY, and waits for stdin
// to close. Racy modes end with _exit: the race may have lost nodes.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "pprof_agent/checked.h"
#include "tests/integration/programs/program_common.h"

namespace it {

constexpr int kKeys = 4096;
using Map = pprof_agent::checked_unordered_map<int, long>;

std::atomic<long> g_ops{0};

std::atomic<bool> g_stop{false};
std::atomic<int> g_readers_done{0};

// Writers go on until every reader has done its passes (at least `ops`
// each), so that the readers always overlap them.
IT_SITE void Writer(Map* m, int seed, long ops) {
  long i = 0;
  for (; i < ops || !g_stop.load(std::memory_order_relaxed); ++i) {
    m->insert_or_assign(static_cast<int>((i * 7 + seed) % kKeys), i);
  }
  g_ops += i;
}

IT_SITE void Reader(const Map* m, long passes) {
  long sum = 0, ops = 0;
  for (long p = 0; p < passes; ++p) {
    for (const auto& kv : *m) { sum += kv.second; ++ops; }
  }
  g_ops += ops;
  if (++g_readers_done == 5) g_stop = true;
  if (sum == 42) std::puts("");
}

IT_SITE void LockedWriter(Map* m, std::shared_mutex* mu, int seed, long ops) {
  for (long i = 0; i < ops; ++i) {
    std::unique_lock<std::shared_mutex> l(*mu);
    m->insert_or_assign(static_cast<int>((i * 7 + seed) % kKeys), i);
  }
  g_ops += ops;
}

IT_SITE void LockedReader(const Map* m, std::shared_mutex* mu, long ops) {
  long sum = 0;
  for (long i = 0; i < ops; ++i) {
    std::shared_lock<std::shared_mutex> l(*mu);
    auto it = m->find(static_cast<int>(i % kKeys));
    if (it != m->end()) sum += it->second;
  }
  g_ops += ops;
  if (sum == 42) std::puts("");
}

IT_SITE void FreeReader(const Map* m, long ops) {
  long sum = 0;
  for (long i = 0; i < ops; ++i) {
    auto it = m->find(static_cast<int>(i % kKeys));
    if (it != m->end()) sum += it->second;
    if ((i & 1023) == 0) for (const auto& kv : *m) sum += kv.first;
  }
  g_ops += ops;
  if (sum == 42) std::puts("");
}

// Any other class: a mutex for safety and an AccessChecker for checking.
class Counters {
 public:
  IT_SITE void Add(int k) {
    std::lock_guard<std::mutex> l(mu_);
    pprof_agent::WriteScope w(checker_);
    ++v_[k % 64];
  }
  IT_SITE long Get(int k) const {
    std::lock_guard<std::mutex> l(mu_);
    pprof_agent::ReadScope r(checker_);
    return v_[k % 64];
  }

 private:
  mutable std::mutex mu_;
  pprof_agent::AccessChecker checker_{"Counters"};
  long v_[64] = {};
};

void Fill(Map* m) {
  m->reserve(2 * kKeys);
  for (int k = 0; k < kKeys; ++k) m->insert_or_assign(k, 0);
}

void Finish(bool racy) {
  std::printf("OPS %ld\n", g_ops.load());
  std::printf("UNREPORTED %lu\n", static_cast<unsigned long>(pprof_agent::UnreportedRaces()));
  AnnounceReady();
  WaitForStdinClose();
  std::fflush(stdout);
  if (racy) _exit(0);
}

int Run(const std::string& mode, long ops) {
  Map m;
  std::vector<std::thread> threads;
  if (mode == "seed") {
    // The writers overwrite existing keys: that races just the same for the
    // checker, but leaves the table's structure alone. Concurrent first
    // inserts corrupted it (ASan: heap-use-after-free in a reader; without
    // ASan a reader could loop on a broken chain and never finish).
    Fill(&m);
    for (int w = 0; w < 10; ++w) threads.emplace_back(Writer, &m, w, ops / 10);
    for (int r = 0; r < 5; ++r) threads.emplace_back(Reader, &m, 200);
  } else if (mode == "shared_mutex") {
    Fill(&m);
    static std::shared_mutex mu;
    for (int w = 0; w < 2; ++w) threads.emplace_back(LockedWriter, &m, &mu, w, ops / 4);
    for (int r = 0; r < 2; ++r) threads.emplace_back(LockedReader, &m, &mu, ops / 4);
  } else if (mode == "readers") {
    Fill(&m);
    for (int r = 0; r < 5; ++r) threads.emplace_back(FreeReader, &m, ops / 5);
  } else if (mode == "checker") {
    static Counters c;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([t, ops] {
        long s = 0;
        for (long i = 0; i < ops / 4; ++i) {
          if (i & 1) c.Add(static_cast<int>(i + t)); else s += c.Get(static_cast<int>(i));
        }
        g_ops += ops / 4;
        if (s == 42) std::puts("");
      });
    }
  } else {
    return 2;
  }
  for (std::thread& t : threads) t.join();
  Finish(mode == "seed");
  return 0;
}

}  // namespace it

int main(int argc, char** argv) {
  it::StartAgentIfLinked();
  const std::string mode = argc > 1 ? argv[1] : "";
  const long ops = argc > 2 ? std::atol(argv[2]) : 2000000;
  int rc = it::Run(mode, ops);
  if (rc == 2) std::fprintf(stderr, "usage: %s seed|shared_mutex|readers|checker [ops]\n", argv[0]);
  return rc;
}
