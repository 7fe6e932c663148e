// Validation of what clients send: /debug/pprof query parameters, /symbol
// address lists, and whether a request has arrived whole. Pure functions
// with Go's net/http/pprof error texts (PPROF_REFERENCE.md), stricter than
// Go where Go silently defaults: every bad input is a 4xx.
#ifndef PPROF_AGENT_HTTP_QUERY_H_
#define PPROF_AGENT_HTTP_QUERY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pprof_agent::internal {

// Decoded query parameters, as httplib::Params (a multimap; the first value
// of a repeated name wins, as with Go's FormValue).
using QueryParams = std::multimap<std::string, std::string>;

// A request the handler must refuse: HTTP status and a one-line message
// without the trailing newline.
struct HttpError {
  int status = 400;
  std::string message;
};

inline constexpr char kBadSecondsMessage[] =
    "invalid value for \"seconds\" - must be a positive integer";
inline constexpr char kBadDebugMessage[] = "invalid value for \"debug\"";
inline constexpr char kSecondsAndDebugMessage[] =
    "seconds and debug params are incompatible";

// Bounds of a /symbol request. pprof sends one "%#x" per unresolved address;
// 10000 covers any real profile, and the byte bound matches the server's
// request body limit.
inline constexpr size_t kMaxSymbolAddresses = 10000;
inline constexpr size_t kMaxSymbolRequestBytes = 64 * 1024;

// `seconds`: a positive decimal integer <= max_seconds (no sign, no spaces).
std::optional<HttpError> ParseSeconds(std::string_view text,
                                      int64_t max_seconds, int64_t* seconds);

// `debug`: 0, 1 or 2.
std::optional<HttpError> ParseDebug(std::string_view text, int* debug);

// The parameters of a profile endpoint. `gc` is accepted and ignored (there
// is no collector to run); unknown names are ignored, as Go does.
struct ProfileQuery {
  int debug = 0;
  int64_t seconds = 0;  // 0: not a delta request
};
// An empty value counts as absent (Go: FormValue("") parses as unset).
std::optional<HttpError> ParseProfileQuery(const QueryParams& params,
                                           int64_t max_seconds,
                                           ProfileQuery* query);

// The first value of `name`, or nullptr.
const std::string* FindParam(const QueryParams& params,
                             const std::string& name);

// A /symbol request: hexadecimal addresses, with or without 0x, joined by
// '+'. Empty items (a trailing '+') and address 0 are skipped, as Go does;
// anything else that is not an address is an error, as is more than
// kMaxSymbolAddresses addresses or kMaxSymbolRequestBytes bytes.
std::optional<HttpError> ParseSymbolAddresses(std::string_view text,
                                              std::vector<uint64_t>* addresses);

// The address list of a GET /symbol: the raw query string with its
// name=value parts (e.g. token=...) removed, so that `?0x1+0x2` and
// `?0x1+0x2&token=t` both mean two addresses. %XX escapes are decoded
// (`0x1%2B0x2` too), but '+' stays the separator, not a space.
std::string SymbolQueryFromRawQuery(std::string_view raw_query);

// How much of a request has arrived, judged from the bytes read so far.
// server.cc reads each request whole on its listener thread before a worker
// parses it, so that a client that stalls or trickles holds no worker.
enum class RequestArrival {
  kPartial,  // wait for more bytes
  // Hand it to the HTTP parser: head and body are all here, or the framing
  // is one the parser refuses anyway (a bad or repeated Content-Length, a
  // body or head over its limit, a bad chunk size).
  kWhole,
  // The head is whole and says "Expect: 100-continue", the body has not
  // begun: the client waits for "100 Continue" before sending it.
  kExpectsContinue,
};

// Lines end with "\n" or "\r\n"; the head ends with an empty line. The body
// is the Content-Length bytes or a whole chunked body (chunks, last chunk,
// trailers). A head still unfinished after `max_head_bytes` is kWhole (the
// parser answers it 4xx); so is a Content-Length over `max_body_bytes`.
RequestArrival JudgeRequestArrival(std::string_view data, size_t max_head_bytes,
                                   size_t max_body_bytes);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_HTTP_QUERY_H_
