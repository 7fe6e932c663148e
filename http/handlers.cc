// The /debug/pprof endpoints; see handlers.h. Routing follows Go's
// net/http/pprof: /debug/pprof/<name> looks up a profile by name, with
// cmdline and symbol as fixed endpoints beside the profiles.
#include "http/handlers.h"
#include "profiler/races/race_store.h"

#include <fcntl.h>
#include <strings.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <exception>
#include <string_view>

#include "http/lifetimes_handler.h"
#include "profiler/heap/container_classifier.h"
#include "profiler/contention/contention_profiler.h"
#include "profiler/heap/heap_profiler.h"
#include "profiler/base/runtime.h"
#include "profiler/symbols/symbolizer.h"
#include "profiler/threads/thread_create_profiler.h"
#include "profiler/threads/thread_dump.h"
#include "proto/profile_builder.h"

namespace pprof_agent::internal {
namespace {

constexpr std::string_view kPrefix = "/debug/pprof/";

// Compares in time that depends only on the lengths, so the response time
// does not reveal how much of a guessed token was right.
bool ConstantTimeEquals(std::string_view given, std::string_view secret) {
  volatile unsigned char diff = given.size() == secret.size() ? 0 : 1;
  for (size_t i = 0; i < secret.size(); ++i) {
    const char g = i < given.size() ? given[i] : 0;
    diff = diff | static_cast<unsigned char>(g ^ secret[i]);
  }
  return diff == 0;
}

bool ReadWholeFile(const char* path, std::string* out) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::string data;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  *out = std::move(data);
  return true;
}

// The contention profiles' line under the index table.
std::string ContentionIndexNote(const ContentionCounts& mutex,
                                const ContentionCounts& block) {
  return "<p>pprof-agent: mutex profile records 1 in " +
         std::to_string(MutexRate()) +
         " contended releases (0: off); block profile records waits of " +
         std::to_string(BlockRate()) +
         " ns and more, shorter ones sampled (0: off); " +
         std::to_string(mutex.dropped + block.dropped) +
         " lock stack captures dropped, " +
         std::to_string(mutex.carried + block.carried) +
         " events over the capture budget folded into later samples.</p>\n";
}

bool IsHeapProfile(std::string_view name) {
  return name == "heap" || name == "allocs";
}

}  // namespace

std::string HttpResponse::Header(const std::string& name) const {
  if (name == "Content-Type") return content_type;
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return "";
}

HttpResponse ErrorResponse(int status, std::string message) {
  HttpResponse response;
  response.status = status;
  response.content_type = kTextContentType;
  response.headers.emplace_back("X-Go-Pprof", "1");
  response.body = std::move(message);
  response.body.push_back('\n');
  return response;
}

HttpResponse TextResponse(std::string body) {
  HttpResponse response;
  response.content_type = kTextContentType;
  response.body = std::move(body);
  return response;
}

HttpResponse ProfileResponse(std::string gzipped, const std::string& filename) {
  if (gzipped.empty()) {
    return ErrorResponse(500, "could not encode the profile");
  }
  HttpResponse response;
  response.content_type = "application/octet-stream";
  response.headers.emplace_back("Content-Disposition",
                                "attachment; filename=\"" + filename + "\"");
  response.body = std::move(gzipped);
  return response;
}

std::optional<HttpResponse> RefuseDeltaQuery(const HttpRequest& request,
                                             int64_t max_seconds,
                                             const std::string& name) {
  const std::string* seconds = FindParam(request.params, "seconds");
  if (seconds != nullptr && !seconds->empty()) {
    return ErrorResponse(
        400, "\"seconds\" parameter is not supported for this profile type");
  }
  ProfileQuery query;
  if (auto error = ParseProfileQuery(request.params, max_seconds, &query)) {
    return ErrorResponse(error->status, error->message);
  }
  if (query.debug != 0) {
    return ErrorResponse(400, name + " supports only debug=0");
  }
  return std::nullopt;
}

void AddCommonHeaders(HttpResponse* response) {
  for (const auto& header : response->headers) {
    if (strcasecmp(header.first.c_str(), "X-Content-Type-Options") == 0) return;
  }
  response->headers.emplace_back("X-Content-Type-Options", "nosniff");
}

