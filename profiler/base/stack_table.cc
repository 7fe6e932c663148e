// Open-addressing hash table of call stacks over mmap'd arrays.
#include "profiler/base/stack_table.h"

#include <sys/mman.h>

#include <cstring>

namespace pprof_agent::internal {
namespace {

uint32_t SlotCount(uint32_t max_stacks) {
  uint32_t n = 16;
  while (n < 2 * max_stacks) n <<= 1;
  return n;
}

void* MapAnonymous(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace

StackTable::StackTable(uint32_t max_stacks, uint32_t max_frames)
    : max_stacks_(max_stacks),
      max_frames_(max_frames),
      slot_mask_(SlotCount(max_stacks) - 1) {}

StackTable::~StackTable() {
  if (slots_) munmap(slots_, sizeof(Slot) * (slot_mask_ + 1));
  if (frames_) munmap(frames_, sizeof(uint64_t) * max_frames_);
  if (id_to_slot_) munmap(id_to_slot_, sizeof(uint32_t) * (max_stacks_ + 1));
}

bool StackTable::EnsureMapped() {
  if (slots_ != nullptr) return true;
  // mmap is async-signal-safe; pages are touched (and so paid for) lazily.
  auto* slots = static_cast<Slot*>(MapAnonymous(sizeof(Slot) * (slot_mask_ + 1)));
  auto* frames = static_cast<uint64_t*>(MapAnonymous(sizeof(uint64_t) * max_frames_));
  auto* ids = static_cast<uint32_t*>(MapAnonymous(sizeof(uint32_t) * (max_stacks_ + 1)));
  if (!slots || !frames || !ids) {
    if (slots) munmap(slots, sizeof(Slot) * (slot_mask_ + 1));
    if (frames) munmap(frames, sizeof(uint64_t) * max_frames_);
    if (ids) munmap(ids, sizeof(uint32_t) * (max_stacks_ + 1));
    return false;
  }
  frames_ = frames;
  id_to_slot_ = ids;
  slots_ = slots;
  return true;
}

uint64_t StackTable::Hash(const uint64_t* pcs, int depth) {
  uint64_t h = 0xcbf29ce484222325ULL ^ static_cast<uint64_t>(depth);
  for (int i = 0; i < depth; ++i) {
    h ^= pcs[i];
    h *= 0x100000001b3ULL;
    h ^= h >> 29;
  }
  return h | 1;  // never 0
}

uint32_t StackTable::Intern(const uint64_t* pcs, int depth) {
  if (depth < 0) return 0;
  if (!EnsureMapped()) return 0;
  const uint64_t h = Hash(pcs, depth);
  for (uint32_t i = static_cast<uint32_t>(h) & slot_mask_;;
       i = (i + 1) & slot_mask_) {
    Slot& s = slots_[i];
    if (s.id == 0) {
      if (count_ >= max_stacks_ ||
          static_cast<uint64_t>(frames_used_) + depth > max_frames_) {
        return 0;
      }
      std::memcpy(frames_ + frames_used_, pcs, sizeof(uint64_t) * depth);
      s.hash = h;
      s.frame_offset = frames_used_;
      s.depth = static_cast<uint32_t>(depth);
      frames_used_ += depth;
      s.id = ++count_;
      id_to_slot_[s.id] = i;
      return s.id;
    }
    if (s.hash == h && s.depth == static_cast<uint32_t>(depth) &&
        std::memcmp(frames_ + s.frame_offset, pcs, sizeof(uint64_t) * depth) == 0) {
      return s.id;
    }
  }
}

void StackTable::AppendTo(uint32_t id, std::vector<uint64_t>* out) const {
  if (id == 0 || id > count_ || slots_ == nullptr) return;
  const Slot& s = slots_[id_to_slot_[id]];
  out->insert(out->end(), frames_ + s.frame_offset, frames_ + s.frame_offset + s.depth);
}

std::vector<uint64_t> StackTable::Get(uint32_t id) const {
  if (id == 0 || id > count_ || slots_ == nullptr) return {};
  const Slot& s = slots_[id_to_slot_[id]];
  return std::vector<uint64_t>(frames_ + s.frame_offset,
                               frames_ + s.frame_offset + s.depth);
}

}  // namespace pprof_agent::internal
