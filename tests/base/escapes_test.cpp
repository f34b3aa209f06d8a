#include "base/escapes.h"

#include <gtest/gtest.h>

namespace bitnet {
namespace {

TEST(Escapes, NamedEscapesHexAndLiteralBackslashes) {
  EXPECT_EQ(process_escapes(R"(a\nb\tc\\d\"e\'f)"), "a\nb\tc\\d\"e'f");
  EXPECT_EQ(process_escapes(R"(\x41\x4a\x7e!)"), "AJ~!");
  EXPECT_EQ(process_escapes(R"(\x4)"), "\x04");
  EXPECT_EQ(process_escapes(R"(\xg)"), "\\xg") << "no hex digit: kept";
  EXPECT_EQ(process_escapes(R"(C:\path\q)"), "C:\\path\\q") << "unknown escapes kept";
  EXPECT_EQ(process_escapes("end\\"), "end\\") << "a trailing backslash stays";
  EXPECT_EQ(process_escapes(R"(a\0b)"), std::string("a\0b", 3));
  EXPECT_EQ(process_escapes("plain text"), "plain text");
}

}  // namespace
}  // namespace bitnet
