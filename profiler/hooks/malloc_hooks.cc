// The malloc-family functions libpprof_agent.so interposes on glibc.
//
// Contract of every function here:
//  - Called from anywhere, from the first allocation of the process (before
//    any constructor, including ours) to the last one after exit handlers.
//    Initial-exec TLS is valid from a thread's first instruction, and the
//    all-zero state routes the first allocation to the slow path, which only
//    samples once start-up has called EnableSampling().
//  - The fast path is a thread-local countdown and one branch, then a tail
//    call into glibc's __libc_* entry point (ASan's allocator in the ASan
//    build: malloc_backend.h). free() of a block that was never sampled
//    tests one bit of glibc's own chunk header (heap_recorder.h) and probes
//    no shared table.
//  - Results and errno are exactly glibc's: every failure is glibc's own
//    failure, and the slow path restores errno on success.
//  - Nested calls from the agent's own code (libunwind, the server) pass
//    straight through: tls_state.in_agent and is_agent_thread.
//  - Must not throw. Never takes a lock that can wait.
//
// operator new/delete in every form (sized, aligned, nothrow, arrays) are not
// interposed: libstdc++ implements them with malloc, aligned_alloc and free
// through the PLT, so they reach these functions. tests/integration checks it.
// (Except in the ASan build, where libasan serves them itself: see the end.)
#include <errno.h>
#include <dlfcn.h>
#include <string.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>

#include "profiler/heap/heap_recorder.h"
#include "profiler/base/malloc_backend.h"
#include "profiler/base/runtime.h"
#include "profiler/heap/sampler.h"
#include "profiler/base/thread_state.h"

#define PA_INTERPOSE extern "C" __attribute__((visibility("default")))

