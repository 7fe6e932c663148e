// The thread-dump side of the configuration (PPROF_AGENT_DUMP_SIGNAL) and
// of Handlers: the goroutine endpoint's errors, in this process (no
// sockets, no hooks).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <vector>

#include "http/config.h"
#include "http/handlers.h"
#include "profiler/threads/thread_dump.h"

namespace pprof_agent::internal {
namespace {

using ::testing::HasSubstr;

Config Parse(std::vector<const char*> env, std::vector<std::string>* errors) {
  env.push_back(nullptr);
  return ConfigFromEnv(env.data(), errors);
}

TEST(ThreadDumpConfig, DefaultIsSigrtminPlusSix) {
  std::vector<std::string> errors;
  const Config c = Parse({}, &errors);
  EXPECT_TRUE(errors.empty());
  EXPECT_EQ(c.dump_signal, 0);
  EXPECT_EQ(DefaultThreadDumpSignal(), SIGRTMIN + 6);
  EXPECT_TRUE(Validate(c).ok());
}

TEST(ThreadDumpConfig, ReadsTheSignalByNameOrNumber) {
  std::vector<std::string> errors;
  EXPECT_EQ(Parse({"PPROF_AGENT_DUMP_SIGNAL=SIGRTMIN+9"}, &errors).dump_signal, SIGRTMIN + 9);
  EXPECT_EQ(Parse({"PPROF_AGENT_DUMP_SIGNAL=usr2"}, &errors).dump_signal, SIGUSR2);
  EXPECT_EQ(Parse({"PPROF_AGENT_DUMP_SIGNAL=SIGRTMAX-2"}, &errors).dump_signal, SIGRTMAX - 2);
  EXPECT_TRUE(errors.empty());
}

TEST(ThreadDumpConfig, BadSignalKeepsTheDefaultWithOneMessage) {
  std::vector<std::string> errors;
  const Config c = Parse({"PPROF_AGENT_DUMP_SIGNAL=SIGSEGV"}, &errors);
  EXPECT_EQ(c.dump_signal, 0);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0], HasSubstr("PPROF_AGENT_DUMP_SIGNAL=\"SIGSEGV\""));
  EXPECT_THAT(errors[0], HasSubstr("SIGRTMIN+6"));
}

TEST(ThreadDumpConfig, SameSignalAsTheCpuProfileIsRefused) {
  Config c;
  c.dump_signal = SIGRTMIN + 4;
  c.cpu_signal = SIGRTMIN + 4;
  const Status status = Validate(c);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("must differ"));
  c.cpu_signal = SIGPROF;
  EXPECT_TRUE(Validate(c).ok());
  c.dump_signal = 0;
  c.cpu_signal = SIGRTMIN + 6;  // the dump's default
  EXPECT_FALSE(Validate(c).ok());
}

TEST(GoroutineHandler, SecondsAndBadDebugAre400) {
  Config config;
  config.address = "127.0.0.1:0";
  Handlers handlers(config);
  HttpRequest request;
  request.method = "GET";
  request.path = "/debug/pprof/goroutine";
  request.params = {{"debug", "3"}};
  EXPECT_EQ(handlers.Serve(request).status, 400);
  request.params = {{"seconds", "2"}};
  const HttpResponse r = handlers.Serve(request);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Header("X-Go-Pprof"), "1");
}

TEST(GoroutineHandler, ApplicationHandlerOnTheSignalIs500ForProfilesButDebug2Lists) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "TSan rewrites signal delivery";
#endif
  const int signo = SIGRTMIN + 11;
  struct sigaction sa = {};
  sa.sa_handler = [](int) {};
  struct sigaction old;
  ASSERT_EQ(sigaction(signo, &sa, &old), 0);
  const int previous = ThreadDumpSignal();
  SetThreadDumpSignal(signo);
  Config config;
  config.address = "127.0.0.1:0";
  Handlers handlers(config);
  HttpRequest request;
  request.method = "GET";
  request.path = "/debug/pprof/goroutine";
  const HttpResponse proto = handlers.Serve(request);
  EXPECT_EQ(proto.status, 500);
  EXPECT_THAT(proto.body, HasSubstr("SIGRTMIN+11 already has a handler installed by the "
                                    "application; the agent does not replace it (set "
                                    "PPROF_AGENT_DUMP_SIGNAL"));
  request.params = {{"debug", "2"}};
  const HttpResponse dump = handlers.Serve(request);
  EXPECT_EQ(dump.status, 200);
  EXPECT_THAT(dump.body, HasSubstr("NO STACKS in this dump: SIGRTMIN+11 already has a handler"));
  EXPECT_THAT(dump.body, HasSubstr("(stack missing: no stacks in this dump"));
  SetThreadDumpSignal(previous);
  sigaction(signo, &old, nullptr);
}

}  // namespace
}  // namespace pprof_agent::internal
