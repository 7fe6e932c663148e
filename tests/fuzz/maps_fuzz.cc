// libFuzzer target: ParseProcMaps (profiler/symbols/symbolizer.h) on arbitrary text.
// Every mapping it returns must be a well-formed range.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "profiler/symbols/symbolizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto mappings = pprof_agent::internal::ParseProcMaps(text);
  for (const auto& m : mappings) {
    if (m.start > m.limit) std::abort();
  }
  return 0;
}
