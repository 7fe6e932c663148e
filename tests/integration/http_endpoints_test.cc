// The /debug/pprof endpoints of a real preloaded process, over HTTP: Go's
// status codes, headers and bodies for errors, the text endpoints, and the
// download headers of a protobuf profile (PPROF_REFERENCE.md).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/integration_util.h"

namespace pprof_agent::integration {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kBadSeconds[] =
    "invalid value for \"seconds\" - must be a positive integer\n";

class HttpEndpoints : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    // Arguments with a space and an empty one: /cmdline must keep them apart.
    EnvChanges env;
    env.set["PPROF_AGENT_MAX_SECONDS"] = "5";
    auto program = StartProgram("it_alloc", Flavour::kPreloaded,
                                {"idle", "two words", "", "last"}, env, true, &error);
    ASSERT_TRUE(program.has_value()) << error;
    program_ = std::move(*program);
  }

  void TearDown() override {
    if (program_.process == nullptr) return;
    program_.process->CloseStdin();
    const ExitStatus status = program_.process->Wait(kExitTimeout);
    EXPECT_TRUE(status.exited && status.code == 0)
        << status.Describe() << "\n" << program_.process->err();
  }

  HttpResult Get(const std::string& path) { return HttpGet(program_.port, path); }

  // An error as Go's net/http/pprof writes it (serveError).
  void ExpectGoError(const HttpResult& r, int status, const std::string& body) {
    EXPECT_EQ(r.status, status) << r.error << " " << r.body;
    EXPECT_EQ(r.Header("X-Go-Pprof"), "1");
    EXPECT_EQ(r.Header("Content-Type"), "text/plain; charset=utf-8");
    EXPECT_EQ(r.Header("X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(r.body, body);
  }

  AgentProgram program_;
};

TEST_F(HttpEndpoints, UnknownProfileIs404WithGoPprofHeader) {
  ExpectGoError(Get("/debug/pprof/no_such_profile"), 404, "Unknown profile\n");
  ExpectGoError(Get("/debug/pprof/heapx?debug=1"), 404, "Unknown profile\n");
}

TEST_F(HttpEndpoints, BadSecondsIs400) {
  for (const char* profile : {"heap", "allocs"}) {
    for (const char* seconds : {"abc", "-1", "0", "1.5", "99999999999999999999"}) {
      SCOPED_TRACE(std::string(profile) + "?seconds=" + seconds);
      ExpectGoError(Get(std::string("/debug/pprof/") + profile + "?seconds=" + seconds),
                    400, kBadSeconds);
    }
  }
}

TEST_F(HttpEndpoints, SecondsOverTheAgentsLimitIs400) {
  const HttpResult r = Get("/debug/pprof/allocs?seconds=6");
  ExpectGoError(r, 400,
                "invalid value for \"seconds\" - must be at most 5 (the agent's "
                "limit, PPROF_AGENT_MAX_SECONDS)\n");
}

// Go's heap handler accepts gc=1 (it runs a GC first); we accept and ignore it.
TEST_F(HttpEndpoints, HeapAcceptsGcParameter) {
  const HttpResult r = Get("/debug/pprof/heap?gc=1");
  EXPECT_EQ(r.status, 200) << r.error << " " << r.body;
  EXPECT_EQ(r.Header("Content-Type"), "application/octet-stream");
}

TEST_F(HttpEndpoints, SecondsWithDebugIs400) {
  ExpectGoError(Get("/debug/pprof/heap?seconds=1&debug=1"), 400,
                "seconds and debug params are incompatible\n");
  ExpectGoError(Get("/debug/pprof/allocs?debug=2&seconds=1"), 400,
                "seconds and debug params are incompatible\n");
}

// http/handlers.cc answers 501 for profiles Go serves that the agent does not
// serve yet (404 stays for names nobody serves). Once mutex lands it answers
// 200, which is fine here too.
TEST_F(HttpEndpoints, NotYetImplementedProfileIs501) {
  const HttpResult r = Get("/debug/pprof/mutex?debug=1");
  ASSERT_THAT(r.status, AnyOf(200, 501)) << r.error << " " << r.body;
  if (r.status == 501) {
    ExpectGoError(r, 501, "profile not implemented yet: mutex\n");
  }
}

TEST_F(HttpEndpoints, HeapDebug1IsLegacyText) {
  for (const char* profile : {"heap", "allocs"}) {
    SCOPED_TRACE(profile);
    const HttpResult r = Get(std::string("/debug/pprof/") + profile + "?debug=1");
    ASSERT_EQ(r.status, 200) << r.error << " " << r.body;
    EXPECT_EQ(r.Header("Content-Type"), "text/plain; charset=utf-8");
    EXPECT_THAT(r.body, StartsWith("heap profile: "));
    EXPECT_EQ(r.Header("X-Go-Pprof"), "");
  }
}

TEST_F(HttpEndpoints, HeapProtobufIsAGzipDownload) {
  for (const char* profile : {"heap", "allocs"}) {
    SCOPED_TRACE(profile);
    const HttpResult r = Get(std::string("/debug/pprof/") + profile);
    ASSERT_EQ(r.status, 200) << r.error << " " << r.body;
    EXPECT_EQ(r.Header("Content-Type"), "application/octet-stream");
    EXPECT_EQ(r.Header("Content-Disposition"),
              std::string("attachment; filename=\"") + profile + "\"");
    EXPECT_EQ(r.Header("X-Content-Type-Options"), "nosniff");
    ASSERT_GE(r.body.size(), 2u);
    EXPECT_EQ(static_cast<unsigned char>(r.body[0]), 0x1f);
    EXPECT_EQ(static_cast<unsigned char>(r.body[1]), 0x8b);
  }
}

TEST_F(HttpEndpoints, CmdlineIsArgvJoinedByNul) {
  const HttpResult r = Get("/debug/pprof/cmdline");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.Header("Content-Type"), "text/plain; charset=utf-8");
  const std::string want = ProgramPath("it_alloc_plain") + std::string("\0idle\0two words\0\0last", 21);
  EXPECT_EQ(r.body, want);
}

