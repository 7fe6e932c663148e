// librel_dl.so: loaded and unloaded thousands of times by the dlopen storm.
// rel_dl_work() allocates (some blocks stay live, so heap profiles keep
// stacks into a library that is no longer mapped) and returns a count.
#include <cstdlib>
#include <cstring>

namespace {
char* volatile g_sink;
void* g_keep[64];
}  // namespace

extern "C" __attribute__((visibility("default"), noinline)) long rel_dl_work(int i) {
  long n = 0;
  for (int k = 0; k < 20; ++k) {
    char* p = static_cast<char*>(std::malloc(32 + (k * 97 + i) % 2000));
    std::memset(p, k, 8);
    g_sink = p;
    std::free(p);
    ++n;
  }
  // A few live blocks per library instance (leaked on purpose, bounded).
  void* keep = std::malloc(4096);
  void* old = __atomic_exchange_n(&g_keep[i % 64], keep, __ATOMIC_ACQ_REL);
  std::free(old);
  return n;
}
