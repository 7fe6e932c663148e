// Tests of /debug/pprof/profile through Handlers::Serve() (no sockets), of
// its configuration rows (PPROF_AGENT_CPU_HZ, PPROF_AGENT_CPU_SIGNAL) and of
// the client-gone probe on real sockets. The profiles run in this process:
// its threads are sampled by the real profiler.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "http/config.h"
#include "http/connection_probe.h"
#include "http/handlers.h"
#include "profiler/cpu/cpu_profiler.h"

namespace pprof_agent::internal {
namespace {

using ::testing::HasSubstr;

Config TestConfig() {
  Config config;
  config.address = "127.0.0.1:0";
  return config;
}

HttpRequest Get(std::string path, QueryParams params = {}) {
  HttpRequest request;
  request.method = "GET";
  request.path = std::move(path);
  request.params = std::move(params);
  return request;
}

void ExpectGoError(const HttpResponse& response, int status,
                   const std::string& message) {
  EXPECT_EQ(response.status, status);
  EXPECT_EQ(response.body, message + "\n");
  EXPECT_EQ(response.content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(response.Header("X-Go-Pprof"), "1");
}

// --- configuration ------------------------------------------------------------

Config Parse(std::vector<const char*> env, std::vector<std::string>* errors) {
  env.push_back(nullptr);
  return ConfigFromEnv(env.data(), errors);
}

TEST(CpuConfig, DefaultsAreHundredHertzAndSigprof) {
  std::vector<std::string> errors;
  const Config c = Parse({}, &errors);
  EXPECT_EQ(c.cpu_hz, 100);
  EXPECT_EQ(c.cpu_signal, SIGPROF);
  EXPECT_TRUE(errors.empty());
}

TEST(CpuConfig, ReadsRateAndSignal) {
  std::vector<std::string> errors;
  const Config c =
      Parse({"PPROF_AGENT_CPU_HZ=250", "PPROF_AGENT_CPU_SIGNAL=SIGRTMIN+4"}, &errors);
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(c.cpu_hz, 250);
  EXPECT_EQ(c.cpu_signal, SIGRTMIN + 4);
  EXPECT_TRUE(Validate(c).ok());
}

TEST(CpuConfig, BadValuesKeepTheDefaultWithOneMessageEach) {
  std::vector<std::string> errors;
  const Config c = Parse({"PPROF_AGENT_CPU_HZ=0", "PPROF_AGENT_CPU_SIGNAL=SIGKILL"},
                         &errors);
  EXPECT_EQ(c.cpu_hz, 100);
  EXPECT_EQ(c.cpu_signal, SIGPROF);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_THAT(errors[0], HasSubstr("PPROF_AGENT_CPU_HZ=\"0\": must be an integer "
                                   "from 1 to 1000"));
  EXPECT_THAT(errors[0], HasSubstr("using 100"));
  EXPECT_THAT(errors[1], HasSubstr("PPROF_AGENT_CPU_SIGNAL=\"SIGKILL\""));
  EXPECT_THAT(errors[1], HasSubstr("using SIGPROF"));
  errors.clear();
  Parse({"PPROF_AGENT_CPU_HZ=1001"}, &errors);
  EXPECT_EQ(errors.size(), 1u);
}

TEST(CpuConfig, ValidateChecksTheRange) {
  Config c = TestConfig();
  c.cpu_hz = 5000;
  EXPECT_FALSE(Validate(c).ok());
  c.cpu_hz = 100;
  c.cpu_signal = SIGSEGV;
  EXPECT_FALSE(Validate(c).ok());
}

// --- the endpoint -------------------------------------------------------------

TEST(CpuHandler, BadParametersAre400) {
  Handlers handlers(TestConfig());
  const std::string hz_message =
      "invalid value for \"hz\" - must be an integer from 1 to 1000";
  ExpectGoError(handlers.Serve(Get("/debug/pprof/profile", {{"hz", "0"}})), 400,
                hz_message);
  ExpectGoError(handlers.Serve(Get("/debug/pprof/profile", {{"hz", "1001"}})), 400,
                hz_message);
  ExpectGoError(handlers.Serve(Get("/debug/pprof/profile", {{"hz", "-5"}})), 400,
                hz_message);
  ExpectGoError(handlers.Serve(Get("/debug/pprof/profile", {{"seconds", "x"}})),
                400, "invalid value for \"seconds\" - must be a positive integer");
  ExpectGoError(handlers.Serve(Get("/debug/pprof/profile", {{"seconds", "301"}})),
                400,
                "invalid value for \"seconds\" - must be at most 300 (the agent's "
                "limit, PPROF_AGENT_MAX_SECONDS)");
  ExpectGoError(handlers.Serve(Get("/debug/pprof/profile", {{"debug", "7"}})), 400,
                "invalid value for \"debug\"");
  EXPECT_FALSE(CpuCountersNow().running);
}

TEST(CpuHandler, ServesAGzippedProfileAttachment) {
  Handlers handlers(TestConfig());
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    volatile uint64_t x = 1;
    while (!stop.load()) x = x * 3 + 1;
  });
  // debug=1 is accepted and ignored, as Go does (the index links it so).
  const HttpResponse r = handlers.Serve(
      Get("/debug/pprof/profile", {{"seconds", "1"}, {"hz", "250"}, {"debug", "1"}}));
  stop = true;
  busy.join();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/octet-stream");
  EXPECT_EQ(r.Header("Content-Disposition"), "attachment; filename=\"profile\"");
  EXPECT_EQ(r.Header("X-Content-Type-Options"), "nosniff");
  ASSERT_GT(r.body.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(r.body[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(r.body[1]), 0x8b);
}

TEST(CpuHandler, SecondConcurrentProfileIs409InGosWords) {
  Config config = TestConfig();
  Handlers handlers(config);
  auto first = std::async(std::launch::async, [&] {
    return handlers.Serve(Get("/debug/pprof/profile", {{"seconds", "2"}}));
  });
  while (!CpuCountersNow().running) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto start = std::chrono::steady_clock::now();
  ExpectGoError(handlers.Serve(Get("/debug/pprof/profile", {{"seconds", "1"}})), 409,
                "Could not enable CPU profiling: cpu profiling already in use");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  EXPECT_EQ(first.get().status, 200);
}

TEST(CpuHandler, ClientGoneEndsTheProfileEarly) {
  Handlers handlers(TestConfig());
  HttpRequest request = Get("/debug/pprof/profile", {{"seconds", "30"}});
  const auto start = std::chrono::steady_clock::now();
  request.client_gone = [start] {
    return std::chrono::steady_clock::now() - start > std::chrono::milliseconds(300);
  };
  const HttpResponse r = handlers.Serve(request);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_THAT(r.body, HasSubstr("client went away"));
  EXPECT_FALSE(CpuCountersNow().running);
}

TEST(CpuHandler, ShutdownEndsTheProfileWith503) {
  Handlers handlers(TestConfig());
  auto response = std::async(std::launch::async, [&] {
    return handlers.Serve(Get("/debug/pprof/profile", {{"seconds", "30"}}));
  });
  while (!CpuCountersNow().running) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto start = std::chrono::steady_clock::now();
  handlers.Shutdown();
  const HttpResponse r = response.get();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  ExpectGoError(r, 503, "profile canceled: the agent's server is stopping");
}

TEST(CpuHandler, DefaultDurationIsCappedByMaxSeconds) {
  Config config = TestConfig();
  config.max_seconds = 1;
  Handlers handlers(config);
  const auto start = std::chrono::steady_clock::now();
  const HttpResponse r = handlers.Serve(Get("/debug/pprof/profile"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST(CpuHandler, IndexListsTheProfile) {
  Handlers handlers(TestConfig());
  const HttpResponse r = handlers.Serve(Get("/debug/pprof/"));
  EXPECT_THAT(r.body, HasSubstr("<a href='profile?debug=1'>profile</a>"));
  EXPECT_THAT(r.body, HasSubstr("CPU profile."));
}

// --- the probe ----------------------------------------------------------------

struct Connection {
  int listener = -1, client = -1, server = -1;
  ~Connection() {
    for (int fd : {listener, client, server}) {
      if (fd >= 0) close(fd);
    }
  }
};

void Connect(Connection* c) {
  c->listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(c->listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(c->listener, 1), 0);
  socklen_t len = sizeof(addr);
  getsockname(c->listener, reinterpret_cast<sockaddr*>(&addr), &len);
  c->client = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(c->client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  c->server = accept(c->listener, nullptr, nullptr);
  ASSERT_GE(c->server, 0);
}

std::pair<std::string, int> Name(int fd, bool peer) {
  sockaddr_in addr = {};
  socklen_t len = sizeof(addr);
  if (peer) {
    getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  } else {
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  }
  char host[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr.sin_addr, host, sizeof(host));
  return {host, ntohs(addr.sin_port)};
}

TEST(ConnectionProbe, FindsTheServerSideSocketAndSeesTheClientClose) {
  Connection c;
  Connect(&c);
  const auto [local_host, local_port] = Name(c.server, false);
  const auto [remote_host, remote_port] = Name(c.server, true);
  auto gone = ClientGoneProbe(local_host, local_port, remote_host, remote_port);
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone());
  // Unread request bytes are not a close.
  ASSERT_EQ(write(c.client, "GET", 3), 3);
  EXPECT_FALSE(gone());
  close(c.client);
  c.client = -1;
  for (int i = 0; i < 100 && !gone(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(gone());
  char buf[3];
  EXPECT_EQ(read(c.server, buf, 3), 3);  // the probe consumed nothing
}

TEST(ConnectionProbe, UnknownConnectionIsNeverGone) {
  auto gone = ClientGoneProbe("127.0.0.1", 1, "127.0.0.1", 2);
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone());
  EXPECT_FALSE(ClientGoneProbe("", 0, "", 0));
}

}  // namespace
}  // namespace pprof_agent::internal
