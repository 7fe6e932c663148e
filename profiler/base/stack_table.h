// Bounded table of interned call stacks, shared by every recorder. A stack id
// is stable for the life of the process, so cumulative records can be keyed
// by it and deltas computed by id. Memory comes from mmap (never the heap the
// agent profiles) on first use; when the table is full Intern() returns 0 and
// the caller drops and counts the event.
//
// Not internally synchronised: callers hold their recorder's SpinLock for
// Intern(); readers of a published id need no lock (entries are immutable
// once their id is returned).
#ifndef PPROF_AGENT_PROFILER_BASE_STACK_TABLE_H_
#define PPROF_AGENT_PROFILER_BASE_STACK_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pprof_agent::internal {

class StackTable {
 public:
  // `max_stacks` distinct stacks holding at most `max_frames` frames in all.
  StackTable(uint32_t max_stacks, uint32_t max_frames);
  ~StackTable();
  StackTable(const StackTable&) = delete;
  StackTable& operator=(const StackTable&) = delete;

  // Returns the id (>= 1) of the stack pcs[0..depth), interning it if new;
  // 0 when the table or its frame pool is full, or mmap failed.
  // Async-signal-safe; does not allocate from the heap.
  uint32_t Intern(const uint64_t* pcs, int depth);

  // Copies stack `id` (leaf first). Empty for an unknown id.
  std::vector<uint64_t> Get(uint32_t id) const;
  // Appends stack `id` (leaf first) to `out`; nothing for an unknown id.
  void AppendTo(uint32_t id, std::vector<uint64_t>* out) const;

  uint32_t size() const { return count_; }
  uint32_t capacity() const { return max_stacks_; }

  static uint64_t Hash(const uint64_t* pcs, int depth);

 private:
  struct Slot {
    uint64_t hash;
    uint32_t id;  // 0 = empty
    uint32_t frame_offset;
    uint32_t depth;
    uint32_t pad;
  };
  bool EnsureMapped();

  const uint32_t max_stacks_;
  const uint32_t max_frames_;
  const uint32_t slot_mask_;  // slots = power of two >= 2 * max_stacks
  Slot* slots_ = nullptr;
  uint64_t* frames_ = nullptr;
  uint32_t* id_to_slot_ = nullptr;  // id -> slot index
  uint32_t count_ = 0;
  uint32_t frames_used_ = 0;
};

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_BASE_STACK_TABLE_H_
