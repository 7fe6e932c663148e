// Contention recorder storage and its cold side; see contention_profiler.h.
//
// Memory: per profile, a StackTable (kMaxStacks ids over kMaxFrames frames)
// and a record array indexed by stack id, both mmap'd on first use
// (MAP_NORESERVE: only touched pages cost memory). The side tables
// (lock_table.h) are static and constant-initialised.
#include "profiler/contention/contention_profiler.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <new>

#include "profiler/base/runtime.h"
#include "profiler/base/spinlock.h"
#include "profiler/base/stack_capture.h"
#include "profiler/base/stack_table.h"

namespace pprof_agent::internal {

__thread LockThreadState tls_lock_state PA_TLS = {};

namespace {

constexpr uint32_t kMaxStacks = 16 * 1024;
constexpr uint32_t kMaxFrames = 512 * 1024;
constexpr int kLockSpins = 200;
constexpr int kLockYields = 20;
// Burst of the capture budget: a short flurry right after a quiet spell is
// recorded in full.
constexpr int64_t kLimiterBurst = 64;

std::atomic<int64_t> g_mutex_rate{kDefaultMutexRate};
std::atomic<int64_t> g_block_rate{kDefaultBlockRate};
std::atomic<int64_t> g_stacks_per_second{kDefaultLockStacksPerSecond};
std::atomic<uint64_t> g_waiter_table_full{0};

constinit WaiterTable g_waiter_table;
constinit WaitRegistry g_wait_registry;

constinit RateLimiter g_limiter{kDefaultLockStacksPerSecond, kLimiterBurst};

RateLimiter& Limiter() { return g_limiter; }

struct Cell {
  double count;
  double delay;
};

struct Drops {
  std::atomic<uint64_t> lock_busy{0};
  std::atomic<uint64_t> stacks_full{0};
  std::atomic<uint64_t> no_stack{0};
  std::atomic<uint64_t> carried{0};  // events over the capture budget
};

class ContentionStore {
 public:
  SpinLock lock;
  StackTable stacks{kMaxStacks, kMaxFrames};
  Drops drops;
  // Mass of sampled events that could not be captured, waiting for the next
  // captured event of this profile.
  std::atomic<double> carry_count{0};
  std::atomic<double> carry_delay{0};
  Cell* cells = nullptr;  // guarded by lock; index = stack id

