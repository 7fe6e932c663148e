// The cheapest possible malloc interposer: malloc and free forwarded to
// glibc with nothing else. Preloaded by tools/bench/run as a reference, so
// that the agent's cost splits into what any LD_PRELOAD interposer pays (one
// more indirect jump per call) and what the agent's own checks add.
// Built with -fno-plt like libpprof_agent.so: each function is one
// `jmp *__libc_...@GOT`. Other allocation functions are not interposed; they
// reach the same glibc heap directly.
#include <cstddef>

extern "C" {
void* __libc_malloc(size_t size);
void __libc_free(void* ptr);

__attribute__((visibility("default"))) void* malloc(size_t size) {
  return __libc_malloc(size);
}
__attribute__((visibility("default"))) void free(void* p) { __libc_free(p); }
}
