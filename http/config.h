// The one place that parses the agent's configuration: PPROF_AGENT_*
// environment variables, the public Options struct laid over them, and the
// "host:port" serving address. Pure functions; nothing here starts anything.
#ifndef PPROF_AGENT_HTTP_CONFIG_H_
#define PPROF_AGENT_HTTP_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pprof_agent/pprof_agent.h"
#include "profiler/contention/contention_profiler.h"
#include "profiler/cpu/cpu_profiler.h"
#include "profiler/base/runtime.h"

namespace pprof_agent::internal {

inline constexpr char kDefaultAddress[] = "127.0.0.1:6060";
inline constexpr int64_t kDefaultMaxSeconds = 300;
// Upper bound for PPROF_AGENT_MAX_SECONDS itself: a day. A longer request
// ties up one of the few server threads for longer than anyone waits.
inline constexpr int64_t kMaxMaxSeconds = 24 * 3600;

// Whether the constructor starts the server by itself.
enum class Autostart {
  kDefault,  // only when the library was preloaded (LD_PRELOAD)
  kOn,       // PPROF_AGENT_AUTOSTART=1
  kOff,      // PPROF_AGENT_AUTOSTART=0
};

// Every field has a default that serves a newcomer. Adding a setting: add the
// field here, a row in the table in config.cc (name + parser), and, if it is
// public, the Options field and a line in Merge().
struct Config {
  std::string address = kDefaultAddress;  // "host:port" or "off"
  std::string token;                      // empty: no authentication
  int64_t heap_rate = kDefaultHeapRate;   // bytes; 1 = all, 0 = off
  // Contention profiles (profiler/contention/contention_profiler.h): 1 in N contended
  // releases; wait threshold in ns; stack captures per second (0 = no cap).
  int64_t mutex_rate = kDefaultMutexRate;
  int64_t block_rate = kDefaultBlockRate;
  int64_t lock_stacks_per_sec = kDefaultLockStacksPerSecond;
  int64_t max_seconds = kDefaultMaxSeconds;
  Autostart autostart = Autostart::kDefault;
  // CPU profile (profiler/cpu/cpu_profiler.h): default rate of
  // /debug/pprof/profile (a request's hz= overrides it) and the signal
  // its timers raise.
  int64_t cpu_hz = kDefaultCpuHz;
  int cpu_signal = kDefaultCpuSignal;
  // Thread dumps (profiler/threads/thread_dump.h): the signal each thread is sent
  // to unwind itself; 0 = the default, SIGRTMIN+6 (a run-time value).
  int dump_signal = 0;
  // LD_PRELOAD names this library (derived, not a PPROF_AGENT_ variable).
  bool preloaded = false;
};

// Reads the configuration from `envp` ("NAME=value" strings, null-terminated
// array, as `environ`). A bad value keeps the default and produces one
// message: appended to `errors` when given, otherwise logged to stderr.
Config ConfigFromEnv(const char* const* envp,
                     std::vector<std::string>* errors = nullptr);
// Same, from the process environment.
Config ConfigFromEnv();

// Lays the fields of `options` that are set (non-empty string, value != -1)
// over `base`. No validation: Validate() does that for the result.
Config Merge(Config base, const Options& options);

// Checks a merged configuration before it is used: address syntax, ranges,
// token characters, and the safety rule that a non-loopback bind needs a
// token. Returns ok() or a one-line reason.
Status Validate(const Config& config);

// Whether the start-up constructor should start the server.
bool ShouldAutostart(const Config& config);

// A parsed serving address.
struct Address {
  bool off = false;  // "off": do not serve
  std::string host;  // without brackets: "127.0.0.1", "::1", "localhost"
  int port = 0;      // 0: pick a free port
};

// Parses "host:port", "[v6-literal]:port", ":port" (all interfaces) or "off".
// On failure returns false and sets `error` to a one-line reason.
bool ParseAddress(std::string_view text, Address* out, std::string* error);

// "host:port" with brackets around IPv6 literals, for URLs and messages.
std::string FormatHostPort(const std::string& host, int port);

// True for 127.0.0.0/8, ::1, ::ffff:127.x.x.x and "localhost". Any other name
// counts as non-loopback: we do not resolve names to decide about security.
bool IsLoopbackHost(const std::string& host);

// Parses a non-negative decimal integer without sign or spaces; false on
// anything else, including overflow. Shared with query.cc.
bool ParseNonNegativeInt(std::string_view text, int64_t* out);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_HTTP_CONFIG_H_
