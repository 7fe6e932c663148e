#include "profiler/races/race_store.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cxxabi.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "profiler/base/spinlock.h"
#include "profiler/base/thread_state.h"
#include "profiler/races/race_text.h"
#include "profiler/symbols/symbolizer.h"
#include "pprof_agent/checked.h"

namespace pprof_agent::internal {
namespace {

std::atomic<int> g_policy{-1};

struct Store {
  SpinLock lock;
  RaceReport reports[kMaxRaces];
  int used = 0;
  uint64_t dropped = 0;
  uint64_t total = 0;
  uint64_t next_id = 1;
};

Store& TheStore() {
  static Store* s = new Store();  // never destroyed: detections may come late
  return *s;
}

void Lock(Store& s) {
  while (!s.lock.TryLockYielding(1000, 1000)) {
  }
}

std::string ThreadNameOf(uint32_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%u/comm", tid);
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[64];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return "";
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0')) --n;
  return std::string(buf, static_cast<size_t>(n));
}

// Bumps the count of an existing report; false if there is none.
bool BumpExisting(Store& s, int kind, uint64_t cur_pc, uint64_t other_pc) {
  for (int i = 0; i < s.used; ++i) {
    RaceReport& r = s.reports[i];
    if (r.kind == kind && r.current.pc == cur_pc && r.previous.pc == other_pc) {
      ++r.count;
      return true;
    }
  }
  return false;
}

}  // namespace

RacePolicy ParseRacePolicy(const char* v) {
  if (v == nullptr) return RacePolicy::kReport;
  if (std::strcmp(v, "abort") == 0) return RacePolicy::kAbort;
  if (std::strcmp(v, "off") == 0 || std::strcmp(v, "0") == 0) return RacePolicy::kOff;
  return RacePolicy::kReport;
}

RacePolicy CurrentRacePolicy() {
  int p = g_policy.load(std::memory_order_relaxed);
  if (p < 0) {
    p = static_cast<int>(ParseRacePolicy(std::getenv("PPROF_AGENT_RACES")));
    g_policy.store(p, std::memory_order_relaxed);
  }
  return static_cast<RacePolicy>(p);
}

void SetRacePolicyForTest(RacePolicy p) { g_policy.store(static_cast<int>(p)); }

const char* RaceKindMessage(int kind) {
  switch (kind) {
    case PA_RACE_WRITE_WRITE: return "concurrent map writes";
    case PA_RACE_READ_WRITE: return "concurrent map read and map write";
    case PA_RACE_ITER_WRITE: return "concurrent map iteration and map write";
  }
  return "concurrent map access";
}

const char* RaceAccessName(int access) {
  switch (access) {
    case PA_ACCESS_READ: return "read";
    case PA_ACCESS_WRITE: return "write";
    case PA_ACCESS_ITERATE: return "iterate";
  }
  return "unknown";
}

void RecordRace(const void* checker, const char* name, int name_is_type, int kind,
                int current_access, const void* current_pc, uint32_t other_tid,
                const void* other_pc, const void* other_caller) {
  RacePolicy policy = CurrentRacePolicy();
  if (policy == RacePolicy::kOff) return;
  // The report path unwinds, symbolizes and takes locks: the hooks must pass
  // through on this thread meanwhile. Without it a contended lock inside
  // libunwind (taken through the lock hooks) recorded a block event, which
  // unwound again and waited for libunwind's lock: racing threads in abort
  // mode deadlocked (seen under ASan, 2 runs in 12).
  ReentrancyGuard guard;
  Store& s = TheStore();
  const uint64_t cur = reinterpret_cast<uint64_t>(current_pc);
  const uint64_t oth = reinterpret_cast<uint64_t>(other_pc);
  if (policy == RacePolicy::kReport) {
    Lock(s);
    ++s.total;
    bool found = BumpExisting(s, kind, cur, oth);
    bool full = !found && s.used >= kMaxRaces;
    if (full) ++s.dropped;
    s.lock.Unlock();
    if (found || full) return;
  }

  // First detection of this report: build it outside the lock.
  RaceReport r;
  r.kind = kind;
  r.count = 1;
  if (name == nullptr) name = "";
  r.container = name;
  if (name_is_type) {
    int status = 0;
    char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    if (status == 0 && d != nullptr) r.container = d;
    std::free(d);
  }
  r.current.access = current_access;
  r.current.tid = static_cast<uint32_t>(::gettid());
  char tname[32] = "";
  pthread_getname_np(pthread_self(), tname, sizeof tname);
  r.current.thread_name = tname;
  r.current.pc = cur;
  uint64_t frames[kMaxStackDepth];
  int n = CaptureStack(frames, kMaxStackDepth);
  int first = 0;
  while (first < n && IsAgentPc(frames[first])) ++first;  // the agent's own frames
  r.current.stack.assign(frames + first, frames + (n > first ? n : first));
  r.previous.access = PA_ACCESS_WRITE;  // the open section is always a write
  r.previous.tid = other_tid;
  r.previous.thread_name = ThreadNameOf(other_tid);
  r.previous.pc = oth;
  r.previous.partial_stack = true;
  if (other_caller != nullptr) r.previous.stack.push_back(reinterpret_cast<uint64_t>(other_caller));

  if (policy == RacePolicy::kAbort) {
    std::string text = std::string("fatal error: ") + RaceKindMessage(kind) + "\n\n" +
                       RaceReportText(r, Symbolizer::Global());
    ssize_t unused = ::write(2, text.data(), text.size());
    (void)unused;
    std::abort();
  }

  Lock(s);
  if (BumpExisting(s, kind, cur, oth)) {  // another thread got here first
    s.lock.Unlock();
    return;
  }
  if (s.used >= kMaxRaces) {
    ++s.dropped;
  } else {
    r.id = s.next_id++;
    s.reports[s.used++] = std::move(r);
  }
  s.lock.Unlock();
}

RaceSnapshot SnapshotRaces() {
  Store& s = TheStore();
  RaceSnapshot out;
  Lock(s);
  out.reports.assign(s.reports, s.reports + s.used);
  out.dropped = s.dropped;
  out.total = s.total;
  s.lock.Unlock();
  return out;
}

void ResetRacesForTest() {
  Store& s = TheStore();
  Lock(s);
  for (int i = 0; i < s.used; ++i) s.reports[i] = RaceReport();
  s.used = 0;
  s.dropped = 0;
  s.total = 0;
  s.lock.Unlock();
}

}  // namespace pprof_agent::internal
