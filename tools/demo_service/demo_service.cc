// pprof_agent_demo: a small multi-threaded "service" that links the agent and
// has one recognisable function per profile, so that a newcomer can point
// `go tool pprof` at it and see what each profile is for.
//
// What shows up where (the functions are noinline so they keep their names):
//   heap (inuse_space)     RecordSessionHistory grows without bound (a leak);
//                          CacheInsert holds a steady few MiB.
//   allocs (alloc_space)   BuildRequestContext dominates: short-lived maps and
//                          strings made and freed on every request.
//   profile (CPU)          ComputeChecksum.
//   mutex / block          CacheLookup / CacheInsert share one std::mutex.
//   container labels       (README "Finding map problems") ParseQueryParams
//   and lifetimes          builds a small unordered_map per request (churn,
//                          dies in < 1 ms); IndexRequestId grows one
//                          unordered_map without reserve() (rehash growth);
//                          BuildBatchReport runs in short-lived "demo-batch"
//                          threads whose std::map reports outlive them (leak,
//                          thread_state=exited).
//
// Only the public header of the agent is used, as a real service would.

#include <pprof_agent/pprof_agent.h>
#include <pthread.h>
#include <semaphore.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#if defined(__clang__)
#define DEMO_NOINLINE __attribute__((noinline))
#else
// noclone too: a ".constprop" clone would show up under a mangled-looking
// name and hide the point of the demo.
#define DEMO_NOINLINE __attribute__((noinline, noclone))
#endif

namespace demo {
namespace {

// Distinct user keys; the cache converges to this many entries.
constexpr int kCacheKeys = 4096;
// A cache hit is treated as stale (and rewritten) once in this many hits, so
// CacheInsert keeps allocating while its in-use size stays flat.
constexpr int kStaleOneIn = 16;
// One request in this many leaves a record in the session history.
constexpr int kHistoryOneIn = 16;
constexpr size_t kHistoryRecordBytes = 512;
// The "leak" stops growing here (about 300 MiB) so that a demo forgotten in a
// terminal cannot take the machine down.
constexpr size_t kMaxHistoryEntries = 500000;
constexpr int kChecksumRounds = 16;
constexpr size_t kBodyBytes = 4096;
constexpr auto kRequestPause = std::chrono::milliseconds(1);
constexpr int kReportEverySeconds = 10;

std::atomic<bool> g_stop{false};
sem_t g_wake;  // posted by the signal handler: async-signal-safe.
std::atomic<int> g_signal{0};

std::atomic<uint64_t> g_next_request_id{1};
std::atomic<uint64_t> g_requests_served{0};
std::atomic<uint64_t> g_cache_hits{0};
std::atomic<uint64_t> g_checksum_sink{0};

std::mutex g_cache_mu;
std::unordered_map<std::string, std::string> g_cache;  // guarded by g_cache_mu

std::mutex g_history_mu;
std::map<uint64_t, std::string> g_session_history;  // guarded by g_history_mu

// Every request id, in a map that is never reserved: it rehashes again and
// again as it grows (stops at kMaxIndexedRequests, about 80 MiB).
constexpr size_t kMaxIndexedRequests = size_t{1} << 21;
std::mutex g_index_mu;
std::unordered_map<uint64_t, uint64_t> g_request_index;  // guarded by g_index_mu

// Reports built by short-lived batch threads and never dropped (up to
// kMaxBatchReports, about 100 MiB): memory held after its thread exited.
constexpr size_t kMaxBatchReports = 400;
constexpr int kBatchReportEntries = 2000;
constexpr auto kBatchEvery = std::chrono::seconds(2);
std::mutex g_reports_mu;
std::vector<std::unique_ptr<std::map<uint64_t, std::string>>> g_reports;  // guarded

}  // namespace

// The functions from here to WorkerLoop have external linkage so that profiles
// show them as demo::Name rather than demo::(anonymous namespace)::Name.

// A named wrapper so that stacks read demo::HandleRequest(demo::Rng&) rather
// than spelling out every template argument of std::mt19937_64.
struct Rng {
  explicit Rng(uint64_t seed) : engine(seed) {}
  uint64_t operator()() { return engine(); }
  std::mt19937_64 engine;
};

struct RequestContext {
  uint64_t id = 0;
  int user = 0;
  std::string path;
  std::map<std::string, std::string> headers;
  std::vector<std::string> path_segments;
  std::string body;
};

// Every request builds its own maps and strings and drops them when done: the
// biggest allocator by bytes, and almost nothing of it stays live.
DEMO_NOINLINE RequestContext BuildRequestContext(uint64_t id, Rng& rng) {
  RequestContext ctx;
  ctx.id = id;
  ctx.user = static_cast<int>(rng() % kCacheKeys);
  ctx.path = "/api/v1/users/" + std::to_string(ctx.user) + "/orders/" +
             std::to_string(id % 997) + "/items";
  ctx.headers["host"] = "demo.internal";
  ctx.headers["user-agent"] = "pprof-agent-demo/1.0 (linux; x86_64)";
  ctx.headers["accept"] = "application/json, text/plain;q=0.9, */*;q=0.1";
  ctx.headers["x-request-id"] = "req-" + std::to_string(id);
  ctx.headers["x-user"] = "user:" + std::to_string(ctx.user);
  ctx.headers["x-trace"] = std::to_string(rng()) + "-" + std::to_string(rng());
  for (int i = 0; i < 6; ++i) {
    ctx.headers["x-extra-" + std::to_string(i)] =
        std::string(32 + rng() % 64, static_cast<char>('a' + i));
  }
  size_t start = 1;
  while (start < ctx.path.size()) {
    size_t end = ctx.path.find('/', start);
    if (end == std::string::npos) end = ctx.path.size();
    ctx.path_segments.emplace_back(ctx.path.substr(start, end - start));
    start = end + 1;
  }
  ctx.body.reserve(kBodyBytes);
  while (ctx.body.size() < kBodyBytes) {
    ctx.body += std::to_string(rng());
    ctx.body += ',';
  }
  return ctx;
}

// Real arithmetic over the request body (an FNV-1a variant with extra
// mixing), so the CPU profile has one clear hot spot.
DEMO_NOINLINE uint64_t ComputeChecksum(std::string_view data, int rounds) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int r = 0; r < rounds; ++r) {
    for (unsigned char c : data) {
      h ^= c;
      h *= 0x100000001b3ULL;
      h ^= h >> 29;
      h = (h << 7) | (h >> 57);
    }
    h += static_cast<uint64_t>(r) * 0x9e3779b97f4a7c15ULL;
  }
  return h;
}

