// Parsing of PPROF_AGENT_* variables, Options merging and address syntax.
// See config.h; the table below is the list of variables the agent reads.
#include "http/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>

#include <array>
#include <limits>
#include <utility>

#include "http/log.h"
#include "profiler/threads/thread_dump.h"

extern char** environ;

namespace pprof_agent::internal {
namespace {

constexpr std::string_view kEnvPrefix = "PPROF_AGENT_";
constexpr size_t kMaxTokenLength = 1024;

// A value quoted in a log line: bounded and free of control bytes, so a
// hostile or broken environment cannot forge log lines.
std::string Printable(std::string_view text) {
  constexpr size_t kMax = 64;
  std::string out;
  for (char c : text.substr(0, kMax)) {
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  if (text.size() > kMax) out += "...";
  return out;
}

// Each parser stores a valid value into `config` and returns "", or leaves
// `config` alone and returns what a valid value looks like.
using VarParser = std::string (*)(std::string_view value, Config* config);

std::string ParseAddrVar(std::string_view value, Config* config) {
  Address address;
  std::string error;
  if (!ParseAddress(value, &address, &error)) return error;
  config->address = std::string(value);
  return "";
}

bool IsValidToken(std::string_view token) {
  if (token.empty() || token.size() > kMaxTokenLength) return false;
  for (char c : token) {
    // Visible ASCII: the token travels in an HTTP header and a query string.
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

std::string ParseTokenVar(std::string_view value, Config* config) {
  if (!IsValidToken(value)) {
    return "must be 1-1024 visible ASCII characters";
  }
  config->token = std::string(value);
  return "";
}

std::string ParseHeapRateVar(std::string_view value, Config* config) {
  int64_t rate = 0;
  if (!ParseNonNegativeInt(value, &rate)) {
    return "must be a non-negative integer (bytes; 1 = every allocation, "
           "0 = off)";
  }
  config->heap_rate = rate;
  return "";
}

std::string ParseMutexRateVar(std::string_view value, Config* config) {
  int64_t rate = 0;
  if (!ParseNonNegativeInt(value, &rate)) {
    return "must be a non-negative integer (1 in N contended releases; "
           "1 = every one, 0 = off)";
  }
  config->mutex_rate = rate;
  return "";
}

std::string ParseBlockRateVar(std::string_view value, Config* config) {
  int64_t rate = 0;
  if (!ParseNonNegativeInt(value, &rate)) {
    return "must be a non-negative integer (nanoseconds; waits this long "
           "or longer are always recorded, shorter ones sampled; 0 = off)";
  }
  config->block_rate = rate;
  return "";
}

std::string ParseLockStacksVar(std::string_view value, Config* config) {
  int64_t rate = 0;
  if (!ParseNonNegativeInt(value, &rate)) {
    return "must be a non-negative integer (lock stack captures per second; "
           "0 = no limit)";
  }
  config->lock_stacks_per_sec = rate;
  return "";
}

std::string ParseMaxSecondsVar(std::string_view value, Config* config) {
  int64_t seconds = 0;
  if (!ParseNonNegativeInt(value, &seconds) || seconds < 1 ||
      seconds > kMaxMaxSeconds) {
    return "must be an integer from 1 to " + std::to_string(kMaxMaxSeconds);
  }
  config->max_seconds = seconds;
  return "";
}

std::string ParseAutostartVar(std::string_view value, Config* config) {
  if (value == "1") {
    config->autostart = Autostart::kOn;
  } else if (value == "0") {
    config->autostart = Autostart::kOff;
  } else {
    return "must be 0 or 1";
  }
  return "";
}

std::string ParseCpuHzVar(std::string_view value, Config* config) {
  int64_t hz = 0;
  if (!ParseNonNegativeInt(value, &hz) || hz < 1 || hz > kMaxCpuHz) {
    return "must be an integer from 1 to " + std::to_string(kMaxCpuHz) +
           " (CPU samples per second per thread)";
  }
  config->cpu_hz = hz;
  return "";
}

std::string ParseCpuSignalVar(std::string_view value, Config* config) {
  int signo = 0;
  if (!ParseCpuSignal(value, &signo)) {
    return "must be SIGPROF, SIGVTALRM, SIGALRM, SIGUSR1, SIGUSR2 or a "
           "real-time signal (SIGRTMIN+n, SIGRTMAX-n), by name or number";
  }
  config->cpu_signal = signo;
  return "";
}

std::string ParseDumpSignalVar(std::string_view value, Config* config) {
  int signo = 0;
  if (!ParseCpuSignal(value, &signo)) {
    return "must be SIGPROF, SIGVTALRM, SIGALRM, SIGUSR1, SIGUSR2 or a "
           "real-time signal (SIGRTMIN+n, SIGRTMAX-n), by name or number";
  }
  config->dump_signal = signo;
  return "";
}

struct EnvVar {
  std::string_view name;  // without the PPROF_AGENT_ prefix
  VarParser parse;
};

// The variables the agent reads. Later settings (CPU_HZ, MUTEX_RATE,
// BLOCK_RATE) get a row here and a field in Config.
constexpr EnvVar kEnvVars[] = {
    {"CPU_HZ", ParseCpuHzVar},       {"CPU_SIGNAL", ParseCpuSignalVar},
    {"ADDR", ParseAddrVar},           {"TOKEN", ParseTokenVar},
    {"HEAP_RATE", ParseHeapRateVar},  {"MAX_SECONDS", ParseMaxSecondsVar},
    {"AUTOSTART", ParseAutostartVar},
    {"MUTEX_RATE", ParseMutexRateVar},  {"BLOCK_RATE", ParseBlockRateVar},
    {"LOCK_STACKS_PER_SEC", ParseLockStacksVar},
    {"DUMP_SIGNAL", ParseDumpSignalVar},
};

// Names a newer agent reads: accepted without a warning, so that one
// environment can serve several agent versions, and names read where they
// are used rather than here: RACES by profiler/races/race_store.cc
// (report | abort | off).
constexpr std::array<std::string_view, 1> kReservedVars{"RACES"};

std::string DefaultText(std::string_view name, const Config& defaults) {
  if (name == "ADDR") return defaults.address;
  if (name == "CPU_HZ") return std::to_string(defaults.cpu_hz);
  if (name == "CPU_SIGNAL") return CpuSignalName(defaults.cpu_signal);
  if (name == "DUMP_SIGNAL") {
    return CpuSignalName(defaults.dump_signal != 0 ? defaults.dump_signal
                                                   : DefaultThreadDumpSignal());
  }
  if (name == "HEAP_RATE") return std::to_string(defaults.heap_rate);
  if (name == "MAX_SECONDS") return std::to_string(defaults.max_seconds);
  if (name == "TOKEN") return "no token";
  if (name == "MUTEX_RATE") return std::to_string(defaults.mutex_rate);
  if (name == "BLOCK_RATE") return std::to_string(defaults.block_rate);
  if (name == "LOCK_STACKS_PER_SEC") {
    return std::to_string(defaults.lock_stacks_per_sec);
  }
  return "the default";
}

}  // namespace

bool ParseNonNegativeInt(std::string_view text, int64_t* out) {
  if (text.empty()) return false;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    const int digit = c - '0';
    if (value > (std::numeric_limits<int64_t>::max() - digit) / 10) {
      return false;
    }
    value = value * 10 + digit;
  }
  *out = value;
  return true;
}

Config ConfigFromEnv(const char* const* envp,
                     std::vector<std::string>* errors) {
  Config config;
  const Config defaults;
  auto report = [errors](std::string message) {
    if (errors != nullptr) {
      errors->push_back(std::move(message));
    } else {
      LogLine(message);
    }
  };
  // getenv() returns the first of duplicate entries; so do we.
  std::vector<std::string_view> seen;
  for (const char* const* p = envp; p != nullptr && *p != nullptr; ++p) {
    std::string_view entry = *p;
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = entry.substr(0, eq);
    std::string_view value = entry.substr(eq + 1);
    bool duplicate = false;
    for (std::string_view s : seen) duplicate = duplicate || s == name;
    if (duplicate) continue;
    seen.push_back(name);

    if (name == "LD_PRELOAD") {
      config.preloaded = value.find("pprof_agent") != std::string_view::npos;
      continue;
    }
    if (name.substr(0, kEnvPrefix.size()) != kEnvPrefix) continue;
    std::string_view short_name = name.substr(kEnvPrefix.size());
    const EnvVar* var = nullptr;
    for (const EnvVar& v : kEnvVars) {
      if (v.name == short_name) var = &v;
    }
    if (var == nullptr) {
      bool reserved = false;
      for (std::string_view r : kReservedVars)
        reserved = reserved || r == short_name;
      if (!reserved) {
        report("ignoring unknown variable " + Printable(name));
      }
      continue;
    }
    std::string why = var->parse(value, &config);
    if (!why.empty()) {
      // The token's value is a secret: never echo it.
      std::string shown = short_name == "TOKEN"
                              ? std::string("(hidden)")
                              : "\"" + Printable(value) + "\"";
      report("ignoring " + std::string(name) + "=" + shown + ": " + why +
             "; using " + DefaultText(short_name, defaults));
    }
  }
  return config;
}

Config ConfigFromEnv() { return ConfigFromEnv(environ); }

Config Merge(Config base, const Options& options) {
  if (!options.address.empty()) base.address = options.address;
  if (!options.token.empty()) base.token = options.token;
  if (options.heap_sample_rate != -1) base.heap_rate = options.heap_sample_rate;
  if (options.max_profile_seconds != -1) {
    base.max_seconds = options.max_profile_seconds;
  }
  return base;
}

Status Validate(const Config& config) {
  Address address;
  std::string error;
  if (!ParseAddress(config.address, &address, &error)) {
    return Status("invalid address \"" + Printable(config.address) +
                  "\": " + error);
  }
  if (config.heap_rate < 0) {
    return Status("invalid heap sample rate " +
                  std::to_string(config.heap_rate) + ": must be >= 0");
  }
  if (config.max_seconds < 1 || config.max_seconds > kMaxMaxSeconds) {
    return Status("invalid max profile seconds " +
                  std::to_string(config.max_seconds) + ": must be 1 to " +
                  std::to_string(kMaxMaxSeconds));
  }
  if (config.cpu_hz < 1 || config.cpu_hz > kMaxCpuHz) {
    return Status("invalid CPU profile rate " + std::to_string(config.cpu_hz) +
                  " Hz: must be 1 to " + std::to_string(kMaxCpuHz));
  }
  if (int signo; !ParseCpuSignal(std::to_string(config.cpu_signal), &signo)) {
    return Status("invalid CPU profile signal " +
                  std::to_string(config.cpu_signal));
  }
  if (int signo; config.dump_signal != 0 &&
                 !ParseCpuSignal(std::to_string(config.dump_signal), &signo)) {
    return Status("invalid thread dump signal " +
                  std::to_string(config.dump_signal));
  }
  if (const int dump = config.dump_signal != 0 ? config.dump_signal
                                               : DefaultThreadDumpSignal();
      dump == config.cpu_signal) {
    return Status("the thread dump signal (PPROF_AGENT_DUMP_SIGNAL) and the CPU "
                  "profile signal (PPROF_AGENT_CPU_SIGNAL) must differ; both are " +
                  CpuSignalName(dump));
  }
  if (!config.token.empty() && !IsValidToken(config.token)) {
    return Status("invalid token: must be 1-1024 visible ASCII characters");
  }
  if (!address.off && config.token.empty() && !IsLoopbackHost(address.host)) {
    // DESIGN.md "safe by default": profiles expose code layout and heap
    // contents' shape; anyone who can reach a non-loopback port could read
    // them or tie up the server with long profiles.
    return Status("refusing to serve on " +
                  FormatHostPort(address.host, address.port) +
                  " without a token: a non-loopback address needs "
                  "PPROF_AGENT_TOKEN (or Options::token)");
  }
  return Status();
}

bool ShouldAutostart(const Config& config) {
  switch (config.autostart) {
    case Autostart::kOn:
      return true;
    case Autostart::kOff:
      return false;
    case Autostart::kDefault:
      return config.preloaded;
  }
  return false;
}

bool ParseAddress(std::string_view text, Address* out, std::string* error) {
  if (text == "off") {
    *out = Address{};
    out->off = true;
    return true;
  }
  if (text.empty()) {
    *error = "empty address (want host:port or \"off\")";
    return false;
  }
  std::string host;
  std::string_view port_text;
  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      *error = "missing ']' after IPv6 address";
      return false;
    }
    host = std::string(text.substr(1, close - 1));
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      *error = "missing port (want [addr]:port)";
      return false;
    }
    port_text = text.substr(close + 2);
    in6_addr v6;
    if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) {
      *error = "not an IPv6 address inside []";
      return false;
    }
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      *error = "missing port (want host:port)";
      return false;
    }
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      *error = "IPv6 addresses need brackets, e.g. [::1]:6060";
      return false;
    }
    if (host.empty()) host = "0.0.0.0";  // Go's ":port": every interface
    if (host.size() > 253) {
      *error = "host name too long";
      return false;
    }
    for (char c : host) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                      c == '_';
      if (!ok) {
        *error = "invalid character in host";
        return false;
      }
    }
  }
  int64_t port = 0;
  if (!ParseNonNegativeInt(port_text, &port) || port > 65535) {
    *error = "port must be a number from 0 to 65535";
    return false;
  }
  out->off = false;
  out->host = std::move(host);
  out->port = static_cast<int>(port);
  return true;
}

std::string FormatHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

bool IsLoopbackHost(const std::string& host) {
  if (strcasecmp(host.c_str(), "localhost") == 0) return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

}  // namespace pprof_agent::internal