namespace pprof_agent::internal {
namespace {

// How often a thread re-checks the switches while sampling is off or not yet
// enabled: one slow-path call per this many bytes allocated.
constexpr uint64_t kRecheckBytes = 16 << 20;

enum class Kind { kMalloc, kCalloc, kMemalign, kValloc, kPvalloc };

// True when this allocation must take the slow path.
// Three instructions: load the TLS offset, subtract in place, branch on the
// flags of that subtraction. Unsigned: the branch is taken when size >= the
// bytes left (borrow or zero), which is exactly "this allocation holds the
// next sample point", and a request of 2^63 bytes or more cannot wrap the
// countdown into a huge positive gap. (The compiler's version reloads the value and
// tests it again; this is the whole fast path, so we spell it out.)
static_assert(offsetof(ThreadState, bytes_until_sample) == 0);
PA_ALWAYS_INLINE bool CountdownExpired(size_t size) {
  bool expired;
  uint64_t tls_offset;
  asm volatile(
      "movq pprof_agent_tls_state@gottpoff(%%rip), %[off]\n\t"
      "subq %[size], %%fs:(%[off])"
      : [off] "=&r"(tls_offset), "=@ccbe"(expired)
      : [size] "r"(size)
      : "memory");
  return PA_UNLIKELY(expired);
}

#if defined(PA_SANITIZE_ADDRESS)
// In the ASan build this file is not instrumented, but the code it calls
// into (runtime, heap recorder) is, and touches ASan's shadow, which does
// not exist before ASan has initialised. A library whose constructor runs
// before libasan's (libstdc++'s, in a preloaded program) allocates that
// early. This library's constructors run after libasan's, a library it
// depends on; until then the hooks only forward (no block is sampled yet,
// so none needs the recorder on free either).
bool g_backend_ready = false;
__attribute__((constructor(101))) void MarkBackendReady() { g_backend_ready = true; }
PA_ALWAYS_INLINE bool BackendReady() {
  return __atomic_load_n(&g_backend_ready, __ATOMIC_RELAXED);
}
#else
PA_ALWAYS_INLINE bool BackendReady() { return true; }
#endif

void* PlainAlloc(Kind kind, size_t size, size_t align) {
  switch (kind) {
    case Kind::kMalloc: return RealMalloc(size);
    case Kind::kCalloc: return RealCalloc(1, size);
    case Kind::kMemalign: return RealMemalign(align, size);
    case Kind::kValloc: return RealValloc(size);
    case Kind::kPvalloc: return RealPvalloc(size);
  }
  return nullptr;
}

// Decides whether this allocation is sampled, and if so records it.
// `align` is the alignment the caller asked for (0 = malloc's default).
PA_NOINLINE void* AllocSlow(Kind kind, size_t size, size_t align) {
  ThreadState& t = tls_state;
  if (PA_UNLIKELY(!BackendReady())) {
    t.bytes_until_sample = 0;  // ask again at the next allocation
    return PlainAlloc(kind, size, align);
  }
  if (t.in_agent != 0) {
    // The agent's own allocation inside a sample: give the bytes back.
    t.bytes_until_sample += size;  // undoes the fast path's wrap-around
    return PlainAlloc(kind, size, align);
  }
  if (t.is_agent_thread) {
    t.bytes_until_sample = uint64_t{1} << 62;
    return PlainAlloc(kind, size, align);
  }
  const bool enabled = SamplingEnabled();
  const int64_t rate = enabled ? HeapRate() : 0;
  if (rate == 0) {
    // Before start-up enables sampling, come back at the very next
    // allocation (there are few): a long countdown here would leave the
    // first kRecheckBytes of the start-up thread (main) unsampled.
    t.bytes_until_sample = enabled ? kRecheckBytes : 0;
    t.rng = 0;  // draw a fresh first gap when sampling comes on
    return PlainAlloc(kind, size, align);
  }
  if (t.rng == 0) {
    // First sample decision of this thread (or since sampling came on): the
    // first gap is random too, and this allocation counts against it.
    t.rng = SeedRandom(reinterpret_cast<uint64_t>(&t));
    const uint64_t gap = static_cast<uint64_t>(NextSampleGap(&t.rng, rate));
    if (size < gap) {
      t.bytes_until_sample = gap - size;
      return PlainAlloc(kind, size, align);
    }
  }
  // Sampled. Draw the next gap first, so allocations made while recording
  // (by libunwind, say) see a sane countdown.
  t.bytes_until_sample = static_cast<uint64_t>(NextSampleGap(&t.rng, rate));

  size_t sampled_align = 16;
  size_t sampled_size = size;
  if (kind == Kind::kMemalign) {
    // glibc rounds a non-power-of-two alignment up; over 2^63 it fails with
    // EINVAL, which PlainAlloc reproduces.
    if (align > (std::numeric_limits<size_t>::max() / 2 + 1)) {
      return PlainAlloc(kind, size, align);
    }
    while (sampled_align < align) sampled_align <<= 1;
  } else if (kind == Kind::kValloc || kind == Kind::kPvalloc) {
    const size_t page = static_cast<size_t>(getpagesize());
    sampled_align = page;
    if (kind == Kind::kPvalloc) {
      if (size > std::numeric_limits<size_t>::max() - page) {
        return PlainAlloc(kind, size, align);
      }
      sampled_size = (size + page - 1) & ~(page - 1);
      if (sampled_size == 0) sampled_size = page;
    }
  }
  bool dropped = false;
  void* p = HeapRecordAllocation(sampled_size, sampled_align, kind == Kind::kCalloc,
                                 rate, &dropped);
  if (p != nullptr || !dropped) return p;  // success, or glibc's ENOMEM
  return PlainAlloc(kind, size, align);
}

#if defined(PA_SANITIZE_ADDRESS)
size_t RealUsableSize(void* p) { return __interceptor_malloc_usable_size(p); }
#else
// glibc's malloc_usable_size, found once with dlsym. Resolved lazily, with
// the guard held, because dlsym may allocate.
size_t (*real_usable_size)(void*) = nullptr;

size_t RealUsableSize(void* p) {
  auto fn = __atomic_load_n(&real_usable_size, __ATOMIC_ACQUIRE);
  if (fn == nullptr) {
    ReentrancyGuard guard;
    fn = reinterpret_cast<size_t (*)(void*)>(dlsym(RTLD_NEXT, "malloc_usable_size"));
    if (fn == nullptr) return 0;
    __atomic_store_n(&real_usable_size, fn, __ATOMIC_RELEASE);
  }
  return fn(p);
}
#endif

PA_NOINLINE void FreeSlow(void* p) {
  if (!BackendReady() || !HeapRecordFree(p)) RealFree(p);
}

PA_NOINLINE void* ReallocSlow(void* p, size_t size);

}  // namespace
}  // namespace pprof_agent::internal

