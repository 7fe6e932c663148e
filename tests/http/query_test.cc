// Tests of http/query: `seconds`/`debug` validation with Go's error texts,
// and /symbol address lists.
#include "http/query.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pprof_agent::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int64_t kMax = 300;

TEST(ParseSeconds, AcceptsPositiveIntegersUpToTheCap) {
  int64_t seconds = 0;
  EXPECT_FALSE(ParseSeconds("1", kMax, &seconds));
  EXPECT_EQ(seconds, 1);
  EXPECT_FALSE(ParseSeconds("300", kMax, &seconds));
  EXPECT_EQ(seconds, 300);
  EXPECT_FALSE(ParseSeconds("007", kMax, &seconds));
  EXPECT_EQ(seconds, 7);
}

TEST(ParseSeconds, RejectsNonPositiveAndNonIntegersWithGosMessage) {
  for (const char* text :
       {"0", "-1", "+5", "1.5", "NaN", "nan", "inf", " 5", "5 ", "5s", "0x10",
        "", "abc", "99999999999999999999999"}) {
    SCOPED_TRACE(text);
    int64_t seconds = 0;
    auto error = ParseSeconds(text, kMax, &seconds);
    ASSERT_TRUE(error);
    EXPECT_EQ(error->status, 400);
    EXPECT_EQ(error->message,
              "invalid value for \"seconds\" - must be a positive integer");
  }
}

TEST(ParseSeconds, OverTheCapIsRefusedNamingTheCap) {
  int64_t seconds = 0;
  auto error = ParseSeconds("301", kMax, &seconds);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->status, 400);
  EXPECT_THAT(error->message, HasSubstr("300"));
  EXPECT_THAT(error->message, HasSubstr("PPROF_AGENT_MAX_SECONDS"));
}

TEST(ParseDebug, AcceptsZeroOneTwo) {
  for (int want : {0, 1, 2}) {
    int debug = -1;
    EXPECT_FALSE(ParseDebug(std::to_string(want), &debug));
    EXPECT_EQ(debug, want);
  }
}

TEST(ParseDebug, RejectsEverythingElse) {
  for (const char* text : {"3", "-1", "x", "1.0", "01", " 1", "true"}) {
    SCOPED_TRACE(text);
    int debug = 0;
    auto error = ParseDebug(text, &debug);
    ASSERT_TRUE(error);
    EXPECT_EQ(error->status, 400);
    EXPECT_EQ(error->message, "invalid value for \"debug\"");
  }
}

TEST(ParseProfileQuery, DefaultsWithoutParameters) {
  ProfileQuery query{9, 9};
  EXPECT_FALSE(ParseProfileQuery({}, kMax, &query));
  EXPECT_EQ(query.debug, 0);
  EXPECT_EQ(query.seconds, 0);
}

TEST(ParseProfileQuery, SecondsWithDebugAreIncompatible) {
  ProfileQuery query;
  auto error =
      ParseProfileQuery({{"seconds", "5"}, {"debug", "1"}}, kMax, &query);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->status, 400);
  EXPECT_EQ(error->message, "seconds and debug params are incompatible");
}

TEST(ParseProfileQuery, SecondsWithDebugZeroIsADelta) {
  ProfileQuery query;
  EXPECT_FALSE(
      ParseProfileQuery({{"seconds", "5"}, {"debug", "0"}}, kMax, &query));
  EXPECT_EQ(query.seconds, 5);
  EXPECT_EQ(query.debug, 0);
}

TEST(ParseProfileQuery, GcIsAcceptedAndIgnored) {
  ProfileQuery query;
  EXPECT_FALSE(ParseProfileQuery({{"gc", "1"}, {"debug", "1"}}, kMax, &query));
  EXPECT_EQ(query.debug, 1);
  EXPECT_FALSE(ParseProfileQuery({{"gc", "junk"}}, kMax, &query));
}

TEST(ParseProfileQuery, EmptyValuesCountAsAbsent) {
  ProfileQuery query;
  EXPECT_FALSE(
      ParseProfileQuery({{"seconds", ""}, {"debug", ""}}, kMax, &query));
  EXPECT_EQ(query.seconds, 0);
  EXPECT_EQ(query.debug, 0);
}

TEST(ParseProfileQuery, BadSecondsIsReportedBeforeBadDebugAsInGo) {
  ProfileQuery query;
  auto error =
      ParseProfileQuery({{"seconds", "x"}, {"debug", "x"}}, kMax, &query);
  ASSERT_TRUE(error);
  EXPECT_THAT(error->message, HasSubstr("\"seconds\""));
}

