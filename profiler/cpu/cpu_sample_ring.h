// A bounded multi-producer, single-consumer ring of CPU samples: the CPU
// profiler's signal handler pushes, the profiling request's thread drains
// every ~100 ms into its aggregate. Memory comes from mmap, once, outside any
// handler; nothing here allocates, locks or makes a system call afterwards.
//
// Algorithm: Dmitry Vyukov's bounded queue. Every cell carries a sequence
// number; a producer claims the cell at `tail` with one CAS when the cell's
// sequence says it is free, writes the record, then publishes it by storing
// tail + 1 into the sequence. The consumer takes the cell at `head` when its
// sequence says it is published, and frees it by storing head + capacity.
//
// Signal-safety of TryPush(): lock-free and wait-free except for the CAS
// retry when producers on other threads race for the same cell (each retry
// means another producer made progress). A handler never waits for the
// consumer: a full ring returns false and the caller counts a drop. A
// producer interrupted between claim and publish only delays the consumer,
// which stops at that cell and resumes from it at its next drain.
#ifndef PPROF_AGENT_PROFILER_CPU_CPU_SAMPLE_RING_H_
#define PPROF_AGENT_PROFILER_CPU_CPU_SAMPLE_RING_H_

#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace pprof_agent::internal {

inline constexpr int kCpuMaxFrames = 64;

// One CPU sample as the handler records it.
struct CpuSampleRecord {
  uint32_t generation;  // the profile it belongs to (stale ones are skipped)
  int32_t tid;          // the interrupted thread
  int32_t depth;        // frames in pcs, leaf (the interrupted pc) first
  int32_t weight;       // 1 + si_overrun: timer periods this sample stands for
  uint64_t pcs[kCpuMaxFrames];
};

// Trivially destructible and constant-initialisable, so that it can live in
// a global that signal handlers use until the process's last instruction:
// the mapping is never unmapped.
class CpuSampleRing {
 public:
  constexpr CpuSampleRing() = default;
  CpuSampleRing(const CpuSampleRing&) = delete;
  CpuSampleRing& operator=(const CpuSampleRing&) = delete;

  // Maps storage for `capacity` records (a power of two). Cold; call before
  // any TryPush(), from one thread. False if mmap fails.
  bool Allocate(uint32_t capacity) {
    if (cells_ != nullptr) return true;
    if (capacity == 0 || (capacity & (capacity - 1)) != 0) return false;
    void* p = mmap(nullptr, Bytes(capacity), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    auto* cells = static_cast<Cell*>(p);
    for (uint32_t i = 0; i < capacity; ++i) {
      cells[i].sequence.store(i, std::memory_order_relaxed);
    }
    capacity_ = capacity;
    mask_ = capacity - 1;
    // Published last: a handler that sees cells_ sees initialised cells.
    cells_ = cells;
    std::atomic_thread_fence(std::memory_order_release);
    return true;
  }

  bool allocated() const { return cells_ != nullptr; }
  uint32_t capacity() const { return capacity_; }

  // Copies the record (only its first `record.depth` frames). False when the
  // ring is full or not allocated. Async-signal-safe.
  bool TryPush(const CpuSampleRecord& record) {
    Cell* cells = cells_;
    if (cells == nullptr) return false;
    uint64_t pos = tail_.load(std::memory_order_relaxed);
    Cell* cell;
    for (;;) {
      cell = &cells[pos & mask_];
      const uint64_t seq = cell->sequence.load(std::memory_order_acquire);
      const int64_t diff = static_cast<int64_t>(seq - pos);
      if (diff == 0) {
        if (tail_.compare_exchange_weak(pos, pos + 1,
                                        std::memory_order_relaxed)) {
          break;
        }
      } else if (diff < 0) {
        return false;  // full: the consumer has not freed this cell yet
      } else {
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
    CopyRecord(record, &cell->record);
    cell->sequence.store(pos + 1, std::memory_order_release);
    return true;
  }

  // Takes the oldest published record. Single consumer only.
  bool TryPop(CpuSampleRecord* out) {
    Cell* cells = cells_;
    if (cells == nullptr) return false;
    const uint64_t pos = head_;
    Cell* cell = &cells[pos & mask_];
    const uint64_t seq = cell->sequence.load(std::memory_order_acquire);
    if (seq != pos + 1) return false;  // empty, or claimed but unpublished
    CopyRecord(cell->record, out);
    cell->sequence.store(pos + capacity_, std::memory_order_release);
    head_ = pos + 1;
    return true;
  }

 private:
  struct Cell {
    std::atomic<uint64_t> sequence;
    CpuSampleRecord record;
  };

  static size_t Bytes(uint32_t capacity) { return sizeof(Cell) * capacity; }

  static void CopyRecord(const CpuSampleRecord& from, CpuSampleRecord* to) {
    int depth = from.depth;
    if (depth < 0) depth = 0;
    if (depth > kCpuMaxFrames) depth = kCpuMaxFrames;
    to->generation = from.generation;
    to->tid = from.tid;
    to->depth = depth;
    to->weight = from.weight;
    // A fixed-size loop rather than memcpy: memcpy is not on the list of
    // async-signal-safe functions (it is in practice, but this costs nothing).
    for (int i = 0; i < depth; ++i) to->pcs[i] = from.pcs[i];
  }

  Cell* cells_ = nullptr;
  uint32_t capacity_ = 0;
  uint64_t mask_ = 0;
  alignas(64) std::atomic<uint64_t> tail_{0};  // producers
  alignas(64) uint64_t head_ = 0;              // the consumer only
};

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_CPU_CPU_SAMPLE_RING_H_
