// it_alloc_{plain,linked}: allocates from known, named sites, prints READY,
// and stays alive (until stdin closes) so that a test can fetch profiles.
//
//   sites         RetainLiveBlocks keeps 32 MiB live (heap/inuse_space);
//                 ChurnTemporaries allocates and frees 256 MiB (allocs).
//   heapsampling N
//                 Go's test/heapsampling.go, adapted: allocInterleaved1..3
//                 and allocSmall1..3 each make N rounds of allocations of
//                 fixed sizes and free them at once.
//   loop          RetainLiveBlocks as in "sites"; ChurnBeforeWindow
//                 allocates 256 MiB and frees it; after READY, LoopAllocator
//                 keeps allocating until stdin closes.
//   threads N     N threads allocate, hand blocks to each other and free or
//                 reallocate them, until stdin closes.
//   huge          a malloc of 2^64-2^20 bytes (fails), then
//                 SmallAfterHugeRequest keeps 100 blocks of 8 bytes.
//   idle          nothing; prints the address of SymbolTarget as
//                 "SYMBOL 0x<hex>" for /debug/pprof/symbol.
//
// Every allocation is written to and its pointer stored through a volatile,
// so the compiler can neither drop the malloc/free pair nor the write.
#include <atomic>
#include <cinttypes>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/programs/program_common.h"

namespace it {

char* volatile g_sink;

// --- sites ---------------------------------------------------------------

constexpr size_t kLiveBlockBytes = 64 * 1024;
constexpr int kLiveBlocks = 512;  // 32 MiB: ~60 samples at the default rate
char* g_live[kLiveBlocks];

constexpr size_t kTemporaryBytes = 4096;
constexpr int kTemporaries = 64 * 1024;  // 256 MiB: ~500 samples

IT_SITE void RetainLiveBlocks() {
  for (int i = 0; i < kLiveBlocks; ++i) {
    char* p = static_cast<char*>(std::malloc(kLiveBlockBytes));
    p[0] = static_cast<char>(i);
    g_live[i] = p;
    g_sink = p;
  }
}

IT_SITE void ChurnTemporaries() {
  for (int i = 0; i < kTemporaries; ++i) {
    char* p = new char[kTemporaryBytes];
    p[0] = static_cast<char>(i);
    g_sink = p;
    delete[] g_sink;
  }
}

void FreeLiveBlocks() {
  for (char*& p : g_live) {
    std::free(p);
    p = nullptr;
  }
}

// --- heapsampling (Go's test/heapsampling.go) -----------------------------

constexpr size_t kInterleavedSizes[] = {17 * 1024, 1024, 18 * 1024,
                                        512,       16 * 1024, 256};
constexpr size_t kSmallSizes[] = {1024, 512, 256};

template <size_t kCount>
__attribute__((always_inline)) inline void AllocAndFree(
    long rounds, const size_t (&sizes)[kCount], char tag) {
  for (long i = 0; i < rounds; ++i) {
    for (size_t size : sizes) {
      char* p = static_cast<char*>(std::malloc(size));
      p[0] = tag;
      g_sink = p;
      std::free(g_sink);
    }
  }
}

// One function per experiment, so each is its own site in the profile.
IT_SITE void allocInterleaved1(long n) { AllocAndFree(n, kInterleavedSizes, 1); }
IT_SITE void allocInterleaved2(long n) { AllocAndFree(n, kInterleavedSizes, 2); }
IT_SITE void allocInterleaved3(long n) { AllocAndFree(n, kInterleavedSizes, 3); }
IT_SITE void allocSmall1(long n) { AllocAndFree(n, kSmallSizes, 4); }
IT_SITE void allocSmall2(long n) { AllocAndFree(n, kSmallSizes, 5); }
IT_SITE void allocSmall3(long n) { AllocAndFree(n, kSmallSizes, 6); }

// --- loop ----------------------------------------------------------------

IT_SITE void ChurnBeforeWindow() {
  for (int i = 0; i < 4096; ++i) {
    char* p = static_cast<char*>(std::malloc(64 * 1024));
    p[0] = 1;
    g_sink = p;
    std::free(g_sink);
  }
}

// About 200 MiB/s in 16 KiB blocks: ~400 samples/s at the default rate,
// at little CPU.
IT_SITE void LoopAllocator(const std::atomic<bool>* stop) {
  while (!stop->load(std::memory_order_relaxed)) {
    for (int i = 0; i < 16; ++i) {
      char* p = static_cast<char*>(std::malloc(16 * 1024));
      p[0] = static_cast<char>(i);
      g_sink = p;
      std::free(g_sink);
    }
    usleep(1000);
  }
}

// --- threads -------------------------------------------------------------

// Blocks travel between threads in batches: each thread publishes the batch
// it allocated and frees whichever batch it takes back, so most blocks are
// freed (or reallocated) by a thread other than the one that allocated them.
struct Batch {
  static constexpr int kBlocks = 64;
  char* blocks[kBlocks];
  size_t sizes[kBlocks];
};
std::atomic<Batch*> g_handoff{nullptr};
std::atomic<int> g_batches_done{0};

void FreeBatch(Batch* b) {
  for (int i = 0; i < Batch::kBlocks; ++i) {
    if (i % 7 == 0) {
      // Grow before freeing: realloc of a block from another thread.
      char* q = static_cast<char*>(std::realloc(b->blocks[i], b->sizes[i] * 2));
      q[b->sizes[i] * 2 - 1] = 1;
      b->blocks[i] = q;
    }
    std::free(b->blocks[i]);
  }
  delete b;
}

IT_SITE void ThreadedAllocator(int id, const std::atomic<bool>* stop) {
  uint64_t x = 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(id + 1);
  while (!stop->load(std::memory_order_relaxed)) {
    Batch* b = new Batch;
    for (int i = 0; i < Batch::kBlocks; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      const size_t size = 16 + x % 8192;
      char* p = (x >> 40) % 4 == 0
                    ? static_cast<char*>(std::aligned_alloc(64, (size + 63) & ~size_t{63}))
                    : static_cast<char*>(std::malloc(size));
      p[0] = static_cast<char>(i);
      p[size - 1] = static_cast<char>(i);
      b->blocks[i] = p;
      b->sizes[i] = size;
    }
    if (Batch* old = g_handoff.exchange(b)) FreeBatch(old);
    g_batches_done.fetch_add(1, std::memory_order_relaxed);
    usleep(200);
  }
}

// --- huge ----------------------------------------------------------------

char* g_small[100];

// Runs right after a malloc that must fail (a request of 2^64-2^20 bytes).
IT_SITE void SmallAfterHugeRequest() {
  for (char*& p : g_small) {
    p = static_cast<char*>(std::malloc(8));
    p[0] = 1;
  }
}

// --- idle ----------------------------------------------------------------

IT_SITE int SymbolTarget(int x) { return x * 3 + 1; }

}  // namespace it