using namespace pprof_agent::internal;  // NOLINT: the C entry points below

PA_INTERPOSE void* malloc(size_t size) {
  if (CountdownExpired(size)) return AllocSlow(Kind::kMalloc, size, 0);
  return RealMalloc(size);
}

PA_INTERPOSE void free(void* p) {
  // Null is likely-not-taken on its own: folding it into the unlikely tag
  // test made every ordinary free jump twice before reaching glibc.
  if (PA_LIKELY(p != nullptr)) {
    if (PA_UNLIKELY(HasSampledTag(p))) return FreeSlow(p);
  }
  RealFree(p);
}

PA_INTERPOSE void* calloc(size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) return RealCalloc(n, size);
  if (CountdownExpired(total)) return AllocSlow(Kind::kCalloc, total, 0);
  return RealCalloc(n, size);
}

PA_INTERPOSE void* realloc(void* p, size_t size) {
  if (p == nullptr) return malloc(size);
  if (PA_UNLIKELY(HasSampledTag(p)) || CountdownExpired(size)) {
    return ReallocSlow(p, size);
  }
  return RealRealloc(p, size);
}

PA_INTERPOSE void* reallocarray(void* p, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(p, total);
}

PA_INTERPOSE void* memalign(size_t align, size_t size) {
  if (CountdownExpired(size)) return AllocSlow(Kind::kMemalign, size, align);
  return RealMemalign(align, size);
}

// glibc 2.36 makes aligned_alloc an alias of memalign (any alignment is
// rounded up to a power of two); we keep that behaviour exactly.
PA_INTERPOSE void* aligned_alloc(size_t align, size_t size) {
  return memalign(align, size);
}

