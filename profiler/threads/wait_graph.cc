// Wait-for graph analysis and its summary text; see wait_graph.h.
#include "profiler/threads/wait_graph.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <unordered_map>
#include <utility>

namespace pprof_agent::internal {
namespace {

std::string Hex(uintptr_t v) {
  char buf[2 + 16 + 1];
  std::snprintf(buf, sizeof(buf), "0x%" PRIxPTR, v);
  return buf;
}

class Graph {
 public:
  explicit Graph(const std::vector<WaitNode>& nodes) : nodes_(nodes) {
    index_.reserve(nodes.size());
    for (size_t i = 0; i < nodes.size(); ++i) {
      index_.emplace(nodes[i].tid, static_cast<int>(i));
    }
    edges_.resize(nodes.size());
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (!nodes[i].waiting) continue;
      for (int32_t holder : nodes[i].holders) {
        const int j = Find(holder);
        if (j < 0) continue;
        if (std::find(edges_[i].begin(), edges_[i].end(), j) == edges_[i].end()) {
          edges_[i].push_back(j);
        }
      }
    }
  }

  int Find(int32_t tid) const {
    auto it = index_.find(tid);
    return it == index_.end() ? -1 : it->second;
  }
  size_t size() const { return nodes_.size(); }
  const std::vector<int>& Edges(int i) const { return edges_[i]; }

  // Strongly connected components (Tarjan, iterative: a long chain must not
  // overflow the server thread's stack). Components come out in reverse
  // topological order; each lists node indexes.
  std::vector<std::vector<int>> Components() const {
    const int n = static_cast<int>(size());
    std::vector<int> index(n, -1), low(n, 0);
    std::vector<bool> on_stack(n, false);
    std::vector<int> stack;
    std::vector<std::vector<int>> out;
    int next_index = 0;
    struct Frame {
      int node;
      size_t edge;
    };
    std::vector<Frame> call;
    for (int root = 0; root < n; ++root) {
      if (index[root] >= 0) continue;
      call.push_back({root, 0});
      index[root] = low[root] = next_index++;
      stack.push_back(root);
      on_stack[root] = true;
      while (!call.empty()) {
        Frame& f = call.back();
        const std::vector<int>& edges = edges_[f.node];
        if (f.edge < edges.size()) {
          const int w = edges[f.edge++];
          if (index[w] < 0) {
            index[w] = low[w] = next_index++;
            stack.push_back(w);
            on_stack[w] = true;
            call.push_back({w, 0});
          } else if (on_stack[w]) {
            low[f.node] = std::min(low[f.node], index[w]);
          }
          continue;
        }
        const int v = f.node;
        call.pop_back();
        if (!call.empty()) {
          low[call.back().node] = std::min(low[call.back().node], low[v]);
        }
        if (low[v] == index[v]) {
          std::vector<int> component;
          int w;
          do {
            w = stack.back();
            stack.pop_back();
            on_stack[w] = false;
            component.push_back(w);
          } while (w != v);
          out.push_back(std::move(component));
        }
      }
    }
    return out;
  }

