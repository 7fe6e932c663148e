#include "profiler/races/race_text.h"

#include <cinttypes>
#include <cstdio>

namespace pprof_agent::internal {
namespace {

void AppendFrame(std::string& out, int index, uint64_t pc, uint64_t lookup, Symbolizer& sym) {
  char buf[64];
  LocationInfo loc = sym.Symbolize(lookup);
  if (loc.frames.empty()) {
    std::snprintf(buf, sizeof buf, "    #%d 0x%" PRIx64 " <unknown>\n", index, pc);
    out += buf;
    return;
  }
  for (const FrameInfo& f : loc.frames) {  // innermost (inlined) first
    std::snprintf(buf, sizeof buf, "    #%d 0x%" PRIx64 " ", index, pc);
    out += buf;
    out += f.name.empty() ? "<unknown>" : f.name;
    if (!f.file.empty()) {
      out += ' ';
      out += f.file;
      out += ':';
      out += std::to_string(f.line);
    }
    out += '\n';
  }
}

void AppendAccess(std::string& out, const RaceAccess& a, bool previous, Symbolizer& sym) {
  std::string verb = RaceAccessName(a.access);
  verb[0] = static_cast<char>(previous ? verb[0] : verb[0] - 'a' + 'A');
  char buf[160];
  std::snprintf(buf, sizeof buf, "  %s%s at 0x%" PRIx64 " by thread %u (%s):\n",
                previous ? "Previous " : "", verb.c_str(), a.pc, a.tid,
                a.thread_name.empty() ? "?" : a.thread_name.c_str());
  out += buf;
  AppendFrame(out, 0, a.pc, a.pc, sym);
  int i = 1;
  for (uint64_t ret : a.stack) {
    AppendFrame(out, i++, ret, ret - 1, sym);
  }
  if (a.partial_stack) {
    out += "    (recorded when the write section was entered: its code address and its "
           "caller; the thread's full stack is not taken)\n";
  }
}

}  // namespace

std::string RaceReportText(const RaceReport& r, Symbolizer& symbols) {
  std::string out = "==================\nWARNING: ";
  out += RaceKindMessage(r.kind);
  out += " on " + r.container;
  char buf[96];
  std::snprintf(buf, sizeof buf, " (detector=%s, race_id=%" PRIu64 ", count=%" PRIu64 ")\n",
                r.detector.c_str(), r.id, r.count);
  out += buf;
  AppendAccess(out, r.current, false, symbols);
  out += '\n';
  AppendAccess(out, r.previous, true, symbols);
  out += "==================\n";
  return out;
}

std::string RaceSnapshotText(const RaceSnapshot& s, Symbolizer& symbols) {
  std::string out;
  for (const RaceReport& r : s.reports) out += RaceReportText(r, symbols);
  char buf[128];
  std::snprintf(buf, sizeof buf, "reports: %zu, detections: %" PRIu64 ", dropped: %" PRIu64 "\n",
                s.reports.size(), s.total, s.dropped);
  out += buf;
  return out;
}

}  // namespace pprof_agent::internal
