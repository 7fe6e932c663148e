// Helpers of the integration tests; see integration_util.h.
#include "tests/integration/integration_util.h"

#include <dirent.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "http/httplib_compat.h"

extern char** environ;

namespace pprof_agent::integration {
namespace {

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool ParseInt(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str() || *end != '\0') return false;
  *out = v;
  return true;
}

// "k1:[1 2] k2:[3 bytes]" -> {k1: [1, 2], k2: [3]}; non-numbers skipped.
void ParseLabels(const std::string& text,
                 std::map<std::string, std::vector<int64_t>>* labels) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find(":[", pos);
    if (open == std::string::npos) return;
    const size_t close = text.find(']', open);
    if (close == std::string::npos) return;
    size_t key_start = text.rfind(' ', open);
    key_start = key_start == std::string::npos || key_start < pos ? pos : key_start + 1;
    const std::string key = text.substr(key_start, open - key_start);
    std::istringstream values(text.substr(open + 2, close - open - 2));
    std::string token;
    while (values >> token) {
      int64_t v;
      if (ParseInt(token, &v)) (*labels)[key].push_back(v);
    }
    pos = close + 1;
  }
}

// "name file:line s=N[(system name)]" -> "name". Names may contain spaces
// ("operator new(unsigned long)"); the file:line part never does here.
std::string FunctionFromLineText(const std::string& text) {
  const size_t s = text.rfind(" s=");
  if (s == std::string::npos) return Trim(text);
  const size_t space = s == 0 ? std::string::npos : text.rfind(' ', s - 1);
  if (space == std::string::npos) return Trim(text);
  return Trim(text.substr(0, space));
}

}  // namespace

const char* AgentLibraryPath() { return PA_IT_AGENT_SO; }
const char* GoBinaryPath() { return PA_IT_GO; }
std::string ProgramPath(const std::string& name) {
  return std::string(PA_IT_PROGRAM_DIR) + "/" + name;
}

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && *base ? base : "/tmp") +
                        "/pprof_agent_it.XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

const char* FlavourName(Flavour flavour) {
  switch (flavour) {
    case Flavour::kPreloaded: return "preloaded";
    case Flavour::kLinked: return "linked";
    case Flavour::kNone: return "no agent";
  }
  return "?";
}

std::string AgentProgram::BaseUrl() const {
  return "http://127.0.0.1:" + std::to_string(port);
}

int ParseServingPort(const std::string& line) {
  static const std::regex kServing(
      R"(pprof-agent: serving on http://[^ ]*:([0-9]+)/debug/pprof/)");
  std::smatch m;
  if (!std::regex_search(line, m, kServing)) return 0;
  return std::stoi(m[1].str());
}

void SetAgentEnv(Flavour flavour, EnvChanges* env) {
  if (flavour == Flavour::kPreloaded) env->set["LD_PRELOAD"] = AgentLibraryPath();
#if defined(PA_SANITIZE_ADDRESS)
  if (flavour == Flavour::kLinked) {
    env->set["LD_PRELOAD"] = AgentLibraryPath();
    env->set.emplace("PPROF_AGENT_AUTOSTART", "0");
  }
#endif
}

