// Tests of http/server over real sockets: a Server on a free port, fetched
// with httplib::Client. Also what the server must not do to its host:
// change SIGPIPE, leak the listening socket across exec, share its port.
#include "http/server.h"

#include <dirent.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "http/httplib_compat.h"

namespace pprof_agent::internal {
namespace {

using ::testing::HasSubstr;

extern "C" __attribute__((noinline, used)) int PaServerTestSymbolTarget(int x) {
  asm volatile("" ::: "memory");
  return x * 3;
}

std::string TargetAddress() {
  char hex[32];
  std::snprintf(hex, sizeof(hex), "0x%" PRIxPTR,
                reinterpret_cast<uintptr_t>(&PaServerTestSymbolTarget));
  return hex;
}

Config LocalConfig() {
  Config config;
  config.address = "127.0.0.1:0";
  return config;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status status = server_.Start(LocalConfig());
    ASSERT_TRUE(status.ok()) << status.message();
    ASSERT_GT(server_.port(), 0);
  }
  httplib::Client Client() {
    httplib::Client client("127.0.0.1", server_.port());
    client.set_read_timeout(10, 0);
    return client;
  }
  Server server_;
};

void ExpectGoError(const httplib::Result& result, int status) {
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, status);
  EXPECT_EQ(result->get_header_value("Content-Type"),
            "text/plain; charset=utf-8");
  EXPECT_EQ(result->get_header_value("X-Go-Pprof"), "1");
  EXPECT_EQ(result->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(result->get_header_value_count("X-Content-Type-Options"), 1u);
  ASSERT_FALSE(result->body.empty());
  EXPECT_EQ(result->body.back(), '\n');
  EXPECT_EQ(result->body.find('\n'), result->body.size() - 1);  // one line
}

TEST_F(ServerTest, ServesTheIndex) {
  auto result = Client().Get("/debug/pprof/");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"),
            "text/html; charset=utf-8");
  EXPECT_EQ(result->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_THAT(result->body, HasSubstr("heap?debug=1"));
}

TEST_F(ServerTest, ServesTheCommandLine) {
  auto result = Client().Get("/debug/pprof/cmdline");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"),
            "text/plain; charset=utf-8");
  EXPECT_THAT(result->body, HasSubstr("server_test"));
  EXPECT_NE(result->body.back(), '\0');
}

TEST_F(ServerTest, SymbolGetAndPost) {
  httplib::Client client = Client();
  auto get = client.Get("/debug/pprof/symbol");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "num_symbols: 1\n");

  const std::string line = TargetAddress() + " PaServerTestSymbolTarget\n";
  auto post = client.Post("/debug/pprof/symbol", TargetAddress(), "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 200);
  EXPECT_EQ(post->body, "num_symbols: 1\n" + line);

  auto query = client.Get("/debug/pprof/symbol?" + TargetAddress() + "+0x0");
  ASSERT_TRUE(query);
  EXPECT_EQ(query->body, "num_symbols: 1\n" + line);
}

TEST_F(ServerTest, UnknownProfileIs404WithGoPprofHeader) {
  auto result = Client().Get("/debug/pprof/nosuch");
  ExpectGoError(result, 404);
  EXPECT_EQ(result->body, "Unknown profile\n");
}

TEST_F(ServerTest, BadSecondsIs400) {
  auto result = Client().Get("/debug/pprof/heap?seconds=-3");
  ExpectGoError(result, 400);
  EXPECT_EQ(result->body,
            "invalid value for \"seconds\" - must be a positive integer\n");
}

TEST_F(ServerTest, ThreadcreateIsAGzippedAttachment) {
  auto result = Client().Get("/debug/pprof/threadcreate");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Disposition"),
            "attachment; filename=\"threadcreate\"");
}

TEST_F(ServerTest, HeapIsAGzippedAttachment) {
  auto result = Client().Get("/debug/pprof/heap");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"),
            "application/octet-stream");
  EXPECT_EQ(result->get_header_value("Content-Disposition"),
            "attachment; filename=\"heap\"");
  ASSERT_GT(result->body.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(result->body[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(result->body[1]), 0x8b);
}

TEST_F(ServerTest, OversizedBodyIs413InOurErrorShape) {
  auto result =
      Client().Post("/debug/pprof/symbol",
                    std::string(kMaxRequestBodyBytes + 1, '1'), "text/plain");
  ExpectGoError(result, 413);
}

TEST_F(ServerTest, HeadGetsHeadersOnly) {
  auto result = Client().Head("/debug/pprof/cmdline");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_TRUE(result->body.empty());
}

TEST_F(ServerTest, StopClosesThePortAndReportsZero) {
  const int port = server_.port();
  server_.Stop();
  EXPECT_EQ(server_.port(), 0);
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2, 0);
  EXPECT_FALSE(client.Get("/debug/pprof/"));
}