 private:
  const std::vector<WaitNode>& nodes_;
  std::unordered_map<int32_t, int> index_;
  std::vector<std::vector<int>> edges_;
};

// One cycle inside a deadlocked component, from its smallest tid, always
// following the first edge that stays inside the component.
std::vector<int> CycleIn(const Graph& graph, const std::vector<WaitNode>& nodes,
                         const std::vector<int>& component,
                         const std::vector<int>& component_of, int id) {
  int start = component.front();
  for (int v : component) {
    if (nodes[v].tid < nodes[start].tid) start = v;
  }
  std::vector<int> path;
  std::unordered_map<int, size_t> position;
  int cur = start;
  while (position.find(cur) == position.end()) {
    position.emplace(cur, path.size());
    path.push_back(cur);
    int next = -1;
    for (int w : graph.Edges(cur)) {
      if (component_of[w] == id) {
        next = w;
        break;
      }
    }
    if (next < 0) break;  // cannot happen in a strongly connected component
    cur = next;
  }
  std::vector<int> cycle(path.begin() + static_cast<long>(position[cur]), path.end());
  // Start at the smallest tid.
  auto smallest = std::min_element(cycle.begin(), cycle.end(), [&](int a, int b) {
    return nodes[a].tid < nodes[b].tid;
  });
  std::rotate(cycle.begin(), smallest, cycle.end());
  return cycle;
}

const char* StateWord(char state) {
  switch (state) {
    case 'R': return "running";
    case 'S': return "sleeping";
    case 'D': return "disk sleep";
    case 'T': return "stopped";
    case 't': return "tracing stop";
    case 'Z': return "zombie";
    case 'X': return "dead";
    case 'I': return "idle";
    case 'P': return "parked";
    default: return "state unknown";
  }
}

class Formatter {
 public:
  explicit Formatter(const std::vector<WaitNode>& nodes) {
    for (size_t i = 0; i < nodes.size(); ++i) by_tid_.emplace(nodes[i].tid, &nodes[i]);
  }

  const WaitNode* Node(int32_t tid) const {
    auto it = by_tid_.find(tid);
    return it == by_tid_.end() ? nullptr : it->second;
  }

  std::string Thread(int32_t tid) const {
    const WaitNode* node = Node(tid);
    std::string out = "thread " + std::to_string(tid);
    if (node == nullptr) return out + " (no longer exists)";
    return out + " (" + (node->name.empty() ? "?" : node->name) + ")";
  }

  // "waits for mutex X held by thread B (b)", naming `next` as the holder
  // when given (the one on a cycle or chain).
  std::string Waits(const WaitNode& node, int32_t next) const {
    std::string out = "waits for " + DescribeLock(node.kind, node.lock, node.mutex);
    if (node.holders.empty()) return out + " (holder unknown)";
    const int32_t shown = next != 0 ? next : node.holders.front();
    out += " held by " + Thread(shown);
    if (node.holders.size() > 1) {
      out += " and " + std::to_string(node.holders.size() - 1) + " other" +
             (node.holders.size() > 2 ? "s" : "");
    }
    return out;
  }

 private:
  std::unordered_map<int32_t, const WaitNode*> by_tid_;
};

}  // namespace