PA_INTERPOSE int posix_memalign(void** out, size_t align, size_t size) {
  if (align % sizeof(void*) != 0 || align == 0 ||
      ((align / sizeof(void*)) & (align / sizeof(void*) - 1)) != 0) {
    return EINVAL;
  }
  void* p = memalign(align, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

PA_INTERPOSE void* valloc(size_t size) {
  if (CountdownExpired(size)) return AllocSlow(Kind::kValloc, size, 0);
  return RealValloc(size);
}

PA_INTERPOSE void* pvalloc(size_t size) {
  if (CountdownExpired(size)) return AllocSlow(Kind::kPvalloc, size, 0);
  return RealPvalloc(size);
}

PA_INTERPOSE size_t malloc_usable_size(void* p) {
  if (p == nullptr) return 0;
  if (PA_UNLIKELY(HasSampledTag(p)) && BackendReady()) {
    const size_t n = HeapSampledUsableSize(p, RealUsableSize);
    if (n != static_cast<size_t>(-1)) return n;
  }
  return RealUsableSize(p);
}

namespace pprof_agent::internal {
namespace {

// realloc of a sampled block, or a realloc whose countdown expired: allocate
// (sampled or not, as the sampler decides), copy, free. Moving a block is
// always a valid realloc; it only happens when a sample is due or the old
// block was sampled. realloc(p, 0) frees p and returns NULL, as glibc does.
void* ReallocSlow(void* p, size_t size) {
  if (PA_UNLIKELY(!BackendReady())) {
    // As in AllocSlow: the fast path's subtraction may have wrapped the
    // countdown, and left so it would keep this thread (main, whose early
    // realloc is libasan's own start-up) off the slow path for good.
    tls_state.bytes_until_sample = 0;
    return RealRealloc(p, size);
  }
  const bool sampled = HasSampledTag(p) &&
                       HeapSampledUsableSize(p, RealUsableSize) != static_cast<size_t>(-1);
  if (size == 0) {
    free(p);
    return nullptr;
  }
  const size_t old_usable = sampled ? HeapSampledUsableSize(p, RealUsableSize)
                                    : RealUsableSize(p);
  void* q = sampled ? malloc(size) : AllocSlow(Kind::kMalloc, size, 0);
  if (q == nullptr) return nullptr;  // p untouched, errno = ENOMEM
  memcpy(q, p, old_usable < size ? old_usable : size);
  free(p);
  return q;
}

}  // namespace
}  // namespace pprof_agent::internal

#if defined(PA_SANITIZE_ADDRESS)
// libasan defines operator new and delete itself, straight onto its
// allocator: in a program that links it they would never reach the hooks
// above. In the ASan build the agent defines them as libstdc++ does, on
// malloc, memalign and free, so a sampled `new` is a sampled malloc as in
// production. (ASan then no longer tells new/free mismatches apart in the
// processes that host the agent; every other check stays.)
namespace pprof_agent::internal {
namespace {

void* NewOrThrow(size_t size, size_t align, bool nothrow) {
  if (size == 0) size = 1;
  for (;;) {
    void* p = align > alignof(std::max_align_t) ? memalign(align, size) : malloc(size);
    if (p != nullptr) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      throw std::bad_alloc();
    }
    if (nothrow) {
      try {
        handler();
      } catch (...) {
        return nullptr;
      }
    } else {
      handler();
    }
  }
}

}  // namespace
}  // namespace pprof_agent::internal

#define PA_NEW __attribute__((visibility("default")))
using std::align_val_t;
using std::nothrow_t;
PA_NEW void* operator new(size_t n) { return NewOrThrow(n, 0, false); }
PA_NEW void* operator new[](size_t n) { return NewOrThrow(n, 0, false); }
PA_NEW void* operator new(size_t n, const nothrow_t&) noexcept { return NewOrThrow(n, 0, true); }
PA_NEW void* operator new[](size_t n, const nothrow_t&) noexcept {
  return NewOrThrow(n, 0, true);
}
PA_NEW void* operator new(size_t n, align_val_t a) {
  return NewOrThrow(n, static_cast<size_t>(a), false);
}
PA_NEW void* operator new[](size_t n, align_val_t a) {
  return NewOrThrow(n, static_cast<size_t>(a), false);
}
PA_NEW void* operator new(size_t n, align_val_t a, const nothrow_t&) noexcept {
  return NewOrThrow(n, static_cast<size_t>(a), true);
}
PA_NEW void* operator new[](size_t n, align_val_t a, const nothrow_t&) noexcept {
  return NewOrThrow(n, static_cast<size_t>(a), true);
}
PA_NEW void operator delete(void* p) noexcept { free(p); }
PA_NEW void operator delete[](void* p) noexcept { free(p); }
PA_NEW void operator delete(void* p, const nothrow_t&) noexcept { free(p); }
PA_NEW void operator delete[](void* p, const nothrow_t&) noexcept { free(p); }
PA_NEW void operator delete(void* p, size_t) noexcept { free(p); }
PA_NEW void operator delete[](void* p, size_t) noexcept { free(p); }
PA_NEW void operator delete(void* p, align_val_t) noexcept { free(p); }
PA_NEW void operator delete[](void* p, align_val_t) noexcept { free(p); }
PA_NEW void operator delete(void* p, size_t, align_val_t) noexcept { free(p); }
PA_NEW void operator delete[](void* p, size_t, align_val_t) noexcept { free(p); }
PA_NEW void operator delete(void* p, align_val_t, const nothrow_t&) noexcept { free(p); }
PA_NEW void operator delete[](void* p, align_val_t, const nothrow_t&) noexcept { free(p); }
#endif  // PA_SANITIZE_ADDRESS
