// Google Benchmark version of malloc_bench's loop, for interactive use:
// repetitions, aggregates and the usual flags. Like malloc_bench it does not
// link the agent; compare the same binary with and without the preload:
//
//   B=build/tools/bench/malloc_benchmark; F=--benchmark_repetitions=10
//   $B $F
//   LD_PRELOAD=build/libpprof_agent.so PPROF_AGENT_ADDR=off $B $F
//
// tools/bench/run uses malloc_bench instead: a fixed iteration count is what
// callgrind's instruction counts need.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdlib>

namespace {

// Sizes within glibc's tcache range (<= 1032 bytes): every call is a hit.
constexpr size_t kMixedSizes[] = {16, 32, 48, 64, 128, 192, 256, 512};

void BM_MallocFree(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = malloc(size);
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MallocFree)->Arg(32)->Arg(512);

void BM_MallocFreeMixed(benchmark::State& state) {
  size_t i = 0;
  for (auto _ : state) {
    void* p = malloc(kMixedSizes[i++ & 7]);
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MallocFreeMixed);

}  // namespace

BENCHMARK_MAIN();