int main(int argc, char** argv) {
  it::StartAgentIfLinked();
  const std::string mode = argc > 1 ? argv[1] : "idle";
  if (mode == "sites") {
    it::RetainLiveBlocks();
    it::ChurnTemporaries();
    it::AnnounceReady();
    const bool ok = it::WaitForStdinClose();
    it::FreeLiveBlocks();
    return ok ? 0 : 3;
  }
  if (mode == "heapsampling") {
    const long n = argc > 2 ? std::atol(argv[2]) : 1000;
    it::allocInterleaved1(n);
    it::allocInterleaved2(n);
    it::allocInterleaved3(n);
    it::allocSmall1(n);
    it::allocSmall2(n);
    it::allocSmall3(n);
    it::AnnounceReady();
    return it::WaitForStdinClose() ? 0 : 3;
  }
  if (mode == "loop") {
    it::RetainLiveBlocks();
    it::ChurnBeforeWindow();
    std::atomic<bool> stop{false};
    std::thread worker(it::LoopAllocator, &stop);
    it::AnnounceReady();
    const bool ok = it::WaitForStdinClose();
    stop.store(true);
    worker.join();
    it::FreeLiveBlocks();
    return ok ? 0 : 3;
  }
  if (mode == "threads") {
    const int n = argc > 2 ? std::atoi(argv[2]) : 4;
    std::atomic<bool> stop{false};
    std::vector<std::thread> workers;
    for (int i = 0; i < n; ++i) workers.emplace_back(it::ThreadedAllocator, i, &stop);
    // Ready once the threads are well under way (bounded: 10 s).
    for (int waited = 0; it::g_batches_done.load() < 16 * n && waited < 10000; ++waited) {
      usleep(1000);
    }
    it::AnnounceReady();
    const bool ok = it::WaitForStdinClose();
    stop.store(true);
    for (std::thread& t : workers) t.join();
    if (it::Batch* last = it::g_handoff.exchange(nullptr)) it::FreeBatch(last);
    return ok ? 0 : 3;
  }
  if (mode == "huge") {
    void* volatile huge = std::malloc(SIZE_MAX - (1 << 20) + 1);
    it::SmallAfterHugeRequest();
    std::printf("huge request: %s\n", huge == nullptr ? "null" : "nonnull");
    it::AnnounceReady();
    const bool ok = it::WaitForStdinClose();
    for (char* p : it::g_small) std::free(p);
    return ok ? 0 : 3;
  }
  if (mode == "idle") {
    int (*volatile target)(int) = &it::SymbolTarget;
    std::printf("SYMBOL 0x%" PRIxPTR "\n", reinterpret_cast<uintptr_t>(target));
    it::AnnounceReady();
    return it::WaitForStdinClose() ? 0 : 3;
  }
  std::fprintf(stderr, "usage: %s sites|heapsampling N|loop|threads N|huge|idle\n",
               argv[0]);
  return 2;
}
