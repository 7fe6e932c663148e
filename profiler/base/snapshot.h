// Plain structs copied out of the recorders on request: the only profiler data
// the proto/ and http/ layers ever see. Nothing here is touched by a hook, so
// these types may allocate freely (they are built on the agent's own threads).
#ifndef PPROF_AGENT_PROFILER_BASE_SNAPSHOT_H_
#define PPROF_AGENT_PROFILER_BASE_SNAPSHOT_H_

#include <cstdint>
#include <string>
#include <vector>

namespace pprof_agent::internal {

struct ValueType {
  std::string type;
  std::string unit;
};

// One label of a sample: either `str` or `num` (with an optional unit).
struct Label {
  std::string key;
  std::string str;
  int64_t num = 0;
  std::string num_unit;
  bool is_num = false;

  static Label Str(std::string k, std::string v) {
    return Label{std::move(k), std::move(v), 0, {}, false};
  }
  static Label Num(std::string k, int64_t v, std::string unit = {}) {
    return Label{std::move(k), {}, v, std::move(unit), true};
  }
};

// A call stack, leaf first. When `leaf_is_pc` is true pcs[0] is an exact
// program counter (a CPU sample); every other entry is a return address, which
// the builder turns into `address - 1` so that it falls inside the call.
struct Stack {
  std::vector<uint64_t> pcs;
  bool leaf_is_pc = false;
};

struct Sample {
  uint32_t stack = 0;           // index into Snapshot::stacks
  std::vector<int64_t> values;  // one per Snapshot::sample_types
  std::vector<Label> labels;
};

// A complete profile minus symbols: what proto/ turns into pprof bytes.
struct Snapshot {
  std::vector<ValueType> sample_types;
  ValueType period_type;
  int64_t period = 0;
  std::string default_sample_type;  // empty: pprof's default (the last type)
  int64_t time_nanos = 0;
  int64_t duration_nanos = 0;
  std::vector<Stack> stacks;
  std::vector<Sample> samples;
  std::vector<std::string> comments;  // drop counters and other notes
};

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_BASE_SNAPSHOT_H_
