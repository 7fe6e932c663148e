// Race reports from the checked containers (pprof_agent/checked.h): the
// store behind /debug/pprof/races and PPROF_AGENT_RACES.
//
// A report is deduplicated by (current code address, other code address,
// kind) and counted. The store holds at most kMaxRaces distinct reports;
// further distinct ones are counted in `dropped` and not kept. The detecting
// thread's stack is captured at the first detection of each report; the
// other thread's side is what it recorded when it entered its write section:
// the exact code address and the return address of the function holding the
// section (its full stack is not taken: see README "Finding concurrent map
// access").
#ifndef PPROF_AGENT_PROFILER_RACES_RACE_STORE_H_
#define PPROF_AGENT_PROFILER_RACES_RACE_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "profiler/base/stack_capture.h"

namespace pprof_agent::internal {

enum class RacePolicy { kReport, kAbort, kOff };

// PPROF_AGENT_RACES: report (default, also for unknown values), abort, off.
RacePolicy ParseRacePolicy(const char* value);
RacePolicy CurrentRacePolicy();
void SetRacePolicyForTest(RacePolicy p);

inline constexpr int kMaxRaces = 256;

struct RaceAccess {
  int access = 0;  // PA_ACCESS_READ / WRITE / ITERATE
  uint32_t tid = 0;
  std::string thread_name;
  uint64_t pc = 0;              // exact code address of the access
  std::vector<uint64_t> stack;  // return addresses, innermost first
  bool partial_stack = false;   // only what the section recorded (previous side)
};

struct RaceReport {
  uint64_t id = 0;  // stable: assigned in order of first detection
  int kind = 0;     // PA_RACE_*
  std::string container;  // demangled type or checker name
  std::string detector = "checked";
  uint64_t count = 0;
  RaceAccess current, previous;
};

struct RaceSnapshot {
  std::vector<RaceReport> reports;
  uint64_t dropped = 0;  // distinct reports not kept (store full)
  uint64_t total = 0;    // every detection, kept or not
};

RaceSnapshot SnapshotRaces();
void ResetRacesForTest();

// Go's message for a kind: "concurrent map writes" etc.
const char* RaceKindMessage(int kind);
const char* RaceAccessName(int access);

// The entry point behind pprof_agent_race_detected (checked.h).
void RecordRace(const void* checker, const char* name, int name_is_type, int kind,
                int current_access, const void* current_pc, uint32_t other_tid,
                const void* other_pc, const void* other_caller);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_RACES_RACE_STORE_H_