Handlers::Handlers(const Config& config)
    : token_(config.token),
      max_seconds_(config.max_seconds),
      cpu_hz_(config.cpu_hz),
      cpu_signal_(config.cpu_signal) {}

Handlers::~Handlers() = default;

HttpResponse Handlers::Serve(const HttpRequest& request) {
  HttpResponse response;
  try {
    response = Route(request);
  } catch (const std::exception& e) {
    response = ErrorResponse(500, std::string("internal error: ") + e.what());
  } catch (...) {
    response = ErrorResponse(500, "internal error");
  }
  AddCommonHeaders(&response);
  return response;
}

void Handlers::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(wait_mu_);
    shutting_down_ = true;
  }
  wait_cv_.notify_all();
}

bool Handlers::Authorized(const HttpRequest& request) const {
  if (token_.empty()) return true;
  // "Authorization: Bearer <token>" (scheme case-insensitive, RFC 7235), or
  // ?token=<token> for clients that cannot set headers (go tool pprof).
  std::string_view auth = request.authorization;
  constexpr std::string_view kBearer = "bearer ";
  if (auth.size() > kBearer.size() &&
      strncasecmp(auth.data(), kBearer.data(), kBearer.size()) == 0) {
    std::string_view given = auth.substr(kBearer.size());
    while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
    if (ConstantTimeEquals(given, token_)) return true;
  }
  if (const std::string* given = FindParam(request.params, "token")) {
    if (ConstantTimeEquals(*given, token_)) return true;
  }
  return false;
}

HttpResponse Handlers::Route(const HttpRequest& request) {
  if (!Authorized(request)) {
    HttpResponse response =
        ErrorResponse(401,
                      "unauthorized: this agent needs its token "
                      "(Authorization: Bearer <token> or ?token=)");
    response.headers.emplace_back("WWW-Authenticate",
                                  "Bearer realm=\"pprof-agent\"");
    return response;
  }
  const std::string& path = request.path;
  if (path == "/debug/pprof") {
    // As Go's ServeMux does for a subtree registered with a trailing slash.
    HttpResponse response;
    response.status = 301;
    std::string location(kPrefix);
    if (!request.raw_query.empty()) location += "?" + request.raw_query;
    response.headers.emplace_back("Location", location);
    return response;
  }
  if (path.compare(0, kPrefix.size(), kPrefix) != 0) {
    return ErrorResponse(404, "404 page not found");
  }
  const std::string name = path.substr(kPrefix.size());
  if (name.empty()) return Index();
  if (name == "cmdline") return Cmdline();
  if (name == "symbol") return Symbol(request);
  if (IsHeapProfile(name)) return Heap(name, request);
  if (name == "delta_heap") return DeltaHeap(request);
  if (name == "lifetimes") {
    return ServeLifetimes(request, max_seconds_, [this](int64_t seconds, HttpResponse* refusal) {
      return WaitWindow(seconds, refusal, [] {}, [] {});
    });
  }
  if (name == "profile") return CpuProfile(request);
  if (name == "mutex" || name == "block") return Contention(name, request);
  if (name == "delta_mutex" || name == "delta_block") {
    return DeltaContention(name, request);
  }
  if (name == "goroutine") return Goroutine(request);
  if (name == "threadcreate") return ThreadCreate(request);
  if (name == "races") return Races(request);
  return ErrorResponse(404, "Unknown profile");
}

