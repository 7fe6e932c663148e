// TSan-style text of race reports: /debug/pprof/races?debug=1 and the
// PPROF_AGENT_RACES=abort message.
#ifndef PPROF_AGENT_PROFILER_RACES_RACE_TEXT_H_
#define PPROF_AGENT_PROFILER_RACES_RACE_TEXT_H_

#include <string>

#include "profiler/races/race_store.h"
#include "profiler/symbols/symbolizer.h"

namespace pprof_agent::internal {

// One report: "WARNING: concurrent map writes on <container> (count N)",
// "Write at <pc> by thread T (name):" + stack, "Previous write at ...".
std::string RaceReportText(const RaceReport& r, Symbolizer& symbols);
// Every report, then the totals (detections, dropped).
std::string RaceSnapshotText(const RaceSnapshot& s, Symbolizer& symbols);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_RACES_RACE_TEXT_H_
