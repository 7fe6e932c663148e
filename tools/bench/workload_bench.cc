// A service-like allocation workload for measuring a heap profiler's total
// overhead in CPU time: fast path, sampled allocations and the agent's own
// threads together. A fixed amount of work, so CPU time is the measure.
//
// Each of --threads threads runs --ops operations. One operation:
//   - picks a random slot of the thread's ring of --live pointers and frees
//     the block held there (the live set: random, geometric lifetimes);
//   - mallocs a new block of a size in [16 B, --max-size): an octave
//     [2^k, 2^(k+1)), then a uniform size within it. --dist=loguniform
//     (default) picks every octave equally often (mean ~8 KiB);
//     --dist=small makes each octave half as likely as the one below, so
//     most requests are small but every octave carries the same bytes
//     (median ~32 B, mean ~160 B), as in a typical C++ service;
//   - does the work a program does with memory it asked for: writes every
//     byte (memset) and reads every byte back (FNV-1a, byte by byte), and
//     stores the hash in the block; the hash is checked again before the
//     block is freed, which also catches a profiler that corrupts blocks.
// The work is proportional to the bytes allocated, which fixes the
// allocation rate per CPU second (printed, so results can be put against a
// real service's rate: sampling cost grows with bytes allocated).
//
// Not linked to the agent or to any allocator: tools/bench/run applies them
// with LD_PRELOAD, so every configuration runs the very same binary.
// Prints one line of key=value pairs:
//
//   workload_bench dist=loguniform threads=4 ops=... cpu_s=... user_s=...
//       sys_s=... wall_s=... startup_cpu_s=... allocs=... alloc_mib=...
//       mib_per_cpu_s=... checksum=...
//
// cpu_s is getrusage(RUSAGE_SELF) user+sys from the start of main() to the
// end of the work: every thread, including any a profiler starts, but not
// process start-up. startup_cpu_s is the CPU time used before main() (the
// dynamic loader, a preloaded library's dependencies and constructors),
// reported apart because a service pays it once, not per request.
//
// Usage: workload_bench [--threads=4] [--ops=N] [--live=N] [--max-size=N]
//                       [--dist=loguniform|small]
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <thread>
#include <vector>

namespace {

struct Params {
  uint64_t threads = 4;
  uint64_t ops = 100'000;        // per thread
  uint64_t live = 1024;          // ring slots per thread (a power of two)
  uint64_t max_size = 64 << 10;  // a power of two >= 32
  bool small = false;            // --dist=small instead of --dist=loguniform
};

struct ThreadResult {
  uint64_t checksum = 0;
  uint64_t bytes = 0;
  uint64_t bad_blocks = 0;
};

uint64_t XorShift(uint64_t* s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

// FNV-1a over bytes: a latency-bound loop of a few cycles per byte.
uint64_t Fnv1a(const unsigned char* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

// A block holds its size in word 0 and the hash of bytes [16, size) in
// word 1 (sizes are >= 16).
uint64_t CheckBlock(const unsigned char* p, ThreadResult* r) {
  uint64_t size, hash;
  memcpy(&size, p, 8);
  memcpy(&hash, p + 8, 8);
  if (Fnv1a(p + 16, size - 16) != hash) ++r->bad_blocks;
  return hash;
}

void Worker(const Params& params, uint64_t seed, ThreadResult* out) {
  ThreadResult r;
  uint64_t rng = seed * 0x9e3779b97f4a7c15ull + 1;
  std::vector<unsigned char*> ring(params.live, nullptr);
  const uint64_t ring_mask = params.live - 1;
  const int min_log2 = 4;
  const int octaves = __builtin_ctzll(params.max_size) - min_log2;
  for (uint64_t op = 0; op < params.ops; ++op) {
    const uint64_t x = XorShift(&rng);
    unsigned char*& slot = ring[x & ring_mask];
    if (slot != nullptr) {
      r.checksum += CheckBlock(slot, &r);
      free(slot);
    }
    // Octave k of [2^k, 2^(k+1)) bytes, then a uniform size within it.
    // loguniform: every octave equally often. small: each octave half as
    // often as the one below (the top one takes the remainder), so every
    // octave carries about the same bytes and most requests are small.
    const uint64_t y = x >> 20;
    const int octave =
        min_log2 +
        static_cast<int>(
            params.small
                ? std::min<uint64_t>(__builtin_ctzll(y | (uint64_t{1} << 40)),
                                     octaves - 1)
                : y % octaves);
    const size_t size =
        (size_t{1} << octave) + ((x >> 32) & ((size_t{1} << octave) - 1));
    unsigned char* p = static_cast<unsigned char*>(malloc(size));
    if (p == nullptr) abort();
    // Non-zero fill: GCC may turn malloc + memset(0) into calloc.
    memset(p, static_cast<int>(x >> 8) | 1, size);
    const uint64_t hash = Fnv1a(p + 16, size - 16);
    memcpy(p, &size, 8);
    memcpy(p + 8, &hash, 8);
    slot = p;
    r.bytes += size;
  }
  for (unsigned char*& p : ring) {
    if (p != nullptr) r.checksum += CheckBlock(p, &r);
    free(p);
    p = nullptr;
  }
  *out = r;
}

[[noreturn]] void Usage(const char* message) {
  fprintf(stderr,
          "workload_bench: %s\n"
          "usage: workload_bench [--threads=4] [--ops=N] [--live=N] "
          "[--max-size=N]\n"
          "                      [--dist=loguniform|small]\n",
          message);
  exit(2);
}

bool ParseFlag(const char* arg, const char* name, uint64_t* out) {
  const size_t len = strlen(name);
  if (strncmp(arg, name, len) != 0 || arg[len] != '=') return false;
  char* end = nullptr;
  const unsigned long long v = strtoull(arg + len + 1, &end, 10);
  if (arg[len + 1] == '\0' || *end != '\0') Usage("bad number");
  *out = v;
  return true;
}

double Seconds(const timeval& tv) { return tv.tv_sec + tv.tv_usec * 1e-6; }

}  // namespace

int main(int argc, char** argv) {
  rusage usage0;
  getrusage(RUSAGE_SELF, &usage0);
  Params params;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--dist=loguniform") == 0) {
      params.small = false;
      continue;
    }
    if (strcmp(argv[i], "--dist=small") == 0) {
      params.small = true;
      continue;
    }
    if (!ParseFlag(argv[i], "--threads", &params.threads) &&
        !ParseFlag(argv[i], "--ops", &params.ops) &&
        !ParseFlag(argv[i], "--live", &params.live) &&
        !ParseFlag(argv[i], "--max-size", &params.max_size)) {
      Usage("unknown argument");
    }
  }
  const auto is_pow2 = [](uint64_t v) { return v != 0 && (v & (v - 1)) == 0; };
  if (params.threads == 0 || params.threads > 256)
    Usage("--threads must be 1..256");
  if (!is_pow2(params.live)) Usage("--live must be a power of two");
  if (!is_pow2(params.max_size) || params.max_size < 32) {
    Usage("--max-size must be a power of two >= 32");
  }