TEST(ParseProfileQuery, FirstOfRepeatedParametersWins) {
  ProfileQuery query;
  EXPECT_FALSE(
      ParseProfileQuery({{"debug", "1"}, {"debug", "junk"}}, kMax, &query));
  EXPECT_EQ(query.debug, 1);
}

TEST(ParseSymbolAddresses, HexWithOrWithoutPrefix) {
  std::vector<uint64_t> addresses;
  EXPECT_FALSE(ParseSymbolAddresses("0x401000+7f00aa+0XFF+0xffffffffffffffff",
                                    &addresses));
  EXPECT_THAT(addresses,
              ElementsAre(0x401000u, 0x7f00aau, 0xffu, 0xffffffffffffffffu));
}

TEST(ParseSymbolAddresses, EmptyItemsAndZeroAreSkippedAsInGo) {
  std::vector<uint64_t> addresses;
  EXPECT_FALSE(ParseSymbolAddresses("0x10++0x0+0x20+", &addresses));
  EXPECT_THAT(addresses, ElementsAre(0x10u, 0x20u));
  EXPECT_FALSE(ParseSymbolAddresses("", &addresses));
  EXPECT_THAT(addresses, IsEmpty());
}

TEST(ParseSymbolAddresses, SurroundingWhitespaceIsTolerated) {
  std::vector<uint64_t> addresses;
  EXPECT_FALSE(ParseSymbolAddresses("0x10 + 0x20\n", &addresses));
  EXPECT_THAT(addresses, ElementsAre(0x10u, 0x20u));
}

TEST(ParseSymbolAddresses, RejectsNonAddresses) {
  for (const char* text : {"main", "0x", "0x12g", "0x10+zz", "-1",
                           "0x1ffffffffffffffff", "0x1 0x2"}) {
    SCOPED_TRACE(text);
    std::vector<uint64_t> addresses;
    auto error = ParseSymbolAddresses(text, &addresses);
    ASSERT_TRUE(error);
    EXPECT_EQ(error->status, 400);
    EXPECT_THAT(error->message, HasSubstr("invalid address"));
  }
}

TEST(ParseSymbolAddresses, BoundsTheNumberOfAddresses) {
  std::string text;
  for (size_t i = 1; i <= kMaxSymbolAddresses; ++i) {
    if (i > 1) text += '+';
    text += "1";
  }
  std::vector<uint64_t> addresses;
  EXPECT_FALSE(ParseSymbolAddresses(text, &addresses));
  EXPECT_EQ(addresses.size(), kMaxSymbolAddresses);
  text += "+1";
  auto error = ParseSymbolAddresses(text, &addresses);
  ASSERT_TRUE(error);
  EXPECT_THAT(error->message, HasSubstr("too many addresses"));
}

TEST(ParseSymbolAddresses, RejectsOverlongInput) {
  std::string text(kMaxSymbolRequestBytes + 1, '+');
  std::vector<uint64_t> addresses;
  auto error = ParseSymbolAddresses(text, &addresses);
  ASSERT_TRUE(error);
  EXPECT_THAT(error->message, HasSubstr("too long"));
}

TEST(ParseSymbolAddresses, ErrorMessageIsBoundedAndPrintable) {
  std::string junk = "\x01\x02" + std::string(500, 'z');
  std::vector<uint64_t> addresses;
  auto error = ParseSymbolAddresses(junk, &addresses);
  ASSERT_TRUE(error);
  EXPECT_LT(error->message.size(), 200u);
  for (char c : error->message) EXPECT_TRUE(c >= 0x20 && c < 0x7f);
}

TEST(SymbolQueryFromRawQuery, DropsNameValueParts) {
  EXPECT_EQ(SymbolQueryFromRawQuery("0x1+0x2"), "0x1+0x2");
  EXPECT_EQ(SymbolQueryFromRawQuery("0x1+0x2&token=abc"), "0x1+0x2");
  EXPECT_EQ(SymbolQueryFromRawQuery("token=abc&0x1"), "0x1");
  EXPECT_EQ(SymbolQueryFromRawQuery("token=abc"), "");
  EXPECT_EQ(SymbolQueryFromRawQuery(""), "");
}

TEST(SymbolQueryFromRawQuery, DecodesPercentEscapesButKeepsPlus) {
  EXPECT_EQ(SymbolQueryFromRawQuery("0x1%2B0x2%2b0x3+0x4"), "0x1+0x2+0x3+0x4");
  EXPECT_EQ(SymbolQueryFromRawQuery("0x1%2"), "0x1%2");
  EXPECT_EQ(SymbolQueryFromRawQuery("0x1%zz"), "0x1%zz");
}

}  // namespace
}  // namespace pprof_agent::internal
