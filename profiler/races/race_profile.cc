#include "profiler/races/race_profile.h"

#include <time.h>

#include <map>
#include <string>

namespace pprof_agent::internal {

RaceSnapshot RaceDelta(const RaceSnapshot& now, const RaceSnapshot& baseline) {
  std::map<uint64_t, uint64_t> before;
  for (const RaceReport& r : baseline.reports) before[r.id] = r.count;
  RaceSnapshot out;
  out.total = now.total - baseline.total;
  out.dropped = now.dropped - baseline.dropped;
  for (const RaceReport& r : now.reports) {
    auto it = before.find(r.id);
    uint64_t prev = it == before.end() ? 0 : it->second;
    if (r.count <= prev) continue;
    out.reports.push_back(r);
    out.reports.back().count = r.count - prev;
  }
  return out;
}

Snapshot RacesProfile(const RaceSnapshot& now_in, const RaceSnapshot* baseline) {
  const RaceSnapshot now = baseline != nullptr ? RaceDelta(now_in, *baseline) : now_in;
  Snapshot s;
  s.sample_types.push_back({"races", "count"});
  s.period_type = {"races", "count"};
  s.period = 1;
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  s.time_nanos = static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  for (const RaceReport& r : now.reports) {
    const std::string id = std::to_string(r.id);
    for (int role = 0; role < 2; ++role) {
      const RaceAccess& a = role == 0 ? r.current : r.previous;
      Stack st;
      st.leaf_is_pc = true;
      st.pcs.push_back(a.pc);
      st.pcs.insert(st.pcs.end(), a.stack.begin(), a.stack.end());
      s.stacks.push_back(std::move(st));
      Sample sample;
      sample.stack = static_cast<uint32_t>(s.stacks.size() - 1);
      sample.values.push_back(static_cast<int64_t>(r.count));
      sample.labels.push_back(Label::Str("race_id", id));
      sample.labels.push_back(Label::Str("kind", RaceKindMessage(r.kind)));
      sample.labels.push_back(Label::Str("access", RaceAccessName(a.access)));
      sample.labels.push_back(Label::Str("role", role == 0 ? "current" : "previous"));
      sample.labels.push_back(Label::Str("container", r.container));
      sample.labels.push_back(Label::Str("detector", r.detector));
      sample.labels.push_back(Label::Str("thread_id", std::to_string(a.tid)));
      sample.labels.push_back(Label::Str("thread_name", a.thread_name));
      if (a.partial_stack) sample.labels.push_back(Label::Str("stack", "section_entry_only"));
      s.samples.push_back(std::move(sample));
    }
  }
  s.comments.push_back("race detections: " + std::to_string(now.total) +
                       ", dropped (store full): " + std::to_string(now.dropped));
  return s;
}

}  // namespace pprof_agent::internal
