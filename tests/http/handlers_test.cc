// Tests of http/handlers through Handlers::Serve(), without sockets: routing,
// Go's headers and error texts, token checks, /symbol, /cmdline and the heap
// endpoints (served from the real recorder, which records nothing here: the
// malloc hooks live only in the shared library).
#include "http/handlers.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <future>
#include <string>
#include <thread>

namespace pprof_agent::internal {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

Config TestConfig() {
  Config config;
  config.address = "127.0.0.1:0";
  return config;
}

HttpRequest Get(std::string path, QueryParams params = {},
                std::string raw_query = "") {
  HttpRequest request;
  request.method = "GET";
  request.path = std::move(path);
  request.params = std::move(params);
  request.raw_query = std::move(raw_query);
  return request;
}

void ExpectGoError(const HttpResponse& response, int status,
                   const std::string& message) {
  EXPECT_EQ(response.status, status);
  EXPECT_EQ(response.body, message + "\n");
  EXPECT_EQ(response.content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(response.Header("X-Go-Pprof"), "1");
  EXPECT_EQ(response.Header("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(response.Header("Content-Disposition"), "");
}

bool IsGzip(const std::string& body) {
  return body.size() > 2 && static_cast<unsigned char>(body[0]) == 0x1f &&
         static_cast<unsigned char>(body[1]) == 0x8b;
}

extern "C" __attribute__((noinline, used)) int PaHandlersTestSymbolTarget(
    int x) {
  asm volatile("" ::: "memory");
  return x + 1;
}

TEST(Handlers, UnknownProfileIs404InGosWords) {
  Handlers handlers(TestConfig());
  ExpectGoError(handlers.Serve(Get("/debug/pprof/nosuch")), 404,
                "Unknown profile");
  ExpectGoError(handlers.Serve(Get("/debug/pprof/heap/extra")), 404,
                "Unknown profile");
}

TEST(Handlers, PathsOutsideDebugPprofAre404) {
  Handlers handlers(TestConfig());
  ExpectGoError(handlers.Serve(Get("/")), 404, "404 page not found");
  ExpectGoError(handlers.Serve(Get("/debug/pprofx")), 404,
                "404 page not found");
}

TEST(Handlers, DebugPprofWithoutSlashRedirects) {
  Handlers handlers(TestConfig());
  HttpResponse response = handlers.Serve(Get("/debug/pprof", {}, "debug=1"));
  EXPECT_EQ(response.status, 301);
  EXPECT_EQ(response.Header("Location"), "/debug/pprof/?debug=1");
}

TEST(Handlers, GoroutineAndThreadcreateAreServedInEveryForm) {
  Handlers handlers(TestConfig());
  for (const char* name : {"goroutine", "threadcreate"}) {
    const std::string path = std::string("/debug/pprof/") + name;
    HttpResponse proto = handlers.Serve(Get(path));
    EXPECT_EQ(proto.status, 200) << name << ": " << proto.body;
    EXPECT_EQ(proto.Header("Content-Type"), "application/octet-stream");
    HttpResponse text = handlers.Serve(Get(path, {{"debug", "1"}}));
    EXPECT_EQ(text.status, 200) << name << ": " << text.body;
    EXPECT_EQ(text.body.rfind(std::string(name) + " profile: total ", 0), 0u) << text.body;
  }
  HttpResponse dump = handlers.Serve(Get("/debug/pprof/goroutine", {{"debug", "2"}}));
  EXPECT_EQ(dump.status, 200);
  EXPECT_EQ(dump.body.rfind("pprof-agent thread dump: pid ", 0), 0u) << dump.body;
  ExpectGoError(handlers.Serve(Get("/debug/pprof/goroutine", {{"seconds", "1"}})), 400,
                "\"seconds\" parameter is not supported for the goroutine profile");
}

TEST(Handlers, IndexListsHeapAndAllocsWithDebugLinks) {
  Handlers handlers(TestConfig());
  HttpResponse response = handlers.Serve(Get("/debug/pprof/"));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(response.Header("X-Content-Type-Options"), "nosniff");
  EXPECT_THAT(response.body, HasSubstr("<a href='heap?debug=1'>heap</a>"));
  EXPECT_THAT(response.body, HasSubstr("<a href='allocs?debug=1'>allocs</a>"));
  EXPECT_THAT(response.body, HasSubstr("Types of profiles available"));
}

TEST(Handlers, CmdlineIsArgvJoinedByNulWithoutTrailingNul) {
  Handlers handlers(TestConfig());
  HttpResponse response = handlers.Serve(Get("/debug/pprof/cmdline"));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "text/plain; charset=utf-8");
  ASSERT_FALSE(response.body.empty());
  EXPECT_NE(response.body.back(), '\0');
  EXPECT_THAT(response.body, HasSubstr("handlers_test"));
  // Same bytes as the kernel's, minus the final terminator.
  std::string expected;
  int fd = open("/proc/self/cmdline", O_RDONLY);
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) expected.append(buf, n);
  close(fd);
  expected.pop_back();
  EXPECT_EQ(response.body, expected);
}

TEST(Handlers, SymbolGetWithoutAddressesSaysSymbolsAreAvailable) {
  Handlers handlers(TestConfig());
  HttpResponse response = handlers.Serve(Get("/debug/pprof/symbol"));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(response.body, "num_symbols: 1\n");
}

std::string TargetAddress() {
  char hex[32];
  std::snprintf(hex, sizeof(hex), "0x%" PRIxPTR,
                reinterpret_cast<uintptr_t>(&PaHandlersTestSymbolTarget));
  return hex;
}

TEST(Handlers, SymbolPostResolvesAddressesAndSkipsUnknownOnes) {
  Handlers handlers(TestConfig());
  HttpRequest request = Get("/debug/pprof/symbol");
  request.method = "POST";
  // 0x10 lies in no mapping: skipped, as Go skips what it cannot resolve.
  request.body = TargetAddress() + "+0x10";
  HttpResponse response = handlers.Serve(request);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "num_symbols: 1\n" + TargetAddress() +
                               " PaHandlersTestSymbolTarget\n");
}

TEST(Handlers, SymbolGetReadsTheRawQuery) {
  Handlers handlers(TestConfig());
  const std::string raw = TargetAddress() + "+" + TargetAddress();
  HttpResponse response =
      handlers.Serve(Get("/debug/pprof/symbol", {{raw, ""}}, raw));
  EXPECT_EQ(response.status, 200);
  const std::string line = TargetAddress() + " PaHandlersTestSymbolTarget\n";
  EXPECT_EQ(response.body, "num_symbols: 1\n" + line + line);
}

TEST(Handlers, SymbolRejectsGarbage) {
  Handlers handlers(TestConfig());
  HttpRequest request = Get("/debug/pprof/symbol");
  request.method = "POST";
  request.body = "0x1234+main";
  HttpResponse response = handlers.Serve(request);
  EXPECT_EQ(response.status, 400);
  EXPECT_THAT(response.body, HasSubstr("invalid address \"main\""));
  EXPECT_EQ(response.Header("X-Go-Pprof"), "1");
}

TEST(Handlers, BadSecondsIs400InGosWords) {
  Handlers handlers(TestConfig());
  for (const char* name : {"heap", "allocs"}) {
    for (const char* seconds : {"0", "-1", "x", "1.5", "NaN"}) {
      ExpectGoError(
          handlers.Serve(
              Get(std::string("/debug/pprof/") + name, {{"seconds", seconds}})),
          400, "invalid value for \"seconds\" - must be a positive integer");
    }
  }
}

TEST(Handlers, SecondsOverTheConfiguredCapIs400) {
  Config config = TestConfig();
  config.max_seconds = 10;
  Handlers handlers(config);
  HttpResponse response =
      handlers.Serve(Get("/debug/pprof/heap", {{"seconds", "11"}}));
  EXPECT_EQ(response.status, 400);
  EXPECT_THAT(response.body, HasSubstr("at most 10"));
}

TEST(Handlers, SecondsWithDebugIs400) {
  Handlers handlers(TestConfig());
  ExpectGoError(handlers.Serve(Get("/debug/pprof/heap",
                                   {{"seconds", "1"}, {"debug", "1"}})),
                400, "seconds and debug params are incompatible");
}

TEST(Handlers, BadDebugIs400) {
  Handlers handlers(TestConfig());
  ExpectGoError(handlers.Serve(Get("/debug/pprof/heap", {{"debug", "7"}})), 400,
                "invalid value for \"debug\"");
}

TEST(Handlers, HeapIsGzippedProtobufAttachment) {
  Handlers handlers(TestConfig());
  for (const char* name : {"heap", "allocs"}) {
    HttpResponse response =
        handlers.Serve(Get(std::string("/debug/pprof/") + name, {{"gc", "1"}}));
    EXPECT_EQ(response.status, 200) << response.body;
    EXPECT_EQ(response.content_type, "application/octet-stream");
    EXPECT_EQ(response.Header("Content-Disposition"),
              std::string("attachment; filename=\"") + name + "\"");
    EXPECT_EQ(response.Header("X-Content-Type-Options"), "nosniff");
    EXPECT_TRUE(IsGzip(response.body));
  }
}

TEST(Handlers, HeapDebugIsLegacyText) {
  Handlers handlers(TestConfig());
  for (const char* debug : {"1", "2"}) {
    HttpResponse response =
        handlers.Serve(Get("/debug/pprof/heap", {{"debug", debug}}));
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.content_type, "text/plain; charset=utf-8");
    EXPECT_EQ(response.Header("Content-Disposition"), "");
    EXPECT_THAT(response.body, StartsWith("heap profile: "));
  }
}

