// Unicode helpers: the generated category table against the TSV, whitespace set, UTF-8 decoding,
// and the pre-tokenizer scanners.
#include <gtest/gtest.h>

#include <sstream>

#include "tok_test_util.h"
#include "tokenizer/internal.h"

using namespace bitnet;
using namespace bitnet::tok;

TEST(Unicode, TableMatchesTsv) {
  std::istringstream in(bitnet::test::read_file(bitnet::test::data_dir() + "/unicode-categories.tsv"));
  std::string line;
  size_t rows = 0;
  const std::string classes = "LNPSMZCU";
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream f(line);
    std::string a, b, c;
    std::getline(f, a, '\t');
    std::getline(f, b, '\t');
    std::getline(f, c, '\t');
    const auto first = static_cast<uint32_t>(std::stoul(a, nullptr, 16));
    const auto last = static_cast<uint32_t>(std::stoul(b, nullptr, 16));
    const auto want = static_cast<UClass>(classes.find(c[0]));
    ASSERT_EQ(uclass(first), want) << line;
    ASSERT_EQ(uclass(last), want) << line;
    ASSERT_EQ(uclass(first + (last - first) / 2), want) << line;
    ++rows;
  }
  EXPECT_EQ(rows, 2272u);
  EXPECT_EQ(uclass(0x110000), UClass::U);
}

TEST(Unicode, Classes) {
  EXPECT_TRUE(is_letter('a'));
  EXPECT_TRUE(is_letter(0x00E9));  // é
  EXPECT_TRUE(is_letter(0x4E2D));  // 中
  EXPECT_TRUE(is_number('7'));
  EXPECT_TRUE(is_number(0x0663));  // Arabic-Indic three
  EXPECT_EQ(uclass('!'), UClass::P);
  EXPECT_EQ(uclass('\''), UClass::P);
  EXPECT_EQ(uclass('$'), UClass::S);
  EXPECT_EQ(uclass('`'), UClass::S);
}

TEST(Unicode, WhitespaceSet) {
  const uint32_t ws[] = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2001,
                         0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A,
                         0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
  size_t count = 0;
  for (uint32_t cp = 0; cp < 0x11000; ++cp) count += is_space(cp);
  EXPECT_EQ(count, 25u);
  for (uint32_t cp : ws) EXPECT_TRUE(is_space(cp)) << cp;
  EXPECT_FALSE(is_space(0x200B));
  EXPECT_FALSE(is_space(0x1C));
}

TEST(Unicode, Utf8Decoding) {
  EXPECT_EQ(decode_utf8("a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\xA6\x99"),
            (std::vector<uint32_t>{'a', 0xE9, 0x4E2D, 0x1F999}));
  // Invalid: lone continuation, overlong, surrogate, truncated, > U+10FFFF.
  EXPECT_EQ(decode_utf8("\x80"), (std::vector<uint32_t>{0xFFFD}));
  EXPECT_EQ(decode_utf8("\xC0\xAF"), (std::vector<uint32_t>{0xFFFD, 0xFFFD}));
  EXPECT_EQ(decode_utf8("\xED\xA0\x80x"), (std::vector<uint32_t>{0xFFFD, 0xFFFD, 0xFFFD, 'x'}));
  EXPECT_EQ(decode_utf8("\xE4\xB8"), (std::vector<uint32_t>{0xFFFD, 0xFFFD}));
  EXPECT_EQ(decode_utf8("\xF4\x90\x80\x80"), (std::vector<uint32_t>(4, 0xFFFD)));
  EXPECT_TRUE(is_valid_utf8("h\xC3\xA9llo"));
  EXPECT_FALSE(is_valid_utf8("h\xC3llo"));
  EXPECT_EQ(sanitize_utf8("a\xFF"), "a\xEF\xBF\xBD");
}

namespace {
std::vector<std::string> words(PreKind k, const std::string& s) {
  const auto cps = decode_utf8(s);
  std::vector<std::string> out;
  for (const auto& [b, e] : pretokenize(k, cps)) {
    std::string w;
    for (size_t i = b; i < e; ++i) append_utf8(w, cps[i]);
    out.push_back(w);
  }
  return out;
}
using W = std::vector<std::string>;
}  // namespace

TEST(PreTokenize, Llama3) {
  EXPECT_EQ(words(PreKind::Llama3, "Hello world"), (W{"Hello", " world"}));
  EXPECT_EQ(words(PreKind::Llama3, "12345"), (W{"123", "45"}));
  EXPECT_EQ(words(PreKind::Llama3, "I'M here"), (W{"I", "'M", " here"}));
  EXPECT_EQ(words(PreKind::Llama3, "a   b"), (W{"a", "  ", " b"}));
  EXPECT_EQ(words(PreKind::Llama3, "a \n\n b"), (W{"a", " \n\n", " b"}));
  EXPECT_EQ(words(PreKind::Llama3, "x  "), (W{"x", "  "}));
  EXPECT_EQ(words(PreKind::Llama3, " ..\n\nx"), (W{" ..\n\n", "x"}));
  EXPECT_EQ(words(PreKind::Llama3, "\"quoted\""), (W{"\"quoted", "\""}));
  EXPECT_EQ(words(PreKind::Llama3, " 3"), (W{" ", "3"}));
  EXPECT_EQ(words(PreKind::Qwen2, "123"), (W{"1", "2", "3"}));
}

TEST(PreTokenize, Default) {
  EXPECT_EQ(words(PreKind::Default, "don't"), (W{"don", "'", "t"}));
  EXPECT_EQ(words(PreKind::Default, "12345 apples"), (W{"123", "45", " apples"}));
  EXPECT_EQ(words(PreKind::Default, "a+=b"), (W{"a", "+=", "b"}));
  EXPECT_EQ(words(PreKind::Default, "x\n\ny"), (W{"x", "\n", "\n", "y"}));
  EXPECT_EQ(words(PreKind::Default, "a  b"), (W{"a", " ", " b"}));
}
