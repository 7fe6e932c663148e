// The contention settings of the environment parser (http/config.h):
// PPROF_AGENT_MUTEX_RATE, PPROF_AGENT_BLOCK_RATE,
// PPROF_AGENT_LOCK_STACKS_PER_SEC.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/config.h"

namespace pprof_agent::internal {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

Config Parse(std::vector<const char*> env, std::vector<std::string>* errors) {
  env.push_back(nullptr);
  return ConfigFromEnv(env.data(), errors);
}

TEST(ContentionConfig, DefaultsAreOnAndBounded) {
  std::vector<std::string> errors;
  const Config config = Parse({}, &errors);
  EXPECT_THAT(errors, IsEmpty());
  EXPECT_EQ(config.mutex_rate, 1);
  EXPECT_EQ(config.block_rate, 10000);
  EXPECT_EQ(config.lock_stacks_per_sec, 1000);
}

TEST(ContentionConfig, VariablesAreRead) {
  std::vector<std::string> errors;
  const Config config =
      Parse({"PPROF_AGENT_MUTEX_RATE=5", "PPROF_AGENT_BLOCK_RATE=0",
             "PPROF_AGENT_LOCK_STACKS_PER_SEC=50"},
            &errors);
  EXPECT_THAT(errors, IsEmpty());
  EXPECT_EQ(config.mutex_rate, 5);
  EXPECT_EQ(config.block_rate, 0);
  EXPECT_EQ(config.lock_stacks_per_sec, 50);
}

TEST(ContentionConfig, BadValuesKeepTheDefaultWithOneMessage) {
  std::vector<std::string> errors;
  const Config config =
      Parse({"PPROF_AGENT_MUTEX_RATE=-1", "PPROF_AGENT_BLOCK_RATE=10us",
             "PPROF_AGENT_LOCK_STACKS_PER_SEC=lots"},
            &errors);
  ASSERT_THAT(errors, SizeIs(3));
  EXPECT_THAT(errors[0], HasSubstr("PPROF_AGENT_MUTEX_RATE"));
  EXPECT_THAT(errors[0], HasSubstr("using 1"));
  EXPECT_THAT(errors[1], HasSubstr("using 10000"));
  EXPECT_THAT(errors[2], HasSubstr("using 1000"));
  EXPECT_EQ(config.mutex_rate, 1);
  EXPECT_EQ(config.block_rate, 10000);
  EXPECT_EQ(config.lock_stacks_per_sec, 1000);
}

}  // namespace
}  // namespace pprof_agent::internal
