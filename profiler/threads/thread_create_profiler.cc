// The threadcreate recorder and its profile; see thread_create_profiler.h.
//
// Memory: a StackTable of kMaxStacks stacks over kMaxFrames frames and one
// counter per stack id, all mmap'd on first use (MAP_NORESERVE: only touched
// pages cost memory). Thread creation is rare next to malloc or locking, so
// the creating thread captures its full stack every time; a second creating
// thread that finds the table busy yields briefly, then drops and counts.
#include "profiler/threads/thread_create_profiler.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <new>

#include "profiler/base/runtime.h"
#include "profiler/base/spinlock.h"
#include "profiler/base/stack_capture.h"
#include "profiler/base/stack_table.h"
#include "profiler/base/thread_state.h"

namespace pprof_agent::internal {
namespace {

constexpr uint32_t kMaxStacks = 4096;
constexpr uint32_t kMaxFrames = 128 * 1024;
constexpr int kLockSpins = 200;
constexpr int kLockYields = 50;
// The id ThreadCreateCaptureStack() returns for a thread the agent creates
// for itself (its server): counted apart, not in the profile.
constexpr uint32_t kAgentCreation = 0xffffffffu;

struct CreateStore {
  SpinLock lock;
  StackTable stacks{kMaxStacks, kMaxFrames};
  int64_t* counts = nullptr;  // index = stack id; guarded by lock for mapping
  std::atomic<int64_t> total{0};
  std::atomic<int64_t> before_start{0};  // created before sampling was enabled
  std::atomic<int64_t> no_stack{0};      // unwinder returned nothing
  std::atomic<int64_t> busy{0};          // table lock busy
  std::atomic<int64_t> full{0};          // table full
  std::atomic<int64_t> agent{0};         // the agent's own threads

  bool EnsureCounts() {
    if (counts != nullptr) return true;
    void* p = mmap(nullptr, sizeof(int64_t) * (kMaxStacks + 1),
                   PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    counts = static_cast<int64_t*>(p);
    return true;
  }
};

// Never destroyed: threads are created during exit too.
CreateStore& Store() {
  alignas(CreateStore) static unsigned char storage[sizeof(CreateStore)];
  static CreateStore* store = new (storage) CreateStore();
  return *store;
}

void AtForkChild() { Store().lock.ResetAfterFork(); }

[[maybe_unused]] const bool g_atfork_registered = [] {
  Store();
  pthread_atfork(nullptr, nullptr, AtForkChild);
  return true;
}();

}  // namespace

uint32_t ThreadCreateCaptureStack() {
  const int saved_errno = errno;
  CreateStore& store = Store();
  if (!SamplingEnabled()) {
    // Before the agent's start-up the unwinder and the agent's text range
    // are not ready; ThreadCreateRecord(0) counts the creation.
    errno = saved_errno;
    return 0;
  }
  ReentrancyGuard guard;  // libunwind may allocate on first use
  uint64_t pcs[kMaxStackDepth];
  const int depth = CaptureStack(pcs, kMaxStackDepth);
  // CaptureStack() trims the interposer's own frames; an agent frame further
  // up means the agent itself creates the thread (its server's threads).
  for (int i = 0; i < depth; ++i) {
    if (IsAgentPc(pcs[i])) {
      errno = saved_errno;
      return kAgentCreation;
    }
  }
  uint32_t id = 0;
  if (depth <= 0) {
    store.no_stack.fetch_add(1, std::memory_order_relaxed);
  } else if (!store.lock.TryLockYielding(kLockSpins, kLockYields)) {
    store.busy.fetch_add(1, std::memory_order_relaxed);
  } else {
    if (store.EnsureCounts()) id = store.stacks.Intern(pcs, depth);
    store.lock.Unlock();
    if (id == 0) store.full.fetch_add(1, std::memory_order_relaxed);
  }
  errno = saved_errno;
  return id;
}

void ThreadCreateRecord(uint32_t stack_id) {
  CreateStore& store = Store();
  if (stack_id == kAgentCreation) {
    store.agent.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  store.total.fetch_add(1, std::memory_order_relaxed);
  if (stack_id == 0 || stack_id > kMaxStacks) {
    if (!SamplingEnabled()) store.before_start.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // The counts are mapped before any id is handed out.
  __atomic_fetch_add(&store.counts[stack_id], 1, __ATOMIC_RELAXED);
}

int64_t ThreadCreateTotal() {
  return Store().total.load(std::memory_order_relaxed);
}

ThreadCreateRaw CollectThreadCreate() {
  ThreadCreateRaw raw;
  raw.time_nanos = WallNanos();
  CreateStore& store = Store();
  {
    ReentrancyGuard guard;
    store.lock.Lock();
    const uint32_t n = store.stacks.size();
    const bool mapped = store.counts != nullptr;
    store.lock.Unlock();
    if (mapped) {
      // Interned stacks are immutable once their id is published.
      raw.records.reserve(n);
      for (uint32_t id = 1; id <= n; ++id) {
        const int64_t count = __atomic_load_n(&store.counts[id], __ATOMIC_RELAXED);
        if (count == 0) continue;
        raw.records.push_back({store.stacks.Get(id), count});
      }
    }
  }
  int64_t recorded = 0;
  for (const auto& r : raw.records) recorded += r.count;
  raw.total = store.total.load(std::memory_order_relaxed);
  raw.unrecorded = std::max<int64_t>(0, raw.total - recorded);
  raw.comments.push_back(
      "pprof-agent: threadcreate: threads created through pthread_create since "
      "the agent was loaded, by creating stack; " +
      std::to_string(raw.total) + " created in all, and " +
      std::to_string(store.agent.load(std::memory_order_relaxed)) +
      " by pprof-agent for itself (not shown)");
  const int64_t before = store.before_start.load(std::memory_order_relaxed);
  const int64_t no_stack = store.no_stack.load(std::memory_order_relaxed);
  const int64_t busy = store.busy.load(std::memory_order_relaxed);
  const int64_t full = store.full.load(std::memory_order_relaxed);
  if (before + no_stack + busy + full > 0) {
    raw.comments.push_back(
        "pprof-agent: threadcreate: without a stack: " + std::to_string(before) +
        " created before the agent started, " + std::to_string(no_stack) +
        " not unwound, " + std::to_string(busy) + " dropped (table busy), " +
        std::to_string(full) + " dropped (table full)");
  }
  return raw;
}

Snapshot ThreadCreateProfile(const ThreadCreateRaw& raw,
                             const ThreadCreateRaw* base) {
  Snapshot snap;
  snap.sample_types = {{"threadcreate", "count"}};
  snap.period_type = {"threadcreate", "count"};
  snap.period = 1;
  snap.time_nanos = raw.time_nanos;
  snap.comments = raw.comments;
  std::map<std::vector<uint64_t>, int64_t> before;
  if (base != nullptr) {
    snap.duration_nanos = raw.time_nanos - base->time_nanos;
    for (const auto& r : base->records) before[r.pcs] += r.count;
  }
  for (const auto& r : raw.records) {
    int64_t count = r.count;
    if (auto it = before.find(r.pcs); it != before.end()) count -= it->second;
    if (count <= 0 || r.pcs.empty()) continue;
    snap.stacks.push_back(Stack{r.pcs, /*leaf_is_pc=*/false});
    Sample sample;
    sample.stack = static_cast<uint32_t>(snap.stacks.size() - 1);
    sample.values = {count};
    snap.samples.push_back(std::move(sample));
  }
  return snap;
}

}  // namespace pprof_agent::internal
