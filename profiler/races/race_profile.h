// RaceSnapshot -> Snapshot for /debug/pprof/races: sample type races/count;
// each report is two samples (role current and previous) sharing a race_id
// label, with labels access, role, container, detector, thread_id,
// thread_name. With a baseline (seconds=N), counts are the difference and
// reports that did not grow are left out.
#ifndef PPROF_AGENT_PROFILER_RACES_RACE_PROFILE_H_
#define PPROF_AGENT_PROFILER_RACES_RACE_PROFILE_H_

#include "profiler/base/snapshot.h"
#include "profiler/races/race_store.h"

namespace pprof_agent::internal {

Snapshot RacesProfile(const RaceSnapshot& now, const RaceSnapshot* baseline = nullptr);
// `now` minus `baseline`, per report id (the text and the profile share it).
RaceSnapshot RaceDelta(const RaceSnapshot& now, const RaceSnapshot& baseline);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_RACES_RACE_PROFILE_H_
