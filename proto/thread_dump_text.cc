// goroutine?debug=2: see thread_dump_text.h. Cold; allocates freely.
#include "proto/thread_dump_text.h"

#include <time.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <unordered_map>
#include <vector>

#include "profiler/threads/wait_graph.h"

namespace pprof_agent::internal {
namespace {

// At most this many holders' stacks are repeated under a waiter (a read-held
// rwlock may have many readers).
constexpr size_t kMaxHolderStacks = 4;

std::string Hex(uint64_t v) {
  char buf[2 + 16 + 1];
  std::snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
  return buf;
}

class Frames {
 public:
  explicit Frames(SymbolSource& symbols)
      : symbols_(symbols), mappings_(symbols.Mappings()) {}

  // Symbolized frames of stack entry `i` (inlined frames innermost first).
  const LocationInfo& At(const std::vector<uint64_t>& pcs, size_t i) {
    // Entry 0 is the exact interrupted pc; the others are return addresses,
    // which point after the call (possibly into the next line).
    const uint64_t address = i == 0 || pcs[i] == 0 ? pcs[i] : pcs[i] - 1;
    auto it = cache_.find(address);
    if (it == cache_.end()) it = cache_.emplace(address, symbols_.Symbolize(address)).first;
    return it->second;
  }

  std::string MappingName(int index) const {
    if (index < 0 || static_cast<size_t>(index) >= mappings_.size()) return "";
    return mappings_[index].path;
  }