TEST(Handlers, HeapSecondsIsADeltaAfterWaiting) {
  Handlers handlers(TestConfig());
  const auto start = std::chrono::steady_clock::now();
  HttpResponse response =
      handlers.Serve(Get("/debug/pprof/heap", {{"seconds", "1"}}));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(990));
  EXPECT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(response.Header("Content-Disposition"),
            "attachment; filename=\"heap-delta\"");
  EXPECT_TRUE(IsGzip(response.body));
}

TEST(Handlers, ShutdownCutsShortAWaitingDelta) {
  Handlers handlers(TestConfig());
  auto pending = std::async(std::launch::async, [&] {
    return handlers.Serve(Get("/debug/pprof/allocs", {{"seconds", "60"}}));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  handlers.Shutdown();
  ASSERT_EQ(pending.wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  HttpResponse response = pending.get();
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(response.Header("X-Go-Pprof"), "1");
  // And new deltas are refused at once.
  EXPECT_EQ(handlers.Serve(Get("/debug/pprof/heap", {{"seconds", "1"}})).status,
            503);
}

TEST(Handlers, TooManyConcurrentDeltasAre429) {
  Handlers handlers(TestConfig());
  std::vector<std::future<HttpResponse>> waiting;
  for (int i = 0; i < kMaxConcurrentWaits; ++i) {
    waiting.push_back(std::async(std::launch::async, [&] {
      return handlers.Serve(Get("/debug/pprof/heap", {{"seconds", "30"}}));
    }));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  HttpResponse refused =
      handlers.Serve(Get("/debug/pprof/heap", {{"seconds", "1"}}));
  EXPECT_EQ(refused.status, 429);
  // Ordinary requests are still served meanwhile.
  EXPECT_EQ(handlers.Serve(Get("/debug/pprof/heap")).status, 200);
  handlers.Shutdown();
  for (auto& w : waiting) EXPECT_EQ(w.get().status, 503);
}

TEST(Handlers, DeltaHeapServesDeltasSinceThePreviousRequest) {
  Handlers handlers(TestConfig());
  for (int i = 0; i < 2; ++i) {
    HttpResponse response = handlers.Serve(Get("/debug/pprof/delta_heap"));
    EXPECT_EQ(response.status, 200) << response.body;
    EXPECT_EQ(response.content_type, "application/octet-stream");
    EXPECT_EQ(response.Header("Content-Disposition"),
              "attachment; filename=\"delta_heap\"");
    EXPECT_TRUE(IsGzip(response.body));
  }
}

TEST(Handlers, DeltaHeapRefusesSecondsAndDebug) {
  Handlers handlers(TestConfig());
  EXPECT_EQ(
      handlers.Serve(Get("/debug/pprof/delta_heap", {{"seconds", "5"}})).status,
      400);
  EXPECT_EQ(
      handlers.Serve(Get("/debug/pprof/delta_heap", {{"debug", "1"}})).status,
      400);
}

class HandlersWithToken : public ::testing::Test {
 protected:
  HandlersWithToken() : handlers_(WithToken()) {}
  static Config WithToken() {
    Config config = TestConfig();
    config.token = "s3cret-token";
    return config;
  }
  Handlers handlers_;
};

TEST_F(HandlersWithToken, RequestWithoutTokenIs401) {
  HttpResponse response = handlers_.Serve(Get("/debug/pprof/"));
  EXPECT_EQ(response.status, 401);
  EXPECT_EQ(response.Header("X-Go-Pprof"), "1");
  EXPECT_THAT(response.Header("WWW-Authenticate"), StartsWith("Bearer"));
  EXPECT_THAT(response.body, ::testing::Not(HasSubstr("s3cret")));
}

TEST_F(HandlersWithToken, WrongTokensAre401) {
  for (const char* auth :
       {"Bearer s3cret-toke", "Bearer s3cret-token2", "Bearer ", "s3cret-token",
        "Basic s3cret-token", "Bearer S3CRET-TOKEN"}) {
    HttpRequest request = Get("/debug/pprof/");
    request.authorization = auth;
    EXPECT_EQ(handlers_.Serve(request).status, 401) << auth;
  }
  EXPECT_EQ(handlers_.Serve(Get("/debug/pprof/", {{"token", "nope"}})).status,
            401);
}

TEST_F(HandlersWithToken, BearerHeaderIsAccepted) {
  HttpRequest request = Get("/debug/pprof/");
  request.authorization = "Bearer s3cret-token";
  EXPECT_EQ(handlers_.Serve(request).status, 200);
  request.authorization = "bearer s3cret-token";
  EXPECT_EQ(handlers_.Serve(request).status, 200);
}

TEST_F(HandlersWithToken, TokenQueryParameterIsAccepted) {
  EXPECT_EQ(
      handlers_.Serve(Get("/debug/pprof/", {{"token", "s3cret-token"}})).status,
      200);
}

TEST_F(HandlersWithToken, SymbolGetIgnoresTheTokenParameter) {
  const std::string raw = TargetAddress() + "&token=s3cret-token";
  HttpResponse response = handlers_.Serve(
      Get("/debug/pprof/symbol", {{"token", "s3cret-token"}}, raw));
  EXPECT_EQ(response.status, 200);
  EXPECT_THAT(response.body, HasSubstr("PaHandlersTestSymbolTarget"));
}

}  // namespace
}  // namespace pprof_agent::internal
