// For query_fuzz only: config.cc (linked for its integer parser) refers to
// the signal-name helpers (profiler/base/signal_install.h) and the thread
// dump's default signal, which the query parser never reaches. Linking the
// profiler would pull in the hooks and timers; these stand-ins abort if
// anything ever calls them.
#include <cstdlib>
#include <string>
#include <string_view>

#include "profiler/base/signal_install.h"

namespace pprof_agent::internal {
bool ParseSignal(std::string_view, int*) { std::abort(); }
std::string SignalName(int) { std::abort(); }
}  // namespace pprof_agent::internal

#if __has_include("profiler/threads/thread_dump.h")
#include <cstdlib>

#include "profiler/threads/thread_dump.h"

namespace pprof_agent::internal {
int DefaultThreadDumpSignal() { std::abort(); }
}  // namespace pprof_agent::internal
#endif
