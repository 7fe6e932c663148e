// Finds a versioned symbol of the C library by reading its dynamic symbol
// table in memory: no dlsym, no allocation, no lock but the loader's list
// lock that dl_iterate_phdr takes. The lock hooks use it as the fallback
// when a hook runs before their constructor resolved the real functions
// with dlvsym (another library's constructor can take locks that early).
#ifndef PPROF_AGENT_PROFILER_BASE_LIBC_SYMBOLS_H_
#define PPROF_AGENT_PROFILER_BASE_LIBC_SYMBOLS_H_

namespace pprof_agent::internal {

// The address of `name`@`version` (e.g. "pthread_cond_wait", "GLIBC_2.3.2")
// defined by the object that contains `anchor` (any function of that
// library), or nullptr. Async-signal-safe in practice; cold.
void* FindVersionedSymbol(const void* anchor, const char* name,
                          const char* version);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_BASE_LIBC_SYMBOLS_H_
