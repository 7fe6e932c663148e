// The allocator underneath the agent's malloc hooks: the functions every hook
// forwards to, and that the heap recorder allocates sampled blocks from.
//
// Normally that is glibc, through its __libc_* entry points (a direct call,
// not a dlsym'd pointer: the fast path stays one tail call). In the
// AddressSanitizer build (PA_SANITIZE=address defines PA_SANITIZE_ADDRESS)
// it is ASan's allocator, through the __interceptor_* names libasan exports
// for its own malloc family: memory from glibc would have no shadow and no
// chunk header, so ASan would report every free of it, and the program's
// `new` (which libasan serves itself) could not be told from ours. With this
// the agent preloaded ahead of libasan is a layer above ASan, as it is above
// glibc in production, and ASan checks every block either of them hands out.
//
// RealMalloc and friends follow the contract of the functions they name:
// results and errno are the backend's own.
#ifndef PPROF_AGENT_PROFILER_BASE_MALLOC_BACKEND_H_
#define PPROF_AGENT_PROFILER_BASE_MALLOC_BACKEND_H_

#include <stddef.h>
#include <stdint.h>

#include "profiler/base/thread_state.h"

#if defined(PA_SANITIZE_ADDRESS)
#define PA_MALLOC_BACKEND(name) __interceptor_##name
#else
#define PA_MALLOC_BACKEND(name) __libc_##name
#endif

extern "C" {
void* PA_MALLOC_BACKEND(malloc)(size_t size);
void PA_MALLOC_BACKEND(free)(void* ptr);
void* PA_MALLOC_BACKEND(calloc)(size_t n, size_t size);
void* PA_MALLOC_BACKEND(realloc)(void* ptr, size_t size);
void* PA_MALLOC_BACKEND(memalign)(size_t alignment, size_t size);
void* PA_MALLOC_BACKEND(valloc)(size_t size);
void* PA_MALLOC_BACKEND(pvalloc)(size_t size);
#if defined(PA_SANITIZE_ADDRESS)
size_t __interceptor_malloc_usable_size(void* ptr);
#endif
}

namespace pprof_agent::internal {

PA_ALWAYS_INLINE void* RealMalloc(size_t size) { return PA_MALLOC_BACKEND(malloc)(size); }
PA_ALWAYS_INLINE void RealFree(void* p) { PA_MALLOC_BACKEND(free)(p); }
PA_ALWAYS_INLINE void* RealCalloc(size_t n, size_t size) {
  return PA_MALLOC_BACKEND(calloc)(n, size);
}
PA_ALWAYS_INLINE void* RealRealloc(void* p, size_t size) {
  return PA_MALLOC_BACKEND(realloc)(p, size);
}
PA_ALWAYS_INLINE void* RealMemalign(size_t align, size_t size) {
  return PA_MALLOC_BACKEND(memalign)(align, size);
}
PA_ALWAYS_INLINE void* RealValloc(size_t size) { return PA_MALLOC_BACKEND(valloc)(size); }
PA_ALWAYS_INLINE void* RealPvalloc(size_t size) { return PA_MALLOC_BACKEND(pvalloc)(size); }

// The word just below a pointer that malloc returned: glibc's chunk size
// field, ASan's chunk header, or a sampled block's tag (heap_recorder.h).
// Under ASan that word is a poisoned redzone, and reading it is exactly what
// ASan reports, so the read is left uninstrumented; whatever bits ASan keeps
// there are only a hint that the live table then confirms or rejects.
#if defined(PA_SANITIZE_ADDRESS)
// GCC does not inline a no_sanitize function into an instrumented one, so in
// this build (only) it is an ordinary call.
__attribute__((no_sanitize_address, noinline)) inline uint64_t WordBelow(const void* p) {
  return static_cast<const uint64_t*>(p)[-1];
}
#else
PA_ALWAYS_INLINE uint64_t WordBelow(const void* p) {
  return static_cast<const uint64_t*>(p)[-1];
}
#endif

}  // namespace pprof_agent::internal

#undef PA_MALLOC_BACKEND

#endif  // PPROF_AGENT_PROFILER_BASE_MALLOC_BACKEND_H_