WaitGraphAnalysis AnalyzeWaitGraph(const std::vector<WaitNode>& nodes) {
  WaitGraphAnalysis result;
  const Graph graph(nodes);
  const int n = static_cast<int>(nodes.size());

  // Deadlocks: components with a cycle (more than one node, or a self-edge).
  std::vector<std::vector<int>> components = graph.Components();
  std::vector<int> component_of(n, -1);
  for (size_t c = 0; c < components.size(); ++c) {
    for (int v : components[c]) component_of[v] = static_cast<int>(c);
  }
  std::vector<int> deadlock_of(n, -1);
  struct Found {
    std::vector<int> cycle;
    std::vector<int> others;
  };
  std::vector<Found> found;
  for (size_t c = 0; c < components.size(); ++c) {
    const std::vector<int>& component = components[c];
    const int v0 = component.front();
    const bool self_edge =
        component.size() == 1 &&
        std::find(graph.Edges(v0).begin(), graph.Edges(v0).end(), v0) !=
            graph.Edges(v0).end();
    if (component.size() < 2 && !self_edge) continue;
    Found f;
    f.cycle = CycleIn(graph, nodes, component, component_of, static_cast<int>(c));
    for (int v : component) {
      if (std::find(f.cycle.begin(), f.cycle.end(), v) == f.cycle.end()) {
        f.others.push_back(v);
      }
    }
    found.push_back(std::move(f));
  }
  // Deterministic order: by the smallest tid of each cycle.
  std::sort(found.begin(), found.end(), [&](const Found& a, const Found& b) {
    return nodes[a.cycle.front()].tid < nodes[b.cycle.front()].tid;
  });
  for (size_t d = 0; d < found.size(); ++d) {
    std::vector<int32_t> cycle, others;
    for (int v : found[d].cycle) {
      cycle.push_back(nodes[v].tid);
      deadlock_of[v] = static_cast<int>(d);
    }
    for (int v : found[d].others) {
      others.push_back(nodes[v].tid);
      deadlock_of[v] = static_cast<int>(d);
    }
    std::sort(others.begin(), others.end());
    result.deadlocks.push_back(std::move(cycle));
    result.deadlock_others.push_back(std::move(others));
  }

  // Chains from every waiting thread that nobody waits for.
  std::vector<int> waited_for_by(n, 0);
  for (int v = 0; v < n; ++v) {
    for (int w : graph.Edges(v)) ++waited_for_by[w];
  }
  for (int v = 0; v < n; ++v) {
    if (!nodes[v].waiting || deadlock_of[v] >= 0 || waited_for_by[v] > 0) continue;
    if (nodes[v].holders.empty()) continue;
    WaitGraphAnalysis::Chain chain;
    chain.waited_ns = nodes[v].waited_ns;
    chain.tids.push_back(nodes[v].tid);
    std::vector<bool> seen(n, false);
    seen[v] = true;
    int cur = v;
    while (true) {
      const WaitNode& node = nodes[cur];
      if (!node.waiting || node.holders.empty()) break;
      // Prefer a holder in a deadlock (the chain that explains the hang),
      // else one that waits itself (the longer story), else the first.
      int next = -1;
      int32_t next_tid = node.holders.front();
      for (int w : graph.Edges(cur)) {
        if (deadlock_of[w] >= 0) {
          next = w;
          break;
        }
      }
      if (next < 0) {
        for (int w : graph.Edges(cur)) {
          if (nodes[w].waiting) {
            next = w;
            break;
          }
        }
      }
      if (next < 0 && !graph.Edges(cur).empty()) next = graph.Edges(cur).front();
      if (next >= 0) next_tid = nodes[next].tid;
      chain.tids.push_back(next_tid);
      if (next < 0 || seen[next]) break;  // a holder that is not in the dump
      seen[next] = true;
      if (deadlock_of[next] >= 0) {
        chain.deadlock = deadlock_of[next];
        break;
      }
      cur = next;
    }
    result.chains.push_back(std::move(chain));
  }
  std::sort(result.chains.begin(), result.chains.end(),
            [](const WaitGraphAnalysis::Chain& a, const WaitGraphAnalysis::Chain& b) {
              const bool da = a.deadlock >= 0, db = b.deadlock >= 0;
              if (da != db) return da;
              if (a.tids.size() != b.tids.size()) return a.tids.size() > b.tids.size();
              if (a.waited_ns != b.waited_ns) return a.waited_ns > b.waited_ns;
              return a.tids.front() < b.tids.front();
            });

  for (int v = 0; v < n; ++v) {
    if (nodes[v].waiting) result.longest.push_back(nodes[v].tid);
  }
  const Formatter lookup(nodes);
  std::sort(result.longest.begin(), result.longest.end(), [&](int32_t a, int32_t b) {
    const int64_t wa = lookup.Node(a)->waited_ns, wb = lookup.Node(b)->waited_ns;
    if (wa != wb) return wa > wb;
    return a < b;
  });
  return result;
}

std::string DescribeLock(LockKind kind, uintptr_t lock, uintptr_t mutex) {
  switch (kind) {
    case LockKind::kMutex:
      return "mutex " + Hex(lock);
    case LockKind::kRwlockRead:
      return "rwlock " + Hex(lock) + " (to read)";
    case LockKind::kRwlockWrite:
      return "rwlock " + Hex(lock) + " (to write)";
    case LockKind::kCondvar:
      return "condition variable " + Hex(lock) +
             (mutex != 0 ? " (mutex " + Hex(mutex) + ")" : std::string());
    case LockKind::kSpin:
      return "spinlock " + Hex(lock);
    case LockKind::kNone:
      break;
  }
  return "lock " + Hex(lock);
}

