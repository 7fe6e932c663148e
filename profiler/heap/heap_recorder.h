// Heap recorder, hot side: the sampled-allocation path that the malloc hooks
// call, and the check that recognises a sampled block on free.
//
// Contract: called only from the malloc hooks, with no lock held by the
// caller. Never allocates from the profiled heap for its own data (tables are
// mmap'd), never waits on a lock (a busy table lock drops the sample and
// counts it), preserves errno on success.
//
// How a sampled block is recognised without a shared-table probe on every
// free. A sampled block is over-allocated from glibc by a header of
// H = max(16, alignment) bytes and the user gets base + H. The word just
// below the user pointer, p[-1], is where glibc keeps the chunk's size field
// for every pointer it hands out. glibc's chunk sizes are multiples of 16
// (MALLOC_ALIGNMENT on x86-64), and the low three bits are flags, so bit 3
// (value 8) of that word is always 0 for a glibc pointer. For a sampled block
// we write p[-1] = (slot << 4) | 8 and p[-2] = base. free(p) therefore tests
// one bit that sits in the cache line glibc is about to touch anyway; only
// when it is set does it look at the live table, where slot `p[-1] >> 4` must
// hold exactly `p` (so a stray bit can never make us free the wrong thing).
// The same holds over ASan's allocator in the ASan build (malloc_backend.h):
// its 16-byte chunk header also sits right below every pointer it returns.
#ifndef PPROF_AGENT_PROFILER_HEAP_HEAP_RECORDER_H_
#define PPROF_AGENT_PROFILER_HEAP_HEAP_RECORDER_H_

#include <cstddef>
#include <cstdint>

#include "profiler/base/malloc_backend.h"
#include "profiler/base/thread_state.h"

namespace pprof_agent::internal {

inline constexpr uint64_t kSampledTagBit = 8;

// True when the word below `p` carries the sampled tag. `p` must be non-null
// and come from malloc (any pointer free() accepts). Under ASan that word is
// ASan's chunk header, whose bit 3 is set for about half of all blocks: those
// take the slow path, where the live table rejects them (HeapRecordFree).
PA_ALWAYS_INLINE bool HasSampledTag(const void* p) {
  return (WordBelow(p) & kSampledTagBit) != 0;
}

// Allocates `size` bytes aligned to `align` (a power of two >= 16) as a
// sampled block, records it with the caller's stack, and returns the user
// pointer; zero-fills when `zero`. Returns nullptr either when glibc is out
// of memory (errno = ENOMEM, as glibc sets it) or when the sample had to be
// dropped (*dropped = true): the caller then allocates normally.
void* HeapRecordAllocation(size_t size, size_t align, bool zero, int64_t rate,
                           bool* dropped);

// If `p` is a live sampled block: removes it from the live set, releases its
// memory to glibc and returns true. Lock-free. False: not ours, the caller
// frees it normally.
bool HeapRecordFree(void* p);

// Usable size of a live sampled block, or (size_t)-1 if `p` is not one.
// `real_usable` is glibc's malloc_usable_size.
size_t HeapSampledUsableSize(void* p, size_t (*real_usable)(void*));

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_HEAP_HEAP_RECORDER_H_
