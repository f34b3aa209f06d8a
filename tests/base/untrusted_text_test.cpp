#include "base/untrusted_text.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace bitnet {
namespace {

// True when s holds no byte a terminal acts on: no C0 control, DEL, and no C1 control as a lone
// byte (0x80–0x9f outside a multi-byte sequence) or as its UTF-8 form (0xc2 0x80–0x9f).
bool terminal_inert(const std::string& s, bool allow_newline = false) {
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && !(allow_newline && c == '\n')) || c == 0x7f) return false;
    if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(s[i + 1]) <= 0x9f)
      return false;
  }
  return true;
}

TEST(UntrustedText, PlainTextAndValidUtf8PassUnchanged) {
  EXPECT_EQ(printable("llama"), "llama");
  EXPECT_EQ(printable("grüße ≥ 日本 🙂"), "grüße ≥ 日本 🙂");
  EXPECT_EQ(quote_untrusted("bitnet-b1.58"), "'bitnet-b1.58'");
}

TEST(UntrustedText, TerminalControlsAreEscaped) {
  EXPECT_EQ(printable("\x1b]0;pwned\x07\x1b[2J"), "\\x1b]0;pwned\\x07\\x1b[2J");
  EXPECT_EQ(printable("a\rb\bc\x7f"), "a\\x0db\\x08c\\x7f");
  EXPECT_EQ(printable("line\nnext"), "line\\x0anext");
  EXPECT_EQ(printable("line\nnext", 256, kKeepNewlines), "line\nnext");
  // CSI as a lone byte (invalid UTF-8) and as U+009B (valid UTF-8 C2 9B).
  EXPECT_EQ(printable("x\x9b" "2Jy"), "x\\x9b2Jy");
  EXPECT_EQ(printable("x\xc2\x9b" "2Jy"), "x\\xc2\\x9b2Jy");
  // Right-to-left override (U+202E) and isolates (U+2066).
  EXPECT_EQ(printable("a\xe2\x80\xae" "b\xe2\x81\xa6"), "a\\xe2\\x80\\xaeb\\xe2\\x81\\xa6");
}

TEST(UntrustedText, InvalidUtf8IsEscapedPerByte) {
  EXPECT_EQ(printable("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");            // overlong '/'
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");    // surrogate
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
  EXPECT_EQ(printable("ok\xe2\x82"), "ok\\xe2\\x82");         // truncated sequence at the end
}

TEST(UntrustedText, BackslashesAndQuotesCannotForgeEscapes) {
  EXPECT_EQ(printable("\\x1b"), "\\x5cx1b");
  EXPECT_EQ(printable("\\x1b", 256, kKeepBackslashes), "\\x1b");
  EXPECT_EQ(quote_untrusted("it's"), "'it\\x27s'");
}

TEST(UntrustedText, LongInputIsCutAtACharacterBoundary) {
  EXPECT_EQ(printable(std::string(300, 'a'), 10), "aaaaaaaaaa...");
  EXPECT_EQ(printable("aaaaaaaaa\xc3\xa9", 10), "aaaaaaaaa...");  // é would straddle the limit
  EXPECT_EQ(quote_untrusted(std::string(1 << 20, 'k')).size(), 80u + 2 + 3);
}

TEST(UntrustedText, RandomBytesNeverReachTheTerminalRaw) {
  std::mt19937 rng(1234);
  for (int round = 0; round < 2000; ++round) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = char(rng() & 0xff);
    EXPECT_TRUE(terminal_inert(printable(s)));
    EXPECT_TRUE(terminal_inert(quote_untrusted(s)));
    EXPECT_TRUE(terminal_inert(printable(s, 256, kKeepNewlines | kKeepBackslashes), true));
  }
}

}  // namespace
}  // namespace bitnet
