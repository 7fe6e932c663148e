// Query and /symbol request parsing; see query.h.
#include "http/query.h"

#include <cctype>

#include "http/config.h"

namespace pprof_agent::internal {
namespace {

HttpError BadRequest(std::string message) {
  return HttpError{400, std::move(message)};
}

// An offending input echoed in an error: bounded, control bytes replaced.
std::string Quote(std::string_view text) {
  constexpr size_t kMax = 40;
  std::string out = "\"";
  for (char c : text.substr(0, kMax)) {
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  if (text.size() > kMax) out += "...";
  out += "\"";
  return out;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// 1-16 hex digits, optional 0x/0X prefix.
bool ParseHexAddress(std::string_view text, uint64_t* out) {
  if (text.size() >= 2 && text[0] == '0' &&
      (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
  }
  if (text.empty() || text.size() > 16) return false;
  uint64_t value = 0;
  for (char c : text) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      return false;
    }
    value = (value << 4) | static_cast<uint64_t>(digit);
  }
  *out = value;
  return true;
}

}  // namespace

std::optional<HttpError> ParseSeconds(std::string_view text,
                                      int64_t max_seconds, int64_t* seconds) {
  int64_t value = 0;
  // Overflow fails here too, with Go's message (Go's ParseInt fails alike).
  if (!ParseNonNegativeInt(text, &value) || value == 0) {
    return BadRequest(kBadSecondsMessage);
  }
  if (value > max_seconds) {
    return BadRequest("invalid value for \"seconds\" - must be at most " +
                      std::to_string(max_seconds) +
                      " (the agent's limit, PPROF_AGENT_MAX_SECONDS)");
  }
  *seconds = value;
  return std::nullopt;
}

std::optional<HttpError> ParseDebug(std::string_view text, int* debug) {
  if (text == "0" || text == "1" || text == "2") {
    *debug = text[0] - '0';
    return std::nullopt;
  }
  return BadRequest(kBadDebugMessage);
}

const std::string* FindParam(const QueryParams& params,
                             const std::string& name) {
  auto it = params.find(name);  // multimap::find: the first inserted
  return it == params.end() ? nullptr : &it->second;
}

std::optional<HttpError> ParseProfileQuery(const QueryParams& params,
                                           int64_t max_seconds,
                                           ProfileQuery* query) {
  ProfileQuery result;
  // Go checks `seconds` before `debug`; keep its order so that the same bad
  // request yields the same message.
  const std::string* seconds = FindParam(params, "seconds");
  if (seconds != nullptr && !seconds->empty()) {
    if (auto error = ParseSeconds(*seconds, max_seconds, &result.seconds)) {
      return error;
    }
  }
  const std::string* debug = FindParam(params, "debug");
  if (debug != nullptr && !debug->empty()) {
    if (auto error = ParseDebug(*debug, &result.debug)) return error;
  }
  if (result.seconds != 0 && result.debug != 0) {
    return BadRequest(kSecondsAndDebugMessage);
  }
  *query = result;
  return std::nullopt;
}

std::optional<HttpError> ParseSymbolAddresses(
    std::string_view text, std::vector<uint64_t>* addresses) {
  if (text.size() > kMaxSymbolRequestBytes) {
    return BadRequest("symbol request too long (more than " +
                      std::to_string(kMaxSymbolRequestBytes) + " bytes)");
  }
  std::vector<uint64_t> result;
  while (!text.empty()) {
    const size_t plus = text.find('+');
    std::string_view item = Trim(text.substr(0, plus));
    text = plus == std::string_view::npos ? std::string_view()
                                          : text.substr(plus + 1);
    if (item.empty()) continue;
    uint64_t address = 0;
    if (!ParseHexAddress(item, &address)) {
      return BadRequest("invalid address " + Quote(item) +
                        " in symbol request (want hex addresses joined by "
                        "'+')");
    }
    if (address == 0) continue;
    if (result.size() == kMaxSymbolAddresses) {
      return BadRequest("too many addresses in symbol request (more than " +
                        std::to_string(kMaxSymbolAddresses) + ")");
    }
    result.push_back(address);
  }
  *addresses = std::move(result);
  return std::nullopt;
}

std::string SymbolQueryFromRawQuery(std::string_view raw_query) {
  auto hex_value = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  while (!raw_query.empty()) {
    const size_t amp = raw_query.find('&');
    std::string_view part = raw_query.substr(0, amp);
    raw_query = amp == std::string_view::npos ? std::string_view()
                                              : raw_query.substr(amp + 1);
    if (part.empty() || part.find('=') != std::string_view::npos) continue;
    if (!out.empty()) out.push_back('+');
    // Percent escapes are decoded (some clients send the separator as %2B);
    // a literal '+' stays a separator, not a space as in form encoding.
    for (size_t i = 0; i < part.size(); ++i) {
      if (part[i] == '%' && i + 2 < part.size() &&
          hex_value(part[i + 1]) >= 0 && hex_value(part[i + 2]) >= 0) {
        out.push_back(static_cast<char>(hex_value(part[i + 1]) * 16 +
                                        hex_value(part[i + 2])));
        i += 2;
      } else {
        out.push_back(part[i]);
      }
    }
  }
  return out;
}

namespace {

constexpr size_t kNpos = std::string_view::npos;

// The line starting at `pos` without its "\n" or "\r\n", and where the next
// begins; false when its end has not arrived.
bool NextLine(std::string_view data, size_t* pos, std::string_view* line) {
  const size_t eol = data.find('\n', *pos);
  if (eol == kNpos) return false;
  *line = data.substr(*pos, eol - *pos);
  if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
  *pos = eol + 1;
  return true;
}

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool ContainsIgnoringCase(std::string_view haystack, std::string_view needle) {
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (EqualsIgnoringCase(haystack.substr(i, needle.size()), needle)) {
      return true;
    }
  }
  return false;
}

enum class Chunked { kMore, kDone, kBad };

// Whether a chunked body has arrived whole: "<hex size>[;ext]" lines, each
// followed by that many bytes and a line end, up to the zero-size chunk and
// the trailers' empty line.
Chunked ChunkedBodyState(std::string_view body, size_t max_body_bytes) {
  size_t pos = 0, total = 0;
  std::string_view line;
  for (;;) {
    if (!NextLine(body, &pos, &line)) return Chunked::kMore;
    const std::string_view digits = TrimSpaces(line.substr(0, line.find(';')));
    if (digits.empty() || digits.size() > 16 ||
        digits.find_first_not_of("0123456789abcdefABCDEF") != kNpos) {
      return Chunked::kBad;
    }
    const uint64_t size = std::stoull(std::string(digits), nullptr, 16);
    if (size > max_body_bytes - total) return Chunked::kBad;
    total += size;
    if (size == 0) {
      for (;;) {  // trailers up to an empty line
        if (!NextLine(body, &pos, &line)) return Chunked::kMore;
        if (line.empty()) return Chunked::kDone;
      }
    }
    if (body.size() - pos < size) return Chunked::kMore;
    pos += size;
    if (!NextLine(body, &pos, &line)) return Chunked::kMore;
    if (!line.empty()) return Chunked::kBad;  // data longer than its size
  }
}

}  // namespace

RequestArrival JudgeRequestArrival(std::string_view data, size_t max_head_bytes,
                                   size_t max_body_bytes) {
  // The request line, then header lines up to an empty one.
  size_t pos = 0;
  std::string_view line;
  if (!NextLine(data, &pos, &line)) {
    return data.size() >= max_head_bytes ? RequestArrival::kWhole
                                         : RequestArrival::kPartial;
  }
  bool chunked = false, expects_continue = false, have_length = false;
  uint64_t length = 0;
  for (;;) {
    if (pos > max_head_bytes) return RequestArrival::kWhole;
    if (!NextLine(data, &pos, &line)) {
      return data.size() >= max_head_bytes ? RequestArrival::kWhole
                                           : RequestArrival::kPartial;
    }
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == kNpos) continue;  // the parser refuses it, once whole
    const std::string_view name = TrimSpaces(line.substr(0, colon));
    const std::string_view value = TrimSpaces(line.substr(colon + 1));
    if (EqualsIgnoringCase(name, "Content-Length")) {
      // As server.cc's RejectBadFraming: digits only, repeats must agree.
      if (value.empty() || value.size() > 19 ||
          value.find_first_not_of("0123456789") != kNpos) {
        return RequestArrival::kWhole;
      }
      const uint64_t n = std::stoull(std::string(value));
      if (have_length && n != length) return RequestArrival::kWhole;
      have_length = true;
      length = n;
    } else if (EqualsIgnoringCase(name, "Transfer-Encoding")) {
      chunked = chunked || ContainsIgnoringCase(value, "chunked");
    } else if (EqualsIgnoringCase(name, "Expect")) {
      expects_continue = EqualsIgnoringCase(value, "100-continue");
    }
  }
  if (pos > max_head_bytes) return RequestArrival::kWhole;
  const std::string_view body = data.substr(pos);
  const RequestArrival waiting = expects_continue && body.empty()
                                     ? RequestArrival::kExpectsContinue
                                     : RequestArrival::kPartial;
  if (chunked) {
    return ChunkedBodyState(body, max_body_bytes) == Chunked::kMore
               ? waiting
               : RequestArrival::kWhole;
  }
  if (!have_length || length > max_body_bytes || body.size() >= length) {
    return RequestArrival::kWhole;
  }
  return waiting;
}

}  // namespace pprof_agent::internal
