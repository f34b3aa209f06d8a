// GBNF syntax: what parses, and the error (with line:column) for what does not.
#include <gtest/gtest.h>

#include <string>

#include "grammar/grammar.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"

namespace bitnet {
namespace {

std::string error_of(const std::string& text) {
  try {
    Grammar::parse(text);
  } catch (const GrammarError& e) {
    return e.what();
  }
  return "(parsed)";
}

TEST(GrammarParser, AcceptsTheLanguage) {
  const char* ok[] = {
      "root ::= \"a\"",
      "root ::= \"a\" | \"b\" | \n  \"c\"",
      "root ::= x\nx ::= [a-z0-9_] x | ",  // forward reference, empty alternative
      "# comment\nroot ::= ( \"a\" # inside\n  \"b\" )* # after\n",
      "root ::= [^\\n\\t\\r\\\\\\]\\-] .",
      "root ::= \"\\x41\\u00e9\\U0001F600\" [\\x00-\\x1F]",
      "root ::= \"a\"{3} \"b\"{2,} \"c\"{0,4} \"d\"{1,1} \"e\"+ \"f\"? \"g\"*",
      "root ::= \"ab\"{2,3}",
      "root ::= [ぁ-ゟ]+",
      "root ::= \"x\"\r\nother-rule ::= root\r\n",
      "root ::= a\n       | b\na ::= \"a\"\nb ::= \"b\"",  // continuation line starting with '|'
      "root ::= \"\"",
  };
  for (const char* text : ok) EXPECT_NO_THROW(Grammar::parse(text)) << text;
  EXPECT_NO_THROW(Grammar::parse(json_value_gbnf(false)));
  EXPECT_NO_THROW(Grammar::parse(json_value_gbnf(true)));
  EXPECT_NO_THROW(Grammar::parse("start ::= \"a\"", "start"));
}

TEST(GrammarParser, SyntaxErrorsNameLineAndColumn) {
  struct Case {
    const char* text;
    const char* expect;
  } cases[] = {
      {"", "grammar: empty grammar"},
      {"  # only a comment\n\n", "grammar: empty grammar"},
      {"root ::= \"abc", "grammar:1:10: unterminated string literal"},
      {"root ::= [abc", "grammar:1:10: unterminated character class"},
      {"root ::= ( \"a\" ", "grammar:1:16: expected ')' to close the group opened at 1:10"},
      {"root ::= \"a\"\nfoo = \"b\"", "grammar:2:5: expected '::=' after the rule name 'foo'"},
      {"root ::= \"a\" )", "grammar:1:14: unexpected ')'"},
      {"root ::= * \"a\"", "grammar:1:10: '*' with nothing before it to repeat"},
      {"root ::= [z-a]", "grammar:1:11: character range is backwards"},
      {"root ::= \"\\q\"", "grammar:1:11: unknown escape '\\q'"},
      {"root ::= \"\\x4\"", "grammar:1:14: escape needs 2 hex digits"},
      {"root ::= \"\\U00110000\"", "grammar:1:11: code point above U+10FFFF"},
      {"root ::= \"a\"{3,2}", "grammar:1:13: repetition {m,n} with n < m"},
      {"root ::= \"a\"{2", "grammar:1:15: expected ',' or '}'"},
      {"root ::= \"a\"{99999}", "repetition count above 10000"},
      {"root ::= []", "grammar:1:10: empty character class"},
      {"root ::= <think>", "grammar:1:10: token references (<...>) are not supported"},
      {"root ::= \"é\" \"\xff\"", "grammar:1:15: invalid UTF-8"},
      {"::= \"a\"", "grammar:1:1: expected a rule name"},
      {"root ::= \"a\"\nroot ::= \"b\"", "grammar:2:1: rule 'root' is defined twice (first at 1:1)"},
      {"root ::= x\n\nx ::= y z\n", "grammar:3:7: undefined rule 'y'"},
      {"other ::= \"a\"", "grammar: no rule named 'root'"},
      {"root ::= expr\nexpr ::= expr \"+\" term | term\nterm ::= [0-9]",
       "grammar:2:1: left recursion: rule 'expr' can reach itself without consuming input (expr → expr)"},
      {"root ::= a\na ::= b? a \"x\" | \"y\"\nb ::= \"b\"",
       "grammar:2:1: left recursion: rule 'a' can reach itself"},
      {"root ::= (\"a\"?)*", "left recursion"},
  };
  for (const Case& c : cases) {
    const std::string got = error_of(c.text);
    EXPECT_NE(got.find(c.expect), std::string::npos) << "grammar: " << c.text << "\n  error: " << got;
  }
}

TEST(GrammarParser, ColumnsCountCharacters) {
  // 'é' is two bytes, one column.
  EXPECT_NE(error_of("root ::= \"é\" )").find("grammar:1:14:"), std::string::npos) << error_of("root ::= \"é\" )");
}

TEST(GrammarParser, SizeIsBounded) {
  // Nested repetitions share their body through rule references: small, and fine.
  EXPECT_NO_THROW(Grammar::parse("root ::= ((((\"a\"{10000}){10000}){10000}){10000})"));
  // Many large bounded repetitions are refused once the expansion passes the element cap.
  std::string text = "root ::=";
  for (int i = 0; i < 250; ++i) text += " \"a\"{0,10000}";
  const std::string err = error_of(text);
  EXPECT_NE(err.find("grammar too large after expanding repetitions"), std::string::npos) << err;
}

}  // namespace
}  // namespace bitnet
