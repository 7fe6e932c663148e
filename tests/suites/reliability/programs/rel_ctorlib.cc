// librel_ctorlib.so: a library whose static constructor starts a thread that
// allocates while the dynamic loader still holds its lock (dlopen runs
// constructors under it). rel_ctorlib_join() waits for the thread.
#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

std::atomic<long> g_allocations{0};
char* volatile g_sink;

struct StartsThread {
  std::thread thread;
  StartsThread() {
    std::vector<int>* v = new std::vector<int>(1000, 7);  // allocates in the ctor
    thread = std::thread([v] {
      for (int i = 0; i < 2000; ++i) {
        std::string* s = new std::string(64 + i % 500, 'c');
        g_sink = s->data();
        delete s;
        ++g_allocations;
      }
      delete v;
    });
  }
  ~StartsThread() {
    if (thread.joinable()) thread.join();
  }
};
StartsThread g_starts_thread;

}  // namespace

extern "C" __attribute__((visibility("default"))) long rel_ctorlib_join() {
  if (g_starts_thread.thread.joinable()) g_starts_thread.thread.join();
  return g_allocations.load();
}