TEST_F(HttpEndpoints, SymbolGetReportsNumSymbols) {
  const HttpResult r = Get("/debug/pprof/symbol");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.Header("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(r.body, "num_symbols: 1\n");
}

// The program prints the runtime address of it::SymbolTarget; pprof's
// remote symbolization POSTs such addresses and reads "0x<addr> <name>".
TEST_F(HttpEndpoints, SymbolPostNamesAFunctionOfTheProcess) {
  std::smatch m;
  const std::string out = program_.process->out();
  ASSERT_TRUE(std::regex_search(out, m, std::regex("SYMBOL (0x[0-9a-f]+)"))) << out;
  const std::string address = m[1].str();
  const HttpResult post =
      HttpPost(program_.port, "/debug/pprof/symbol", address + "+0x0+" + address);
  ASSERT_EQ(post.status, 200) << post.error << " " << post.body;
  EXPECT_THAT(post.body, StartsWith("num_symbols: 1\n"));
  EXPECT_THAT(post.body, HasSubstr(address + " it::SymbolTarget")) << post.body;

  // Go also accepts the addresses as the raw query of a GET.
  const HttpResult get = Get("/debug/pprof/symbol?" + address);
  ASSERT_EQ(get.status, 200) << get.error;
  EXPECT_THAT(get.body, HasSubstr(address + " it::SymbolTarget")) << get.body;

  const HttpResult bad = HttpPost(program_.port, "/debug/pprof/symbol", "0xzz");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(bad.Header("X-Go-Pprof"), "1");
}

// Delta requests hold a server thread while they wait; the agent lets two
// wait at once and refuses a third with 429 rather than queueing it, so the
// server stays free for ordinary requests.
TEST_F(HttpEndpoints, ThirdConcurrentDeltaIsRefusedAndServerStaysResponsive) {
  std::vector<HttpResult> results(3);
  std::vector<std::thread> clients;
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back([this, &results, i] {
      results[i] = Get("/debug/pprof/allocs?seconds=2");
    });
    // Two are surely waiting before the third arrives.
    if (i == 1) std::this_thread::sleep_for(Millis(500));
  }
  // Meanwhile, ordinary requests are served at once.
  const auto start = Clock::now();
  const HttpResult cmdline = Get("/debug/pprof/cmdline");
  EXPECT_EQ(cmdline.status, 200) << cmdline.error;
  EXPECT_LT(Clock::now() - start, Millis(1000));
  for (std::thread& t : clients) t.join();
  int ok = 0, refused = 0;
  for (const HttpResult& r : results) {
    if (r.status == 200) ++ok;
    if (r.status == 429) {
      ++refused;
      EXPECT_EQ(r.Header("X-Go-Pprof"), "1");
    }
  }
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(refused, 1);
}

TEST_F(HttpEndpoints, IndexListsHeapProfiles) {
  const HttpResult r = Get("/debug/pprof/");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_THAT(r.Header("Content-Type"), StartsWith("text/html"));
  EXPECT_THAT(r.body, HasSubstr("href='heap?debug=1'"));
  EXPECT_THAT(r.body, HasSubstr("href='allocs?debug=1'"));
}

}  // namespace
}  // namespace pprof_agent::integration