std::optional<AgentProgram> StartProgram(const std::string& program,
                                         Flavour flavour,
                                         const std::vector<std::string>& args,
                                         EnvChanges env, bool expect_server,
                                         std::string* error) {
  const std::string path =
      ProgramPath(program + (flavour == Flavour::kLinked ? "_linked" : "_plain"));
  // The agent must see only what the test sets: drop PPROF_AGENT_* and
  // LD_PRELOAD inherited from whoever runs the tests.
  for (char** p = environ; p != nullptr && *p != nullptr; ++p) {
    const std::string entry = *p;
    const std::string name = entry.substr(0, entry.find('='));
    if ((StartsWith(name, "PPROF_AGENT_") || name == "LD_PRELOAD") &&
        env.set.count(name) == 0) {
      env.unset.push_back(name);
    }
  }
  SetAgentEnv(flavour, &env);
  if (env.set.count("PPROF_AGENT_ADDR") == 0) {
    env.set["PPROF_AGENT_ADDR"] = "127.0.0.1:0";
  }
  std::vector<std::string> argv = {path};
  argv.insert(argv.end(), args.begin(), args.end());

  AgentProgram result;
  result.process = Subprocess::Start(argv, env, error);
  if (result.process == nullptr) return std::nullopt;
  Subprocess& p = *result.process;
  const bool ready = p.WaitForStdoutLine("READY", kStartTimeout);
  if (expect_server) {
    auto line = p.WaitForStderrLine("serving on", kStartTimeout);
    if (line.has_value()) {
      result.serving_line = *line;
      result.port = ParseServingPort(*line);
    }
  }
  if (!ready || (expect_server && result.port == 0)) {
    const ExitStatus status = p.Wait(Millis(100));
    *error = program + " (" + FlavourName(flavour) + ") did not " +
             (ready ? "log its serving line" : "print READY") + "; " +
             status.Describe() + "\n--- stdout:\n" + p.out() +
             "\n--- stderr:\n" + p.err();
    return std::nullopt;
  }
  return result;
}

std::string HttpResult::Header(const std::string& name) const {
  for (const auto& [key, value] : headers) {
    if (strcasecmp(key.c_str(), name.c_str()) == 0) return value;
  }
  return "";
}

namespace {

HttpResult FromHttplib(const httplib::Result& res) {
  HttpResult out;
  if (!res) {
    out.error = "HTTP request failed: " + httplib::to_string(res.error());
    return out;
  }
  out.status = res->status;
  for (const auto& [key, value] : res->headers) out.headers.emplace(key, value);
  out.body = res->body;
  return out;
}

std::unique_ptr<httplib::Client> MakeClient(int port, Millis timeout) {
  auto client = std::make_unique<httplib::Client>("127.0.0.1", port);
  const auto seconds = timeout.count() / 1000;
  const auto usec = (timeout.count() % 1000) * 1000;
  client->set_connection_timeout(seconds, usec);
  client->set_read_timeout(seconds, usec);
  client->set_write_timeout(seconds, usec);
  // Bodies exactly as the server sent them: the profile is gzip data that
  // the client must not touch, and text bodies are compared byte for byte.
  client->set_decompress(false);
  client->set_keep_alive(false);
  return client;
}

}  // namespace

HttpResult HttpGet(int port, const std::string& path_and_query, Millis timeout,
                   const HttpHeaders& extra_headers) {
  auto client = MakeClient(port, timeout);
  // No Accept-Encoding: we want the identity body.
  httplib::Headers headers = {{"Accept-Encoding", "identity"}};
  for (const auto& [name, value] : extra_headers) headers.emplace(name, value);
  return FromHttplib(client->Get(path_and_query, headers));
}

HttpResult HttpPost(int port, const std::string& path, const std::string& body,
                    Millis timeout) {
  auto client = MakeClient(port, timeout);
  httplib::Headers headers = {{"Accept-Encoding", "identity"}};
  return FromHttplib(client->Post(path, headers, body, "text/plain"));
}

bool WriteFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  return static_cast<bool>(f);
}

CommandResult GoPprof(const TempDir& tmp, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {GoBinaryPath(), "tool", "pprof"};
  argv.insert(argv.end(), args.begin(), args.end());
  EnvChanges env;
  env.set["HOME"] = tmp.path();
  env.set["GOCACHE"] = tmp.File("gocache");
  env.set["PPROF_TMPDIR"] = tmp.File("pprof");
  env.set["GOFLAGS"] = "";
  env.set["GOTOOLCHAIN"] = "local";
  env.set["GOTELEMETRY"] = "off";
  env.unset = {"LD_PRELOAD", "PPROF_BINARY_PATH"};
  return RunCommand(argv, env, kPprofTimeout);
}

int RawProfile::TypeIndex(const std::string& type) const {
  for (size_t i = 0; i < sample_types.size(); ++i) {
    const std::string& t = sample_types[i];
    if (t == type || StartsWith(t, type + "/")) return static_cast<int>(i);
  }
  return -1;
}

