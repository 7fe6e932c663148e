// Reliability suite (issue 8): the agent inside real processes under the
// failure modes that hurt profilers in production. Each test prints its
// figures on a "RELIABILITY ..." line.
//
// Sizes come from PA_RELIABILITY_SCALE: "ci" (default; the whole suite fits
// in the CI budget on a loaded 2-core machine) or "long" (the closing-note
// figures: 200 of each fork kind, 200 bootstrap runs, 1000 dlopen cycles per
// thread, 10k threads, 2^20 stacks). Rerun one scenario with e.g.
//   PA_RELIABILITY_SCALE=long build/tests/reliability_test --gtest_filter='*ForkStorm*'
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/integration_util.h"
#include "tests/integration/subprocess.h"
#include "tests/suites/reliability/raw_http.h"

extern char** environ;

namespace pprof_agent::reliability {
namespace {

using integration::AgentProgram;
using integration::CommandResult;
using integration::EnvChanges;
using integration::Flavour;
using integration::Millis;
using integration::ProgramPath;
using integration::RunCommand;
using integration::Subprocess;

bool LongMode() {
  const char* s = std::getenv("PA_RELIABILITY_SCALE");
  return s != nullptr && std::string(s) == "long";
}
int Scale(int ci, int long_size) { return LongMode() ? long_size : ci; }

// The test's environment minus anything that would configure the agent, plus
// `set`. LD_PRELOAD is set to the agent when `preload`.
EnvChanges AgentEnv(bool preload, std::map<std::string, std::string> set = {}) {
  EnvChanges env;
  for (char** p = environ; p != nullptr && *p != nullptr; ++p) {
    const std::string entry = *p;
    const std::string name = entry.substr(0, entry.find('='));
    if ((name.rfind("PPROF_AGENT_", 0) == 0 || name == "LD_PRELOAD") &&
        set.count(name) == 0) {
      env.unset.push_back(name);
    }
  }
  if (preload) set["LD_PRELOAD"] = integration::AgentLibraryPath();
  env.set = std::move(set);
  return env;
}

// stderr without the agent's own lines.
std::string WithoutAgentLines(const std::string& text) {
  std::string out;
  for (const std::string& line : integration::SplitLines(text)) {
    if (line.rfind("pprof-agent:", 0) == 0) continue;
    out += line + "\n";
  }
  return out;
}

// Starts a program with a long wait for READY (a flood at rate 1 takes a
// while on a loaded machine) and finds the agent's port.
std::unique_ptr<Subprocess> StartServing(const std::vector<std::string>& argv,
                                         const EnvChanges& env, Millis ready_timeout,
                                         int* port, std::string* error) {
  auto p = Subprocess::Start(argv, env, error);
  if (p == nullptr) return nullptr;
  auto line = p->WaitForStderrLine("serving on", integration::kStartTimeout);
  *port = line ? integration::ParseServingPort(*line) : 0;
  if (*port == 0 || !p->WaitForStdoutLine("READY", ready_timeout)) {
    *error = "no serving line or READY; " + p->Wait(Millis(100)).Describe() +
             "\n--- stdout:\n" + p->out() + "\n--- stderr:\n" + p->err();
    return nullptr;
  }
  return p;
}

// The last "WORK n" the serve-mode program printed, reading what is pending.
long LastWork(Subprocess& p) {
  p.PumpUntil([] { return false; }, Millis(50));
  long last = -1;
  for (const std::string& line : p.OutLines()) {
    if (line.rfind("WORK ", 0) == 0) last = std::atol(line.c_str() + 5);
  }
  return last;
}

// The host's own thread made progress within `timeout`.
bool WorkAdvances(Subprocess& p, Millis timeout) {
  const long before = LastWork(p);
  const auto deadline = integration::Clock::now() + timeout;
  while (integration::Clock::now() < deadline) {
    if (LastWork(p) > before) return true;
  }
  return false;
}

// VmHWM of process `pid`, or -1.
long PeakRssKiB(pid_t pid) {
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r");
  if (f == nullptr) return -1;
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, "VmHWM:", 6) == 0) kib = std::atol(line + 6);
  }
  std::fclose(f);
  return kib;
}

// ---------------------------------------------------------------------------
// 1. Bad input
// ---------------------------------------------------------------------------

struct BadCase {
  std::string name;
  std::string request;
  bool may_close = false;  // malformed HTTP: closing without an answer is fine
};

std::string Get(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
}
std::string Post(const std::string& target, const std::string& body,
                 const std::string& extra_headers = "") {
  return "POST " + target +
         " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
         "Content-Type: text/plain\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
}
std::string Raw(const std::string& head) { return head; }

