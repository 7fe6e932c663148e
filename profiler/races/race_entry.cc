// The entry point of pprof_agent/checked.h into the agent. Compiled into
// libpprof_agent.so itself (not the layer archives, whose symbols
// --exclude-libs hides) and exported by http/pprof_agent.map.
#include <cstdint>

#include "profiler/races/race_store.h"

extern "C" __attribute__((visibility("default"))) void pprof_agent_race_detected(
    const void* checker, const char* name, int name_is_type, int kind, int current_access,
    const void* current_pc, uint32_t other_tid, const void* other_pc,
    const void* other_caller) {
  pprof_agent::internal::RecordRace(checker, name, name_is_type, kind, current_access,
                                    current_pc, other_tid, other_pc, other_caller);
}