bool FunctionNameMatches(const std::string& name, const std::string& function) {
  if (!StartsWith(name, function)) return false;
  if (name.size() == function.size()) return true;
  const char next = name[function.size()];
  return next == '(' || next == ' ';
}

bool RawProfile::SampleHasFunction(const Sample& sample,
                                   const std::string& function) const {
  for (uint64_t id : sample.locations) {
    auto it = functions.find(id);
    if (it == functions.end()) continue;
    for (const std::string& name : it->second) {
      if (FunctionNameMatches(name, function)) return true;
    }
  }
  return false;
}

int64_t RawProfile::SumFor(const std::string& type,
                           const std::string& function) const {
  const int index = TypeIndex(type);
  if (index < 0) return 0;
  int64_t sum = 0;
  for (const Sample& s : samples) {
    if (SampleHasFunction(s, function)) sum += s.values[index];
  }
  return sum;
}

int64_t RawProfile::Total(const std::string& type) const {
  const int index = TypeIndex(type);
  if (index < 0) return 0;
  int64_t sum = 0;
  for (const Sample& s : samples) sum += s.values[index];
  return sum;
}

double ParseGoDurationSeconds(const std::string& text) {
  static const std::regex kPart(R"(([0-9]*\.?[0-9]+)(h|ms|us|µs|ns|m|s)?)");
  double total = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kPart);
       it != std::sregex_iterator(); ++it) {
    const double v = std::stod((*it)[1].str());
    const std::string unit = (*it)[2].str();
    if (unit == "h") total += v * 3600;
    else if (unit == "m") total += v * 60;
    else if (unit == "s" || unit.empty()) total += v;
    else if (unit == "ms") total += v / 1e3;
    else if (unit == "us" || unit == "µs") total += v / 1e6;
    else if (unit == "ns") total += v / 1e9;
  }
  return total;
}

std::optional<RawProfile> ParseRawProfile(const std::string& text,
                                          std::string* error) {
  static const std::regex kLocation(
      R"(^ *([0-9]+): 0x[0-9a-fA-F]+ (M=[0-9]+ )?(\[F\] )?(.*)$)");
  RawProfile p;
  enum { kHeader, kSampleTypes, kSamples, kLocations, kMappings } section = kHeader;
  uint64_t current_location = 0;
  for (const std::string& line : SplitLines(text)) {
    if (line == "Samples:") {
      section = kSampleTypes;
      continue;
    }
    if (line == "Locations") {
      section = kLocations;
      continue;
    }
    if (line == "Mappings") {
      section = kMappings;
      continue;
    }
    switch (section) {
      case kHeader:
        if (StartsWith(line, "Comment: ")) {
          p.comments.push_back(line.substr(9));
        } else if (StartsWith(line, "PeriodType: ")) {
          p.period_type = line.substr(12);
        } else if (StartsWith(line, "Period: ")) {
          ParseInt(line.substr(8), &p.period);
        } else if (StartsWith(line, "Duration: ")) {
          p.duration_seconds = ParseGoDurationSeconds(line.substr(10));
        }
        break;
      case kSampleTypes: {
        std::istringstream types(line);
        std::string t;
        while (types >> t) {
          const size_t d = t.find("[dflt]");
          if (d != std::string::npos) {
            t = t.substr(0, d);
            p.default_type = t.substr(0, t.find('/'));
          }
          p.sample_types.push_back(t);
        }
        section = kSamples;
        break;
      }
      case kSamples: {
        const std::string trimmed = Trim(line);
        if (trimmed.empty()) break;
        if (isdigit(static_cast<unsigned char>(trimmed[0])) || trimmed[0] == '-') {
          const size_t colon = trimmed.find(':');
          if (colon == std::string::npos) {
            *error = "bad sample line: " + line;
            return std::nullopt;
          }
          RawProfile::Sample s;
          std::istringstream values(trimmed.substr(0, colon));
          int64_t v;
          while (values >> v) s.values.push_back(v);
          std::istringstream ids(trimmed.substr(colon + 1));
          uint64_t id;
          while (ids >> id) s.locations.push_back(id);
          if (s.values.size() != p.sample_types.size()) {
            *error = "sample with " + std::to_string(s.values.size()) +
                     " values for " + std::to_string(p.sample_types.size()) +
                     " sample types: " + line;
            return std::nullopt;
          }
          p.samples.push_back(std::move(s));
        } else if (!p.samples.empty()) {
          ParseLabels(trimmed, &p.samples.back().num_labels);
        }
        break;
      }
      case kLocations: {
        std::smatch m;
        if (std::regex_match(line, m, kLocation)) {
          current_location = std::stoull(m[1].str());
          auto& names = p.functions[current_location];
          const std::string rest = Trim(m[4].str());
          if (!rest.empty()) names.push_back(FunctionFromLineText(rest));
        } else if (current_location != 0 && !Trim(line).empty()) {
          // An inlined-into frame of the same location.
          p.functions[current_location].push_back(FunctionFromLineText(Trim(line)));
        }
        break;
      }
      case kMappings:
        break;
    }
  }
  if (p.sample_types.empty()) {
    *error = "no sample types in pprof -raw output";
    return std::nullopt;
  }
  return p;
}

