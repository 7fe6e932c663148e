// Lock-free side tables of the lock hooks; see lock_table.h.
#include "profiler/contention/lock_table.h"

#include <algorithm>
#include <limits>

namespace pprof_agent::internal {

const char* LockKindName(LockKind kind) {
  switch (kind) {
    case LockKind::kNone: return "none";
    case LockKind::kMutex: return "mutex";
    case LockKind::kRwlockRead: return "rwlock-read";
    case LockKind::kRwlockWrite: return "rwlock-write";
    case LockKind::kCondvar: return "condvar";
    case LockKind::kSpin: return "spinlock";
  }
  return "unknown";
}

// --- WaiterTable --------------------------------------------------------------

uint32_t WaiterTable::Home(uintptr_t addr) {
  uint64_t h = (static_cast<uint64_t>(addr) >> 3) * 0x9e3779b97f4a7c15ULL;
  return static_cast<uint32_t>(h >> 40) & (kSlots - 1);
}

int WaiterTable::Register(uintptr_t addr, int64_t now) {
  if (addr == 0 || addr >= kMaxAddress) return -1;
  const uint64_t tag = static_cast<uint64_t>(addr) << 16;
  const uint32_t home = Home(addr);
  // Join the address's slot if it has one: every waiter of a lock should
  // share one clock.
  for (uint32_t i = 0; i < kWindow; ++i) {
    const uint32_t idx = (home + i) & (kSlots - 1);
    Slot& s = slots_[idx];
    uint64_t k = s.key.load(std::memory_order_acquire);
    while ((k & ~(kInitBit | kCountMask)) == tag && (k & kCountMask) != 0 &&
           (k & kCountMask) < kCountMask) {
      if (s.key.compare_exchange_weak(k, k + 1, std::memory_order_acq_rel)) {
        return static_cast<int>(idx);
      }
    }
  }
  // Otherwise claim a free slot. kInitBit keeps TakeDelay() off `since`
  // until it holds this waiter's start. Two first waiters racing may claim
  // two slots; TakeDelay() reads every slot of the address, so the result
  // stays right.
  for (uint32_t i = 0; i < kWindow; ++i) {
    const uint32_t idx = (home + i) & (kSlots - 1);
    Slot& s = slots_[idx];
    uint64_t expected = 0;
    if (s.key.compare_exchange_strong(expected, tag | kInitBit | 1,
                                      std::memory_order_acq_rel)) {
      s.since.store(now, std::memory_order_release);
      s.key.fetch_and(~kInitBit, std::memory_order_release);
      return static_cast<int>(idx);
    }
  }
  return -1;
}

void WaiterTable::Unregister(int slot) {
  if (slot < 0 || slot >= static_cast<int>(kSlots)) return;
  Slot& s = slots_[slot];
  uint64_t k = s.key.load(std::memory_order_relaxed);
  for (;;) {
    if ((k & kCountMask) == 0) return;  // Reset() ran (fork): nothing to undo
    const uint64_t next = (k & kCountMask) == 1 ? 0 : k - 1;
    if (s.key.compare_exchange_weak(k, next, std::memory_order_acq_rel)) return;
  }
}

bool WaiterTable::TakeDelay(uintptr_t addr, int64_t now, int64_t* delay,
                            int* waiters) {
  if (addr == 0 || addr >= kMaxAddress) return false;
  const uint64_t tag = static_cast<uint64_t>(addr) << 16;
  const uint32_t home = Home(addr);
  bool found = false;
  int count = 0;
  int64_t earliest = std::numeric_limits<int64_t>::max();
  for (uint32_t i = 0; i < kWindow; ++i) {
    Slot& s = slots_[(home + i) & (kSlots - 1)];
    const uint64_t k = s.key.load(std::memory_order_acquire);
    if ((k & ~(kInitBit | kCountMask)) != tag || (k & kCountMask) == 0) {
      continue;
    }
    found = true;
    count += static_cast<int>(k & kCountMask);
    // A slot still initialising belongs to a waiter that started just now:
    // it adds nothing yet.
    if (k & kInitBit) continue;
    const int64_t since = s.since.exchange(now, std::memory_order_acq_rel);
    earliest = std::min(earliest, since);
  }
  if (!found) return false;
  *waiters = count;
  *delay = earliest == std::numeric_limits<int64_t>::max() || earliest > now
               ? 0
               : now - earliest;
  return true;
}

int WaiterTable::Waiters(uintptr_t addr) const {
  if (addr == 0 || addr >= kMaxAddress) return 0;
  const uint64_t tag = static_cast<uint64_t>(addr) << 16;
  const uint32_t home = Home(addr);
  int count = 0;
  for (uint32_t i = 0; i < kWindow; ++i) {
    const uint64_t k =
        slots_[(home + i) & (kSlots - 1)].key.load(std::memory_order_acquire);
    if ((k & ~(kInitBit | kCountMask)) == tag) {
      count += static_cast<int>(k & kCountMask);
    }
  }
  return count;
}

void WaiterTable::Reset() {
  for (Slot& s : slots_) {
    s.key.store(0, std::memory_order_relaxed);
    s.since.store(0, std::memory_order_relaxed);
  }
}

// --- WaitRegistry -------------------------------------------------------------

int WaitRegistry::Begin(const WaitInfo& info) {
  if (info.tid == 0) return -1;
  constexpr uint32_t kProbes = 16;
  const uint32_t home =
      (static_cast<uint32_t>(info.tid) * 2654435761u) % kSlots;
  for (uint32_t i = 0; i < kProbes; ++i) {
    const uint32_t idx = (home + i) % kSlots;
    Slot& s = slots_[idx];
    int32_t expected = 0;
    if (!s.tid.compare_exchange_strong(expected, info.tid,
                                       std::memory_order_acquire)) {
      continue;
    }
    // Seqlock write: readers retry while seq is odd or has moved.
    s.seq.fetch_add(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s.lock.store(info.lock, std::memory_order_relaxed);
    s.mutex.store(info.mutex, std::memory_order_relaxed);
    s.since.store(info.since_ns, std::memory_order_relaxed);
    s.kind.store(static_cast<uint8_t>(info.kind), std::memory_order_relaxed);
    s.seq.fetch_add(1, std::memory_order_release);
    return static_cast<int>(idx);
  }
  return -1;
}

void WaitRegistry::End(int slot) {
  if (slot < 0 || slot >= static_cast<int>(kSlots)) return;
  slots_[slot].tid.store(0, std::memory_order_release);
}

std::vector<WaitInfo> WaitRegistry::Snapshot() const {
  std::vector<WaitInfo> out;
  for (const Slot& s : slots_) {
    for (int attempt = 0; attempt < 4; ++attempt) {
      const int32_t tid = s.tid.load(std::memory_order_acquire);
      if (tid == 0) break;
      const uint32_t seq = s.seq.load(std::memory_order_acquire);
      if (seq & 1) continue;
      WaitInfo info;
      info.tid = tid;
      info.lock = s.lock.load(std::memory_order_relaxed);
      info.mutex = s.mutex.load(std::memory_order_relaxed);
      info.since_ns = s.since.load(std::memory_order_relaxed);
      info.kind = static_cast<LockKind>(s.kind.load(std::memory_order_relaxed));
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s.seq.load(std::memory_order_relaxed) != seq ||
          s.tid.load(std::memory_order_relaxed) != tid) {
        continue;
      }
      out.push_back(info);
      break;
    }
  }
  return out;
}

void WaitRegistry::Reset() {
  for (Slot& s : slots_) s.tid.store(0, std::memory_order_relaxed);
}

// --- RateLimiter --------------------------------------------------------------

void RateLimiter::SetRate(int64_t per_second, int64_t burst) {
  if (per_second <= 0) {
    per_second_.store(0, std::memory_order_relaxed);
    interval_ns_.store(0, std::memory_order_relaxed);
    return;
  }
  const int64_t interval = std::max<int64_t>(1, 1000000000 / per_second);
  tolerance_ns_.store(interval * std::max<int64_t>(0, burst - 1),
                      std::memory_order_relaxed);
  interval_ns_.store(interval, std::memory_order_relaxed);
  per_second_.store(per_second, std::memory_order_relaxed);
}

bool RateLimiter::TryAcquire(int64_t now_ns) {
  const int64_t interval = interval_ns_.load(std::memory_order_relaxed);
  if (interval == 0) return true;
  const int64_t tolerance = tolerance_ns_.load(std::memory_order_relaxed);
  int64_t tat = tat_.load(std::memory_order_relaxed);
  for (;;) {
    if (tat - tolerance > now_ns) return false;
    const int64_t next = std::max(tat, now_ns) + interval;
    if (tat_.compare_exchange_weak(tat, next, std::memory_order_relaxed)) {
      return true;
    }
  }
}

}  // namespace pprof_agent::internal
