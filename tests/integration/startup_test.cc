// Start-up in real processes: the host program runs normally whatever
// happens to the agent's server (turned off, or its port taken), and the
// agent says so in one stderr line at most.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "tests/integration/integration_util.h"

namespace pprof_agent::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::vector<std::string> AgentLogLines(const std::string& err) {
  std::vector<std::string> lines;
  for (const std::string& l : SplitLines(err)) {
    if (l.rfind("pprof-agent:", 0) == 0) lines.push_back(l);
  }
  return lines;
}

// A listening TCP socket on 127.0.0.1 with a kernel-chosen port.
class BusyPort {
 public:
  BusyPort() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(fd_, 1) != 0) {
      return;
    }
    socklen_t len = sizeof(addr);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~BusyPort() {
    if (fd_ >= 0) close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Runs it_alloc "sites" to completion and returns the process's output.
struct Finished {
  std::string out;
  std::string err;
  ExitStatus status;
};
Finished RunSites(Flavour flavour, const std::string& addr) {
  EnvChanges env;
  env.set["PPROF_AGENT_ADDR"] = addr;
  std::string error;
  auto program = StartProgram("it_alloc", flavour, {"sites"}, env, false, &error);
  EXPECT_TRUE(program.has_value()) << error;
  if (!program.has_value()) return {};
  program->process->CloseStdin();
  Finished f;
  f.status = program->process->Wait(kExitTimeout);
  f.out = program->process->out();
  f.err = program->process->err();
  return f;
}

TEST(Startup, LinkedProgramWithAddrOffRunsWithoutServer) {
  const Finished f = RunSites(Flavour::kLinked, "off");
  EXPECT_TRUE(f.status.exited && f.status.code == 0) << f.status.Describe() << f.err;
  EXPECT_THAT(f.out, HasSubstr("START ok port=0\n"));
  EXPECT_THAT(f.out, HasSubstr("READY\n"));
  EXPECT_THAT(AgentLogLines(f.err), IsEmpty()) << f.err;
}

TEST(Startup, PreloadedProgramWithAddrOffRunsWithoutServer) {
  const Finished f = RunSites(Flavour::kPreloaded, "off");
  EXPECT_TRUE(f.status.exited && f.status.code == 0) << f.status.Describe() << f.err;
  EXPECT_THAT(f.out, HasSubstr("READY\n"));
  EXPECT_THAT(AgentLogLines(f.err), IsEmpty()) << f.err;
}

TEST(Startup, PreloadedProgramLogsOneServingLine) {
  const Finished f = RunSites(Flavour::kPreloaded, "127.0.0.1:0");
  EXPECT_TRUE(f.status.exited && f.status.code == 0) << f.status.Describe() << f.err;
  const std::vector<std::string> lines = AgentLogLines(f.err);
  ASSERT_EQ(lines.size(), 1u) << f.err;
  EXPECT_GT(ParseServingPort(lines[0]), 0) << lines[0];
}

TEST(Startup, PreloadedProgramOnBusyPortLogsOneLineAndRuns) {
  BusyPort busy;
  ASSERT_GT(busy.port(), 0);
  const Finished f =
      RunSites(Flavour::kPreloaded, "127.0.0.1:" + std::to_string(busy.port()));
  EXPECT_TRUE(f.status.exited && f.status.code == 0) << f.status.Describe() << f.err;
  EXPECT_THAT(f.out, HasSubstr("READY\n"));
  const std::vector<std::string> lines = AgentLogLines(f.err);
  ASSERT_EQ(lines.size(), 1u) << f.err;
  EXPECT_THAT(lines[0], HasSubstr(std::to_string(busy.port())));
  EXPECT_EQ(ParseServingPort(lines[0]), 0) << lines[0];
}

TEST(Startup, LinkedProgramOnBusyPortGetsErrorAndRuns) {
  BusyPort busy;
  ASSERT_GT(busy.port(), 0);
  const Finished f =
      RunSites(Flavour::kLinked, "127.0.0.1:" + std::to_string(busy.port()));
  EXPECT_TRUE(f.status.exited && f.status.code == 0) << f.status.Describe() << f.err;
  EXPECT_THAT(f.out, HasSubstr("START error: "));
  EXPECT_THAT(f.out, HasSubstr("READY\n"));
  const std::vector<std::string> lines = AgentLogLines(f.err);
  ASSERT_EQ(lines.size(), 1u) << f.err;
  EXPECT_THAT(lines[0], HasSubstr(std::to_string(busy.port())));
}

// DESIGN.md "safe by default": serving on a non-loopback address needs a
// token; without one the agent refuses, in one line, and the program runs.
TEST(Startup, NonLoopbackAddressWithoutTokenIsRefused) {
  for (Flavour flavour : {Flavour::kPreloaded, Flavour::kLinked}) {
    SCOPED_TRACE(FlavourName(flavour));
    const Finished f = RunSites(flavour, "0.0.0.0:0");
    EXPECT_TRUE(f.status.exited && f.status.code == 0) << f.status.Describe() << f.err;
    EXPECT_THAT(f.out, HasSubstr("READY\n"));
    const std::vector<std::string> lines = AgentLogLines(f.err);
    ASSERT_EQ(lines.size(), 1u) << f.err;
    EXPECT_THAT(lines[0], HasSubstr("token"));
    EXPECT_EQ(ParseServingPort(lines[0]), 0);
  }
}

// With a token the agent serves on every interface, and every endpoint
// wants the token: as a Bearer header, or as ?token= for go tool pprof.
TEST(Startup, NonLoopbackAddressWithTokenServesOnlyWithTheToken) {
  EnvChanges env;
  env.set["PPROF_AGENT_ADDR"] = "0.0.0.0:0";
  env.set["PPROF_AGENT_TOKEN"] = "s3cret-token";
  std::string error;
  auto program = StartProgram("it_alloc", Flavour::kPreloaded, {"sites"}, env, true, &error);
  ASSERT_TRUE(program.has_value()) << error;
  const int port = program->port;
  for (const char* path : {"/debug/pprof/heap", "/debug/pprof/cmdline",
                           "/debug/pprof/symbol", "/debug/pprof/",
                           "/debug/pprof/heap?token=wrong"}) {
    SCOPED_TRACE(path);
    const HttpResult r = HttpGet(port, path);
    EXPECT_EQ(r.status, 401) << r.error << " " << r.body;
    EXPECT_EQ(r.Header("X-Go-Pprof"), "1");
    EXPECT_THAT(r.Header("WWW-Authenticate"), HasSubstr("Bearer"));
  }
  const HttpResult wrong = HttpGet(port, "/debug/pprof/heap", kHttpTimeout,
                                   {{"Authorization", "Bearer s3cret-tokeN"}});
  EXPECT_EQ(wrong.status, 401);
  const HttpResult bearer = HttpGet(port, "/debug/pprof/heap", kHttpTimeout,
                                    {{"Authorization", "Bearer s3cret-token"}});
  EXPECT_EQ(bearer.status, 200) << bearer.error << " " << bearer.body;
  const HttpResult query = HttpGet(port, "/debug/pprof/heap?token=s3cret-token");
  EXPECT_EQ(query.status, 200) << query.error << " " << query.body;
  if (*GoBinaryPath() != '\0') {
    TempDir tmp;
    const CommandResult top = GoPprof(
        tmp, {"-top", "http://127.0.0.1:" + std::to_string(port) +
                          "/debug/pprof/heap?token=s3cret-token"});
    EXPECT_TRUE(top.ok()) << top.err;
    EXPECT_THAT(top.out, HasSubstr("it::RetainLiveBlocks"));
  }
  // The token never appears in the agent's log.
  EXPECT_THAT(program->process->err(), Not(HasSubstr("s3cret-token")));
  program->process->CloseStdin();
  EXPECT_TRUE(program->process->Wait(kExitTimeout).exited);
}

// A program that ends while a client waits for a delta profile exits at
// once and normally: the waiting request does not hold the exit.
TEST(Startup, ProgramExitsWhileADeltaProfileIsPending) {
  for (Flavour flavour : {Flavour::kPreloaded, Flavour::kLinked}) {
    SCOPED_TRACE(FlavourName(flavour));
    std::string error;
    auto program = StartProgram("it_alloc", flavour, {"idle"}, {}, true, &error);
    ASSERT_TRUE(program.has_value()) << error;
    HttpResult pending;
    std::thread client([&] {
      pending = HttpGet(program->port, "/debug/pprof/allocs?seconds=30", Millis(8000));
    });
    std::this_thread::sleep_for(Millis(300));
    const auto start = Clock::now();
    program->process->CloseStdin();
    const ExitStatus status = program->process->Wait(Millis(5000));
    const auto took = Clock::now() - start;
    client.join();
    EXPECT_TRUE(status.exited && status.code == 0)
        << status.Describe() << "\n" << program->process->err();
    EXPECT_LT(took, Millis(2000));
    EXPECT_NE(pending.status, 200);  // the connection ended with the process
  }
}

}  // namespace
}  // namespace pprof_agent::integration