DEMO_NOINLINE bool CacheLookup(const std::string& key, std::string* value) {
  std::lock_guard<std::mutex> lock(g_cache_mu);
  auto it = g_cache.find(key);
  if (it == g_cache.end()) return false;
  *value = it->second;
  return true;
}

// The cache holds at most kCacheKeys entries of about 1 KiB: a steady slice
// of inuse_space, while rewrites keep it in the allocs profile.
DEMO_NOINLINE void CacheInsert(const std::string& key, uint64_t checksum) {
  std::string value;
  value.reserve(1024);
  while (value.size() < 1000) {
    value += std::to_string(checksum);
    checksum = checksum * 6364136223846793005ULL + 1442695040888963407ULL;
  }
  std::lock_guard<std::mutex> lock(g_cache_mu);
  g_cache[key] = std::move(value);
}

// The leak: every kHistoryOneIn-th request appends a record to a global map
// that nothing ever trims. Watch it climb in inuse_space.
DEMO_NOINLINE void RecordSessionHistory(const RequestContext& ctx,
                                        uint64_t checksum) {
  std::string record;
  record.reserve(kHistoryRecordBytes);
  record += ctx.path;
  for (const auto& [name, value] : ctx.headers) {
    if (record.size() + name.size() + value.size() + 2 > kHistoryRecordBytes) {
      break;
    }
    record += ';';
    record += name;
    record += '=';
    record += value;
  }
  record += ";checksum=" + std::to_string(checksum);
  record.resize(kHistoryRecordBytes, ' ');
  std::lock_guard<std::mutex> lock(g_history_mu);
  if (g_session_history.size() < kMaxHistoryEntries) {
    g_session_history.emplace(ctx.id, std::move(record));
  }
}

