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

// --- request arrival (the listener's framing check) -------------------------

constexpr size_t kHead = 1024, kBody = 100;

RequestArrival Judge(const std::string& data) {
  return JudgeRequestArrival(data, kHead, kBody);
}

TEST(RequestArrivalTest, HeadIsWholeAtItsEmptyLine) {
  EXPECT_EQ(Judge(""), RequestArrival::kPartial);
  EXPECT_EQ(Judge("GET /debug/pprof/heap"), RequestArrival::kPartial);
  EXPECT_EQ(Judge("GET / HTTP/1.1\r\nHost: a\r\n"), RequestArrival::kPartial);
  EXPECT_EQ(Judge("GET / HTTP/1.1\r\nHost: a\r\n\r"), RequestArrival::kPartial);
  EXPECT_EQ(Judge("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), RequestArrival::kWhole);
  // Bare LF line ends, as the parser accepts them.
  EXPECT_EQ(Judge("GET / HTTP/1.1\nHost: a\n\n"), RequestArrival::kWhole);
  // No headers at all; garbage lines are the parser's to refuse.
  EXPECT_EQ(Judge("GET\r\n\r\n"), RequestArrival::kWhole);
  EXPECT_EQ(Judge("GARBAGE\r\nno colon here\r\n\r\n"), RequestArrival::kWhole);
}

TEST(RequestArrivalTest, HeadOverItsLimitIsHandedOverUnfinished) {
  EXPECT_EQ(Judge("GET /" + std::string(kHead - 6, 'a')),
            RequestArrival::kPartial);
  EXPECT_EQ(Judge("GET /" + std::string(kHead, 'a')), RequestArrival::kWhole);
  EXPECT_EQ(Judge("GET / HTTP/1.1\r\nX: " + std::string(kHead, 'h') + "\r\n"),
            RequestArrival::kWhole);
}

TEST(RequestArrivalTest, BodyIsWholeAtItsContentLength) {
  const std::string head =
      "POST /debug/pprof/symbol HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
  EXPECT_EQ(Judge(head), RequestArrival::kPartial);
  EXPECT_EQ(Judge(head + "0x1+"), RequestArrival::kPartial);
  EXPECT_EQ(Judge(head + "0x1+2"), RequestArrival::kWhole);
  EXPECT_EQ(Judge("POST / HTTP/1.1\r\ncontent-length:0\r\n\r\n"),
            RequestArrival::kWhole);
  // Repeats that agree are one length.
  EXPECT_EQ(Judge("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2"
                  "\r\n\r\nz"),
            RequestArrival::kPartial);
}

TEST(RequestArrivalTest, FramingTheParserRefusesIsHandedOverAtOnce) {
  for (const std::string length :
       {"-1", "abc", "", "99999999999999999999", "101", "1 2"}) {
    EXPECT_EQ(
        Judge("POST / HTTP/1.1\r\nContent-Length: " + length + "\r\n\r\n"),
        RequestArrival::kWhole)
        << length;
  }
  EXPECT_EQ(Judge("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 30"
                  "\r\n\r\n"),
            RequestArrival::kWhole);
}

TEST(RequestArrivalTest, ChunkedBodyIsWholeAfterTheLastChunkAndTrailers) {
  const std::string head =
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(Judge(head), RequestArrival::kPartial);
  EXPECT_EQ(Judge(head + "3\r\nab"), RequestArrival::kPartial);
  EXPECT_EQ(Judge(head + "3\r\nabc\r\n"), RequestArrival::kPartial);
  EXPECT_EQ(Judge(head + "3\r\nabc\r\n0\r\n"), RequestArrival::kPartial);
  EXPECT_EQ(Judge(head + "3\r\nabc\r\n0\r\n\r\n"), RequestArrival::kWhole);
  EXPECT_EQ(Judge(head + "3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"),
            RequestArrival::kWhole);
  // Bad sizes, data longer than its size, bodies over the limit: refused
  // by the parser, so handed over.
  EXPECT_EQ(Judge(head + "zz\r\n"), RequestArrival::kWhole);
  EXPECT_EQ(Judge(head + "ffffffffffffffff\r\n"), RequestArrival::kWhole);
  EXPECT_EQ(Judge(head + "2\r\nabc\r\n"), RequestArrival::kWhole);
  EXPECT_EQ(Judge(head + "60\r\n"), RequestArrival::kPartial);
  EXPECT_EQ(Judge(head + "65\r\n"), RequestArrival::kWhole);  // 101 > 100
}

TEST(RequestArrivalTest, ExpectContinueIsReportedUntilTheBodyBegins) {
  const std::string head =
      "POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
  EXPECT_EQ(Judge(head), RequestArrival::kExpectsContinue);
  EXPECT_EQ(Judge(head + "a"), RequestArrival::kPartial);
  EXPECT_EQ(Judge(head + "abc"), RequestArrival::kWhole);
  // Too large: refused (413) without the body.
  EXPECT_EQ(Judge("POST / HTTP/1.1\r\nExpect: 100-continue\r\n"
                  "Content-Length: 1000\r\n\r\n"),
            RequestArrival::kWhole);
}

}  // namespace
}  // namespace pprof_agent::internal
