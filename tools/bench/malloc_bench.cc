// malloc+free microbenchmark for the agent's unsampled fast path: a tight
// loop of malloc(n) and free() over a small fixed set of sizes, so that
// glibc's tcache serves every request and the loop measures the cheapest
// path there is, the one the agent's hooks add to.
//
// Not linked to the agent: tools/bench/run applies it with LD_PRELOAD, so
// that A and B run the very same binary. Prints one line of key=value pairs:
//
//   malloc_bench sizes=32 iters=30000000 wall_ns=... ns_per_op=...
//       cpu_ns_per_op=...
//
// The timed loop is MeasuredLoop(); tools/bench/run counts instructions with
// `valgrind --tool=callgrind --toggle-collect='*MeasuredLoop*'`, so warm-up
// and start-up (including the agent's) are not counted. Keep that name.
//
// Usage: malloc_bench [--sizes=32|mixed|N,N,...] [--iters=N] [--warmup=N]
//   --sizes=mixed cycles through 16,32,48,64,128,192,256,512 bytes, all
//   within tcache's range (<= 1032 bytes), so every request is a tcache hit.
//   A list is padded by repetition to a power of two entries.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <string>
#include <vector>

namespace {

constexpr uint64_t kDefaultIters = 30'000'000;
constexpr uint64_t kWarmUpIters = 100'000;
constexpr size_t kMixedSizes[] = {16, 32, 48, 64, 128, 192, 256, 512};

// One malloc+free per iteration; `sizes` has mask+1 entries. The empty asm
// makes the pointer escape, so the compiler can neither drop the pair
// (GCC removes a malloc whose only use is free) nor batch the calls; its
// "memory" clobber costs one reload of sizes[i] per iteration, the same with
// and without the agent.
__attribute__((always_inline)) inline void LoopBody(const size_t* sizes,
                                                    size_t mask,
                                                    uint64_t iters) {
  for (uint64_t i = 0; i < iters; ++i) {
    void* p = malloc(sizes[i & mask]);
    asm volatile("" : : "r"(p) : "memory");
    free(p);
  }
}

// Two copies of the loop, so that callgrind's --toggle-collect can count the
// measured one alone. noipa: GCC's identical-code folding would otherwise
// merge them into one symbol.
#if defined(__clang__)
#define PA_BENCH_DISTINCT __attribute__((noinline))
#else
#define PA_BENCH_DISTINCT __attribute__((noinline, noipa))
#endif

PA_BENCH_DISTINCT void WarmUpLoop(const size_t* sizes, size_t mask,
                                  uint64_t iters) {
  LoopBody(sizes, mask, iters);
}

PA_BENCH_DISTINCT void MeasuredLoop(const size_t* sizes, size_t mask,
                                    uint64_t iters) {
  LoopBody(sizes, mask, iters);
}

int64_t NowNs(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

[[noreturn]] void Usage(const char* message) {
  fprintf(stderr,
          "malloc_bench: %s\n"
          "usage: malloc_bench [--sizes=32|mixed|N,N,...] [--iters=N] "
          "[--warmup=N]\n",
          message);
  exit(2);
}

bool ParseU64(const char* text, uint64_t* out) {
  if (*text == '\0') return false;
  char* end = nullptr;
  const unsigned long long v = strtoull(text, &end, 10);
  if (*end != '\0') return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string sizes_name = "32";
  uint64_t iters = kDefaultIters;
  uint64_t warmup = kWarmUpIters;
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    if (strncmp(arg, "--sizes=", 8) == 0) {
      sizes_name = arg + 8;
    } else if (strncmp(arg, "--iters=", 8) == 0) {
      if (!ParseU64(arg + 8, &iters) || iters == 0) Usage("bad --iters");
    } else if (strncmp(arg, "--warmup=", 9) == 0) {
      if (!ParseU64(arg + 9, &warmup)) Usage("bad --warmup");
    } else {
      Usage("unknown argument");
    }
  }

  std::vector<size_t> sizes;
  if (sizes_name == "mixed") {
    sizes.assign(std::begin(kMixedSizes), std::end(kMixedSizes));
  } else {
    std::string list = sizes_name;
    size_t start = 0;
    while (start <= list.size()) {
      const size_t comma = list.find(',', start);
      const std::string item =
          list.substr(start, comma == std::string::npos ? std::string::npos
                                                        : comma - start);
      uint64_t n = 0;
      if (!ParseU64(item.c_str(), &n) || n == 0 || n > (1u << 20))
        Usage("bad --sizes");
      sizes.push_back(static_cast<size_t>(n));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  // Pad to a power of two by repetition, so the index is a mask, not a modulo.
  const size_t distinct = sizes.size();
  size_t padded = 1;
  while (padded < distinct) padded <<= 1;
  for (size_t i = distinct; i < padded; ++i)
    sizes.push_back(sizes[i % distinct]);
  const size_t mask = padded - 1;

  WarmUpLoop(sizes.data(), mask, warmup);
  const int64_t wall0 = NowNs(CLOCK_MONOTONIC);
  const int64_t cpu0 = NowNs(CLOCK_THREAD_CPUTIME_ID);
  MeasuredLoop(sizes.data(), mask, iters);
  const int64_t cpu1 = NowNs(CLOCK_THREAD_CPUTIME_ID);
  const int64_t wall1 = NowNs(CLOCK_MONOTONIC);

  const double n = static_cast<double>(iters);
  printf(
      "malloc_bench sizes=%s iters=%llu wall_ns=%lld ns_per_op=%.3f "
      "cpu_ns_per_op=%.3f\n",
      sizes_name.c_str(), static_cast<unsigned long long>(iters),
      static_cast<long long>(wall1 - wall0),
      static_cast<double>(wall1 - wall0) / n,
      static_cast<double>(cpu1 - cpu0) / n);
  return 0;
}