// Churn: a small map per request, freed when the request is done.
DEMO_NOINLINE uint64_t ParseQueryParams(const RequestContext& ctx) {
  std::unordered_map<std::string, std::string> params;
  params.reserve(8);
  params["user"] = std::to_string(ctx.user);
  params["id"] = std::to_string(ctx.id);
  params["trace"] = ctx.headers.at("x-trace");
  params["path"] = ctx.path;
  uint64_t h = 0;
  for (const auto& [name, value] : params) h += name.size() * 31 + value.size();
  return h;
}

// Growth: one map that only ever grows, never reserved.
DEMO_NOINLINE void IndexRequestId(uint64_t id, uint64_t checksum) {
  std::lock_guard<std::mutex> lock(g_index_mu);
  if (g_request_index.size() < kMaxIndexedRequests) g_request_index[id] = checksum;
}

// Leak: a batch thread builds a report and leaves it behind when it exits.
DEMO_NOINLINE void BuildBatchReport(uint64_t batch) {
  auto report = std::make_unique<std::map<uint64_t, std::string>>();
  for (int i = 0; i < kBatchReportEntries; ++i) {
    (*report)[batch * kBatchReportEntries + i] =
        "batch " + std::to_string(batch) + " row " + std::to_string(i) +
        std::string(48, '.');
  }
  std::lock_guard<std::mutex> lock(g_reports_mu);
  if (g_reports.size() < kMaxBatchReports) g_reports.push_back(std::move(report));
}

// Starts one short-lived "demo-batch" thread every kBatchEvery.
void BatchLoop() {
  uint64_t batch = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    std::thread worker([b = batch++] {
      pthread_setname_np(pthread_self(), "demo-batch");
      BuildBatchReport(b);
    });
    worker.join();
    for (auto slept = std::chrono::milliseconds(0);
         slept < kBatchEvery && !g_stop.load(std::memory_order_relaxed);
         slept += std::chrono::milliseconds(100)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

size_t SessionHistorySize() {
  std::lock_guard<std::mutex> lock(g_history_mu);
  return g_session_history.size();
}

DEMO_NOINLINE void HandleRequest(Rng& rng) {
  const uint64_t id = g_next_request_id.fetch_add(1, std::memory_order_relaxed);
  RequestContext ctx = BuildRequestContext(id, rng);
  const uint64_t checksum = ComputeChecksum(ctx.body, kChecksumRounds);
  const std::string& key = ctx.headers["x-user"];
  std::string cached;
  if (CacheLookup(key, &cached)) {
    g_cache_hits.fetch_add(1, std::memory_order_relaxed);
    if (rng() % kStaleOneIn == 0) CacheInsert(key, checksum);
  } else {
    CacheInsert(key, checksum);
  }
  if (id % kHistoryOneIn == 0) RecordSessionHistory(ctx, checksum);
  IndexRequestId(id, checksum);
  g_checksum_sink.fetch_xor(checksum + cached.size() + ParseQueryParams(ctx),
                            std::memory_order_relaxed);
  g_requests_served.fetch_add(1, std::memory_order_relaxed);
}

void WorkerLoop(int index) {
  Rng rng(0x5eed0000ULL + static_cast<uint64_t>(index));
  while (!g_stop.load(std::memory_order_relaxed)) {
    HandleRequest(rng);
    std::this_thread::sleep_for(kRequestPause);
  }
}

namespace {

void OnSignal(int sig) {
  g_signal.store(sig, std::memory_order_relaxed);
  g_stop.store(true, std::memory_order_relaxed);
  sem_post(&g_wake);
}

struct Flags {
  int threads = 4;
  double duration_seconds = 0;  // 0: until SIGINT/SIGTERM
  std::string address;          // empty: PPROF_AGENT_ADDR or the default
};

void PrintUsage(FILE* out) {
  std::fprintf(out,
               "usage: pprof_agent_demo [--threads N] [--duration SECONDS] "
               "[--addr HOST:PORT]\n"
               "  --threads N         worker threads (1..256, default 4)\n"
               "  --duration SECONDS  run time; 0 (default) runs until "
               "SIGINT/SIGTERM\n"
               "  --addr HOST:PORT    where the agent serves (default: "
               "$PPROF_AGENT_ADDR or 127.0.0.1:6060; port 0 picks one)\n");
}

// Accepts "--name value" and "--name=value". Returns false on a bad command
// line after printing why.
bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      PrintUsage(stdout);
      std::exit(0);
    }
    std::string name = arg;
    std::string value;
    bool has_value = false;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != arg.npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    if (name != "--threads" && name != "--duration" && name != "--addr") {
      std::fprintf(stderr, "pprof_agent_demo: unknown argument '%s'\n",
                   arg.c_str());
      return false;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "pprof_agent_demo: %s needs a value\n",
                     name.c_str());
        return false;
      }
      value = argv[++i];
    }
    char* end = nullptr;
    errno = 0;
    if (name == "--threads") {
      long n = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || errno != 0 || n < 1 || n > 256) {
        std::fprintf(stderr,
                     "pprof_agent_demo: --threads must be 1..256, got '%s'\n",
                     value.c_str());
        return false;
      }
      flags->threads = static_cast<int>(n);
    } else if (name == "--duration") {
      double d = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || errno != 0 || !(d >= 0) ||
          d > 1e9) {
        std::fprintf(stderr,
                     "pprof_agent_demo: --duration must be a number of "
                     "seconds >= 0, got '%s'\n",
                     value.c_str());
        return false;
      }
      flags->duration_seconds = d;
    } else {
      flags->address = value;
    }
  }
  return true;
}

