// The matcher against sets of strings it must accept and reject, fed whole or byte by byte.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "grammar/grammar.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"

namespace bitnet {
namespace {

using GrammarPtr = std::shared_ptr<const Grammar>;

// Whole-text match, checked two ways: in one call, and one byte per call (tokens that end inside
// a UTF-8 sequence); both must agree.
bool full_match(const GrammarPtr& g, const std::string& s) {
  GrammarMatcher whole(g);
  const bool a = whole.accept_bytes(s) && whole.can_end();
  GrammarMatcher bytes(g);
  bool ok = true;
  for (char c : s) ok = ok && bytes.accept_bytes(std::string_view(&c, 1));
  const bool b = ok && bytes.can_end();
  EXPECT_EQ(a, b) << "whole vs byte-by-byte disagree on '" << s << "'";
  return a;
}

void expect_language(const GrammarPtr& g, const std::vector<std::string>& accept,
                     const std::vector<std::string>& reject) {
  for (const auto& s : accept) EXPECT_TRUE(full_match(g, s)) << "should accept: " << s;
  for (const auto& s : reject) EXPECT_FALSE(full_match(g, s)) << "should reject: " << s;
}

TEST(GrammarMatcher, Arithmetic) {
  const auto g = Grammar::parse(R"g(root ::= expr
expr ::= term (("+" | "-") term)*
term ::= factor (("*" | "/") factor)*
factor ::= [0-9]+ | "(" expr ")" | "-" factor
)g");
  expect_language(g, {"1", "12+3", "1+2*3", "(1+2)*3", "--4", "((7))", "10/2-3*(4+5)"},
                  {"", "1+", "(1", "1++2", "a", "1 + 2", "()", "1)"});
  GrammarMatcher m(g);
  EXPECT_TRUE(m.accept_bytes("(1+"));  // a valid prefix, not yet complete
  EXPECT_FALSE(m.can_end());
  EXPECT_FALSE(m.accept_bytes(")"));  // refused: the state is unchanged
  EXPECT_TRUE(m.accept_bytes("2)"));
  EXPECT_TRUE(m.can_end());
  EXPECT_FALSE(m.finished());  // "*3" could follow
}

TEST(GrammarMatcher, Json) {
  const auto g = Grammar::parse(json_value_gbnf(false));
  expect_language(g,
                  {R"({"a": [1, 2.5e-3, true, null, "x\n\u00e9"]})", R"("str")", "-0", "[]", "{ }", "0.5",
                   R"({"k":{"n":[[],[{}]]}})", "[\n  1,\n  2\n]", R"("é😀")", "1E+9", "true"},
                  {R"({"a" 1})", "[1,]", "01", "\"\x01\"", "{'a':1}", "nulls", R"("\x")", "[1 2]", "{\"a\":}",
                   "\"unterminated", "-", "1.", "+1"});
  const auto obj = Grammar::parse(json_value_gbnf(true));
  expect_language(obj, {"{}", R"({"a":[1]})"}, {"[1]", "1", R"("s")"});
}

TEST(GrammarMatcher, RepetitionBounds) {
  expect_language(Grammar::parse(R"(root ::= "a"{2,4})"), {"aa", "aaa", "aaaa"}, {"", "a", "aaaaa"});
  expect_language(Grammar::parse(R"(root ::= "a"{3})"), {"aaa"}, {"aa", "aaaa"});
  expect_language(Grammar::parse(R"(root ::= "a"{2,})"), {"aa", std::string(50, 'a')}, {"a", ""});
  expect_language(Grammar::parse(R"(root ::= "ab"{2} "c"?)"), {"abab", "ababc"}, {"ab", "abc", "ababcc", "aabb"});
  expect_language(Grammar::parse(R"(root ::= "x" "a"{0,0} "y"*)"), {"x", "xy", "xyyy"}, {"xa", ""});
  expect_language(Grammar::parse(R"(root ::= ("a" | "bc")+ "."?)"), {"a", "bca", "abcbc.", "a."}, {"", ".", "b", "ac"});
  expect_language(Grammar::parse(R"(root ::= [0-9]{0,3} "!")"), {"!", "1!", "123!"}, {"1234!", "12"});
}

TEST(GrammarMatcher, ClassesNegationAndUnicode) {
  expect_language(Grammar::parse(R"(root ::= [^a-c\n]+)"), {"d", "é", "😀", "xyz é"}, {"a", "\n", "da", ""});
  expect_language(Grammar::parse("root ::= [ぁ-ゟ]+"), {"ひらがな"}, {"カ", "a"});
  expect_language(Grammar::parse(R"(root ::= . . .)"), {"abc", "\n😀é", "\x01\x02\x03"}, {"ab", "abcd"});
  expect_language(Grammar::parse(R"(root ::= [\x41-\x43\u00e9\U0001F600] "\t\\\"")"),
                  {"A\t\\\"", "C\t\\\"", "é\t\\\"", "😀\t\\\""}, {"D\t\\\"", "A"});
  expect_language(Grammar::parse(R"(root ::= [\]\-^]+)"), {"]", "-", "^", "]-^"}, {"a", "\\"});
  expect_language(Grammar::parse(R"(root ::= [^\x00-\x7F])"), {"é", "\u4e16"}, {"a", "\x7f"});
}

TEST(GrammarMatcher, PartialUtf8AcrossTokens) {
  const auto g = Grammar::parse(R"(root ::= "é😀" [^x])");
  GrammarMatcher m(g);
  EXPECT_TRUE(m.accept_bytes("\xC3"));
  EXPECT_FALSE(m.can_end());
  EXPECT_FALSE(m.accept_bytes("\xA8"));  // 'è': refused, and the half character is still pending
  EXPECT_TRUE(m.accept_bytes("\xA9\xF0\x9F"));
  EXPECT_TRUE(m.accept_bytes("\x98"));
  EXPECT_FALSE(m.accept_bytes("\x80x"));  // the emoji would finish, but 'x' is excluded
  EXPECT_TRUE(m.accept_bytes("\x80y"));
  EXPECT_TRUE(m.can_end());
  EXPECT_TRUE(m.finished());

  // A lead byte whose characters the grammar cannot take is refused at once.
  GrammarMatcher ascii(Grammar::parse("root ::= [a-z]+"));
  EXPECT_FALSE(ascii.accept_bytes("\xC3"));
  EXPECT_TRUE(ascii.accept_bytes("ab"));
  // Ill-formed UTF-8 is never accepted: bad lead bytes, overlong forms, surrogates, > U+10FFFF.
  GrammarMatcher any(Grammar::parse("root ::= .*"));
  for (const char* bad : {"\xFF", "\x80", "\xC0\x80", "\xE0\x80\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xC3x"})
    EXPECT_FALSE(any.accept_bytes(bad)) << "bytes of length " << std::string(bad).size();
  EXPECT_TRUE(any.accept_bytes("ok \xF0\x9F\x98\x80"));

  // can_end waits for a pending sequence to finish.
  GrammarMatcher tail(Grammar::parse(R"(root ::= "a" [^z]*)"));
  EXPECT_TRUE(tail.accept_bytes("a\xC3"));
  EXPECT_FALSE(tail.can_end());
  EXPECT_TRUE(tail.accept_bytes("\xA9"));
  EXPECT_TRUE(tail.can_end());
}

TEST(GrammarMatcher, AmbiguityIsBoundedWithAnError) {
  // More simultaneous parses than the cap: a clear error, not unbounded growth.
  std::string text = "root ::= \"a\" \"0\"";
  for (int i = 1; i <= 1100; ++i) text += " | \"a\" \"" + std::to_string(i) + "\"";
  const auto wide = Grammar::parse(text);
  EXPECT_THROW({ GrammarMatcher m(wide); }, GrammarError);
  // Nested nullable rules: exponentially many expansion paths (and many distinct stacks).
  std::string deep = "root ::= r0 \"x\"\n";
  for (int i = 0; i < 24; ++i)
    deep += "r" + std::to_string(i) + " ::= r" + std::to_string(i + 1) + " r" + std::to_string(i + 1) + " | \"\"\n";
  deep += "r24 ::= \"y\" | \"\"\n";
  const auto g = Grammar::parse(deep);
  try {
    GrammarMatcher m(g);
    ADD_FAILURE() << "expected a GrammarError";
  } catch (const GrammarError& e) {
    EXPECT_NE(std::string(e.what()).find("too ambiguous"), std::string::npos) << e.what();
  }
}

TEST(GrammarMatcher, DeepNestingIsIterative) {
  // Nesting far deeper than any native stack would take: the expansion is iterative. (Each character
  // copies the stacks, so the cost per character grows with the depth.)
  const auto g = Grammar::parse(R"g(root ::= "(" root ")" | "x")g");
  GrammarMatcher m(g);
  const std::string open(3000, '(');
  ASSERT_TRUE(m.accept_bytes(open));
  ASSERT_TRUE(m.accept_bytes("x"));
  EXPECT_FALSE(m.can_end());
  ASSERT_TRUE(m.accept_bytes(std::string(3000, ')')));
  EXPECT_TRUE(m.can_end());
}

}  // namespace
}  // namespace bitnet
