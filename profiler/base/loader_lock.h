#ifndef PPROF_AGENT_PROFILER_BASE_LOADER_LOCK_H_
#define PPROF_AGENT_PROFILER_BASE_LOADER_LOCK_H_

namespace pprof_agent::internal {

// The dynamic loader's write lock (glibc's dl_load_write_lock) and signal
// handlers that unwind. libunwind calls dl_iterate_phdr() on a cache miss,
// which takes that lock, a recursive mutex. A signal that interrupts a thread
// inside dlopen()/dlclose() while it holds the lock, or while it is taking it
// (lock word set, owner not yet written), makes the handler wait for itself
// forever; every other thread then piles up behind the loader (found by the
// dlopen storm under CPU profiling). So the handlers skip the unwind, keeping
// the interrupted pc alone, while the interrupted thread may hold that lock.
//
// glibc does not export the lock: FindLoaderLock() finds it once (cold, any
// thread but a handler) as the one locked recursive mutex inside ld.so's
// _rtld_global that the calling thread owns from within a dl_iterate_phdr()
// callback, and checks that it is released afterwards. False when it cannot
// be found (then the handlers unwind unprotected, as before).
bool FindLoaderLock();
// Async-signal-safe: one load while the lock is free. True while this
// thread holds the loader's write lock, or while someone stays between
// taking (or releasing) it and writing its owner (a bounded wait of a few
// pauses and sched_yield()s decides); false when another thread owns
// it (the unwind then just waits for it), when it is free, or when it was
// never found.
bool LoaderLockBusy();

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_BASE_LOADER_LOCK_H_
