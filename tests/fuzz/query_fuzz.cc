// libFuzzer target: the /debug/pprof query and /symbol parsers and the
// request framing check (http/query.h) on arbitrary bytes. Checks the
// contracts, not just "no crash": accepted values are in range and error
// statuses are 4xx.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "http/query.h"

using namespace pprof_agent::internal;

namespace {
void Check(bool ok) {
  if (!ok) std::abort();
}
void CheckError(const std::optional<HttpError>& e) {
  if (e) Check(e->status >= 400 && e->status < 500 && !e->message.empty() &&
               e->message.find('\n') == std::string::npos);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  int64_t seconds = -1;
  const auto se = ParseSeconds(text, 300, &seconds);
  CheckError(se);
  if (!se) Check(seconds >= 1 && seconds <= 300);
  int debug = -1;
  const auto de = ParseDebug(text, &debug);
  CheckError(de);
  if (!de) Check(debug >= 0 && debug <= 2);

  std::vector<uint64_t> addresses;
  const auto ae = ParseSymbolAddresses(text, &addresses);
  CheckError(ae);
  if (!ae) Check(addresses.size() <= kMaxSymbolAddresses);
  const std::string symbol_query = SymbolQueryFromRawQuery(text);
  Check(symbol_query.size() <= size);
  addresses.clear();
  CheckError(ParseSymbolAddresses(symbol_query, &addresses));

  // The bytes as a list of name=value pairs, split at '&'.
  QueryParams params;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t amp = text.find('&', pos);
    if (amp == std::string_view::npos) amp = text.size();
    const std::string_view part = text.substr(pos, amp - pos);
    const size_t eq = part.find('=');
    params.emplace(std::string(part.substr(0, eq)),
                   eq == std::string_view::npos ? "" : std::string(part.substr(eq + 1)));
    pos = amp + 1;
  }
  // The listener's framing check (a request's bytes as they arrive): any
  // answer is fine, but it must be one of the three.
  for (size_t max_head : {size_t{64}, size_t{16384}}) {
    const RequestArrival a = JudgeRequestArrival(text, max_head, 100);
    Check(a == RequestArrival::kPartial || a == RequestArrival::kWhole ||
          a == RequestArrival::kExpectsContinue);
  }

  ProfileQuery query;
  const auto qe = ParseProfileQuery(params, 300, &query);
  CheckError(qe);
  if (!qe) Check(query.debug >= 0 && query.debug <= 2 && query.seconds >= 0 &&
                 query.seconds <= 300);
  return 0;
}
