// Thread registry; see thread_registry.h.
//
// Storage: kMaxThreads fixed entries in .bss (untouched pages cost nothing).
// Handle h lives in entry h % kMaxThreads. A new handle skips entries whose
// thread is still alive, so a live thread's entry is never overwritten; an
// exited thread's entry is recycled once the handles have gone round, and
// its old handle then reads as "exited, name unknown".
#include "profiler/heap/thread_registry.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "profiler/base/thread_state.h"

namespace pprof_agent::internal {
namespace {

constexpr uint32_t kMaxThreads = 16384;

enum State : uint32_t { kEmpty = 0, kAlive = 1, kExited = 2, kWriting = 3 };

struct Entry {
  std::atomic<uint32_t> state{kEmpty};
  std::atomic<uint32_t> handle{0};
  std::atomic<int32_t> tid{0};
  // Written by the owning thread only (at registration and at exit), read
  // by the collector; a torn read shows a mixed name, never out of bounds.
  char name[16] = {};
};

// constinit: the first registrations happen before any constructor of this
// library runs (the process's first allocations), so a dynamic initializer
// would wipe them.
constinit Entry g_entries[kMaxThreads];
constinit std::atomic<uint32_t> g_next_handle{1};

// 0: not created, 1: being created, 2: g_key valid.
constinit std::atomic<int> g_key_state{0};
pthread_key_t g_key;

__thread ThreadHandle t_handle PA_TLS = 0;
__thread bool t_key_set PA_TLS = false;

void OnKeyDestroy(void*) { ThreadRegistryOnExit(); }

// Installs the exit notification for the calling thread. Never waits: if
// another thread is creating the key, try again on a later registration.
void ArmExitNotification() {
  if (t_key_set) return;
  int state = g_key_state.load(std::memory_order_acquire);
  if (state == 0 && g_key_state.compare_exchange_strong(state, 1)) {
    if (pthread_key_create(&g_key, OnKeyDestroy) == 0) {
      g_key_state.store(2, std::memory_order_release);
    } else {
      g_key_state.store(0, std::memory_order_release);
      return;
    }
    state = 2;
  }
  if (state != 2) return;
  // Any non-null value: the destructor runs only for non-null values.
  if (pthread_setspecific(g_key, &g_entries[0]) == 0) t_key_set = true;
}

void ReadOwnName(char (&out)[16]) {
  char buf[16] = {};
  if (prctl(PR_GET_NAME, buf) != 0) buf[0] = '\0';
  buf[15] = '\0';
  memcpy(out, buf, sizeof(buf));
}

ThreadHandle Register() {
  const int32_t tid = static_cast<int32_t>(syscall(SYS_gettid));
  for (uint32_t attempt = 0; attempt < kMaxThreads; ++attempt) {
    uint32_t handle = g_next_handle.fetch_add(1, std::memory_order_relaxed);
    if (handle == 0) continue;  // wrapped: 0 means "no thread"
    Entry& e = g_entries[handle % kMaxThreads];
    uint32_t state = e.state.load(std::memory_order_acquire);
    if (state == kAlive || state == kWriting) continue;
    if (!e.state.compare_exchange_strong(state, kWriting, std::memory_order_acq_rel)) {
      continue;
    }
    e.tid.store(tid, std::memory_order_relaxed);
    ReadOwnName(e.name);
    e.handle.store(handle, std::memory_order_relaxed);
    e.state.store(kAlive, std::memory_order_release);
    return handle;
  }
  return 0;
}

}  // namespace

ThreadHandle ThreadRegistryCurrent() {
  ThreadHandle h = t_handle;
  if (PA_LIKELY(h != 0)) return h;
  const int saved_errno = errno;
  h = Register();
  t_handle = h;
  if (h != 0) ArmExitNotification();
  errno = saved_errno;
  return h;
}

void ThreadRegistryOnExit() {
  const ThreadHandle h = t_handle;
  if (h == 0) return;
  const int saved_errno = errno;
  Entry& e = g_entries[h % kMaxThreads];
  if (e.handle.load(std::memory_order_relaxed) == h &&
      e.state.load(std::memory_order_acquire) == kAlive) {
    ReadOwnName(e.name);  // the final name, while the thread still exists
    e.state.store(kExited, std::memory_order_release);
  }
  errno = saved_errno;
}

void ThreadRegistryAtForkChild() {
  t_handle = 0;
}

std::vector<ThreadInfo> ThreadRegistryLookup(const std::vector<ThreadHandle>& handles) {
  std::vector<ThreadInfo> out;
  out.reserve(handles.size());
  for (ThreadHandle h : handles) {
    ThreadInfo info;
    info.handle = h;
    info.exited = true;
    if (h != 0) {
      const Entry& e = g_entries[h % kMaxThreads];
      const uint32_t state = e.state.load(std::memory_order_acquire);
      if (e.handle.load(std::memory_order_relaxed) == h &&
          (state == kAlive || state == kExited)) {
        info.tid = e.tid.load(std::memory_order_relaxed);
        char name[16];
        memcpy(name, e.name, sizeof(name));
        name[15] = '\0';
        info.name = name;
        info.exited = state == kExited;
        if (!info.exited) {
          // Alive by the registry: its current name, and proof it still runs.
          char path[64];
          snprintf(path, sizeof(path), "/proc/self/task/%d/comm", info.tid);
          const int fd = open(path, O_RDONLY | O_CLOEXEC);
          if (fd < 0) {
            info.exited = true;
          } else {
            char buf[64];
            const ssize_t n = read(fd, buf, sizeof(buf) - 1);
            close(fd);
            if (n > 0) {
              size_t len = static_cast<size_t>(n);
              while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\0')) --len;
              info.name.assign(buf, len);
            }
          }
        }
      }
    }
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace pprof_agent::internal