TEST_F(ServerTest, StopCutsShortAWaitingDeltaRequest) {
  auto pending = std::async(std::launch::async, [this] {
    return Client().Get("/debug/pprof/heap?seconds=120");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto start = std::chrono::steady_clock::now();
  server_.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ASSERT_EQ(pending.wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  auto result = pending.get();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 503);
}

TEST_F(ServerTest, RestartOnTheSamePortWorks) {
  const int port = server_.port();
  Config config = LocalConfig();
  config.address = "127.0.0.1:" + std::to_string(port);
  Status status = server_.Start(config);  // restarts
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(server_.port(), port);
  auto result = Client().Get("/debug/pprof/");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
}

TEST_F(ServerTest, BusyPortIsAnErrorNotASharedPort) {
  // SO_REUSEPORT (httplib's default) would let this bind succeed.
  Config config = LocalConfig();
  config.address = "127.0.0.1:" + std::to_string(server_.port());
  Server second;
  Status status = second.Start(config);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("cannot listen on 127.0.0.1:"));
  EXPECT_EQ(second.port(), 0);
  // The first one is unaffected.
  EXPECT_TRUE(Client().Get("/debug/pprof/"));
}

TEST_F(ServerTest, ListeningSocketIsCloseOnExec) {
  int found = 0;
  DIR* dir = opendir("/proc/self/fd");
  ASSERT_NE(dir, nullptr);
  while (dirent* entry = readdir(dir)) {
    const int fd = atoi(entry->d_name);
    if (entry->d_name[0] == '.' || fd == dirfd(dir)) continue;
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 ||
        !listening) {
      continue;
    }
    sockaddr_storage addr;
    socklen_t addr_len = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addr_len) != 0 ||
        addr.ss_family != AF_INET) {
      continue;
    }
    if (ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port) !=
        server_.port()) {
      continue;
    }
    ++found;
    EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  }
  closedir(dir);
  EXPECT_EQ(found, 1);
}

TEST_F(ServerTest, ThreadsAreTheAgentsOwnAndFew) {
  // Make sure the worker pool exists (httplib creates it in listen).
  ASSERT_TRUE(Client().Get("/debug/pprof/"));
  int workers = 0, listeners = 0;
  DIR* dir = opendir("/proc/self/task");
  ASSERT_NE(dir, nullptr);
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream comm(std::string("/proc/self/task/") + entry->d_name +
                       "/comm");
    std::string name;
    std::getline(comm, name);
    if (name == "pprof-http") ++workers;
    if (name == "pprof-listen") ++listeners;
  }
  closedir(dir);
  EXPECT_EQ(workers, kServerThreads);
  EXPECT_EQ(listeners, 1);
}

TEST(Server, KeepsTheHostsSigpipeDisposition) {
  struct sigaction previous;
  ASSERT_EQ(sigaction(SIGPIPE, nullptr, &previous), 0);
  signal(SIGPIPE, SIG_DFL);
  {
    Server server;
    ASSERT_TRUE(server.Start(LocalConfig()).ok());
    // The HTTP library is set up at the first request.
    httplib::Client client("127.0.0.1", server.port());
    ASSERT_TRUE(client.Get("/debug/pprof/"));
    struct sigaction now;
    ASSERT_EQ(sigaction(SIGPIPE, nullptr, &now), 0);
    EXPECT_EQ(now.sa_handler, SIG_DFL);
  }
  sigaction(SIGPIPE, &previous, nullptr);
}

TEST(Server, ClientVanishingMidResponseDoesNotKillTheHost) {
  // SIGPIPE at its default would end this process if a server thread took
  // it; the server's threads block it and get EPIPE instead.
  struct sigaction previous;
  ASSERT_EQ(sigaction(SIGPIPE, nullptr, &previous), 0);
  signal(SIGPIPE, SIG_DFL);
  {
    Server server;
    ASSERT_TRUE(server.Start(LocalConfig()).ok());
    for (int i = 0; i < 20; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(server.port());
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
                0);
      const std::string request =
          "GET /debug/pprof/cmdline HTTP/1.1\r\nHost: x\r\n\r\n";
      ASSERT_EQ(write(fd, request.data(), request.size()),
                static_cast<ssize_t>(request.size()));
      // RST instead of FIN: the server's next write fails with EPIPE.
      linger lin{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
      close(fd);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    httplib::Client client("127.0.0.1", server.port());
    EXPECT_TRUE(client.Get("/debug/pprof/"));
  }
  sigaction(SIGPIPE, &previous, nullptr);
}

TEST(Server, NonLoopbackWithoutTokenIsRefused) {
  Config config;
  config.address = "0.0.0.0:0";
  Server server;
  Status status = server.Start(config);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("token"));
  EXPECT_EQ(server.port(), 0);
}

TEST(Server, BadRestartKeepsTheRunningServer) {
  Server server;
  ASSERT_TRUE(server.Start(LocalConfig()).ok());
  const int port = server.port();
  Config bad;
  bad.address = "0.0.0.0:0";  // no token
  EXPECT_FALSE(server.Start(bad).ok());
  EXPECT_EQ(server.port(), port);
}

TEST(Server, TokenIsEnforcedOverHttp) {
  Config config = LocalConfig();
  config.token = "tok-123";
  Server server;
  ASSERT_TRUE(server.Start(config).ok());
  httplib::Client client("127.0.0.1", server.port());
  auto denied = client.Get("/debug/pprof/");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 401);
  client.set_bearer_token_auth("tok-123");
  auto allowed = client.Get("/debug/pprof/");
  ASSERT_TRUE(allowed);
  EXPECT_EQ(allowed->status, 200);
  httplib::Client by_query("127.0.0.1", server.port());
  auto query = by_query.Get("/debug/pprof/cmdline?token=tok-123");
  ASSERT_TRUE(query);
  EXPECT_EQ(query->status, 200);
}

TEST(Server, Ipv6LoopbackWorks) {
  Config config;
  config.address = "[::1]:0";
  Server server;
  Status status = server.Start(config);
  if (!status.ok()) GTEST_SKIP() << "no IPv6 loopback: " << status.message();
  httplib::Client client("::1", server.port());
  auto result = client.Get("/debug/pprof/cmdline");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
}

}  // namespace
}  // namespace pprof_agent::internal