 private:
  SymbolSource& symbols_;
  std::vector<MappingInfo> mappings_;
  std::unordered_map<uint64_t, LocationInfo> cache_;
};

// A location in the agent's own code (its lock hooks, between the
// application's lock call and glibc's): the outermost function of the
// location is in namespace pprof_agent. Left out of the dump, as pprof's
// drop_frames leaves them out of profiles.
bool IsAgentLocation(const LocationInfo& location) {
  if (location.frames.empty()) return false;
  const FrameInfo& outer = location.frames.back();
  const std::string& name = outer.name.empty() ? outer.system_name : outer.name;
  for (size_t pos = 0; pos < name.size();) {
    if (name.compare(pos, 13, "pprof_agent::") == 0) return true;
    // Skip a leading return type ("int pprof_agent::...").
    const size_t space = name.find(' ', pos);
    const size_t paren = name.find('(', pos);
    if (space == std::string::npos || (paren != std::string::npos && paren < space)) break;
    pos = space + 1;
  }
  return false;
}

std::string ThreadLabel(const DumpedThread& t) {
  return "thread " + std::to_string(t.tid) + " \"" + t.name + "\"";
}

// Go's debug=2 frame form: "function\n\tfile:line\n"; an address nobody can
// name is printed as "0x... (in /path/of/object)".
void AppendStack(const std::vector<uint64_t>& pcs, Frames& frames,
                 const std::string& indent, std::string* out) {
  for (size_t i = 0; i < pcs.size(); ++i) {
    const LocationInfo& location = frames.At(pcs, i);
    if (IsAgentLocation(location)) continue;
    bool named = false;
    for (const FrameInfo& frame : location.frames) {
      const std::string& name = frame.name.empty() ? frame.system_name : frame.name;
      if (name.empty()) continue;
      named = true;
      *out += indent + name + "\n" + indent + "\t";
      if (!frame.file.empty()) {
        *out += frame.file + ":" + std::to_string(frame.line);
      } else {
        const std::string object = frames.MappingName(location.mapping);
        *out += Hex(pcs[i]) + (object.empty() ? "" : " (in " + object + ")");
      }
      *out += "\n";
    }
    if (!named) {
      const std::string object = frames.MappingName(location.mapping);
      *out += indent + Hex(pcs[i]) + "\n" + indent + "\t" +
              (object.empty() ? "?" : "in " + object) + "\n";
    }
  }
}

// One line per frame ("function  file:line"), for holders' stacks repeated
// under their waiters.
void AppendCompactStack(const std::vector<uint64_t>& pcs, Frames& frames,
                        std::string* out) {
  for (size_t i = 0; i < pcs.size(); ++i) {
    const LocationInfo& location = frames.At(pcs, i);
    if (IsAgentLocation(location)) continue;
    bool named = false;
    for (const FrameInfo& frame : location.frames) {
      const std::string& name = frame.name.empty() ? frame.system_name : frame.name;
      if (name.empty()) continue;
      named = true;
      *out += "      " + name;
      if (!frame.file.empty()) *out += "  " + frame.file + ":" + std::to_string(frame.line);
      *out += "\n";
    }
    if (!named) {
      const std::string object = frames.MappingName(location.mapping);
      *out += "      " + Hex(pcs[i]) + (object.empty() ? "" : "  (in " + object + ")") + "\n";
    }
  }
}

std::string UtcTime(int64_t wall_nanos) {
  const time_t seconds = static_cast<time_t>(wall_nanos / 1000000000);
  struct tm tm;
  gmtime_r(&seconds, &tm);
  char buf[64];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

class SymbolizerAdapter final : public SymbolSource {
 public:
  explicit SymbolizerAdapter(Symbolizer& symbolizer) : symbolizer_(symbolizer) {
    symbolizer_.Refresh();
  }
  std::vector<MappingInfo> Mappings() override { return symbolizer_.Mappings(); }
  LocationInfo Symbolize(uint64_t address) override {
    return symbolizer_.Symbolize(address);
  }

 private:
  Symbolizer& symbolizer_;
};

}  // namespace

std::string ThreadDumpText(const ThreadDump& dump, SymbolSource& symbols,
                           size_t max_bytes) {
  std::unordered_map<int32_t, const DumpedThread*> by_tid;
  size_t agent = 0;
  for (const DumpedThread& t : dump.threads) {
    by_tid.emplace(t.tid, &t);
    agent += t.agent ? 1 : 0;
  }
  std::string out;
  char head[256];
  std::snprintf(head, sizeof(head),
                "pprof-agent thread dump: pid %d, %zu threads (%zu of pprof-agent), "
                "taken %s in %.1f ms\n",
                dump.pid, dump.threads.size(), agent, UtcTime(dump.time_nanos).c_str(),
                static_cast<double>(dump.duration_nanos) / 1e6);
  out += head;
  if (!dump.stack_error.empty()) {
    out += "NO STACKS in this dump: " + dump.stack_error + "\n";
  }
  out += "\n";
  const std::vector<WaitNode> nodes = WaitNodesOf(dump);
  if (!dump.waits_tracked) {
    out += "wait-for graph: not available: the lock hooks record waits only while "
           "a contention profile is on (PPROF_AGENT_MUTEX_RATE or "
           "PPROF_AGENT_BLOCK_RATE > 0)\n";
  } else {
    out += FormatWaitSummary(nodes, AnalyzeWaitGraph(nodes));
  }
  out += "\n";

  Frames frames(symbols);
  // Application threads first, then the agent's, each by tid.
  std::vector<const DumpedThread*> order;
  for (const DumpedThread& t : dump.threads) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const DumpedThread* a, const DumpedThread* b) {
    if (a->agent != b->agent) return !a->agent;
    return a->tid < b->tid;
  });
  size_t written = 0;
  for (const DumpedThread* tp : order) {
    if (!TextHasRoom(&out, max_bytes)) break;
    ++written;
    const DumpedThread& t = *tp;
    out += ThreadLabel(t) + " [" + ThreadStateText(t.state) + "]";
    if (t.agent) out += " (pprof-agent)";
    out += ":\n";
    if (t.waiting) {
      out += "  waiting " + FormatWaitDuration(t.waited_ns) + " for " +
             DescribeLock(t.wait.kind, t.wait.lock, t.wait.mutex);
      if (t.holders.empty()) {
        out += t.wait.kind == LockKind::kCondvar || t.wait.kind == LockKind::kSpin
                   ? "\n"
                   : ", holder unknown\n";
      } else {
        out += ", held by ";
        for (size_t i = 0; i < t.holders.size(); ++i) {
          if (i > 0) out += ", ";
          auto it = by_tid.find(t.holders[i]);
          out += it == by_tid.end()
                     ? "thread " + std::to_string(t.holders[i]) + " (no longer exists)"
                     : ThreadLabel(*it->second);
          if (t.holders[i] == t.tid) out += " (itself)";
        }
        out += "\n";
      }
    }
    if (t.has_stack) {
      AppendStack(t.pcs, frames, "", &out);
    } else {
      out += "  (stack missing: " + t.missing +
             (t.wchan.empty() ? "" : "; kernel wait channel: " + t.wchan) + ")\n";
    }
    if (t.waiting) {
      size_t shown = 0;
      for (int32_t holder : t.holders) {
        if (holder == t.tid) continue;
        auto it = by_tid.find(holder);
        if (it == by_tid.end()) continue;
        if (shown == kMaxHolderStacks) {
          out += "  (" + std::to_string(t.holders.size() - shown) +
                 " more holders; see their own entries)\n";
          break;
        }
        ++shown;
        const DumpedThread& h = *it->second;
        out += "  holder " + ThreadLabel(h) + " [" + ThreadStateText(h.state) + "]";
        if (h.waiting) {
          out += ", itself waiting " + FormatWaitDuration(h.waited_ns) + " for " +
                 DescribeLock(h.wait.kind, h.wait.lock, h.wait.mutex);
        }
        out += ":\n";
        if (h.has_stack) {
          AppendCompactStack(h.pcs, frames, &out);
        } else {
          out += "      (stack missing: " + h.missing + ")\n";
        }
      }
    }
    out += "\n";
  }
  if (written < order.size()) {
    out += "# " +
           TruncationComment(max_bytes, order.size() - written, order.size(),
                             "threads") +
           "\n";
  }
  for (const std::string& comment : dump.comments) out += "# " + comment + "\n";
  return out;
}

std::string ThreadDumpText(const ThreadDump& dump, Symbolizer& symbols) {
  SymbolizerAdapter source(symbols);
  return ThreadDumpText(dump, source);
}

}  // namespace pprof_agent::internal