std::string FormatWaitDuration(int64_t ns) {
  char buf[48];
  if (ns < 0) ns = 0;
  if (ns >= 1000000000) {
    std::snprintf(buf, sizeof(buf), "%.3fs", static_cast<double>(ns) / 1e9);
  } else if (ns >= 1000000) {
    std::snprintf(buf, sizeof(buf), "%" PRId64 "ms", ns / 1000000);
  } else {
    std::snprintf(buf, sizeof(buf), "%" PRId64 "us", ns / 1000);
  }
  return buf;
}

std::string FormatWaitSummary(const std::vector<WaitNode>& nodes,
                              const WaitGraphAnalysis& analysis,
                              size_t max_chains, size_t max_longest) {
  const Formatter f(nodes);
  std::string out;
  size_t waiting = 0;
  for (const WaitNode& node : nodes) waiting += node.waiting ? 1 : 0;
  if (waiting == 0) {
    return "wait-for graph: no thread is blocked in a hooked lock call\n";
  }
  out += "wait-for graph: " + std::to_string(waiting) + " thread" +
         (waiting == 1 ? "" : "s") + " blocked in hooked lock calls, " +
         std::to_string(analysis.deadlocks.size()) + " deadlock" +
         (analysis.deadlocks.size() == 1 ? "" : "s") + "\n";

  for (size_t d = 0; d < analysis.deadlocks.size(); ++d) {
    const std::vector<int32_t>& cycle = analysis.deadlocks[d];
    out += "DEADLOCK: " + f.Thread(cycle[0]) + " ";
    for (size_t i = 0; i < cycle.size(); ++i) {
      const WaitNode* node = f.Node(cycle[i]);
      const int32_t next = cycle[(i + 1) % cycle.size()];
      if (i > 0) out += ", which ";
      out += node != nullptr ? f.Waits(*node, next) : "waits";
    }
    if (cycle.size() == 1) out += " (itself)";
    out += "\n";
    const std::vector<int32_t>& others = analysis.deadlock_others[d];
    if (!others.empty()) {
      out += "  also in this deadlock:";
      for (size_t i = 0; i < others.size(); ++i) {
        out += (i == 0 ? " " : ", ") + f.Thread(others[i]);
      }
      out += "\n";
    }
  }

  size_t shown = 0, omitted = 0;
  for (const WaitGraphAnalysis::Chain& chain : analysis.chains) {
    if (chain.deadlock < 0 && chain.tids.size() < 3) continue;  // one edge
    if (shown == max_chains) {
      ++omitted;
      continue;
    }
    if (shown == 0) out += "wait chains:\n";
    ++shown;
    out += "  " + f.Thread(chain.tids[0]) + " ";
    for (size_t i = 0; i + 1 < chain.tids.size(); ++i) {
      const WaitNode* node = f.Node(chain.tids[i]);
      if (i > 0) out += ", which ";
      out += node != nullptr ? f.Waits(*node, chain.tids[i + 1]) : "waits";
    }
    if (chain.deadlock >= 0) {
      out += ", which is in DEADLOCK " + std::to_string(chain.deadlock + 1);
    } else if (const WaitNode* last = f.Node(chain.tids.back())) {
      out += std::string(", which is not blocked in a hooked lock (") +
             last->state + " " + StateWord(last->state) + ")";
    }
    out += " [" + FormatWaitDuration(chain.waited_ns) + "]\n";
  }
  if (omitted > 0) {
    out += "  ... " + std::to_string(omitted) + " more chains\n";
  }

  if (!analysis.longest.empty() && max_longest > 0) {
    out += "blocked longest:\n";
    for (size_t i = 0; i < analysis.longest.size() && i < max_longest; ++i) {
      const WaitNode* node = f.Node(analysis.longest[i]);
      if (node == nullptr) continue;
      out += "  " + FormatWaitDuration(node->waited_ns) + "\t" +
             f.Thread(node->tid) + " " + f.Waits(*node, 0) + "\n";
    }
    if (analysis.longest.size() > max_longest) {
      out += "  ... " + std::to_string(analysis.longest.size() - max_longest) +
             " more blocked threads\n";
    }
  }
  return out;
}

}  // namespace pprof_agent::internal
