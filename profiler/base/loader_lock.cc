// Finding glibc's dynamic-loader lock (dl_load_write_lock) and telling, from
// a signal handler, whether unwinding the interrupted thread could deadlock
// on it. Used by every handler that unwinds (CPU profile, thread dump).
#include "profiler/base/loader_lock.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstddef>

#include "profiler/base/runtime.h"

namespace pprof_agent::internal {

namespace {

// The lock word (pthread_mutex_t.__data.__lock) of glibc's dl_load_write_lock.
std::atomic<const pthread_mutex_t*> g_loader_lock{nullptr};
std::atomic<bool> g_loader_lock_searched{false};

struct LoaderLockSearch {
  const char* base = nullptr;
  size_t size = 0;
  pid_t tid = 0;
  const pthread_mutex_t* found = nullptr;
  int matches = 0;
  bool scanned = false;
};

// Runs with dl_load_write_lock held by this thread: the one locked recursive
// mutex of _rtld_global that this thread owns is that lock.
int ScanRtldGlobal(dl_phdr_info*, size_t, void* data) {
  auto* search = static_cast<LoaderLockSearch*>(data);
  if (search->scanned) return 1;
  search->scanned = true;
  for (size_t off = 0; off + sizeof(pthread_mutex_t) <= search->size;
       off += alignof(pthread_mutex_t)) {
    const auto* m = reinterpret_cast<const pthread_mutex_t*>(search->base + off);
    if (m->__data.__lock != 0 && m->__data.__owner == search->tid &&
        m->__data.__count >= 1 &&
        (m->__data.__kind & 3) == PTHREAD_MUTEX_RECURSIVE_NP) {
      ++search->matches;
      search->found = m;
    }
  }
  return 1;
}

}  // namespace

bool FindLoaderLock() {
  if (g_loader_lock.load(std::memory_order_acquire) != nullptr) return true;
  if (g_loader_lock_searched.exchange(true)) return false;
  void* rtld = dlsym(RTLD_DEFAULT, "_rtld_global");
  Dl_info info;
  void* entry = nullptr;  // const ElfW(Sym)*
  if (rtld == nullptr || dladdr1(rtld, &info, &entry, RTLD_DL_SYMENT) == 0 ||
      entry == nullptr) {
    return false;
  }
  const auto* symbol = static_cast<const ElfW(Sym)*>(entry);
  if (symbol->st_size == 0) return false;
  LoaderLockSearch search;
  search.base = static_cast<const char*>(rtld);
  search.size = symbol->st_size;
  search.tid = CurrentTid();
  dl_iterate_phdr(ScanRtldGlobal, &search);
  // Exactly one candidate, and it is released now that the iteration is over.
  if (search.matches != 1 || search.found->__data.__owner == search.tid) return false;
  g_loader_lock.store(search.found, std::memory_order_release);
  return true;
}

bool LoaderLockBusy() {
  const pthread_mutex_t* m = g_loader_lock.load(std::memory_order_acquire);
  if (m == nullptr || __atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED) == 0) {
    return false;
  }
  // Held. By another thread (its owner written): unwinding waits until that
  // thread lets go, as any dl_iterate_phdr() caller does. Many threads unwind
  // at once in a thread dump or a CPU profile, each taking the lock in
  // dl_iterate_phdr, so this is the common case and must keep the stack.
  // By this thread, or by someone between the lock word and the owner field
  // (taking or releasing it, perhaps this thread): not safe.
  // The owner-less window is a few instructions; when another thread is in
  // it (or was preempted there, with hundreds of threads unwinding on two
  // cores) it ends if we wait a little. If this thread is in it, it cannot
  // end: after a bounded wait, the leaf only.
  for (int round = 0; round < 64; ++round) {
    if (__atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED) == 0) return false;
    const int owner = __atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED);
    if (owner != 0) return owner == CurrentTid();
    if (round < 32) {
      __builtin_ia32_pause();
    } else {
      sched_yield();  // async-signal-safe; lets a preempted holder run
    }
  }
  return true;
}

}  // namespace pprof_agent::internal
