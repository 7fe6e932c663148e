// Tests of http/config: PPROF_AGENT_* parsing, Options merging, address
// syntax and the "non-loopback needs a token" rule.
#include "http/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pprof_agent::internal {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// A null-terminated envp built from strings.
class Env {
 public:
  Env(std::initializer_list<const char*> entries) : entries_(entries) {
    entries_.push_back(nullptr);
  }
  const char* const* get() const { return entries_.data(); }

 private:
  std::vector<const char*> entries_;
};

Config Parse(const Env& env, std::vector<std::string>* errors) {
  return ConfigFromEnv(env.get(), errors);
}

TEST(ConfigFromEnv, EmptyEnvironmentGivesDefaults) {
  std::vector<std::string> errors;
  Config config = Parse(Env{}, &errors);
  EXPECT_EQ(config.address, "127.0.0.1:6060");
  EXPECT_EQ(config.token, "");
  EXPECT_EQ(config.heap_rate, 512 * 1024);
  EXPECT_EQ(config.max_seconds, 300);
  EXPECT_EQ(config.autostart, Autostart::kDefault);
  EXPECT_FALSE(config.preloaded);
  EXPECT_THAT(errors, IsEmpty());
}

TEST(ConfigFromEnv, NullEnvironmentGivesDefaults) {
  Config config = ConfigFromEnv(nullptr, nullptr);
  EXPECT_EQ(config.address, "127.0.0.1:6060");
}

TEST(ConfigFromEnv, ReadsEveryVariable) {
  std::vector<std::string> errors;
  Config config =
      Parse(Env{"HOME=/root", "PPROF_AGENT_ADDR=[::1]:7070",
                "PPROF_AGENT_TOKEN=s3cret", "PPROF_AGENT_HEAP_RATE=1",
                "PPROF_AGENT_MAX_SECONDS=60", "PPROF_AGENT_AUTOSTART=1"},
            &errors);
  EXPECT_EQ(config.address, "[::1]:7070");
  EXPECT_EQ(config.token, "s3cret");
  EXPECT_EQ(config.heap_rate, 1);
  EXPECT_EQ(config.max_seconds, 60);
  EXPECT_EQ(config.autostart, Autostart::kOn);
  EXPECT_THAT(errors, IsEmpty());
}

TEST(ConfigFromEnv, HeapRateZeroTurnsSamplingOff) {
  Config config = Parse(Env{"PPROF_AGENT_HEAP_RATE=0"}, nullptr);
  EXPECT_EQ(config.heap_rate, 0);
}

TEST(ConfigFromEnv, BadHeapRateKeepsDefaultWithOneMessage) {
  for (const char* entry :
       {"PPROF_AGENT_HEAP_RATE=abc", "PPROF_AGENT_HEAP_RATE=-5",
        "PPROF_AGENT_HEAP_RATE=", "PPROF_AGENT_HEAP_RATE=1.5",
        "PPROF_AGENT_HEAP_RATE= 100", "PPROF_AGENT_HEAP_RATE=512k",
        "PPROF_AGENT_HEAP_RATE=99999999999999999999"}) {
    SCOPED_TRACE(entry);
    std::vector<std::string> errors;
    Config config = Parse(Env{entry}, &errors);
    EXPECT_EQ(config.heap_rate, kDefaultHeapRate);
    ASSERT_THAT(errors, SizeIs(1));
    EXPECT_THAT(errors[0], HasSubstr("PPROF_AGENT_HEAP_RATE"));
    EXPECT_THAT(errors[0], HasSubstr("using 524288"));
    EXPECT_THAT(errors[0], Not(HasSubstr("\n")));
  }
}

TEST(ConfigFromEnv, BadMaxSecondsKeepsDefault) {
  for (const char* entry :
       {"PPROF_AGENT_MAX_SECONDS=0", "PPROF_AGENT_MAX_SECONDS=-1",
        "PPROF_AGENT_MAX_SECONDS=86401", "PPROF_AGENT_MAX_SECONDS=ten"}) {
    SCOPED_TRACE(entry);
    std::vector<std::string> errors;
    EXPECT_EQ(Parse(Env{entry}, &errors).max_seconds, 300);
    EXPECT_THAT(errors, SizeIs(1));
  }
}

TEST(ConfigFromEnv, BadAddressKeepsDefault) {
  for (const char* entry :
       {"PPROF_AGENT_ADDR=6060", "PPROF_AGENT_ADDR=localhost:http",
        "PPROF_AGENT_ADDR=::1:6060", "PPROF_AGENT_ADDR=127.0.0.1:70000",
        "PPROF_AGENT_ADDR="}) {
    SCOPED_TRACE(entry);
    std::vector<std::string> errors;
    EXPECT_EQ(Parse(Env{entry}, &errors).address, "127.0.0.1:6060");
    EXPECT_THAT(errors, SizeIs(1));
  }
}

