// For query_fuzz only: config.cc (linked for its integer parser) refers to
// the CPU profiler's signal-name helpers and the thread dump's default
// signal, which the query parser never
// reaches. Linking the CPU profiler would pull in the hooks and timers; these
// stand-ins abort if anything ever calls them.
// (Empty while the CPU profiler is not in the tree.)
#if __has_include("profiler/cpu/cpu_profiler.h")
#include <cstdlib>
#include <string>
#include <string_view>

#include "profiler/cpu/cpu_profiler.h"

namespace pprof_agent::internal {
bool ParseCpuSignal(std::string_view, int*) { std::abort(); }
std::string CpuSignalName(int) { std::abort(); }
}  // namespace pprof_agent::internal
#endif

#if __has_include("profiler/threads/thread_dump.h")
#include <cstdlib>

#include "profiler/threads/thread_dump.h"

namespace pprof_agent::internal {
int DefaultThreadDumpSignal() { std::abort(); }
}  // namespace pprof_agent::internal
#endif
