// it_alloc_{plain,linked}: allocates from known, named sites, prints READY,
// and stays alive (until stdin closes) so that a test can fetch profiles.
//
//   sites         RetainLiveBlocks keeps 32 MiB live (heap/inuse_space);
//                 ChurnTemporaries allocates and frees 256 MiB (allocs).
//   heapsampling N
//                 Go's test/heapsampling.go, adapted: allocInterleaved1..3
//                 and allocSmall1..3 each make N rounds of allocations of
//                 fixed sizes and free them at once.
//   loop          ChurnBeforeWindow allocates 256 MiB and frees it; after
//                 READY, LoopAllocator keeps allocating until stdin closes.
//   idle          nothing; prints the address of SymbolTarget as
//                 "SYMBOL 0x<hex>" for /debug/pprof/symbol.
//
// Every allocation is written to and its pointer stored through a volatile,
// so the compiler can neither drop the malloc/free pair nor the write.
#include <atomic>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>

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
    it::ChurnBeforeWindow();
    std::atomic<bool> stop{false};
    std::thread worker(it::LoopAllocator, &stop);
    it::AnnounceReady();
    const bool ok = it::WaitForStdinClose();
    stop.store(true);
    worker.join();
    return ok ? 0 : 3;
  }
  if (mode == "idle") {
    int (*volatile target)(int) = &it::SymbolTarget;
    std::printf("SYMBOL 0x%" PRIxPTR "\n", reinterpret_cast<uintptr_t>(target));
    it::AnnounceReady();
    return it::WaitForStdinClose() ? 0 : 3;
  }
  std::fprintf(stderr, "usage: %s sites|heapsampling N|loop|idle\n", argv[0]);
  return 2;
}