  timespec wall0, wall1;
  clock_gettime(CLOCK_MONOTONIC, &wall0);
  std::vector<ThreadResult> results(params.threads);
  {
    std::vector<std::thread> threads;
    threads.reserve(params.threads);
    for (uint64_t t = 0; t < params.threads; ++t) {
      threads.emplace_back(Worker, std::cref(params), t + 1, &results[t]);
    }
    for (std::thread& t : threads) t.join();
  }
  clock_gettime(CLOCK_MONOTONIC, &wall1);
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);

  ThreadResult total;
  for (const ThreadResult& r : results) {
    total.checksum += r.checksum;
    total.bytes += r.bytes;
    total.bad_blocks += r.bad_blocks;
  }
  const double user_s = Seconds(usage.ru_utime) - Seconds(usage0.ru_utime);
  const double sys_s = Seconds(usage.ru_stime) - Seconds(usage0.ru_stime);
  const double cpu_s = user_s + sys_s;
  const double startup_cpu_s =
      Seconds(usage0.ru_utime) + Seconds(usage0.ru_stime);
  const double wall_s =
      (wall1.tv_sec - wall0.tv_sec) + (wall1.tv_nsec - wall0.tv_nsec) * 1e-9;
  const double alloc_mib = total.bytes / (1024.0 * 1024.0);
  printf(
      "workload_bench dist=%s threads=%llu ops=%llu cpu_s=%.4f user_s=%.4f "
      "sys_s=%.4f wall_s=%.4f startup_cpu_s=%.4f allocs=%llu alloc_mib=%.1f "
      "mib_per_cpu_s=%.1f checksum=%llu\n",
      params.small ? "small" : "loguniform",
      static_cast<unsigned long long>(params.threads),
      static_cast<unsigned long long>(params.ops), cpu_s, user_s, sys_s, wall_s,
      startup_cpu_s,
      static_cast<unsigned long long>(params.threads * params.ops), alloc_mib,
      alloc_mib / cpu_s, static_cast<unsigned long long>(total.checksum));
  if (total.bad_blocks != 0) {
    fprintf(stderr, "workload_bench: %llu blocks were corrupted\n",
            static_cast<unsigned long long>(total.bad_blocks));
    return 1;
  }
  return 0;
}
