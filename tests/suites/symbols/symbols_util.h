// Helpers of the symbols integration tests that tests/integration does not
// have: profile bytes <-> protobuf (gzip included), a profile stripped of its
// symbols, build ids as readelf prints them, marker lines in the test
// program's source, and a stand-in HTTP server for remote symbolization.
#ifndef PPROF_AGENT_TESTS_SUITES_SYMBOLS_SYMBOLS_UTIL_H_
#define PPROF_AGENT_TESTS_SUITES_SYMBOLS_SYMBOLS_UTIL_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "proto/profile.pb.h"

namespace pprof_agent::integration {

namespace pb = ::pprof_agent::profiles;

std::string Gunzip(const std::string& gz);  // "" on malformed input
// gzip of `raw`; level 1 is what the agent serves with.
std::string GzipBytes(const std::string& raw, int level = 1);

// A gzip-compressed profile as served, parsed; nullopt with *error set when
// it is not one.
std::optional<pb::Profile> ParseProfileGz(const std::string& gz,
                                          std::string* error);

// string_table[index], or "<bad index>".
std::string Str(const pb::Profile& p, int64_t index);

// The profile as a producer without symbols would write it: the same
// samples, locations (address and mapping only) and mappings (file, offsets,
// build id), but no functions, no lines and every has_* flag false, so that
// pprof has to symbolize it.
pb::Profile WithoutSymbols(const pb::Profile& p);

// The profile as the agent wrote it before it read DWARF: one line per
// location (the out-of-line function), no line numbers, functions with
// names only, has_* flags but has_functions false, and the string table
// compacted to what is still referred to. For comparing sizes.
pb::Profile WithoutLines(const pb::Profile& p);

// The "Build ID:" of `readelf -n <path>` (lowercase hex), "" if none.
std::string ReadelfBuildId(const std::string& readelf, const std::string& path,
                           std::string* error);

// 1-based number of the line of `source_path` that contains `marker`, 0 if
// none does.
int MarkerLine(const std::string& source_path, const std::string& marker);

// Stands in for a service's /debug/pprof/ as pprof sees it when the profile
// comes from a URL: serves `profile_gz` at /debug/pprof/heap and forwards
// /debug/pprof/symbol (GET and POST, bodies as they are) to the agent on
// `agent_port`. pprof derives the symbol URL from the profile's URL, so this
// is how a profile that lacks function names meets the agent's symbolizer.
class SymbolProxy {
 public:
  SymbolProxy(std::string profile_gz, int agent_port);
  ~SymbolProxy();
  SymbolProxy(const SymbolProxy&) = delete;
  SymbolProxy& operator=(const SymbolProxy&) = delete;

  int port() const { return port_; }  // 0 if it could not listen
  int symbol_posts() const { return symbol_posts_.load(); }
  std::string last_symbol_request() const;
  std::string last_symbol_response() const;

 private:
  struct Server;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<int> symbol_posts_{0};
  mutable std::mutex mu_;
  std::string last_request_;
  std::string last_response_;
};

}  // namespace pprof_agent::integration

#endif  // PPROF_AGENT_TESTS_SUITES_SYMBOLS_SYMBOLS_UTIL_H_
