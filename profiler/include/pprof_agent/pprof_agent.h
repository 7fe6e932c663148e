// Public API of pprof-agent: start and stop the /debug/pprof server from code,
// and adjust sampling at run time. Nothing else is public.
//
// A preloaded agent (LD_PRELOAD=libpprof_agent.so) starts by itself from the
// environment; a service that links the agent calls Start() from main().
#ifndef PPROF_AGENT_PPROF_AGENT_H_
#define PPROF_AGENT_PPROF_AGENT_H_

#include <cstdint>
#include <string>

#define PA_PUBLIC __attribute__((visibility("default")))

namespace pprof_agent {

// Every field left at its "unset" value takes the PPROF_AGENT_* environment
// variable of the same meaning, or the documented default (README.md).
struct Options {
  // "host:port" to serve on; "off" disables the server. Port 0 picks a free
  // port (see Port()). Default 127.0.0.1:6060 (PPROF_AGENT_ADDR).
  std::string address;
  // Bearer token required when binding a non-loopback address
  // (PPROF_AGENT_TOKEN).
  std::string token;
  // Mean bytes between heap samples; 1 records every allocation, 0 turns heap
  // sampling off; -1 means unset. Default 524288 (PPROF_AGENT_HEAP_RATE).
  int64_t heap_sample_rate = -1;
  // Longest accepted `seconds` of a delta or CPU profile; -1 means unset.
  // Default 300 (PPROF_AGENT_MAX_SECONDS).
  int64_t max_profile_seconds = -1;
};

// Result of Start(): ok() or a one-line reason.
class [[nodiscard]] Status {
 public:
  Status() = default;
  explicit Status(std::string error) : error_(std::move(error)) {}
  bool ok() const { return error_.empty(); }
  const std::string& message() const { return error_; }

 private:
  std::string error_;
};

// Applies `options` and starts the HTTP server on the agent's own thread.
// Calling Start() while the server runs restarts it with the new options.
PA_PUBLIC Status Start(const Options& options = Options());

// Stops the HTTP server. Sampling continues (profiles keep accumulating).
PA_PUBLIC void Stop();

// The TCP port the server listens on, or 0 when it is not serving.
PA_PUBLIC int Port();

// Changes the heap sampling rate at run time (same meaning as
// Options::heap_sample_rate). Threads pick the new rate up at their next sample.
PA_PUBLIC void SetHeapSampleRate(int64_t bytes);
PA_PUBLIC int64_t HeapSampleRate();

// RAII: starts the agent on construction and stops the server on destruction.
class PA_PUBLIC ScopedAgent {
 public:
  explicit ScopedAgent(const Options& options = Options())
      : status_(Start(options)) {}
  ~ScopedAgent() { Stop(); }
  ScopedAgent(const ScopedAgent&) = delete;
  ScopedAgent& operator=(const ScopedAgent&) = delete;
  const Status& status() const { return status_; }

 private:
  Status status_;
};

}  // namespace pprof_agent

#endif  // PPROF_AGENT_PPROF_AGENT_H_
