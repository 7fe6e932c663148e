// Heap recorder storage (live set, cumulative buckets, stacks) and its cold
// side: collection into HeapRaw and conversion into Go's heap profile.
//
// Memory: every table is a fixed-size mmap'd array reserved on the first
// sample (MAP_NORESERVE, so only touched pages cost memory):
//   stacks  kMaxStacks ids over kMaxFrames frames       (StackTable)
//   live    kMaxLive slots of LiveSlot                  (one per live sample)
//   buckets kBucketSlots of Bucket, keyed (stack, size) (cumulative counts)
//   lifetimes kBucketSlots of LifetimeCounts, beside the buckets
// README documents the sum as the cap.
//
// Lifetimes: a sampled allocation stores its monotonic time and its bucket's
// index in its LiveSlot; its free (lock-free, as before) adds the sample's
// weight to that bucket's histogram of lifetime classes with one atomic
// add. An unsampled allocation or free pays nothing for it.
#include "profiler/heap/heap_profiler.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <tuple>
#include <unordered_map>

#include "profiler/heap/heap_recorder.h"
#include "profiler/base/malloc_backend.h"
#include "profiler/base/runtime.h"
#include "profiler/heap/sampler.h"
#include "profiler/base/spinlock.h"
#include "profiler/base/stack_capture.h"
#include "profiler/base/stack_table.h"
#include "profiler/heap/thread_registry.h"

namespace pprof_agent::internal {
namespace {

constexpr uint32_t kMaxStacks = 64 * 1024;
constexpr uint32_t kMaxFrames = 2 * 1024 * 1024;
constexpr uint32_t kMaxLive = 512 * 1024;
constexpr uint32_t kBucketSlots = 256 * 1024;  // power of two
constexpr uint32_t kNoSlot = 0xffffffffu;
// A sampled allocation gives up (and counts a drop) rather than wait longer
// than this for the table lock: spins, then yields to a descheduled holder.
constexpr int kLockSpins = 200;
constexpr int kLockYields = 100;

struct LiveSlot {
  // The user pointer while the block is live, 0 otherwise. The only field a
  // free() touches; it claims the slot with a CAS so a double free or a
  // forged tag cannot release it twice.
  std::atomic<uint64_t> ptr;
  uint64_t size;
  double weight;
  uint32_t stack_id;
  uint32_t next_free;  // free-list link while the slot is unused
  int64_t alloc_nanos;  // MonotonicNanos() at allocation
  uint32_t bucket;      // index of its Bucket (and LifetimeCounts), or kNoSlot
  uint32_t thread;      // ThreadHandle of the allocating thread, 0 if unknown
};

// Sum of the weights of a bucket's freed samples, by lifetime class. Added
// to by free() without the lock.
struct LifetimeCounts {
  std::atomic<double> freed[kLifetimeClasses];
};
static_assert(std::atomic<double>::is_always_lock_free);

struct Bucket {
  uint64_t size;
  double alloc_objects;  // sum of weights of every sample ever taken
  uint32_t stack_id;     // 0 = empty
  uint32_t pad;
};

struct Drops {
  std::atomic<uint64_t> lock_busy{0};
  std::atomic<uint64_t> stacks_full{0};
  std::atomic<uint64_t> live_full{0};
  std::atomic<uint64_t> buckets_full{0};
  std::atomic<uint64_t> no_stack{0};
};

class HeapStore {
 public:
  SpinLock lock;
  StackTable stacks{kMaxStacks, kMaxFrames};
  Drops drops;
  // Pushed by free() without the lock; taken whole by allocators under it.
  std::atomic<uint32_t> freed_head{kNoSlot};
  // Guarded by `lock`:
  LiveSlot* live = nullptr;
  Bucket* buckets = nullptr;
  LifetimeCounts* lifetimes = nullptr;
  uint32_t live_high_water = 0;
  uint32_t free_head = kNoSlot;