TEST(ConfigFromEnv, AddressOffIsAccepted) {
  EXPECT_EQ(Parse(Env{"PPROF_AGENT_ADDR=off"}, nullptr).address, "off");
}

TEST(ConfigFromEnv, BadTokenIsRejectedWithoutEchoingIt) {
  std::vector<std::string> errors;
  Config config = Parse(Env{"PPROF_AGENT_TOKEN=has space"}, &errors);
  EXPECT_EQ(config.token, "");
  ASSERT_THAT(errors, SizeIs(1));
  EXPECT_THAT(errors[0], Not(HasSubstr("has space")));
}

TEST(ConfigFromEnv, ControlBytesInValuesAreNotLogged) {
  std::vector<std::string> errors;
  Parse(Env{"PPROF_AGENT_HEAP_RATE=1\nfake log line"}, &errors);
  ASSERT_THAT(errors, SizeIs(1));
  EXPECT_THAT(errors[0], Not(HasSubstr("\n")));
}

TEST(ConfigFromEnv, UnknownVariableIsReported) {
  std::vector<std::string> errors;
  Parse(Env{"PPROF_AGENT_HEAP_RAT=1"}, &errors);
  ASSERT_THAT(errors, SizeIs(1));
  EXPECT_THAT(errors[0], HasSubstr("PPROF_AGENT_HEAP_RAT"));
}

TEST(ConfigFromEnv, VariablesOfLaterVersionsAreSilent) {
  std::vector<std::string> errors;
  Parse(Env{"PPROF_AGENT_CPU_HZ=100", "PPROF_AGENT_MUTEX_RATE=5",
            "PPROF_AGENT_BLOCK_RATE=5"},
        &errors);
  EXPECT_THAT(errors, IsEmpty());
}

TEST(ConfigFromEnv, FirstOfDuplicateEntriesWinsAsWithGetenv) {
  Config config =
      Parse(Env{"PPROF_AGENT_HEAP_RATE=7", "PPROF_AGENT_HEAP_RATE=9"}, nullptr);
  EXPECT_EQ(config.heap_rate, 7);
}

TEST(ConfigFromEnv, PreloadIsDetectedFromLdPreload) {
  EXPECT_TRUE(
      Parse(Env{"LD_PRELOAD=/opt/x/libfoo.so:/usr/lib/libpprof_agent.so"},
            nullptr)
          .preloaded);
  EXPECT_FALSE(
      Parse(Env{"LD_PRELOAD=/usr/lib/libjemalloc.so"}, nullptr).preloaded);
}

TEST(ConfigFromEnv, AutostartAcceptsOnlyZeroOrOne) {
  EXPECT_EQ(Parse(Env{"PPROF_AGENT_AUTOSTART=0"}, nullptr).autostart,
            Autostart::kOff);
  std::vector<std::string> errors;
  EXPECT_EQ(Parse(Env{"PPROF_AGENT_AUTOSTART=yes"}, &errors).autostart,
            Autostart::kDefault);
  EXPECT_THAT(errors, SizeIs(1));
}

TEST(ShouldAutostart, PreloadStartsUnlessAutostartIsZero) {
  Config config;
  EXPECT_FALSE(ShouldAutostart(config));
  config.preloaded = true;
  EXPECT_TRUE(ShouldAutostart(config));
  config.autostart = Autostart::kOff;
  EXPECT_FALSE(ShouldAutostart(config));
  config.preloaded = false;
  config.autostart = Autostart::kOn;
  EXPECT_TRUE(ShouldAutostart(config));
}

TEST(Merge, UnsetOptionsKeepTheEnvironmentsValues) {
  Config base;
  base.address = "127.0.0.1:7000";
  base.token = "t";
  base.heap_rate = 4096;
  base.max_seconds = 30;
  Config merged = Merge(base, Options());
  EXPECT_EQ(merged.address, "127.0.0.1:7000");
  EXPECT_EQ(merged.token, "t");
  EXPECT_EQ(merged.heap_rate, 4096);
  EXPECT_EQ(merged.max_seconds, 30);
}

TEST(Merge, SetOptionsOverride) {
  Options options;
  options.address = "127.0.0.1:0";
  options.token = "tok";
  options.heap_sample_rate = 0;  // 0 is a value (off), not "unset"
  options.max_profile_seconds = 10;
  Config merged = Merge(Config(), options);
  EXPECT_EQ(merged.address, "127.0.0.1:0");
  EXPECT_EQ(merged.token, "tok");
  EXPECT_EQ(merged.heap_rate, 0);
  EXPECT_EQ(merged.max_seconds, 10);
}

