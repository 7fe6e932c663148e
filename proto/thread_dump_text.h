// The full per-thread dump of `goroutine?debug=2`: a wait-for summary
// (deadlocks, wait chains, longest waits), then every thread with its tid,
// name, kernel state and symbolized stack, and for a thread blocked in a
// hooked lock the lock, how long it has waited, its holders and the
// holders' stacks (the agent's own frames, its lock hooks, left out). Go's
// own debug=2 is for humans only (pprof does not
// parse it); ours follows its shape: a header line per thread, then
// "function\n\tfile:line" per frame.
#ifndef PPROF_AGENT_PROTO_THREAD_DUMP_TEXT_H_
#define PPROF_AGENT_PROTO_THREAD_DUMP_TEXT_H_

#include <string>

#include "profiler/symbols/symbolizer.h"
#include "profiler/threads/thread_dump.h"
#include "proto/profile_builder.h"

namespace pprof_agent::internal {

std::string ThreadDumpText(const ThreadDump& dump, Symbolizer& symbols);
// Threads stop being listed once the text reaches `max_bytes` (the limit
// every text has; kMaxTextBytes in profile_builder.h), and a closing line
// says how many were left out.
std::string ThreadDumpText(const ThreadDump& dump, SymbolSource& symbols,
                           size_t max_bytes = kMaxTextBytes);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROTO_THREAD_DUMP_TEXT_H_
