#include "base/line_reader.h"

#include <gtest/gtest.h>

#include <sstream>

namespace bitnet {
namespace {

TEST(LineReader, LinesWithAndWithoutCarriageReturnsAndALastLineWithoutNewline) {
  std::istringstream in("first\r\nsecond\n\nlast");
  std::string line;
  ASSERT_EQ(read_bounded_line(in, 100, line), LineStatus::Line);
  EXPECT_EQ(line, "first");
  ASSERT_EQ(read_bounded_line(in, 100, line), LineStatus::Line);
  EXPECT_EQ(line, "second");
  ASSERT_EQ(read_bounded_line(in, 100, line), LineStatus::Line);
  EXPECT_EQ(line, "");
  ASSERT_EQ(read_bounded_line(in, 100, line), LineStatus::Line);
  EXPECT_EQ(line, "last");
  EXPECT_EQ(read_bounded_line(in, 100, line), LineStatus::End);
  EXPECT_EQ(read_bounded_line(in, 100, line), LineStatus::End);
}

TEST(LineReader, ALineOverTheLimitStopsReadingThere) {
  std::istringstream in(std::string(10, 'a') + "\nnext\n");
  std::string line;
  EXPECT_EQ(read_bounded_line(in, 10, line), LineStatus::Line) << "exactly the limit is fine";
  std::istringstream longer(std::string(11, 'a') + "\n");
  EXPECT_EQ(read_bounded_line(longer, 10, line), LineStatus::TooLong);
  EXPECT_EQ(line.size(), 10u);
  // Nothing past the limit was consumed.
  std::string rest;
  ASSERT_EQ(read_bounded_line(longer, 10, rest), LineStatus::Line);
  EXPECT_EQ(rest, "a");
}

TEST(LineReader, NulBytesWithoutNewlineAreBounded) {
  std::istringstream zeros(std::string(1 << 20, '\0'));
  std::string line;
  EXPECT_EQ(read_bounded_line(zeros, 4096, line), LineStatus::TooLong);
  EXPECT_EQ(line.size(), 4096u);
}

}  // namespace
}  // namespace bitnet
