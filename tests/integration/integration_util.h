// Shared helpers of the integration tests: where the built programs are,
// starting a test program with the agent (preloaded or linked) and finding
// its port, HTTP requests to it, `go tool pprof` runs, and a parser for
// `go tool pprof -raw` output.
#ifndef PPROF_AGENT_TESTS_INTEGRATION_INTEGRATION_UTIL_H_
#define PPROF_AGENT_TESTS_INTEGRATION_INTEGRATION_UTIL_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/integration/subprocess.h"

namespace pprof_agent::integration {

// Paths fixed at build time (tests/integration/CMakeLists.txt).
const char* AgentLibraryPath();
const char* GoBinaryPath();  // "" when go was not found
std::string ProgramPath(const std::string& name);

// For tests that need `go tool pprof`.
#define PA_IT_SKIP_WITHOUT_GO()                                      \
  if (*::pprof_agent::integration::GoBinaryPath() == '\0')           \
  GTEST_SKIP() << "go was not found when the build was configured"

// Bounds used everywhere: no single wait in these tests is unbounded.
inline constexpr Millis kStartTimeout{15000};
inline constexpr Millis kExitTimeout{10000};
inline constexpr Millis kHttpTimeout{15000};
inline constexpr Millis kPprofTimeout{60000};

// A temporary directory, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// How a test program gets the agent.
enum class Flavour {
  kPreloaded,  // plain executable, LD_PRELOAD=libpprof_agent.so
  kLinked,     // linked against the agent, calls pprof_agent::Start()
  kNone,       // plain executable, no agent at all
};
const char* FlavourName(Flavour flavour);

// Sets in `env` what running a program with the agent in `flavour` takes:
// LD_PRELOAD for kPreloaded. In the ASan build also for kLinked (with
// PPROF_AGENT_AUTOSTART=0 unless `env` sets it, so that only the program's
// own Start() serves): libasan is the first library such a program needs,
// and the agent must come before it for its malloc to be the one called
// (profiler/base/malloc_backend.h). Subprocess adds the ASAN_OPTIONS that this
// order needs.
void SetAgentEnv(Flavour flavour, EnvChanges* env);

// A test program that runs with the agent and serves on a free port.
struct AgentProgram {
  std::unique_ptr<Subprocess> process;
  int port = 0;  // from the agent's "serving on" line; 0 if not serving
  std::string serving_line;
  std::string BaseUrl() const;
};

// Starts `program` (base name; "_plain"/"_linked" is appended per flavour)
// with `args`, PPROF_AGENT_ADDR=127.0.0.1:0 unless `env` sets it, and waits
// for "READY" on stdout and, when `expect_server`, for the agent's serving
// line on stderr. On failure returns null and sets *error to a description
// that includes the child's output.
std::optional<AgentProgram> StartProgram(const std::string& program,
                                         Flavour flavour,
                                         const std::vector<std::string>& args,
                                         EnvChanges env, bool expect_server,
                                         std::string* error);

// The port in "pprof-agent: serving on http://127.0.0.1:PORT/debug/pprof/",
// or 0.
int ParseServingPort(const std::string& line);

// One HTTP response, or status 0 and `error` when the request failed.
struct HttpResult {
  int status = 0;
  std::string error;
  std::multimap<std::string, std::string> headers;
  std::string body;
  std::string Header(const std::string& name) const;  // case-insensitive
};
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;
HttpResult HttpGet(int port, const std::string& path_and_query,
                   Millis timeout = kHttpTimeout, const HttpHeaders& headers = {});
HttpResult HttpPost(int port, const std::string& path, const std::string& body,
                    Millis timeout = kHttpTimeout);

bool WriteFile(const std::string& path, const std::string& data);

// `go tool pprof ARGS...` with HOME, GOCACHE and PPROF_TMPDIR inside `tmp`
// (so nothing outside it is written or read) and a bounded run time.
CommandResult GoPprof(const TempDir& tmp, const std::vector<std::string>& args);

// `go tool pprof -raw`, parsed.
struct RawProfile {
  struct Sample {
    std::vector<int64_t> values;
    std::vector<uint64_t> locations;  // leaf first
    std::map<std::string, std::vector<int64_t>> num_labels;
  };
  std::vector<std::string> sample_types;  // "alloc_objects/count", ...
  std::string default_type;               // "inuse_space": type marked [dflt], or ""
  std::string period_type;                // "space bytes"
  int64_t period = 0;
  double duration_seconds = 0;  // 0 when the profile has none
  std::vector<std::string> comments;
  std::vector<Sample> samples;
  // Location id -> function names of its lines, innermost first.
  std::map<uint64_t, std::vector<std::string>> functions;

  // Index of sample type `type` ("alloc_objects"), or -1.
  int TypeIndex(const std::string& type) const;
  // True if any frame of `sample` is a function named `function` (see
  // FunctionNameMatches).
  bool SampleHasFunction(const Sample& sample, const std::string& function) const;
  // Sum of value `type` over the samples whose stack has `function`.
  int64_t SumFor(const std::string& type, const std::string& function) const;
  // Sum of value `type` over all samples.
  int64_t Total(const std::string& type) const;
};
std::optional<RawProfile> ParseRawProfile(const std::string& text,
                                          std::string* error);

// `name` as pprof prints it ("ns::Fn(int)", "Fn", "Fn(int) const") is the
// function `function` ("ns::Fn" or "Fn"): equal up to the parameter list.
bool FunctionNameMatches(const std::string& name, const std::string& function);

// Fetches `path_and_query` into tmp/<file>, runs `go tool pprof -raw` on it
// and parses the result. On failure returns null with *error set.
std::optional<RawProfile> FetchRawProfile(const TempDir& tmp, int port,
                                          const std::string& path_and_query,
                                          const std::string& file,
                                          std::string* error);

// Seconds from a Go duration string as pprof -raw prints it ("2.001s",
// "1m2s", "500ms"). pprof prints durations with "%.4v", which cuts
// "2.000731s" to "2.00": a number without a unit is read as seconds.
double ParseGoDurationSeconds(const std::string& text);

// --- /proc of a child process (for tests of signals and timers) -----------

// The whole text of a file, "" if it cannot be read.
std::string ReadFileText(const std::string& path);
// The thread ids in /proc/<pid>/task.
std::vector<std::string> Tasks(pid_t pid);
// Queued signals of the process's user (the first number of SigQ), or -1.
int64_t SigQ(pid_t pid);
// "tid:SigPnd=mask " for every thread with a pending signal, and the shared
// set (ShdPnd); "" when nothing is pending anywhere.
std::string PendingSignals(pid_t pid);
// POSIX timers the process owns (one "ID:" line each in /proc/<pid>/timers).
int PosixTimers(pid_t pid);

}  // namespace pprof_agent::integration

#endif  // PPROF_AGENT_TESTS_INTEGRATION_INTEGRATION_UTIL_H_
