// Raw logging for profiler/: one line to stderr with write(2), no stdio, no
// allocation. Async-signal-safe; usable from hooks and before main().
#ifndef PPROF_AGENT_PROFILER_BASE_RAW_LOG_H_
#define PPROF_AGENT_PROFILER_BASE_RAW_LOG_H_

namespace pprof_agent::internal {

// printf-like with %s, %d, %u, %ld, %lu, %x, %p only; the line is prefixed
// "pprof-agent: " and gets a trailing newline. Truncated at 512 bytes.
void RawLog(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_BASE_RAW_LOG_H_