// The host part of the address the agent was asked to use, as a client on
// this machine would reach it.
std::string DisplayHost(const Flags& flags) {
  std::string addr = flags.address;
  if (addr.empty()) {
    const char* env = std::getenv("PPROF_AGENT_ADDR");
    if (env != nullptr) addr = env;
  }
  std::string host = "127.0.0.1";
  if (size_t colon = addr.rfind(':'); colon != std::string::npos) {
    host = addr.substr(0, colon);
  }
  if (host.empty() || host == "0.0.0.0" || host == "*") host = "127.0.0.1";
  if (host == "[::]" || host == "::") host = "[::1]";
  if (host.find(':') != std::string::npos && host.front() != '[') {
    host = "[" + host + "]";
  }
  return host;
}

void PrintInstructions(const std::string& hostport) {
  const std::string base = "http://" + hostport + "/debug/pprof";
  std::printf(
      "\nTry:\n"
      "  curl %s/\n"
      "      the index: every profile with its current count\n"
      "  go tool pprof -top %s/heap\n"
      "      inuse_space: RecordSessionHistory keeps growing (the leak);\n"
      "      CacheInsert holds a steady few MiB\n"
      "  go tool pprof -top -sample_index=alloc_space %s/allocs\n"
      "      alloc_space: BuildRequestContext dominates (short-lived "
      "maps/strings)\n"
      "  curl '%s/heap?debug=1'\n"
      "      the same heap profile as text\n"
      "  go tool pprof -top -sample_index=alloc_space '%s/allocs?seconds=30'\n"
      "      what was allocated during the next 30 s\n"
      "  go tool pprof -top '%s/profile?seconds=10'\n"
      "      CPU: ComputeChecksum\n"
      "  go tool pprof -top %s/mutex\n"
      "      contention on the cache lock: CacheLookup / CacheInsert\n"
      "  go tool pprof -http=: %s/heap\n"
      "      the same in a browser (flame graph, source view)\n"
      "  go tool pprof -top -tagfocus=container=std::unordered_map %s/allocs\n"
      "      map churn and growth (README: Finding map problems)\n"
      "  go tool pprof -top -tagfocus=thread_state=exited "
      "-sample_index=inuse_space %s/heap\n"
      "      memory still held by threads that have exited: BuildBatchReport\n\n",
      base.c_str(), base.c_str(), base.c_str(), base.c_str(), base.c_str(),
      base.c_str(), base.c_str(), base.c_str(), base.c_str(), base.c_str());
}