TEST(ParseAddress, HostAndPort) {
  Address a;
  std::string error;
  ASSERT_TRUE(ParseAddress("127.0.0.1:6060", &a, &error)) << error;
  EXPECT_FALSE(a.off);
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 6060);
  ASSERT_TRUE(ParseAddress("localhost:0", &a, &error)) << error;
  EXPECT_EQ(a.host, "localhost");
  EXPECT_EQ(a.port, 0);
}

TEST(ParseAddress, BracketedIpv6) {
  Address a;
  std::string error;
  ASSERT_TRUE(ParseAddress("[::1]:6060", &a, &error)) << error;
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 6060);
  ASSERT_TRUE(ParseAddress("[::]:1", &a, &error)) << error;
  EXPECT_EQ(a.host, "::");
}

TEST(ParseAddress, EmptyHostMeansEveryInterfaceAsInGo) {
  Address a;
  std::string error;
  ASSERT_TRUE(ParseAddress(":6060", &a, &error)) << error;
  EXPECT_EQ(a.host, "0.0.0.0");
}

TEST(ParseAddress, Off) {
  Address a;
  std::string error;
  ASSERT_TRUE(ParseAddress("off", &a, &error));
  EXPECT_TRUE(a.off);
}

TEST(ParseAddress, RejectsMalformedAddresses) {
  for (const char* text :
       {"", "6060", "127.0.0.1", "127.0.0.1:", "127.0.0.1:-1",
        "127.0.0.1:65536", "127.0.0.1:+80", "127.0.0.1:80x", "::1:6060",
        "[::1]6060", "[::1", "[::1]:", "[nothost]:80", "ho st:80", "host/x:80",
        "OFF"}) {
    SCOPED_TRACE(text);
    Address a;
    std::string error;
    EXPECT_FALSE(ParseAddress(text, &a, &error));
    EXPECT_THAT(error, Not(IsEmpty()));
  }
}

TEST(FormatHostPort, BracketsIpv6) {
  EXPECT_EQ(FormatHostPort("127.0.0.1", 80), "127.0.0.1:80");
  EXPECT_EQ(FormatHostPort("::1", 80), "[::1]:80");
}

TEST(IsLoopbackHost, RecognisesLoopbackOnly) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST",
                           "::1", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "myhost",
                           "::ffff:10.0.0.1", "localhost.example.com"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

TEST(Validate, DefaultsAreValid) { EXPECT_TRUE(Validate(Config()).ok()); }

TEST(Validate, NonLoopbackWithoutTokenIsRefused) {
  for (const char* address :
       {"0.0.0.0:6060", ":6060", "[::]:6060", "10.1.2.3:6060", "myhost:6060"}) {
    Config config;
    config.address = address;
    Status status = Validate(config);
    EXPECT_FALSE(status.ok()) << address;
    EXPECT_THAT(status.message(), HasSubstr("token")) << address;
    EXPECT_THAT(status.message(), Not(HasSubstr("\n")));
  }
}

TEST(Validate, NonLoopbackWithTokenIsAccepted) {
  Config config;
  config.address = "0.0.0.0:6060";
  config.token = "secret";
  EXPECT_TRUE(Validate(config).ok());
}

TEST(Validate, OffNeedsNoToken) {
  Config config;
  config.address = "off";
  EXPECT_TRUE(Validate(config).ok());
}

TEST(Validate, RejectsOutOfRangeValuesFromOptions) {
  Config config;
  config.heap_rate = -2;
  EXPECT_FALSE(Validate(config).ok());
  config = Config();
  config.max_seconds = 0;
  EXPECT_FALSE(Validate(config).ok());
  config = Config();
  config.address = "nonsense";
  EXPECT_FALSE(Validate(config).ok());
  config = Config();
  config.token = "bad token";
  EXPECT_FALSE(Validate(config).ok());
}

TEST(ParseNonNegativeInt, DigitsOnlyWithoutOverflow) {
  int64_t v = -1;
  EXPECT_TRUE(ParseNonNegativeInt("0", &v));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(ParseNonNegativeInt("9223372036854775807", &v));
  EXPECT_EQ(v, INT64_MAX);
  EXPECT_FALSE(ParseNonNegativeInt("9223372036854775808", &v));
  EXPECT_FALSE(ParseNonNegativeInt("", &v));
  EXPECT_FALSE(ParseNonNegativeInt("+1", &v));
  EXPECT_FALSE(ParseNonNegativeInt("1 ", &v));
}

}  // namespace
}  // namespace pprof_agent::internal