  bool EnsureMapped() {
    if (cells != nullptr) return true;
    void* p = mmap(nullptr, sizeof(Cell) * (kMaxStacks + 1),
                   PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    cells = static_cast<Cell*>(p);
    return true;
  }

  void Carry(double count, double delay) {
    carry_count.fetch_add(count, std::memory_order_relaxed);
    carry_delay.fetch_add(delay, std::memory_order_relaxed);
  }
};

// Never destroyed: hooks run during exit.
ContentionStore& Store(ContentionKind kind) {
  alignas(ContentionStore) static unsigned char mutex_storage[sizeof(ContentionStore)];
  alignas(ContentionStore) static unsigned char block_storage[sizeof(ContentionStore)];
  static ContentionStore* mutex_store = new (mutex_storage) ContentionStore();
  static ContentionStore* block_store = new (block_storage) ContentionStore();
  return kind == ContentionKind::kMutex ? *mutex_store : *block_store;
}

void AtForkPrepare() {
  Store(ContentionKind::kMutex).lock.Lock();
  Store(ContentionKind::kBlock).lock.Lock();
}
void AtForkParent() {
  Store(ContentionKind::kBlock).lock.Unlock();
  Store(ContentionKind::kMutex).lock.Unlock();
}
// The child has one thread: nobody waits on anything, and the forking
// thread's cached tid is its parent's.
void AtForkChild() {
  Store(ContentionKind::kMutex).lock.ResetAfterFork();
  Store(ContentionKind::kBlock).lock.ResetAfterFork();
  g_waiter_table.Reset();
  g_wait_registry.Reset();
  tls_lock_state.tid = 0;
  tls_lock_state.held_count = 0;
  tls_lock_state.held_overflow = 0;
}

[[maybe_unused]] const bool g_atfork_registered = [] {
  Store(ContentionKind::kMutex);
  Store(ContentionKind::kBlock);
  pthread_atfork(AtForkPrepare, AtForkParent, AtForkChild);
  return true;
}();

uint64_t NextRandom() {
  LockThreadState& t = tls_lock_state;
  if (t.rng == 0) {
    t.rng = (static_cast<uint64_t>(MonotonicNanos()) ^
             reinterpret_cast<uintptr_t>(&t) * 0x9e3779b97f4a7c15ULL) | 1;
  }
  // xorshift64*
  uint64_t x = t.rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  t.rng = x;
  return x * 0x2545f4914f6cdd1dULL;
}

// Captures the calling thread's stack and adds (count, delay) to it.
PA_NOINLINE void Record(ContentionKind kind, double count, double delay,
                        int64_t now) {
  ContentionStore& store = Store(kind);
  if (!Limiter().TryAcquire(now)) {
    store.drops.carried.fetch_add(1, std::memory_order_relaxed);
    store.Carry(count, delay);
    return;
  }
  count += store.carry_count.exchange(0, std::memory_order_relaxed);
  delay += store.carry_delay.exchange(0, std::memory_order_relaxed);
  ReentrancyGuard guard;
  uint64_t pcs[kMaxStackDepth];
  const int depth = CaptureStack(pcs, kMaxStackDepth);
  if (depth <= 0) {
    store.drops.no_stack.fetch_add(1, std::memory_order_relaxed);
    store.Carry(count, delay);
    return;
  }
  if (!store.lock.TryLockYielding(kLockSpins, kLockYields)) {
    store.drops.lock_busy.fetch_add(1, std::memory_order_relaxed);
    store.Carry(count, delay);
    return;
  }
  uint32_t id = 0;
  if (store.EnsureMapped() && (id = store.stacks.Intern(pcs, depth)) != 0) {
    store.cells[id].count += count;
    store.cells[id].delay += delay;
  }
  store.lock.Unlock();
  if (id == 0) {
    store.drops.stacks_full.fetch_add(1, std::memory_order_relaxed);
    store.Carry(count, delay);
  }
}

int64_t RoundToInt(double v) {
  if (!(v > -9.2e18)) return 0;
  return v < 9.2e18 ? static_cast<int64_t>(std::llround(v)) : INT64_MAX;
}

}  // namespace

void SetMutexRate(int64_t one_in_n) {
  g_mutex_rate.store(std::max<int64_t>(0, one_in_n), std::memory_order_relaxed);
}
int64_t MutexRate() { return g_mutex_rate.load(std::memory_order_relaxed); }

void SetBlockRate(int64_t ns) {
  g_block_rate.store(std::max<int64_t>(0, ns), std::memory_order_relaxed);
}
int64_t BlockRate() { return g_block_rate.load(std::memory_order_relaxed); }

void SetLockStacksPerSecond(int64_t per_second) {
  per_second = std::max<int64_t>(0, per_second);
  g_stacks_per_second.store(per_second, std::memory_order_relaxed);
  Limiter().SetRate(per_second, kLimiterBurst);
}
int64_t LockStacksPerSecond() {
  return g_stacks_per_second.load(std::memory_order_relaxed);
}

int32_t CurrentTid() {
  int32_t tid = tls_lock_state.tid;
  if (PA_UNLIKELY(tid == 0)) {
    tid = static_cast<int32_t>(syscall(SYS_gettid));
    tls_lock_state.tid = tid;
  }
  return tid;
}

WaiterTable& GlobalWaiterTable() { return g_waiter_table; }
WaitRegistry& GlobalWaitRegistry() { return g_wait_registry; }

bool LockEventsWanted() {
  const ThreadState& t = tls_state;
  if (t.in_agent != 0 || t.is_agent_thread) return false;
  if (!SamplingEnabled()) return false;
  return g_mutex_rate.load(std::memory_order_relaxed) > 0 ||
         g_block_rate.load(std::memory_order_relaxed) > 0;
}

void RecordBlockEvent(int64_t delay_ns, int64_t now) {
  const int64_t rate = BlockRate();
  if (rate <= 0) return;
  const int64_t d = std::max<int64_t>(1, delay_ns);
  if (d < rate) {
    // Kept with probability d/rate, and then stands for rate/d events.
    if (static_cast<int64_t>(NextRandom() % static_cast<uint64_t>(rate)) >= d) {
      return;
    }
    Record(ContentionKind::kBlock, static_cast<double>(rate) / d,
           static_cast<double>(rate), now);
  } else {
    Record(ContentionKind::kBlock, 1, static_cast<double>(d), now);
  }
}

void RecordMutexEvent(int64_t delay_ns, int64_t now) {
  const int64_t rate = MutexRate();
  if (rate <= 0 || delay_ns <= 0) return;
  if (rate > 1 && NextRandom() % static_cast<uint64_t>(rate) != 0) return;
  Record(ContentionKind::kMutex, static_cast<double>(rate),
         static_cast<double>(rate) * static_cast<double>(delay_ns), now);
}

void CountWaiterTableFull() {
  g_waiter_table_full.fetch_add(1, std::memory_order_relaxed);
}

ContentionRaw CollectContention(ContentionKind kind) {
  ContentionRaw raw;
  raw.kind = kind;
  raw.time_nanos = WallNanos();
  raw.rate = kind == ContentionKind::kMutex ? MutexRate() : BlockRate();
  ContentionStore& store = Store(kind);
  {
    ReentrancyGuard guard;  // this thread's vector growth is not sampled
    store.lock.Lock();
    const uint32_t n = store.stacks.size();
    const bool mapped = store.cells != nullptr;
    store.lock.Unlock();
    if (mapped) {
      // Sized outside the lock, filled under it: the hooks may wait for it.
      raw.records.reserve(n + 64);
      store.lock.Lock();
      const uint32_t count = std::min<uint32_t>(store.stacks.size(),
                                                static_cast<uint32_t>(raw.records.capacity()));
      for (uint32_t id = 1; id <= count; ++id) {
        const Cell& c = store.cells[id];
        if (c.count == 0 && c.delay == 0) continue;
        raw.records.push_back({id, c.count, c.delay});
      }
      store.lock.Unlock();
    }
    // Interned stacks are immutable once their id is published.
    for (const auto& r : raw.records) raw.stacks[r.stack_id] = store.stacks.Get(r.stack_id);
  }
  if (kind == ContentionKind::kMutex) {
    raw.comments.push_back(
        "pprof-agent: mutex profile: 1 in " + std::to_string(raw.rate) +
        " contended releases recorded (PPROF_AGENT_MUTEX_RATE), values scaled "
        "back; delay = time the holder kept waiters waiting");
  } else {
    raw.comments.push_back(
        "pprof-agent: block profile: waits >= " + std::to_string(raw.rate) +
        " ns recorded, shorter ones sampled with probability delay/rate and "
        "scaled (PPROF_AGENT_BLOCK_RATE)");
  }
  const uint64_t carried = store.drops.carried.load(std::memory_order_relaxed);
  if (carried > 0) {
    raw.comments.push_back(
        "pprof-agent: " + std::to_string(carried) +
        " sampled events over the stack capture budget (" +
        std::to_string(LockStacksPerSecond()) +
        "/s, PPROF_AGENT_LOCK_STACKS_PER_SEC) were added to later samples");
  }
  const uint64_t busy = store.drops.lock_busy.load(std::memory_order_relaxed);
  const uint64_t full = store.drops.stacks_full.load(std::memory_order_relaxed);
  const uint64_t no_stack = store.drops.no_stack.load(std::memory_order_relaxed);
  const uint64_t table_full = g_waiter_table_full.load(std::memory_order_relaxed);
  if (busy + full + no_stack + table_full > 0) {
    raw.comments.push_back(
        "pprof-agent: stack captures dropped (their values went to later "
        "samples): recorder busy " + std::to_string(busy) +
        ", stack table full " + std::to_string(full) + ", no stack " +
        std::to_string(no_stack) + "; lock waits not tracked (side table "
        "full) " + std::to_string(table_full));
  }
  return raw;
}

Snapshot ContentionProfile(const ContentionRaw& p1, const ContentionRaw* base) {
  Snapshot s;
  s.sample_types = {{"contentions", "count"}, {"delay", "nanoseconds"}};
  s.period_type = {"contentions", "count"};
  s.period = 1;
  s.time_nanos = p1.time_nanos;
  if (base != nullptr) s.duration_nanos = p1.time_nanos - base->time_nanos;
  s.comments = p1.comments;
  std::map<uint32_t, const ContentionRaw::Record*> before;
  if (base != nullptr) {
    for (const auto& r : base->records) before[r.stack_id] = &r;
  }
  for (const auto& r : p1.records) {
    double count = r.count;
    double delay = r.delay;
    if (auto it = before.find(r.stack_id); it != before.end()) {
      count -= it->second->count;
      delay -= it->second->delay;
    }
    const int64_t c = RoundToInt(count);
    const int64_t d = RoundToInt(delay);
    if (c <= 0 && d <= 0) continue;
    auto st = p1.stacks.find(r.stack_id);
    if (st == p1.stacks.end() || st->second.empty()) continue;
    Sample sample;
    sample.stack = static_cast<uint32_t>(s.stacks.size());
    sample.values = {c, d};
    s.stacks.push_back(Stack{st->second, false});
    s.samples.push_back(std::move(sample));
  }
  return s;
}

ContentionCounts ContentionCountsNow(ContentionKind kind) {
  ContentionStore& store = Store(kind);
  ContentionCounts counts;
  store.lock.Lock();
  counts.stacks = store.stacks.size();
  store.lock.Unlock();
  counts.dropped = store.drops.lock_busy.load(std::memory_order_relaxed) +
                   store.drops.stacks_full.load(std::memory_order_relaxed) +
                   store.drops.no_stack.load(std::memory_order_relaxed);
  counts.carried = store.drops.carried.load(std::memory_order_relaxed);
  return counts;
}

}  // namespace pprof_agent::internal