std::optional<RawProfile> FetchRawProfile(const TempDir& tmp, int port,
                                          const std::string& path_and_query,
                                          const std::string& file,
                                          std::string* error) {
  const HttpResult r = HttpGet(port, path_and_query);
  if (r.status != 200) {
    *error = "GET " + path_and_query + ": " +
             (r.status == 0 ? r.error : "status " + std::to_string(r.status)) +
             " " + r.body;
    return std::nullopt;
  }
  const std::string path = tmp.File(file);
  if (!WriteFile(path, r.body)) {
    *error = "cannot write " + path;
    return std::nullopt;
  }
  const CommandResult pprof = GoPprof(tmp, {"-raw", path});
  if (!pprof.ok()) {
    *error = "go tool pprof -raw " + path + ": " + pprof.status.Describe() +
             "\n" + pprof.err;
    return std::nullopt;
  }
  auto parsed = ParseRawProfile(pprof.out, error);
  if (!parsed.has_value()) *error += "\n--- pprof -raw output:\n" + pprof.out;
  return parsed;
}

// --- /proc of a child process ------------------------------------------------

std::string ReadFileText(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> Tasks(pid_t pid) {
  std::vector<std::string> tids;
  if (DIR* d = opendir(("/proc/" + std::to_string(pid) + "/task").c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') tids.push_back(e->d_name);
    }
    closedir(d);
  }
  return tids;
}

int64_t SigQ(pid_t pid) {
  const std::string status = ReadFileText("/proc/" + std::to_string(pid) + "/status");
  std::smatch m;
  static const std::regex kSigQ(R"(SigQ:\s*([0-9]+)/)");
  if (!std::regex_search(status, m, kSigQ)) return -1;
  return std::stoll(m[1].str());
}

std::string PendingSignals(pid_t pid) {
  static const std::regex kPending(R"((SigPnd|ShdPnd):\s*([0-9a-f]+))");
  std::string out;
  for (const std::string& tid : Tasks(pid)) {
    const std::string status =
        ReadFileText("/proc/" + std::to_string(pid) + "/task/" + tid + "/status");
    for (auto it = std::sregex_iterator(status.begin(), status.end(), kPending);
         it != std::sregex_iterator(); ++it) {
      if ((*it)[2].str().find_first_not_of('0') != std::string::npos) {
        out += tid + ":" + (*it)[1].str() + "=" + (*it)[2].str() + " ";
      }
    }
  }
  return out;
}

int PosixTimers(pid_t pid) {
  std::istringstream lines(ReadFileText("/proc/" + std::to_string(pid) + "/timers"));
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) n += line.rfind("ID:", 0) == 0;
  return n;
}

}  // namespace pprof_agent::integration