HttpResponse Handlers::Index() {
  const HeapCounts counts = HeapCountsNow();
  const ContentionCounts mutex = ContentionCountsNow(ContentionKind::kMutex);
  const ContentionCounts block = ContentionCountsNow(ContentionKind::kBlock);
  struct Row {
    const char* name;
    std::string count;  // "" for endpoints that are not profiles
    const char* description;
  };
  // Sorted by name, as Go lists them.
  const Row rows[] = {
      {"allocs", std::to_string(counts.stacks),
       "A sampling of all past memory allocations (count: allocation sites)"},
      {"block", std::to_string(block.stacks),
       "Stack traces that led to blocking on pthread mutexes, rwlocks, "
       "condition variables and spinlocks (count: stacks)"},
      {"cmdline", "", "The command line invocation of the current program"},
      {"goroutine", std::to_string(CountApplicationThreads()),
       "Stack traces of all current threads (pprof-agent's goroutines are "
       "the process's threads). Use debug=2 as a query parameter for a full "
       "per-thread dump that opens with deadlocks and wait-for chains."},
      {"heap", std::to_string(counts.live_samples),
       "A sampling of memory allocations of live objects (count: live sampled "
       "blocks). Add ?seconds=N for a delta; the gc parameter is accepted and "
       "ignored."},
      {"mutex", std::to_string(mutex.stacks),
       "Stack traces of holders of contended pthread mutexes and rwlocks "
       "(count: stacks)"},
      {"profile", "",
       "CPU profile. You can specify the duration in the seconds GET "
       "parameter (and the rate in hz). After you get the profile file, "
       "use the go tool pprof command to investigate the profile."},
      {"races", std::to_string(SnapshotRaces().reports.size()),
       "Concurrent container access caught by the checked containers "
       "(pprof_agent/checked.h), both sides of each (count: reports). Add "
       "?seconds=N for a delta."},
      {"symbol", "", "Maps given program counters to function names"},
      {"threadcreate", std::to_string(ThreadCreateTotal()),
       "Stack traces that led to the creation of new threads"},
  };
  std::string html =
      "<html>\n<head>\n<title>/debug/pprof/</title>\n<style>\n"
      ".profile-name{\n\tdisplay:inline-block;\n\twidth:6rem;\n}\n"
      "</style>\n</head>\n<body>\n/debug/pprof/\n<br>\n"
      "<p>Set debug=1 as a query parameter to export in legacy text "
      "format</p>\n<br>\nTypes of profiles available:\n<table>\n"
      "<thead><td>Count</td><td>Profile</td></thead>\n";
  for (const Row& row : rows) {
    html += "<tr>\n<td>" + row.count + "</td><td><a href='" + row.name +
            "?debug=1'>" + row.name + "</a></td>\n</tr>\n";
  }
  html += "</table>\n<a href=\"goroutine?debug=2\">full goroutine stack dump</a>\n";
  html += "<br>\n<p>\nProfile Descriptions:\n<ul>\n";
  for (const Row& row : rows) {
    html += std::string("<li><div class=profile-name>") + row.name +
            ": </div> " + row.description + "</li>\n";
  }
  html += "</ul>\n</p>\n<p>pprof-agent: heap sampled every " +
          std::to_string(HeapRate()) +
          " bytes on average (0: off, 1: every allocation); " +
          std::to_string(counts.dropped) +
          " heap samples dropped (tables full or busy; see the profile's "
          "comments).</p>\n" +
          ContentionIndexNote(mutex, block) + "</body>\n</html>\n";
  HttpResponse response;
  response.content_type = "text/html; charset=utf-8";
  response.body = std::move(html);
  return response;
}

HttpResponse Handlers::Cmdline() {
  // argv NUL-terminated each; Go joins os.Args with NUL, so no trailing NUL.
  std::string cmdline;
  if (!ReadWholeFile("/proc/self/cmdline", &cmdline)) {
    return ErrorResponse(500, "cannot read /proc/self/cmdline");
  }
  if (!cmdline.empty() && cmdline.back() == '\0') cmdline.pop_back();
  return TextResponse(std::move(cmdline));
}

HttpResponse Handlers::Symbol(const HttpRequest& request) {
  // Go reads the POST body, or for other methods the raw query string.
  const std::string input = request.method == "POST"
                                ? request.body
                                : SymbolQueryFromRawQuery(request.raw_query);
  std::vector<uint64_t> addresses;
  if (auto error = ParseSymbolAddresses(input, &addresses)) {
    return ErrorResponse(error->status, error->message);
  }
  // pprof only checks that this is > 0 (symbols available); Go always
  // writes it first, even before the answers to a POST.
  std::string body = "num_symbols: 1\n";
  if (!addresses.empty()) {
    Symbolizer& symbolizer = Symbolizer::Global();
    symbolizer.Refresh();
    for (uint64_t address : addresses) {
      // The address as the client sent it: pprof already adjusted return
      // addresses when it built the profile.
      const LocationInfo location = symbolizer.Symbolize(address);
      if (location.frames.empty()) continue;
      // The last frame is the real function the others were inlined into:
      // the one a symbol table lookup of the address names.
      const FrameInfo& frame = location.frames.back();
      const std::string& name =
          frame.name.empty() ? frame.system_name : frame.name;
      if (name.empty()) continue;
      char hex[2 + 16 + 1];
      std::snprintf(hex, sizeof(hex), "0x%" PRIx64, address);
      body += hex;
      body += ' ';
      body += name;
      body += '\n';
    }
  }
  return TextResponse(std::move(body));
}

