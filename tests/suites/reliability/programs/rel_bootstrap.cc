// rel_bootstrap_plain: static constructors allocate and start threads before
// main (and so while a preloaded agent may still be starting its server);
// main joins them and exits. Prints "BOOTSTRAP ok allocations=N".
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

std::atomic<long> g_allocations{0};
char* volatile g_sink;

void Allocate(int n) {
  for (int i = 0; i < n; ++i) {
    auto* s = new std::string(32 + (i * 31) % 1000, 'b');
    g_sink = s->data();
    delete s;
    ++g_allocations;
  }
}

struct EarlyThreads {
  std::vector<std::thread> threads;
  std::map<int, std::string> table;
  EarlyThreads() {
    for (int i = 0; i < 100; ++i) table[i] = std::string(100, 'x');
    for (int t = 0; t < 4; ++t) threads.emplace_back([] { Allocate(3000); });
  }
  void Join() {
    for (std::thread& t : threads) t.join();
    threads.clear();
  }
};
EarlyThreads* g_early = new EarlyThreads;                       // heap, leaked
std::unique_ptr<std::vector<int>> g_vec(new std::vector<int>(4096, 1));
EarlyThreads g_early2;

}  // namespace

int main() {
  g_early->Join();
  g_early2.Join();
  Allocate(1000);
  std::printf("BOOTSTRAP ok allocations=%ld\n", g_allocations.load());
  return 0;
}