std::vector<BadCase> BadInputBattery() {
  std::vector<BadCase> cases;
  auto add = [&](std::string name, std::string request, bool may_close = false) {
    cases.push_back({std::move(name), std::move(request), may_close});
  };
  // seconds: every way to be wrong.
  const std::vector<std::string> bad_seconds = {
      "-1", "0", "abc", "1.5", "1e3", "NaN", "nan", "inf", "-inf", "Infinity",
      "99999999999999999999", "18446744073709551616", "9223372036854775807",
      "9223372036854775808", "301", "100000", "%201", "+1", "0x10", "1%00",
      "%00", "1%20", "%20", "1,2", "1;2", "--1", "0.0", "%D9%A1", "1e-3",
      "%FF", "1%0D%0A", "00000000000000000000000000000000000000301"};
  for (const std::string& s : bad_seconds) {
    add("heap seconds=" + s, Get("/debug/pprof/heap?seconds=" + s));
  }
  for (const std::string ep : {"allocs", "mutex", "block", "delta_heap"}) {
    for (const std::string s : {"NaN", "-1", "abc", "301"}) {
      if (std::string(ep) == "delta_heap") continue;
      add(std::string(ep) + " seconds=" + s,
          Get("/debug/pprof/" + std::string(ep) + "?seconds=" + s));
    }
  }
  // debug
  for (const std::string d : {"3", "-1", "abc", "1.0", "NaN", "%00", "99999999999",
                               "0x1", "1e0", "%201", "1%00", "+1"}) {
    add("heap debug=" + d, Get("/debug/pprof/heap?debug=" + d));
  }
  for (const std::string ep : {"allocs", "mutex", "block"}) {
    add(std::string(ep) + " debug=7", Get("/debug/pprof/" + std::string(ep) + "?debug=7"));
    add(std::string(ep) + " debug=x", Get("/debug/pprof/" + std::string(ep) + "?debug=x"));
  }
  // incompatible and repeated parameters (the first value wins, as in Go)
  add("seconds+debug", Get("/debug/pprof/heap?seconds=1&debug=1"));
  add("debug+seconds", Get("/debug/pprof/heap?debug=1&seconds=1"));
  add("seconds+debug=2", Get("/debug/pprof/allocs?seconds=5&debug=2"));
  add("repeated seconds x,1", Get("/debug/pprof/heap?seconds=x&seconds=1"));
  add("repeated debug 9,1", Get("/debug/pprof/heap?debug=9&debug=1"));
  add("repeated seconds -1,-1", Get("/debug/pprof/heap?seconds=-1&seconds=-1"));
  add("repeated debug 1,1 + seconds", Get("/debug/pprof/heap?debug=1&debug=1&seconds=2"));
  // %00 and other escapes in the path
  add("path %00", Get("/debug/pprof/heap%00"));
  add("path %00 name", Get("/debug/pprof/%00"));
  add("debug %00 prefix", Get("/debug/pprof/heap?debug=%001"));
  add("path bad escape", Get("/debug/pprof/%zz"));
  add("path truncated escape", Get("/debug/pprof/heap%"));
  // 64 KB query strings and paths
  add("64KB query", Get("/debug/pprof/heap?debug=1&x=" + std::string(64 * 1024, 'A')), true);
  add("64KB seconds", Get("/debug/pprof/heap?seconds=" + std::string(64 * 1024, '1')), true);
  add("64KB path", Get("/debug/pprof/" + std::string(64 * 1024, 'p')), true);
  add("1000 params", [] {
        std::string q = "/debug/pprof/heap?seconds=bad";
        for (int i = 0; i < 1000; ++i) q += "&p" + std::to_string(i) + "=v";
        return Get(q);
      }(), true);
  // unknown paths
  for (const std::string path :
       {"/debug/pprof/nonexistent", "/debug/pprof/heapX", "/debug/pprof/HEAP",
        "/debug/pprof/../../../etc/passwd", "/debug/pprof/%2e%2e/%2e%2e/etc/passwd",
        "/debug/pprof/heap/extra", "/etc/passwd", "/debug", "/favicon.ico",
        "/debug/pprof/symbol/x", "/debug/pprof/cmdline/x", "/debug/pprofheap",
        "/%2fdebug%2fpprof%2fheap"}) {
    add(std::string("unknown path ") + path, Get(path));
  }
  // /symbol: garbage in POST bodies and GET queries
  for (const std::string& body :
       {std::string("zzz"), std::string("0x"), std::string("0xZZZZ"),
        std::string("0x1+garbage"), std::string("0x12345678901234567890"),
        std::string("-0x1"), std::string("0x1 0x2"), std::string("\x00\x01\xff", 3),
        std::string("0x1\x00" "0x2", 7), std::string("+++g"),
        std::string("0x1%2") }) {
    add("symbol POST " + std::to_string(cases.size()), Post("/debug/pprof/symbol", body));
  }
  {
    std::string many;
    for (int i = 0; i < 10001; ++i) many += "0x1+";
    add("symbol POST 10001 addresses", Post("/debug/pprof/symbol", many));
  }
  add("symbol POST 70KB body", Post("/debug/pprof/symbol", std::string(70 * 1024, 'f')), true);
  add("symbol POST 1MB body", Post("/debug/pprof/symbol", std::string(1024 * 1024, '1')), true);
  for (const std::string q : {"zzz", "0xZZ", "%00", "0x1%2Bjunk", "0x1+-2"}) {
    add(std::string("symbol GET ") + q, Get(std::string("/debug/pprof/symbol?") + q));
  }
  // malformed HTTP: the server may answer 400 or just close
  add("garbage line", Raw("GARBAGE\r\n\r\n"), true);
  add("binary bytes", Raw(std::string("\x00\x01\x02\xff\xfe\r\n\r\n", 9)), true);
  add("method only", Raw("GET\r\n\r\n"), true);
  add("HTTP/0.9", Raw("GET /debug/pprof/heap\r\n\r\n"), true);
  add("HTTP/9.9", Raw("GET /debug/pprof/heap?debug=x HTTP/9.9\r\nHost: a\r\n\r\n"), true);
  add("extra token", Raw("GET /debug/pprof/heap?debug=x HTTP/1.1 extra\r\nHost: a\r\n\r\n"), true);
  add("lowercase method", Raw("get /debug/pprof/heap HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), true);
  for (const std::string m : {"DELETE", "PUT", "PATCH", "OPTIONS", "BREW"}) {
    add("method " + m, Raw(m + " /debug/pprof/heap HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), true);
  }
  add("CONNECT", Raw("CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: a\r\n\r\n"), true);
  add("absolute form", Get("http://evil.example/debug/pprof/nonexistent"), true);
  add("header without colon", Raw("GET /debug/pprof/heap?debug=x HTTP/1.1\r\nBad Header Line\r\n\r\n"), true);
  add("bare LF", Raw("GET /debug/pprof/heap?debug=x HTTP/1.1\nHost: a\n\n"), true);
  add("Content-Length -1", Raw("POST /debug/pprof/symbol HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nzz"), true);
  add("Content-Length abc", Raw("POST /debug/pprof/symbol HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\nzz"), true);
  add("Content-Length 2^64+", Raw("POST /debug/pprof/symbol HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\nzz"), true);
  add("Content-Length 1MB declared", Raw("POST /debug/pprof/symbol HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nzz"), true);
  add("two Content-Length", Raw("POST /debug/pprof/symbol HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 300\r\n\r\nzzz"), true);
  add("chunked bad size", Raw("POST /debug/pprof/symbol HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"), true);
  add("chunked huge size", Raw("POST /debug/pprof/symbol HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc\r\n0\r\n\r\n"), true);
  add("chunked garbage", Raw("POST /debug/pprof/symbol HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nzzz\r\n0\r\n\r\n"), true);
  add("chunked + Content-Length", Raw("POST /debug/pprof/symbol HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nzzz\r\n0\r\n\r\n"), true);
  // huge headers
  add("64KB header value", Raw("GET /debug/pprof/heap?debug=x HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(64 * 1024, 'h') + "\r\n\r\n"), true);
  add("1MB header value", Raw("GET /debug/pprof/heap?debug=x HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(1024 * 1024, 'h') + "\r\n\r\n"), true);
  add("2000 headers", [] {
        std::string r = "GET /debug/pprof/heap?debug=x HTTP/1.1\r\nHost: a\r\n";
        for (int i = 0; i < 2000; ++i) r += "X-H" + std::to_string(i) + ": " + std::string(40, 'v') + "\r\n";
        return r + "\r\n";
      }(), true);
  add("NUL in header", Raw(std::string("GET /debug/pprof/heap?debug=x HTTP/1.1\r\nHost: a\x00b\r\n\r\n", 53)), true);
  add("bad Authorization", Raw("GET /debug/pprof/heap?debug=x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + std::string(10000, '\xff') + "\r\nConnection: close\r\n\r\n"), true);
  add("Range header", Raw("GET /debug/pprof/heap?debug=x HTTP/1.1\r\nHost: a\r\nRange: bytes=99999999-1\r\nConnection: close\r\n\r\n"), true);
  add("Expect 100", Raw("POST /debug/pprof/symbol HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\nzzz"), true);
  return cases;
}

class ServedProgram : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    p_ = StartServing({ProgramPath("rel_program_plain"), "serve"},
                      AgentEnv(true, {{"PPROF_AGENT_ADDR", "127.0.0.1:0"}}),
                      integration::kStartTimeout, &port_, &error);
    ASSERT_NE(p_, nullptr) << error;
  }
  void TearDown() override {
    if (p_ == nullptr) return;
    p_->CloseStdin();
    const auto status = p_->Wait(integration::kExitTimeout);
    EXPECT_TRUE(status.exited && status.code == 0)
        << status.Describe() << "\n" << p_->err();
  }
  // A normal request is answered.
  ::testing::AssertionResult StillAnswers(bool heavy = false) {
    const RawResponse r = RawExchange(
        port_, Get(heavy ? "/debug/pprof/heap?debug=1" : "/debug/pprof/cmdline"),
        Millis(25000));
    if (r.status == 200) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "normal request: status " << r.status << " closed=" << r.closed
           << " timed_out=" << r.timed_out << " " << r.error;
  }
  std::unique_ptr<Subprocess> p_;
  int port_ = 0;
};

TEST_F(ServedProgram, BadInputBatteryGetsOnly4xxAndTheServiceKeepsAnswering) {
  const std::vector<BadCase> cases = BadInputBattery();
  int answered_4xx = 0, closed = 0, index = 0;
  for (const BadCase& c : cases) {
    const RawResponse r = RawExchange(port_, c.request, Millis(20000));
    const bool is_4xx = r.status >= 400 && r.status < 500;
    const bool closed_ok = c.may_close && r.status == 0 && r.closed;
    EXPECT_TRUE(is_4xx || closed_ok)
        << c.name << ": status " << r.status << " closed=" << r.closed
        << " timed_out=" << r.timed_out << " " << r.error << "\n"
        << r.head << "\n" << r.body.substr(0, 300);
    answered_4xx += is_4xx;
    closed += closed_ok;
    ASSERT_TRUE(StillAnswers(++index % 20 == 0)) << "after " << c.name;
  }
  EXPECT_TRUE(WorkAdvances(*p_, Millis(5000))) << "the host's own thread stalled";
  EXPECT_GE(cases.size(), 100u);
  std::printf("RELIABILITY bad_input requests=%zu answered_4xx=%d closed_by_server=%d\n",
              cases.size(), answered_4xx, closed);
}

// Clients that send part of a request and stall: the server must close them
// (read timeout) and keep serving others meanwhile, and a stalled crowd
// larger than the worker pool only delays others, boundedly.
TEST_F(ServedProgram, SlowClientsAreTimedOutAndOthersAreServed) {
  const std::vector<std::string> partials = {
      "GET /debug/pprof/heap",                                        // no line end
      "GET /debug/pprof/heap HTTP/1.1\r\nHost: a\r\n",                // no blank line
      "POST /debug/pprof/symbol HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0x1+",  // short body
  };
  std::vector<int> fds;
  for (const std::string& partial : partials) {
    const int fd = ConnectTo(port_);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, partial));
    fds.push_back(fd);
  }
  // Fewer stalled clients than workers: others are served at once.
  const auto t0 = integration::Clock::now();
  EXPECT_TRUE(StillAnswers());
  const double served_s = std::chrono::duration<double>(integration::Clock::now() - t0).count();
  int closed_by_server = 0;
  for (int fd : fds) {
    std::string received;
    const bool was_closed = WaitForServerClose(fd, Millis(30000), &received);
    EXPECT_TRUE(was_closed) << "stalled client never closed by the server";
    EXPECT_TRUE(received.empty() || received.find(" 4") != std::string::npos ||
                received.find(" 408") != std::string::npos)
        << received.substr(0, 200);
    closed_by_server += was_closed;
    close(fd);
  }
  // Slowloris: twice as many stalled clients as workers.
  std::vector<int> crowd;
  for (int i = 0; i < 8; ++i) {
    const int fd = ConnectTo(port_);
    ASSERT_GE(fd, 0);
    SendAll(fd, "GET /debug/pprof/heap HTTP/1.1\r\nHost: a\r\n");
    crowd.push_back(fd);
  }
  // Twice as many stalled clients as workers: they hold none (the listener
  // reads requests whole before a worker sees them, http/server.h), so we
  // are answered at once; limits_test.cc asserts it. 25 s catches hangs.
  const auto t1 = integration::Clock::now();
  EXPECT_TRUE(StillAnswers());
  const double crowd_s = std::chrono::duration<double>(integration::Clock::now() - t1).count();
  for (int fd : crowd) close(fd);
  EXPECT_TRUE(StillAnswers());
  EXPECT_TRUE(WorkAdvances(*p_, Millis(5000)));
  std::printf(
      "RELIABILITY slow_clients stalled=%zu closed_by_server=%d served_meanwhile_s=%.2f "
      "slowloris_clients=8 answered_after_s=%.2f\n",
      fds.size(), closed_by_server, served_s, crowd_s);
}

// Clients that go away while the answer is being made or sent.
TEST_F(ServedProgram, ClientsThatDisconnectMidResponseDoNotHurt) {
  int disconnects = 0;
  auto abandon = [&](const std::string& request, bool reset, int read_bytes) {
    const int fd = ConnectTo(port_);
    ASSERT_GE(fd, 0);
    SendAll(fd, request);
    if (read_bytes > 0) {
      char buf[256];
      int got = 0;
      while (got < read_bytes) {
        const ssize_t n = recv(fd, buf, std::min<int>(sizeof(buf), read_bytes - got), 0);
        if (n <= 0) break;
        got += static_cast<int>(n);
      }
    }
    if (reset) {
      linger l = {1, 0};  // close() sends RST
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    close(fd);
    ++disconnects;
  };
  for (int i = 0; i < 5; ++i) {
    abandon(Get("/debug/pprof/heap?debug=1"), false, 0);
    abandon(Get("/debug/pprof/heap"), true, 0);
    abandon(Get("/debug/pprof/allocs?debug=1"), false, 100);  // part of the head
    abandon(Get("/debug/pprof/allocs"), true, 200);
    abandon(Post("/debug/pprof/symbol", "0x1+0x2+0x3"), true, 0);
    abandon(Get("/debug/pprof/"), true, 10);
  }
  // A delta request abandoned while it waits.
  abandon(Get("/debug/pprof/heap?seconds=2"), false, 0);
  abandon(Get("/debug/pprof/allocs?seconds=2"), true, 0);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(StillAnswers(true));
  EXPECT_TRUE(WorkAdvances(*p_, Millis(5000)));
  std::printf("RELIABILITY disconnects=%d\n", disconnects);
}

// ---------------------------------------------------------------------------
// 2. Preload into real programs
// ---------------------------------------------------------------------------

struct RealRun {
  CommandResult plain, agent;
};

RealRun RunBoth(const std::vector<std::string>& argv,
                std::map<std::string, std::string> agent_env, Millis timeout) {
  RealRun r;
  r.plain = RunCommand(argv, AgentEnv(false), timeout);
  if (agent_env.count("PPROF_AGENT_ADDR") == 0) agent_env["PPROF_AGENT_ADDR"] = "127.0.0.1:0";
  r.agent = RunCommand(argv, AgentEnv(true, agent_env), timeout);
  return r;
}

void ExpectSameOutput(const RealRun& r, const std::string& what) {
  EXPECT_TRUE(r.plain.ok()) << what << " without agent: " << r.plain.status.Describe() << r.plain.err;
  EXPECT_TRUE(r.agent.ok()) << what << " with agent: " << r.agent.status.Describe() << r.agent.err;
  EXPECT_EQ(r.plain.out, r.agent.out) << what;
  EXPECT_EQ(WithoutAgentLines(r.plain.err), WithoutAgentLines(r.agent.err)) << what;
}

bool Exists(const char* path) { return access(path, X_OK) == 0; }

TEST(PreloadRealPrograms, Python) {
  if (!Exists("/usr/bin/python3")) GTEST_SKIP() << "no python3";
  const std::string script = R"PY(
import hashlib, json, threading, subprocess
d = {str(i): [j * j for j in range(i % 50)] for i in range(20000)}
h = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()
r = []
def w(k):
    r.append(sum(len(str(x)) for x in range(k * 20000)))
ts = [threading.Thread(target=w, args=(k,)) for k in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print(h, sorted(r))
print(subprocess.run(["/bin/echo", "child"], capture_output=True, text=True).stdout.strip())
)PY";
  const RealRun r = RunBoth({"/usr/bin/python3", "-c", script},
                            {{"PPROF_AGENT_HEAP_RATE", "4096"}}, Millis(60000));
  ExpectSameOutput(r, "python3");
  EXPECT_NE(r.agent.err.find("pprof-agent: serving on"), std::string::npos) << r.agent.err;
  std::printf("RELIABILITY preload python3 stdout_bytes=%zu\n", r.agent.out.size());
}

TEST(PreloadRealPrograms, LsLaRoot) {
  // ls -la / shows /tmp's link count and times, which other processes change:
  // compare with the no-agent run on either side, up to three tries.
  bool same = false;
  RealRun r;
  for (int attempt = 0; attempt < 3 && !same; ++attempt) {
    r = RunBoth({"/bin/ls", "-la", "/"}, {}, Millis(30000));
    const CommandResult after = RunCommand({"/bin/ls", "-la", "/"}, AgentEnv(false), Millis(30000));
    same = r.agent.out == r.plain.out || r.agent.out == after.out;
    if (same) r.plain.out = r.agent.out;
  }
  ExpectSameOutput(r, "ls -la /");
}

TEST(PreloadRealPrograms, BashForkExecLoop) {
  const std::string script =
      "for i in $(seq 50); do /bin/true; done; n=0; "
      "for i in $(seq 20); do n=$((n + $(/bin/echo 1))); done; echo \"n=$n\"; "
      "x=$(ls / | wc -l); echo \"sub=$((x > 0))\"";
  const RealRun r = RunBoth({"/bin/bash", "-c", script}, {}, Millis(120000));
  ExpectSameOutput(r, "bash loop (port 0)");
  // The same with a busy port: every process logs one line and runs on.
  const int busy = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(busy, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(busy, 1), 0);
  socklen_t len = sizeof(addr);
  getsockname(busy, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string busy_addr = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  const RealRun b = RunBoth({"/bin/bash", "-c", script},
                            {{"PPROF_AGENT_ADDR", busy_addr}}, Millis(120000));
  close(busy);
  ExpectSameOutput(b, "bash loop (busy port)");
  int agent_lines = 0;
  for (const std::string& line : integration::SplitLines(b.agent.err)) {
    agent_lines += line.rfind("pprof-agent:", 0) == 0;
  }
  EXPECT_GE(agent_lines, 1);
  std::printf("RELIABILITY preload bash processes>=%d busy_port_log_lines=%d\n",
              1 + 50 + 20 + 2, agent_lines);
}

TEST(PreloadRealPrograms, CurlLocalUrls) {
  if (!Exists("/usr/bin/curl")) GTEST_SKIP() << "no curl";
  // A local HTTP server to fetch from: a program with the agent (its
  // cmdline endpoint answers the same bytes every time).
  int port = 0;
  std::string error;
  auto server = StartServing({ProgramPath("rel_program_plain"), "serve"},
                             AgentEnv(true, {{"PPROF_AGENT_ADDR", "127.0.0.1:0"}}),
                             integration::kStartTimeout, &port, &error);
  ASSERT_NE(server, nullptr) << error;
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/debug/pprof/cmdline";
  const RealRun http = RunBoth({"/usr/bin/curl", "-sS", "-D", "/dev/null", url}, {}, Millis(60000));
  ExpectSameOutput(http, "curl http");
  EXPECT_NE(http.agent.out.find("serve"), std::string::npos);
  const RealRun file = RunBoth({"/usr/bin/curl", "-sS", "file:///etc/os-release"}, {}, Millis(60000));
  ExpectSameOutput(file, "curl file");
  server->CloseStdin();
  server->Wait(integration::kExitTimeout);
}

// ---------------------------------------------------------------------------
// 3. Fork storm
// ---------------------------------------------------------------------------

TEST(ForkStorm, EveryChildFinishesAndStartsClean) {
  const int n = Scale(20, 200);
  const CommandResult r = RunCommand(
      {ProgramPath("rel_program_plain"), "forkstorm", std::to_string(n)},
      AgentEnv(true, {{"PPROF_AGENT_ADDR", "127.0.0.1:0"},
                      {"PPROF_AGENT_HEAP_RATE", "1"}}),
      Millis(LongMode() ? 1800000 : 150000));
  EXPECT_FALSE(r.status.timed_out) << "the parent hung";
  EXPECT_TRUE(r.ok()) << r.status.Describe() << "\n" << r.out << "\n" << r.err;
  const std::string expect = "FORKSTORM fork=" + std::to_string(n) +
                             " forkexec=" + std::to_string(n) +
                             " spawn=" + std::to_string(n) +
                             " vfork=" + std::to_string(n) +
                             " popen=" + std::to_string(n) + " failures=0 hangs=0";
  EXPECT_NE(r.out.find(expect), std::string::npos) << r.out;
  for (const std::string& line : integration::SplitLines(r.out)) {
    if (line.rfind("FORKSTORM", 0) == 0) std::printf("RELIABILITY fork_storm %s\n", line.c_str());
  }
}

// The storm again while a CPU profile runs at 1 kHz over the parent's 9
// threads: children (forked with timers armed in the parent) still finish,
// and the profile is served and valid.
TEST(ForkStorm, UnderCpuProfiling) {
  PA_IT_SKIP_WITHOUT_GO();
  const int n = Scale(10, 200);
  int port = 0;
  std::string error;
  integration::TempDir tmp;
  const std::string go_file = tmp.File("go");
  auto p = StartServing({ProgramPath("rel_program_plain"), "forkstorm", std::to_string(n), go_file},
                        AgentEnv(true, {{"PPROF_AGENT_ADDR", "127.0.0.1:0"},
                                        {"PPROF_AGENT_HEAP_RATE", "1"}}),
                        integration::kStartTimeout, &port, &error);
  ASSERT_NE(p, nullptr) << error;
  const int seconds = LongMode() ? 30 : 3;
  integration::HttpResult profile;
  std::thread fetch([&] {
    profile = integration::HttpGet(
        port, "/debug/pprof/profile?seconds=" + std::to_string(seconds) + "&hz=1000",
        Millis(seconds * 1000 + 60000));
  });
  std::this_thread::sleep_for(Millis(300));
  ASSERT_TRUE(integration::WriteFile(go_file, "go"));
  fetch.join();
  EXPECT_EQ(profile.status, 200) << profile.error << profile.body.substr(0, 200);
  EXPECT_TRUE(p->PumpUntil(
      [&] { return p->out().find("FORKSTORM") != std::string::npos; },
      Millis(LongMode() ? 1800000 : 120000)))
      << "the storm did not finish";
  EXPECT_EQ(integration::HttpGet(port, "/debug/pprof/cmdline").status, 200)
      << "the parent stopped serving";
  p->CloseStdin();
  const auto status = p->Wait(integration::kExitTimeout);
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe() << "\n" << p->err();
  std::string summary;
  for (const std::string& line : p->OutLines()) {
    if (line.rfind("FORKSTORM", 0) == 0) summary = line;
  }
  EXPECT_NE(summary.find("failures=0 hangs=0"), std::string::npos) << summary;
  ASSERT_TRUE(integration::WriteFile(tmp.File("cpu.pb"), profile.body));
  const CommandResult c = integration::GoPprof(tmp, {"-raw", tmp.File("cpu.pb")});
  EXPECT_TRUE(c.ok()) << c.err;
  std::string perr;
  const auto raw = integration::ParseRawProfile(c.out, &perr);
  ASSERT_TRUE(raw.has_value()) << perr;
  std::printf("RELIABILITY fork_storm_cpu profile_s=%d cpu_samples=%lld %s\n", seconds,
              static_cast<long long>(raw->Total("samples")), summary.c_str());
}

// ---------------------------------------------------------------------------
// 4. Bootstrap
// ---------------------------------------------------------------------------

struct RunTally {
  int runs = 0, ok = 0, hangs = 0, crashes = 0, other = 0;
  std::string first_failure;
};

RunTally RunMany(int runs, const std::vector<std::string>& argv,
                 const std::string& expect_out) {
  RunTally t;
  for (int i = 0; i < runs; ++i) {
    const CommandResult r = RunCommand(
        argv,
        AgentEnv(true, {{"PPROF_AGENT_ADDR", "127.0.0.1:0"},
                        {"PPROF_AGENT_HEAP_RATE", i % 2 ? "1" : "4096"}}),
        Millis(30000));
    ++t.runs;
    const bool good = r.ok() && r.out.find(expect_out) != std::string::npos;
    if (good) {
      ++t.ok;
      continue;
    }
    if (r.status.timed_out) ++t.hangs;
    else if (r.status.signal != 0) ++t.crashes;
    else ++t.other;
    if (t.first_failure.empty()) {
      t.first_failure = r.status.Describe() + "\n" + r.out + "\n" + r.err;
    }
  }
  return t;
}

TEST(Bootstrap, StaticConstructorsThatAllocateAndStartThreads) {
  const RunTally t = RunMany(Scale(40, 200), {ProgramPath("rel_bootstrap_plain")},
                             "BOOTSTRAP ok");
  EXPECT_EQ(t.ok, t.runs) << t.first_failure;
  std::printf("RELIABILITY bootstrap static_ctors runs=%d ok=%d hangs=%d crashes=%d other=%d\n",
              t.runs, t.ok, t.hangs, t.crashes, t.other);
}

TEST(Bootstrap, DlopenedLibraryWhoseConstructorStartsAnAllocatingThread) {
  const RunTally t = RunMany(Scale(40, 200),
                             {ProgramPath("rel_program_plain"), "ctorlib",
                              ProgramPath("librel_ctorlib.so")},
                             "CTORLIB ok allocations=2000");
  EXPECT_EQ(t.ok, t.runs) << t.first_failure;
  std::printf("RELIABILITY bootstrap dlopen_ctor runs=%d ok=%d hangs=%d crashes=%d other=%d\n",
              t.runs, t.ok, t.hangs, t.crashes, t.other);
}

// ---------------------------------------------------------------------------
// 5. dlopen storm
// ---------------------------------------------------------------------------

TEST(DlopenStorm, FourThreadsLoadAndUnloadWhileProfilesAreServed) {
  const int iterations = Scale(250, 1000);
  int port = 0;
  std::string error;
  integration::TempDir go_dir;
  const std::string go_file = go_dir.File("go");
  auto p = StartServing({ProgramPath("rel_program_plain"), "dlopen",
                         ProgramPath("librel_dl.so"), std::to_string(iterations), go_file},
                        AgentEnv(true, {{"PPROF_AGENT_ADDR", "127.0.0.1:0"},
                                        {"PPROF_AGENT_HEAP_RATE", "512"}}),
                        integration::kStartTimeout, &port, &error);
  ASSERT_NE(p, nullptr) << error;
  int fetches = 0, good = 0, during_storm = 0;
  // The first profile loads the symbols (slow); the storm starts after it.
  ASSERT_EQ(integration::HttpGet(port, "/debug/pprof/heap").status, 200);
  ASSERT_TRUE(integration::WriteFile(go_file, "go"));
  const auto deadline = integration::Clock::now() + Millis(LongMode() ? 1200000 : 120000);
  bool done = false;
  while (!done && integration::Clock::now() < deadline) {
    const char* path = fetches % 3 == 2 ? "/debug/pprof/heap?debug=1" : "/debug/pprof/heap";
    const integration::HttpResult h = integration::HttpGet(port, path);
    ++fetches;
    good += h.status == 200;
    during_storm += p->out().find("DLOPEN done") == std::string::npos;
    EXPECT_EQ(h.status, 200) << path << " " << h.error << h.body.substr(0, 200);
    // Also paces the fetches (20 ms) so that the loader threads get the CPU.
    done = p->PumpUntil(
        [&] { return p->out().find("DLOPEN done") != std::string::npos; }, Millis(20));
    if (h.status != 200) break;
  }
  ASSERT_TRUE(p->WaitForStdoutLine(
      "DLOPEN done cycles=" + std::to_string(4 * iterations) + " failures=0", Millis(60000)))
      << p->out() << p->err();
  // The profile after the storm, with stacks into unloaded copies, is valid.
  if (*integration::GoBinaryPath() != '\0') {
    integration::TempDir tmp;
    std::string perr;
    auto raw = integration::FetchRawProfile(tmp, port, "/debug/pprof/heap", "heap.pb", &perr);
    EXPECT_TRUE(raw.has_value()) << perr;
  }
  p->CloseStdin();
  const auto status = p->Wait(integration::kExitTimeout);
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe() << p->err();
  std::printf(
      "RELIABILITY dlopen_storm threads=4 cycles=%d profile_fetches=%d ok=%d "
      "started_during_storm=%d\n",
      4 * iterations, fetches, good, during_storm);
  EXPECT_GE(during_storm, 1);
}

// ---------------------------------------------------------------------------
// 6. Thread churn
// ---------------------------------------------------------------------------

TEST(ThreadChurn, ShortLivedThreadsReturnMemory) {
  const int n = Scale(4000, 10000);
  auto run = [&](bool preload) {
    return RunCommand({ProgramPath("rel_program_plain"), "churn", std::to_string(n)},
                      AgentEnv(preload, {{"PPROF_AGENT_ADDR", "127.0.0.1:0"},
                                         {"PPROF_AGENT_HEAP_RATE", "1"}}),
                      Millis(LongMode() ? 600000 : 120000));
  };
  const CommandResult agent = run(true);
  const CommandResult plain = run(false);
  ASSERT_TRUE(agent.ok()) << agent.status.Describe() << agent.out << agent.err;
  ASSERT_TRUE(plain.ok()) << plain.status.Describe() << plain.out << plain.err;
  std::smatch m;
  static const std::regex kRss(R"(RSS baseline=(-?\d+) after=(-?\d+) threads=(\d+) destructors=(\d+))");
  ASSERT_TRUE(std::regex_search(agent.out, m, kRss)) << agent.out;
  const long base = std::stol(m[1]), after = std::stol(m[2]);
  EXPECT_EQ(std::stol(m[4]), n + 256) << "thread_local destructors";
  std::smatch pm;
  ASSERT_TRUE(std::regex_search(plain.out, pm, kRss)) << plain.out;
  const long plain_growth = std::stol(pm[2]) - std::stol(pm[1]);
  // Near baseline: what the threads leave behind with the agent, beyond what
  // they leave without it, stays under 8 MiB (stack and sample tables are
  // bounded; a per-thread leak of even 1 KiB would show at 10k threads).
  EXPECT_LT((after - base) - plain_growth, 8 * 1024)
      << "agent: " << agent.out << "no agent: " << plain.out;
  std::printf("RELIABILITY thread_churn threads=%d rss_growth_kib agent=%ld no_agent=%ld\n",
              n, after - base, plain_growth);
}

// The same churn under a CPU profile at 1 kHz: every per-thread timer the
// profile created is deleted (threads that exit delete their own).
TEST(ThreadChurn, UnderCpuProfilingTimersCreatedEqualDeleted) {
  PA_IT_SKIP_WITHOUT_GO();
  const int n = Scale(4000, 10000);
  int port = 0;
  std::string error;
  integration::TempDir tmp;
  const std::string go_file = tmp.File("go");
  auto p = StartServing({ProgramPath("rel_program_plain"), "churn", std::to_string(n), go_file},
                        AgentEnv(true, {{"PPROF_AGENT_ADDR", "127.0.0.1:0"},
                                        {"PPROF_AGENT_HEAP_RATE", "1"}}),
                        integration::kStartTimeout, &port, &error);
  ASSERT_NE(p, nullptr) << error;
  const int seconds = LongMode() ? 15 : 4;
  integration::HttpResult profile;
  std::thread fetch([&] {
    profile = integration::HttpGet(
        port, "/debug/pprof/profile?seconds=" + std::to_string(seconds) + "&hz=1000",
        Millis(seconds * 1000 + 60000));
  });
  std::this_thread::sleep_for(Millis(300));  // the profile is under way
  ASSERT_TRUE(integration::WriteFile(go_file, "go"));
  fetch.join();
  ASSERT_EQ(profile.status, 200) << profile.error << profile.body.substr(0, 200);
  EXPECT_TRUE(p->PumpUntil(
      [&] { return p->out().find("RSS baseline") != std::string::npos; },
      Millis(LongMode() ? 600000 : 120000)))
      << p->out();
  ASSERT_TRUE(integration::WriteFile(tmp.File("cpu.pb"), profile.body));
  const CommandResult c = integration::GoPprof(tmp, {"-comments", tmp.File("cpu.pb")});
  ASSERT_TRUE(c.ok()) << c.err;
  static const std::regex kTimers(R"(cpu timers this profile: created=(\d+) deleted=(\d+))");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(c.out, m, kTimers)) << c.out;
  EXPECT_EQ(m[1].str(), m[2].str()) << c.out;
  EXPECT_GT(std::stol(m[1]), 1) << c.out;
  p->CloseStdin();
  const auto status = p->Wait(integration::kExitTimeout);
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe() << p->err();
  std::printf("RELIABILITY thread_churn_cpu threads=%d profile_s=%d timers_created=%s timers_deleted=%s\n",
              n, seconds, m[1].str().c_str(), m[2].str().c_str());
}

// ---------------------------------------------------------------------------
// 7. Bounds
// ---------------------------------------------------------------------------

TEST(Bounds, FloodOfDistinctStacksStaysUnderTheCap) {
  const int bits = Scale(17, 20);
  int port = 0;
  std::string error;
  auto p = StartServing({ProgramPath("rel_program_plain"), "flood", std::to_string(bits)},
                        AgentEnv(true, {{"PPROF_AGENT_ADDR", "127.0.0.1:0"},
                                        {"PPROF_AGENT_HEAP_RATE", "1"}}),
                        Millis(LongMode() ? 1200000 : 140000), &port, &error);
  ASSERT_NE(p, nullptr) << error;
  std::smatch m;
  static const std::regex kFlood(R"(FLOOD rss_before=(\d+) rss_after=(\d+) stacks=(\d+))");
  const std::string out = p->out();
  ASSERT_TRUE(std::regex_search(out, m, kFlood)) << out;
  const long growth_kib = std::stol(m[2]) - std::stol(m[1]);
  // The documented cap is 43 MiB of reserved tables (README "Memory cap");
  // allow 64 MiB, the design's hard cap, for the flood's own frames.
  EXPECT_LT(growth_kib, 64 * 1024);
  // Profiles of 65,536 deep stacks take seconds to build on a loaded machine
  // (and much longer in a Debug/coverage build): wait up to 2 minutes.
  const Millis fetch_timeout(120000);
  const integration::HttpResult pb = integration::HttpGet(port, "/debug/pprof/allocs", fetch_timeout);
  ASSERT_EQ(pb.status, 200) << pb.error;
  const long hwm_before_text_kib = PeakRssKiB(p->pid());
  // Known gap: Go's legacy text (debug=1) is not bounded. With the stack
  // table full it is ~250 MB, built in the host's memory: reported below,
  // not asserted.
  const integration::HttpResult h =
      integration::HttpGet(port, "/debug/pprof/heap?debug=1", fetch_timeout);
  EXPECT_EQ(h.status, 200) << h.error;
  const long hwm_after_text_kib = PeakRssKiB(p->pid());
  std::string comments;
  if (*integration::GoBinaryPath() != '\0') {
    integration::TempDir tmp;
    ASSERT_TRUE(integration::WriteFile(tmp.File("allocs.pb"), pb.body));
    const CommandResult c = integration::GoPprof(tmp, {"-comments", tmp.File("allocs.pb")});
    EXPECT_TRUE(c.ok()) << c.err;
    comments = c.out;
    EXPECT_NE(c.out.find("dropped"), std::string::npos) << c.out;
    const CommandResult raw = integration::GoPprof(tmp, {"-raw", tmp.File("allocs.pb")});
    EXPECT_TRUE(raw.ok()) << raw.err;
    std::string perr;
    auto parsed = integration::ParseRawProfile(raw.out, &perr);
    ASSERT_TRUE(parsed.has_value()) << perr;
    std::printf("RELIABILITY bounds profile_samples=%zu\n", parsed->samples.size());
  }
  p->CloseStdin();
  p->Wait(integration::kExitTimeout);
  for (char& c : comments) if (c == '\n') c = ' ';
  std::printf(
      "RELIABILITY bounds stacks=%s rss_growth_kib=%ld comments=[%s] "
      "proto_bytes=%zu debug1_text_bytes=%zu peak_rss_kib before_text=%ld after_text=%ld\n",
      m[3].str().c_str(), growth_kib, comments.c_str(), pb.body.size(), h.body.size(),
      hwm_before_text_kib, hwm_after_text_kib);
}

}  // namespace
}  // namespace pprof_agent::reliability
