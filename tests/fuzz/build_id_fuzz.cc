// libFuzzer target: ReadBuildId (profiler/symbols/symbolizer.h) on arbitrary bytes,
// copied into a buffer of exactly their size so that ASan catches any read
// outside [data, data+size). A found id is at most 20..64 bytes of hex.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "profiler/symbols/symbolizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[size]);
  if (size > 0) std::memcpy(copy.get(), data, size);
  const std::string id = pprof_agent::internal::ReadBuildId(copy.get(), size);
  if (id.size() > 2 * size) std::abort();
  return 0;
}