void PrintProgress(std::chrono::steady_clock::time_point start) {
  const double elapsed = std::chrono::duration<double>(
                             std::chrono::steady_clock::now() - start)
                             .count();
  const uint64_t served = g_requests_served.load(std::memory_order_relaxed);
  const size_t history = SessionHistorySize();
  std::printf(
      "[%6.0fs] %llu requests (%.0f/s), %llu cache hits, session history "
      "%zu records (~%.1f MiB)\n",
      elapsed, static_cast<unsigned long long>(served),
      elapsed > 0 ? served / elapsed : 0.0,
      static_cast<unsigned long long>(
          g_cache_hits.load(std::memory_order_relaxed)),
      history, history * (kHistoryRecordBytes + 64) / (1024.0 * 1024.0));
}

timespec MonotonicAfter(double seconds) {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const double whole = static_cast<double>(static_cast<int64_t>(seconds));
  ts.tv_sec += static_cast<time_t>(whole);
  ts.tv_nsec += static_cast<long>((seconds - whole) * 1e9);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec += 1;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

bool Before(const timespec& a, const timespec& b) {
  return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

int Main(int argc, char** argv) {
  // Line-buffered even into a pipe, so a test or a log sees the port at once.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) {
    PrintUsage(stderr);
    return 2;
  }

  sem_init(&g_wake, 0, 0);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  pprof_agent::Options options;
  options.address = flags.address;
  const pprof_agent::Status status = pprof_agent::Start(options);
  const int port = pprof_agent::Port();
  std::printf("pprof_agent_demo: pid %d, %d worker thread%s, ",
              static_cast<int>(getpid()), flags.threads,
              flags.threads == 1 ? "" : "s");
  if (flags.duration_seconds > 0) {
    std::printf("running for %g s\n", flags.duration_seconds);
  } else {
    std::printf("running until Ctrl-C (SIGINT) or SIGTERM\n");
  }
  if (!status.ok()) {
    std::printf(
        "pprof_agent_demo: the agent did not start: %s\n"
        "pprof_agent_demo: continuing without the /debug/pprof server\n",
        status.message().c_str());
  } else if (port == 0) {
    std::printf("pprof_agent_demo: the agent is not serving (address off)\n");
  } else {
    const std::string hostport = DisplayHost(flags) + ":" + std::to_string(port);
    std::printf("pprof_agent_demo: serving http://%s/debug/pprof/ (port %d)\n",
                hostport.c_str(), port);
    PrintInstructions(hostport);
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  workers.reserve(flags.threads);
  for (int i = 0; i < flags.threads; ++i) workers.emplace_back(WorkerLoop, i);
  std::thread batches(BatchLoop);

  const bool bounded = flags.duration_seconds > 0;
  const timespec deadline = MonotonicAfter(flags.duration_seconds);
  timespec next_report = MonotonicAfter(kReportEverySeconds);
  while (!g_stop.load(std::memory_order_relaxed)) {
    const timespec wake =
        bounded && Before(deadline, next_report) ? deadline : next_report;
    if (sem_clockwait(&g_wake, CLOCK_MONOTONIC, &wake) == 0) continue;
    if (errno == EINTR) continue;
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (bounded && !Before(now, deadline)) break;
    if (!Before(now, next_report)) {
      PrintProgress(start);
      next_report = MonotonicAfter(kReportEverySeconds);
    }
  }
  g_stop.store(true, std::memory_order_relaxed);
  if (int sig = g_signal.load(std::memory_order_relaxed); sig != 0) {
    std::printf("pprof_agent_demo: %s received, shutting down\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM");
  }
  for (std::thread& t : workers) t.join();
  batches.join();
  if (status.ok()) pprof_agent::Stop();
  PrintProgress(start);
  std::printf("pprof_agent_demo: done (checksum %016llx)\n",
              static_cast<unsigned long long>(
                  g_checksum_sink.load(std::memory_order_relaxed)));
  return 0;
}

}  // namespace
}  // namespace demo

int main(int argc, char** argv) { return demo::Main(argc, argv); }
