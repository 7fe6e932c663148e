// unw_backtrace-based capture plus the agent-text range used to trim it.
#include "profiler/base/stack_capture.h"

#include <link.h>

#include <algorithm>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

namespace pprof_agent::internal {
namespace {

uint64_t g_agent_text_begin = 0;
uint64_t g_agent_text_end = 0;

int FindAgentText(dl_phdr_info* info, size_t, void* data) {
  const auto self = reinterpret_cast<uint64_t>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    const uint64_t begin = info->dlpi_addr + ph.p_vaddr;
    const uint64_t end = begin + ph.p_memsz;
    if (self >= begin && self < end) {
      g_agent_text_begin = begin;
      g_agent_text_end = end;
      return 1;
    }
  }
  return 0;
}

}  // namespace

void InitStackCapture() {
  dl_iterate_phdr(FindAgentText,
                  reinterpret_cast<void*>(&InitStackCapture));
  // Warm libunwind's per-thread cache so the first sample is not the one
  // that pays for its set-up.
  uint64_t scratch[4];
  CaptureStack(scratch, 4);
}

bool IsAgentPc(uint64_t pc) {
  return pc >= g_agent_text_begin && pc < g_agent_text_end;
}

int CaptureStack(uint64_t* out, int max_depth) {
  // A few extra slots for the agent frames that are trimmed below.
  constexpr int kSlack = 8;
  void* raw[kMaxStackDepth + kSlack];
  const int want = std::min(max_depth, kMaxStackDepth) + kSlack;
  int n = unw_backtrace(raw, want);
  if (n <= 0) return 0;
  int skip = 0;
  while (skip < n && skip < kSlack &&
         IsAgentPc(reinterpret_cast<uint64_t>(raw[skip]))) {
    ++skip;
  }
  const int depth = std::min(n - skip, max_depth);
  for (int i = 0; i < depth; ++i) out[i] = reinterpret_cast<uint64_t>(raw[skip + i]);
  return depth;
}

}  // namespace pprof_agent::internal