HttpResponse Handlers::Heap(const std::string& name,
                            const HttpRequest& request) {
  ProfileQuery query;
  if (auto error = ParseProfileQuery(request.params, max_seconds_, &query)) {
    return ErrorResponse(error->status, error->message);
  }
  const std::string default_type =
      name == "heap" ? "inuse_space" : "alloc_space";
  if (query.seconds > 0) {
    HeapRaw p0, p1;
    HttpResponse refusal;
    if (!WaitWindow(query.seconds, &refusal, [&p0] { p0 = CollectHeap(); },
                    [&p1] { p1 = CollectHeap(); })) {
      return refusal;
    }
    Snapshot snapshot = HeapProfile(p1, &p0, default_type);
    AddContainerLabels(&snapshot, Symbolizer::Global());
    return ProfileResponse(BuildProfileGzip(snapshot, Symbolizer::Global()),
                           name + "-delta");
  }
  Snapshot snapshot = HeapProfile(CollectHeap(), nullptr, default_type);
  AddContainerLabels(&snapshot, Symbolizer::Global());
  if (query.debug != 0) {
    // Go writes the legacy text for any debug > 0 on heap and allocs.
    return TextResponse(LegacyHeapText(snapshot, Symbolizer::Global()));
  }
  return ProfileResponse(BuildProfileGzip(snapshot, Symbolizer::Global()),
                         name);
}

HttpResponse Handlers::DeltaHeap(const HttpRequest& request) {
  // Pyroscope's godeltaprof semantics: alloc_* since the previous delta_heap
  // request, inuse_* as of now; the first request returns absolute values.
  // Protobuf only, no `seconds`: the scraper's interval is the window.
  if (auto refusal = RefuseDeltaQuery(request, max_seconds_, "delta_heap")) {
    return *refusal;
  }
  Snapshot snapshot;
  {
    // Collect and swap under one lock, so that concurrent scrapers see
    // adjoining windows and no allocation is counted twice or lost.
    std::lock_guard<std::mutex> lock(delta_heap_mu_);
    auto now = std::make_unique<HeapRaw>(CollectHeap());
    snapshot = HeapProfile(*now, last_delta_heap_.get(), "inuse_space");
    last_delta_heap_ = std::move(now);
  }
  AddContainerLabels(&snapshot, Symbolizer::Global());
  return ProfileResponse(BuildProfileGzip(snapshot, Symbolizer::Global()),
                         "delta_heap");
}

bool Handlers::BeginWait(HttpResponse* refusal) {
  std::lock_guard<std::mutex> lock(wait_mu_);
  if (shutting_down_) {
    *refusal = ErrorResponse(503, "the agent's server is stopping");
    return false;
  }
  if (waiting_ >= kMaxConcurrentWaits) {
    *refusal = ErrorResponse(
        429, "too many concurrent delta profiles (at most " +
                 std::to_string(kMaxConcurrentWaits) + "); retry later");
    return false;
  }
  ++waiting_;
  return true;
}

void Handlers::EndWait() {
  std::lock_guard<std::mutex> lock(wait_mu_);
  --waiting_;
}

bool Handlers::Sleep(int64_t seconds) {
  std::unique_lock<std::mutex> lock(wait_mu_);
  // wait_for measures on the steady clock: wall-clock jumps do not shorten
  // or stretch the profile window.
  return !wait_cv_.wait_for(lock, std::chrono::seconds(seconds),
                            [this] { return shutting_down_; });
}

}  // namespace pprof_agent::internal