  bool EnsureMapped() {
    if (live != nullptr) return true;
    void* l = mmap(nullptr, sizeof(LiveSlot) * kMaxLive, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (l == MAP_FAILED) return false;
    void* b = mmap(nullptr, sizeof(Bucket) * kBucketSlots, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b == MAP_FAILED) {
      munmap(l, sizeof(LiveSlot) * kMaxLive);
      return false;
    }
    void* t = mmap(nullptr, sizeof(LifetimeCounts) * kBucketSlots, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (t == MAP_FAILED) {
      munmap(l, sizeof(LiveSlot) * kMaxLive);
      munmap(b, sizeof(Bucket) * kBucketSlots);
      return false;
    }
    buckets = static_cast<Bucket*>(b);
    lifetimes = static_cast<LifetimeCounts*>(t);
    // Published last: HeapRecordFree reads `live` without the lock.
    __atomic_store_n(&live, static_cast<LiveSlot*>(l), __ATOMIC_RELEASE);
    return true;
  }

  uint32_t AllocSlot() {
    if (free_head == kNoSlot) {
      free_head = freed_head.exchange(kNoSlot, std::memory_order_acquire);
    }
    if (free_head != kNoSlot) {
      const uint32_t s = free_head;
      free_head = live[s].next_free;
      return s;
    }
    if (live_high_water < kMaxLive) return live_high_water++;
    return kNoSlot;
  }

  void PushFreed(uint32_t s) {
    uint32_t head = freed_head.load(std::memory_order_relaxed);
    do {
      live[s].next_free = head;
    } while (!freed_head.compare_exchange_weak(head, s, std::memory_order_release,
                                               std::memory_order_relaxed));
  }

  // Returns the bucket's index, or kNoSlot when the table is too full.
  uint32_t AddToBucket(uint32_t stack_id, uint64_t size, double weight) {
    uint64_t h = (uint64_t{stack_id} * 0x9e3779b97f4a7c15ULL) ^ (size * 0xc2b2ae3d27d4eb4fULL);
    h ^= h >> 31;
    for (uint32_t probe = 0; probe < kBucketSlots; ++probe) {
      const uint32_t index = static_cast<uint32_t>((h + probe) & (kBucketSlots - 1));
      Bucket& b = buckets[index];
      if (b.stack_id == 0) {
        b.stack_id = stack_id;
        b.size = size;
        b.alloc_objects = weight;
        return index;
      }
      if (b.stack_id == stack_id && b.size == size) {
        b.alloc_objects += weight;
        return index;
      }
      if (probe > 64) break;  // table too full to be worth probing further
    }
    return kNoSlot;
  }
};

// Constructed on first use and never destroyed: hooks may run during exit.
HeapStore& Store() {
  alignas(HeapStore) static unsigned char storage[sizeof(HeapStore)];
  static HeapStore* store = new (storage) HeapStore();
  return *store;
}

// fork(): the child must not inherit a lock held by a thread that does not
// exist there. Holding the lock across fork also means the child's tables
// are never copied mid-update.
void AtForkPrepare() { Store().lock.Lock(); }
void AtForkParent() { Store().lock.Unlock(); }
void AtForkChild() {
  Store().lock.ResetAfterFork();
  ThreadRegistryAtForkChild();  // the forking thread has a new tid here
}

[[maybe_unused]] const bool g_atfork_registered = [] {
  Store();
  pthread_atfork(AtForkPrepare, AtForkParent, AtForkChild);
  return true;
}();

}  // namespace

namespace {

const ThreadInfo* FindThread(const HeapRaw& raw, ThreadHandle handle) {
  if (handle == 0) return nullptr;
  auto it = std::lower_bound(raw.threads.begin(), raw.threads.end(), handle,
                             [](const ThreadInfo& t, ThreadHandle h) { return t.handle < h; });
  if (it == raw.threads.end() || it->handle != handle) return nullptr;
  return &*it;
}

}  // namespace

void* HeapRecordAllocation(size_t size, size_t align, bool zero, int64_t rate,
                           bool* dropped) {
  *dropped = false;
  ReentrancyGuard guard;
  HeapStore& store = Store();
  // Capture first, outside the lock (STYLE.md item 3).
  uint64_t pcs[kMaxStackDepth];
  const int depth = CaptureStack(pcs, kMaxStackDepth);
  if (depth <= 0) {
    store.drops.no_stack.fetch_add(1, std::memory_order_relaxed);
    *dropped = true;
    return nullptr;
  }
  const size_t header = align < 16 ? 16 : align;
  if (size > SIZE_MAX - header) {
    *dropped = true;  // let the plain path fail with glibc's own errno
    return nullptr;
  }
  const int saved_errno = errno;
  auto* base = static_cast<unsigned char*>(RealMemalign(header, size + header));
  if (base == nullptr) return nullptr;  // errno is glibc's ENOMEM
  const double weight = SampleWeight(size, rate);
  // Sampled allocations only: one clock read, and the thread's cached handle.
  const int64_t now = MonotonicNanos();
  const ThreadHandle thread = ThreadRegistryCurrent();

  if (!store.lock.TryLockYielding(kLockSpins, kLockYields)) {
    store.drops.lock_busy.fetch_add(1, std::memory_order_relaxed);
    RealFree(base);
    *dropped = true;
    errno = saved_errno;
    return nullptr;
  }
  uint32_t slot = kNoSlot;
  uint32_t stack_id = 0;
  uint32_t bucket = kNoSlot;
  if (!store.EnsureMapped()) {
    store.drops.live_full.fetch_add(1, std::memory_order_relaxed);
  } else if ((stack_id = store.stacks.Intern(pcs, depth)) == 0) {
    store.drops.stacks_full.fetch_add(1, std::memory_order_relaxed);
  } else {
    if ((bucket = store.AddToBucket(stack_id, size, weight)) == kNoSlot) {
      store.drops.buckets_full.fetch_add(1, std::memory_order_relaxed);
    }
    slot = store.AllocSlot();
    if (slot == kNoSlot) {
      store.drops.live_full.fetch_add(1, std::memory_order_relaxed);
    }
  }
  unsigned char* user = base + header;
  if (slot != kNoSlot) {
    LiveSlot& s = store.live[slot];
    s.size = size;
    s.weight = weight;
    s.stack_id = stack_id;
    s.alloc_nanos = now;
    s.bucket = bucket;
    s.thread = thread;
    s.ptr.store(reinterpret_cast<uint64_t>(user), std::memory_order_release);
  }
  store.lock.Unlock();

  if (slot == kNoSlot) {
    RealFree(base);
    *dropped = true;
    errno = saved_errno;
    return nullptr;
  }
  auto* words = reinterpret_cast<uint64_t*>(user);
  words[-1] = (uint64_t{slot} << 4) | kSampledTagBit;
  words[-2] = reinterpret_cast<uint64_t>(base);
  if (zero) memset(user, 0, size);
  errno = saved_errno;
  return user;
}

namespace {

// The live slot that owns `p`, or nullptr. Lock-free.
LiveSlot* FindLive(void* p) {
  LiveSlot* live = __atomic_load_n(&Store().live, __ATOMIC_ACQUIRE);
  if (live == nullptr) return nullptr;
  // Any pointer free() accepts may come here (malloc_backend.h: under ASan
  // the tag bit is set on blocks that are not ours), so the tag is only a
  // hint: a slot out of range or holding another pointer rejects `p`.
  const uint64_t tag = WordBelow(p);
  const uint64_t slot = tag >> 4;
  if (slot >= kMaxLive) return nullptr;
  LiveSlot& s = live[slot];
  if (s.ptr.load(std::memory_order_acquire) != reinterpret_cast<uint64_t>(p)) {
    return nullptr;
  }
  return &s;
}

}  // namespace

bool HeapRecordFree(void* p) {
  LiveSlot* s = FindLive(p);
  if (s == nullptr) return false;
  uint64_t expected = reinterpret_cast<uint64_t>(p);
  if (!s->ptr.compare_exchange_strong(expected, 0, std::memory_order_acq_rel)) {
    return false;
  }
  auto* words = static_cast<uint64_t*>(p);
  void* base = reinterpret_cast<void*>(words[-2]);
  words[-1] = 0;  // so a stale copy of the tag can never match again
  HeapStore& store = Store();
  // The slot is ours until PushFreed: read what the lifetime needs first.
  const uint32_t bucket = s->bucket;
  if (bucket != kNoSlot) {
    const int64_t lived = MonotonicNanos() - s->alloc_nanos;
    LifetimeCounts* lifetimes = __atomic_load_n(&store.lifetimes, __ATOMIC_ACQUIRE);
    lifetimes[bucket].freed[LifetimeClass(lived)].fetch_add(s->weight,
                                                            std::memory_order_relaxed);
  }
  store.PushFreed(static_cast<uint32_t>(s - store.live));
  RealFree(base);
  return true;
}

size_t HeapSampledUsableSize(void* p, size_t (*real_usable)(void*)) {
  if (FindLive(p) == nullptr) return static_cast<size_t>(-1);
  auto* words = static_cast<uint64_t*>(p);
  auto* base = reinterpret_cast<unsigned char*>(words[-2]);
  return real_usable(base) - static_cast<size_t>(static_cast<unsigned char*>(p) - base);
}

HeapRaw CollectHeap() {
  HeapRaw raw;
  raw.time_nanos = WallNanos();
  raw.sample_rate = HeapRate();
  HeapStore& store = Store();
  std::vector<HeapRaw::Record> buckets;
  std::vector<HeapRaw::LiveByThread> live;
  {
    // Copy under the lock with the heap untouched: the vectors are sized
    // first (allocating outside the lock), then filled.
    store.lock.Lock();
    const uint32_t high_water = store.live_high_water;
    const bool mapped = store.live != nullptr;
    store.lock.Unlock();
    if (!mapped) return raw;
    live.reserve(high_water + 1024);
    buckets.reserve(store.stacks.size() * 4 + 1024);
    store.lock.Lock();
    for (uint32_t i = 0; i < store.live_high_water && live.size() < live.capacity(); ++i) {
      const LiveSlot& s = store.live[i];
      if (s.ptr.load(std::memory_order_acquire) != 0) {
        live.push_back(HeapRaw::LiveByThread{s.stack_id, s.size, s.thread, s.weight});
      }
    }
    for (uint32_t i = 0; i < kBucketSlots; ++i) {
      const Bucket& b = store.buckets[i];
      if (b.stack_id == 0) continue;
      if (buckets.size() == buckets.capacity()) break;  // never realloc here
      HeapRaw::Record r;
      r.stack_id = b.stack_id;
      r.size = b.size;
      r.alloc_objects = b.alloc_objects;
      for (int c = 0; c < kLifetimeClasses; ++c) {
        r.freed[c] = store.lifetimes[i].freed[c].load(std::memory_order_relaxed);
      }
      buckets.push_back(r);
    }
    store.lock.Unlock();
  }
  // Merge live weights into the (stack, size) records.
  std::sort(buckets.begin(), buckets.end(), [](const auto& a, const auto& b) {
    return std::tie(a.stack_id, a.size) < std::tie(b.stack_id, b.size);
  });
  for (const HeapRaw::LiveByThread& l : live) {
    const uint32_t stack_id = l.stack_id;
    const uint64_t size = l.size;
    const double weight = l.objects;
    HeapRaw::Record key;
    key.stack_id = stack_id;
    key.size = size;
    auto it = std::lower_bound(buckets.begin(), buckets.end(), key,
                               [](const auto& a, const auto& b) {
                                 return std::tie(a.stack_id, a.size) <
                                        std::tie(b.stack_id, b.size);
                               });
    if (it != buckets.end() && it->stack_id == stack_id && it->size == size) {
      it->inuse_objects += weight;
    } else {
      // Its bucket was dropped (table full): still report it as live.
      key.inuse_objects = weight;
      buckets.insert(it, key);
    }
  }
  raw.records = std::move(buckets);
  // Live weights by (stack, size, thread), and who those threads are.
  std::sort(live.begin(), live.end(), [](const auto& a, const auto& b) {
    return std::tie(a.stack_id, a.size, a.thread) < std::tie(b.stack_id, b.size, b.thread);
  });
  for (const HeapRaw::LiveByThread& l : live) {
    HeapRaw::LiveByThread* last =
        raw.live_by_thread.empty() ? nullptr : &raw.live_by_thread.back();
    if (last != nullptr && last->stack_id == l.stack_id && last->size == l.size &&
        last->thread == l.thread) {
      last->objects += l.objects;
    } else {
      raw.live_by_thread.push_back(l);
    }
  }
  std::vector<ThreadHandle> handles;
  for (const HeapRaw::LiveByThread& l : raw.live_by_thread) {
    if (l.thread != 0) handles.push_back(l.thread);
  }
  std::sort(handles.begin(), handles.end());
  handles.erase(std::unique(handles.begin(), handles.end()), handles.end());
  raw.threads = ThreadRegistryLookup(handles);
  uint32_t max_id = 0;
  for (const auto& r : raw.records) max_id = std::max(max_id, r.stack_id);
  raw.stack_begin.assign(max_id + 1, 0);
  raw.stack_end.assign(max_id + 1, 0);
  raw.frames.reserve(raw.records.size() * 16);
  for (const auto& r : raw.records) {
    if (raw.stack_end[r.stack_id] != 0) continue;  // records are sorted by id
    raw.stack_begin[r.stack_id] = static_cast<uint32_t>(raw.frames.size());
    store.stacks.AppendTo(r.stack_id, &raw.frames);
    raw.stack_end[r.stack_id] = static_cast<uint32_t>(raw.frames.size());
  }
  const Drops& d = store.drops;
  auto note = [&raw](const char* what, uint64_t n) {
    if (n) raw.comments.push_back(std::string("dropped heap samples (") + what + "): " + std::to_string(n));
  };
  note("table lock busy", d.lock_busy.load());
  note("stack table full", d.stacks_full.load());
  note("live table full", d.live_full.load());
  note("bucket table full, alloc_* undercounted", d.buckets_full.load());
  note("no stack captured", d.no_stack.load());
  return raw;
}

HeapCounts HeapCountsNow() {
  HeapCounts c;
  HeapStore& store = Store();
  const Drops& d = store.drops;
  c.dropped = d.lock_busy.load() + d.stacks_full.load() + d.live_full.load() +
              d.buckets_full.load() + d.no_stack.load();
  LiveSlot* live = __atomic_load_n(&store.live, __ATOMIC_ACQUIRE);
  if (live == nullptr) return c;
  store.lock.Lock();
  for (uint32_t i = 0; i < store.live_high_water; ++i) {
    if (live[i].ptr.load(std::memory_order_relaxed) != 0) ++c.live_samples;
  }
  c.stacks = store.stacks.size();
  store.lock.Unlock();
  return c;
}

Snapshot HeapProfile(const HeapRaw& p1, const HeapRaw* base,
                     const std::string& default_type) {
  Snapshot snap;
  snap.sample_types = {{"alloc_objects", "count"},
                       {"alloc_space", "bytes"},
                       {"inuse_objects", "count"},
                       {"inuse_space", "bytes"}};
  snap.period_type = {"space", "bytes"};
  snap.period = p1.sample_rate;
  snap.default_sample_type = default_type;
  snap.time_nanos = p1.time_nanos;
  if (base != nullptr) snap.duration_nanos = p1.time_nanos - base->time_nanos;
  snap.comments = p1.comments;

  // p0's cumulative counts by (stack, size), for the delta.
  std::vector<HeapRaw::Record> before;
  if (base != nullptr) {
    before = base->records;
    std::sort(before.begin(), before.end(), [](const auto& a, const auto& b) {
      return std::tie(a.stack_id, a.size) < std::tie(b.stack_id, b.size);
    });
  }
  std::unordered_map<uint32_t, uint32_t> stack_index;
  stack_index.reserve(p1.records.size());
  snap.samples.reserve(p1.records.size());
  for (const HeapRaw::Record& r : p1.records) {
    double alloc = r.alloc_objects;
    if (base != nullptr) {
      auto it = std::lower_bound(before.begin(), before.end(), r,
                                 [](const auto& a, const auto& b) {
                                   return std::tie(a.stack_id, a.size) <
                                          std::tie(b.stack_id, b.size);
                                 });
      if (it != before.end() && it->stack_id == r.stack_id && it->size == r.size) {
        alloc -= it->alloc_objects;
      }
      if (alloc < 0) alloc = 0;
    }
    const int64_t alloc_objects = std::llround(alloc);
    const int64_t inuse_objects = std::llround(r.inuse_objects);
    if (alloc_objects == 0 && inuse_objects == 0) continue;
    if (r.stack_id >= p1.stack_end.size()) continue;
    const uint32_t begin = p1.stack_begin[r.stack_id];
    const uint32_t end = p1.stack_end[r.stack_id];
    if (begin == end) continue;
    // Not a structured binding: a lambda below captures the index, and
    // clang (the fuzz build) cannot capture structured bindings before C++20's
    // P1091 lands there.
    const auto emplaced = stack_index.emplace(r.stack_id, snap.stacks.size());
    const auto idx = emplaced.first;
    if (emplaced.second) {
      snap.stacks.push_back(Stack{std::vector<uint64_t>(p1.frames.begin() + begin,
                                                        p1.frames.begin() + end),
                                  false});
    }
    const int64_t size = static_cast<int64_t>(r.size);
    auto add_sample = [&](int64_t objects, double bytes_weight, int64_t live_objects,
                          double live_weight, const ThreadInfo* thread) {
      Sample s;
      s.stack = idx->second;
      s.values = {objects, std::llround(bytes_weight * static_cast<double>(size)),
                  live_objects, std::llround(live_weight * static_cast<double>(size))};
      s.labels.push_back(Label::Num("bytes", size));
      if (thread != nullptr) {
        s.labels.push_back(Label::Str("thread_name", thread->name.empty() ? "?" : thread->name));
        s.labels.push_back(Label::Str("thread_state", thread->exited ? "exited" : "alive"));
      }
      snap.samples.push_back(std::move(s));
    };
    // The live part, per allocating thread.
    auto live_begin = std::lower_bound(
        p1.live_by_thread.begin(), p1.live_by_thread.end(), r,
        [](const HeapRaw::LiveByThread& a, const HeapRaw::Record& b) {
          return std::tie(a.stack_id, a.size) < std::tie(b.stack_id, b.size);
        });
    auto live_end = live_begin;
    while (live_end != p1.live_by_thread.end() && live_end->stack_id == r.stack_id &&
           live_end->size == r.size) {
      ++live_end;
    }
    if (inuse_objects == 0 || live_begin == live_end) {
      add_sample(alloc_objects, alloc, inuse_objects, r.inuse_objects, nullptr);
      continue;
    }
    // One sample per allocating thread; the alloc_* values ride on the
    // thread holding the most, so that a stack still has one sample when
    // one thread allocated it (-traces and debug=1 list it once).
    auto largest = live_begin;
    for (auto it = live_begin; it != live_end; ++it) {
      if (it->objects > largest->objects) largest = it;
    }
    for (auto it = live_begin; it != live_end; ++it) {
      const int64_t n = std::llround(it->objects);
      if (it == largest) {
        add_sample(alloc_objects, alloc, n, it->objects, FindThread(p1, it->thread));
      } else if (n != 0) {
        add_sample(0, 0, n, it->objects, FindThread(p1, it->thread));
      }
    }
  }
  return snap;
}

Snapshot LifetimesProfile(const HeapRaw& p1, const HeapRaw* base) {
  Snapshot snap;
  snap.sample_types = {{"alloc_objects", "count"}, {"alloc_space", "bytes"}};
  snap.period_type = {"space", "bytes"};
  snap.period = p1.sample_rate;
  snap.default_sample_type = "alloc_space";
  snap.time_nanos = p1.time_nanos;
  if (base != nullptr) snap.duration_nanos = p1.time_nanos - base->time_nanos;
  snap.comments = p1.comments;
  snap.comments.push_back(
      "lifetime classes: <1ms, 1-10ms, 10-100ms, 100ms-1s, 1-10s, >10s (freed), "
      "live (not freed yet)");

  std::vector<HeapRaw::Record> before;
  if (base != nullptr) {
    before = base->records;
    std::sort(before.begin(), before.end(), [](const auto& a, const auto& b) {
      return std::tie(a.stack_id, a.size) < std::tie(b.stack_id, b.size);
    });
  }
  std::unordered_map<uint32_t, uint32_t> stack_index;
  for (const HeapRaw::Record& r : p1.records) {
    if (r.stack_id >= p1.stack_end.size()) continue;
    const uint32_t begin = p1.stack_begin[r.stack_id];
    const uint32_t end = p1.stack_end[r.stack_id];
    if (begin == end) continue;
    const HeapRaw::Record* old = nullptr;
    if (base != nullptr) {
      auto it = std::lower_bound(before.begin(), before.end(), r,
                                 [](const auto& a, const auto& b) {
                                   return std::tie(a.stack_id, a.size) <
                                          std::tie(b.stack_id, b.size);
                                 });
      if (it != before.end() && it->stack_id == r.stack_id && it->size == r.size) {
        old = &*it;
      }
    }
    const int64_t size = static_cast<int64_t>(r.size);
    auto add = [&](double weight, const char* lifetime) {
      const int64_t objects = std::llround(weight);
      if (objects <= 0) return;
      auto [idx, inserted] = stack_index.emplace(r.stack_id, snap.stacks.size());
      if (inserted) {
        snap.stacks.push_back(Stack{std::vector<uint64_t>(p1.frames.begin() + begin,
                                                          p1.frames.begin() + end),
                                    false});
      }
      Sample s;
      s.stack = idx->second;
      s.values = {objects, std::llround(weight * static_cast<double>(size))};
      s.labels.push_back(Label::Num("bytes", size));
      s.labels.push_back(Label::Str("lifetime", lifetime));
      snap.samples.push_back(std::move(s));
    };
    for (int c = 0; c < kLifetimeClasses; ++c) {
      double freed = r.freed[c];
      if (old != nullptr) freed -= old->freed[c];
      add(freed, kLifetimeClassNames[c]);
    }
    add(r.inuse_objects, kLifetimeLive);
  }
  return snap;
}

}  // namespace pprof_agent::internal
