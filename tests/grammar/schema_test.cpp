// JSON Schema → GBNF: the grammar text produced for each construct, and the errors.
#include <gtest/gtest.h>

#include <string>

#include "grammar/grammar.h"
#include "grammar/json_schema.h"
#include "grammar/json_schema_ordered.h"
#include "grammar/matcher.h"

namespace bitnet {
namespace {

using ojson = nlohmann::ordered_json;

std::string gbnf(const char* schema) { return json_schema_to_gbnf(ojson::parse(schema)); }
// The rule `name`'s line, without the "name ::= ".
std::string rule_of(const std::string& grammar, const std::string& name) {
  const std::string head = name + " ::= ";
  size_t at = grammar.rfind("\n" + head);
  at = grammar.compare(0, head.size(), head) == 0 ? 0 : (at == std::string::npos ? at : at + 1);
  if (at == std::string::npos) return "<no rule " + name + ">";
  const size_t end = grammar.find('\n', at);
  return grammar.substr(at + head.size(), end - at - head.size());
}
std::string error_of(const char* schema) {
  try {
    gbnf(schema);
  } catch (const SchemaError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(JsonSchemaGbnf, Primitives) {
  EXPECT_EQ(rule_of(gbnf(R"({"type":"string"})"), "root"), "string");
  EXPECT_EQ(rule_of(gbnf(R"({"type":"boolean"})"), "root"), "boolean");
  EXPECT_EQ(rule_of(gbnf(R"({"type":"null"})"), "root"), "null");
  EXPECT_EQ(rule_of(gbnf(R"({})"), "root"), "value");
  EXPECT_EQ(rule_of(gbnf("true"), "root"), "value");
  const std::string g = gbnf(R"({"type":"number"})");
  EXPECT_EQ(rule_of(g, "number"), R"("-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?)");
  EXPECT_EQ(rule_of(gbnf(R"({"type":"integer"})"), "integer"), R"("-"? ( "0" | [1-9] [0-9]{0,17} ))");
  EXPECT_EQ(rule_of(g, "ws"), "<no rule ws>");  // only what is used
  EXPECT_EQ(rule_of(gbnf(R"({"type":"object"})"), "ws"), R"(( " " | "\n" [ \t]{0,20} )?)");
}

TEST(JsonSchemaGbnf, ObjectPropertiesInDeclarationOrder) {
  const std::string g = gbnf(R"({"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"integer"},
      "mid":{"type":"boolean"}},"required":["zeta","alpha"]})");
  EXPECT_EQ(rule_of(g, "root"), R"("{" ws root-zeta-kv "," ws root-alpha-kv ( "," ws root-mid-kv )? "}")");
  EXPECT_EQ(rule_of(g, "root-zeta-kv"), R"("\"zeta\"" ws ":" ws string ws)");
  EXPECT_EQ(rule_of(g, "root-mid-kv"), R"("\"mid\"" ws ":" ws boolean ws)");
  // nlohmann::json (sorted keys) gives name order
  const std::string sorted = json_schema_to_gbnf(nlohmann::json::parse(R"({"properties":{"b":{},"a":{}},"required":["a","b"]})"));
  EXPECT_EQ(rule_of(sorted, "root"), R"("{" ws root-a-kv "," ws root-b-kv "}")");
}

TEST(JsonSchemaGbnf, OptionalPropertiesAndAdditional) {
  std::string g = gbnf(R"({"properties":{"a":{"type":"null"},"b":{"type":"null"}}})");
  EXPECT_EQ(rule_of(g, "root"), R"("{" ws ( root-a-kv ( "," ws root-b-kv )? | root-b-kv )? "}")");
  g = gbnf(R"({"properties":{"a":{"type":"null"}},"required":["a"],"additionalProperties":{"type":"integer"}})");
  EXPECT_EQ(rule_of(g, "root"), R"("{" ws root-a-kv ( "," ws root-additional-kv )* "}")");
  EXPECT_EQ(rule_of(g, "root-additional-kv"), R"("\"" root-additional-key-0 ws ":" ws integer ws)");
  // the key trie: any string except "a"
  EXPECT_NE(rule_of(g, "root-additional-key-0").find(R"("a" root-additional-key-1)"), std::string::npos);
  g = gbnf(R"({"type":"object","additionalProperties":false})");
  EXPECT_EQ(rule_of(g, "root"), R"("{" ws "}")");
  g = gbnf(R"({"type":"object"})");
  EXPECT_EQ(rule_of(g, "root"), R"("{" ws ( root-additional-kv ( "," ws root-additional-kv )* )? "}")");
  EXPECT_EQ(rule_of(g, "root-additional-kv"), R"(string ws ":" ws value ws)");
  // a required name without a property schema: any value
  g = gbnf(R"({"type":"object","required":["x"],"additionalProperties":false})");
  EXPECT_EQ(rule_of(g, "root-x-kv"), R"("\"x\"" ws ":" ws value ws)");
}

TEST(JsonSchemaGbnf, Arrays) {
  EXPECT_EQ(rule_of(gbnf(R"({"type":"array","items":{"type":"integer"}})"), "root"),
            R"("[" ws ( integer ws ( "," ws integer ws )* )? "]")");
  EXPECT_EQ(rule_of(gbnf(R"({"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":4})"), "root"),
            R"("[" ws integer ws ( "," ws integer ws ){1,3} "]")");
  EXPECT_EQ(rule_of(gbnf(R"({"type":"array","items":{"type":"integer"},"minItems":1})"), "root"),
            R"("[" ws integer ws ( "," ws integer ws )* "]")");
  EXPECT_EQ(rule_of(gbnf(R"({"type":"array","maxItems":0})"), "root"), R"("[" ws "]")");
  EXPECT_EQ(rule_of(gbnf(R"({"type":"array","prefixItems":[{"type":"integer"},{"type":"string"}]})"), "root"),
            R"("[" ws integer ws "," ws string ws "]")");
  EXPECT_EQ(rule_of(gbnf(R"({"prefixItems":[{"type":"null"}],"items":{"type":"boolean"},"maxItems":3})"), "root"),
            R"("[" ws null ws ( "," ws boolean ws ){0,2} "]")");
  EXPECT_EQ(rule_of(gbnf(R"({"type":"array"})"), "root"), R"("[" ws ( value ws ( "," ws value ws )* )? "]")");
}

TEST(JsonSchemaGbnf, EnumConstAndTypeArrays) {
  EXPECT_EQ(rule_of(gbnf(R"({"enum":["red",1,null,{"a":[true]}]})"), "root"),
            R"("\"red\"" | "1" | "null" | "{\"a\":[true]}")");
  EXPECT_EQ(rule_of(gbnf(R"({"const":"x\"y"})"), "root"), R"("\"x\\\"y\"")");
  EXPECT_EQ(rule_of(gbnf(R"({"type":["string","null"],"maxLength":3})"), "root"), R"(( "\"" char{0,3} "\"" ) | null)");
}

TEST(JsonSchemaGbnf, StringLengthsAndFormats) {
  EXPECT_EQ(rule_of(gbnf(R"({"type":"string","minLength":2,"maxLength":5})"), "root"), R"("\"" char{2,5} "\"")");
  EXPECT_EQ(rule_of(gbnf(R"({"type":"string","minLength":1})"), "root"), R"("\"" char+ "\"")");
  std::string g = gbnf(R"({"type":"string","format":"date"})");
  EXPECT_EQ(rule_of(g, "root"), R"("\"" date "\"")");
  EXPECT_EQ(rule_of(g, "date"), R"([0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ))");
  for (const char* f : {"time", "date-time", "uuid", "email"})
    EXPECT_NE(gbnf((std::string(R"({"type":"string","format":")") + f + "\"}").c_str()).find("\n" + std::string(f) + " ::= "),
              std::string::npos) << f;
}

TEST(JsonSchemaGbnf, Patterns) {
  EXPECT_EQ(rule_of(gbnf(R"({"type":"string","pattern":"^[A-Z][a-z]+-\\d{2,4}(x|y)?$"})"), "root"),
            R"("\"" [A-Z] [a-z]+ "-" [0-9]{2,4} ( "x" | "y" )? "\"")");
  EXPECT_EQ(rule_of(gbnf(R"({"pattern":"ab|c\\.d"})"), "root"), R"("\"" ( "ab" | "c.d" ) "\"")");
  EXPECT_EQ(rule_of(gbnf(R"({"pattern":"(?:ab)*\\w?"})"), "root"), R"("\"" ( "ab" )* [0-9A-Z_a-z]? "\"")");
  // a quote or backslash in the pattern is written as its JSON escape
  EXPECT_EQ(rule_of(gbnf(R"({"pattern":"a\"b"})"), "root"), R"("\"" "a" "\\\"" "b" "\"")");
  EXPECT_EQ(rule_of(gbnf(R"({"pattern":"x{3}y{2,}"})"), "root"), R"("\"" "x"{3} "y"{2,} "\"")");
}

TEST(JsonSchemaGbnf, IntegerRanges) {
  EXPECT_EQ(rule_of(gbnf(R"({"type":"integer","minimum":0,"maximum":150})"), "root"),
            R"(( [0-9] | [1-9] [0-9] | "1" ( [0-4] [0-9] | "5" "0" ) ))");
  EXPECT_EQ(rule_of(gbnf(R"({"type":"integer","minimum":-15,"maximum":-3})"), "root"), R"("-" ( [3-9] | "1" [0-5] ))");
  EXPECT_EQ(rule_of(gbnf(R"({"type":"integer","exclusiveMinimum":9})"), "root"),
            R"(( [1-9] [0-9] | [1-9] [0-9]{2,17} ))");
  EXPECT_EQ(rule_of(gbnf(R"({"type":"integer","minimum":1.5,"exclusiveMaximum":4})"), "root"), R"([2-3])");
  // numbers: integer bounds only
  EXPECT_EQ(rule_of(gbnf(R"({"type":"number","minimum":0,"maximum":1})"), "root"),
            R"([0-1] | ( "0" "." [0-9]{0,15} [1-9] ))");
}

TEST(JsonSchemaGbnf, RefsAndCombinators) {
  std::string g = gbnf(R"({"$defs":{"node":{"type":"object","properties":{"next":{"anyOf":[{"$ref":"#/$defs/node"},
      {"type":"null"}]}},"required":["next"]}},"$ref":"#/$defs/node"})");
  EXPECT_EQ(rule_of(g, "root"), "node");
  EXPECT_EQ(rule_of(g, "node"), R"("{" ws node-next-kv "}")");
  EXPECT_EQ(rule_of(g, "node-next"), "node | null");
  g = gbnf(R"({"definitions":{"a":{"type":"integer"}},"properties":{"x":{"$ref":"#/definitions/a","description":"d"}}})");
  EXPECT_EQ(rule_of(g, "root-x-kv"), R"("\"x\"" ws ":" ws a ws)");
  // recursion through the root
  EXPECT_EQ(rule_of(gbnf(R"({"type":"array","items":{"$ref":"#"}})"), "root"), R"("[" ws ( root ws ( "," ws root ws )* )? "]")");
  EXPECT_EQ(rule_of(gbnf(R"({"oneOf":[{"type":"integer"},{"type":"string"}]})"), "root"), "integer | string");
  g = gbnf(R"({"allOf":[{"properties":{"a":{"type":"integer"}},"required":["a"]},
      {"properties":{"b":{"type":"string"}},"required":["b"]}]})");
  EXPECT_EQ(rule_of(g, "root"), R"("{" ws root-a-kv "," ws root-b-kv "}")");
  // siblings of anyOf apply to every branch
  g = gbnf(R"({"type":"object","properties":{"k":{"type":"integer"}},"anyOf":[{"required":["k"]},{"additionalProperties":false}]})");
  EXPECT_EQ(rule_of(g, "root-0"), R"("{" ws root-0-k-kv "}")");
}

TEST(JsonSchemaGbnf, AnnotationsIgnored) {
  EXPECT_EQ(gbnf(R"({"type":"string","title":"t","description":"d","examples":["x"],"default":"y","$comment":"c",
      "$schema":"https://json-schema.org/draft/2020-12/schema"})"), gbnf(R"({"type":"string"})"));
}

TEST(JsonSchemaGbnf, UnsupportedKeywordsAreNamed) {
  EXPECT_EQ(error_of(R"({"type":"integer","multipleOf":3})"), "unsupported JSON Schema keyword 'multipleOf'");
  EXPECT_EQ(error_of(R"({"not":{}})"), "unsupported JSON Schema keyword 'not'");
  EXPECT_EQ(error_of(R"({"properties":{"a":{"if":{}}}})"), "unsupported JSON Schema keyword 'if'");
  EXPECT_EQ(error_of(R"({"type":"array","uniqueItems":true})"), "unsupported JSON Schema keyword 'uniqueItems' (true)");
  EXPECT_EQ(error_of(R"({"type":"string","format":"ipv4"})"),
            "unsupported 'format' \"ipv4\" (supported: date, time, date-time, uuid, email)");
  EXPECT_EQ(error_of(R"({"pattern":"(?=a)b"})"), "pattern \"(?=a)b\": lookahead '(?=' is not supported");
  EXPECT_EQ(error_of(R"({"pattern":"(a)\\1"})"), "pattern \"(a)\\1\": backreference '\\1' is not supported");
  EXPECT_EQ(error_of(R"({"pattern":"\\bx"})"), "pattern \"\\bx\": escape '\\b' is not supported");
  EXPECT_EQ(error_of(R"({"pattern":"a^"})"), "pattern \"a^\": '^' after the start is not supported");
  EXPECT_EQ(error_of(R"({"pattern":"(a"})"), "pattern \"(a\": unbalanced '(' is not supported");
  EXPECT_EQ(error_of(R"({"pattern":"(a?)*"})"), "pattern \"(a?)*\": a repeated group that can match the empty string is not supported");
  EXPECT_EQ(error_of(R"({"pattern":"x()+"})"), "pattern \"x()+\": a repeated group that can match the empty string is not supported");
  EXPECT_EQ(error_of(R"({"$ref":"https://example.com/s.json"})"),
            "'$ref' \"https://example.com/s.json\": only references inside the schema (#/$defs/…, #/definitions/…) are supported");
  EXPECT_EQ(error_of(R"({"$ref":"#/$defs/missing"})"), "'$ref' \"#/$defs/missing\" names nothing in the schema");
  EXPECT_EQ(error_of(R"({"type":"integer","minimum":5,"maximum":4})"), "integer bounds admit no value (minimum 5 > maximum 4)");
  EXPECT_EQ(error_of(R"({"type":"number","minimum":0.5})"),
            "bounds on 'number' must be integers (got 0.5); use 'integer' or whole bounds");
  EXPECT_EQ(error_of(R"({"type":"bignum"})"), "unknown 'type' \"bignum\"");
  EXPECT_EQ(error_of(R"({"allOf":[{"type":"string"},{"type":"integer"}]})"),
            "'allOf': the schemas disagree on 'type' (only objects' properties/required merge)");
  EXPECT_EQ(error_of("false"), "the schema 'false' admits no value");
  EXPECT_EQ(error_of("[1]"), "a schema must be an object or a boolean, not array");
  EXPECT_EQ(error_of(R"({"type":"array","minItems":3,"maxItems":2})"), "'minItems' is greater than 'maxItems'");
  // a $ref cycle that never reaches a schema
  EXPECT_EQ(error_of(R"({"$defs":{"a":{"$ref":"#/$defs/b","title":"t"},"b":{"$ref":"#/$defs/a","title":"u"}},"$ref":"#/$defs/a"})"),
            "'$ref' \"#/$defs/a\" is a cycle of references");
  EXPECT_EQ(error_of(R"({"$ref":"#"})"), "'$ref' \"#\" is a cycle of references");
}

TEST(JsonSchemaGbnf, DeepNestingIsAnErrorNotACrash) {
  std::string s;
  for (int i = 0; i < 500; ++i) s += R"({"type":"array","items":)";
  s += "{}";
  for (int i = 0; i < 500; ++i) s += "}";
  EXPECT_EQ(error_of(s.c_str()), "schema nesting deeper than 64");
}

// ---------------------------------------------------------------------------------------------
// The grammars against JSON texts: every `accept` text matches completely, no `reject` text does.

struct Case {
  const char* name;
  const char* schema;
  std::vector<std::string> accept, reject;
};

bool matches(const std::shared_ptr<const Grammar>& g, const std::string& text) {
  GrammarMatcher m(g);
  return m.accept_bytes(text) && m.can_end();
}

TEST(JsonSchemaGbnf, AcceptsValidAndRejectsInvalidJson) {
  const std::vector<Case> cases = {
      {"nested object", R"({"type":"object","properties":{"name":{"type":"string"},"address":{"type":"object",
          "properties":{"city":{"type":"string"},"zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["city"]}},
          "required":["name","address"]})",
       {R"({"name":"Ann","address":{"city":"Oslo"}})", R"({"name":"","address":{"city":"X","zip":"01234"}})",
        "{\n  \"name\": \"A\",\n  \"address\": { \"city\": \"B\" }\n}"},
       {R"({"name":"Ann"})", R"({"address":{"city":"Oslo"},"name":"Ann"})", R"({"name":"A","address":{"city":"B","zip":"1234"}})",
        R"({"name":"A","address":{"city":"B"},"extra":1})", R"({"name":"A","address":{}})", R"({"name":"A",  "address":{"city":"B"}})"}},
      {"array with bounds", R"({"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":3})",
       {"[1,2]", "[1, 2, 3]", "[ -4 ,5 ]"},
       {"[]", "[1]", "[1,2,3,4]", "[1,2.5]", "[1,\"2\"]", "[1,2,]"}},
      {"tuple", R"({"type":"array","prefixItems":[{"type":"string"},{"type":"boolean"}]})",
       {R"(["a",true])"}, {R"(["a"])", R"([true,"a"])", R"(["a",true,1])"}},
      {"enum of values", R"({"enum":["red","green",42,null,[1]]})",
       {R"("red")", R"("green")", "42", "null", "[1]"}, {R"("blue")", "43", R"("42")", "[1,2]", "Red"}},
      {"const", R"({"const":{"k":"v"}})", {R"({"k":"v"})"}, {R"({"k":"w"})", R"({ "k":"v"})"}},
      {"integer range", R"({"type":"integer","minimum":-20,"maximum":305})",
       {"-20", "-9", "0", "7", "99", "100", "299", "305"}, {"-21", "-0", "306", "310", "1000", "007", "1.0", "3e2"}},
      {"exclusive integer", R"({"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":10})",
       {"1", "9"}, {"0", "10", "-1"}},
      {"number", R"({"type":"number"})", {"0", "-1.5", "3e10", "2.25E-3", "123456"}, {"01", "1.", ".5", "+1", "1e", "NaN"}},
      {"bounded number", R"({"type":"number","minimum":-1,"maximum":2})",
       {"-1", "-0.5", "0", "1.75", "2"}, {"-1.5", "2.5", "2.0", "3", "-2"}},
      {"string pattern", R"({"type":"string","pattern":"^(ab|cd)+-\\d{2}[xyz]?$"})",
       {R"("ab-12")", R"("abcdab-00z")"}, {R"("ab-1")", R"("-12")", R"("ab-12w")", R"("AB-12")"}},
      {"string lengths", R"({"type":"string","minLength":2,"maxLength":4})",
       {R"("ab")", R"("abcd")", R"("\u00e9x")", R"("é€")"}, {R"("a")", R"("abcde")", "ab"}},
      {"formats", R"({"type":"object","properties":{"d":{"type":"string","format":"date"},"u":{"type":"string","format":"uuid"},
          "t":{"type":"string","format":"date-time"},"e":{"type":"string","format":"email"}},"required":["d","u","t","e"]})",
       {R"({"d":"2024-02-29","u":"123e4567-e89b-12d3-a456-426614174000","t":"2024-01-01T12:30:00Z","e":"a.b@example.com"})",
        R"({"d":"1999-12-31","u":"00000000-0000-0000-0000-000000000000","t":"2024-01-01T23:59:59.5+02:00","e":"x@y.co"})"},
       {R"({"d":"2024-13-01","u":"123e4567-e89b-12d3-a456-426614174000","t":"2024-01-01T12:30:00Z","e":"a@b.c"})",
        R"({"d":"2024-01-01","u":"123e4567e89b12d3a456426614174000","t":"2024-01-01T12:30:00Z","e":"a@b.c"})",
        R"({"d":"2024-01-01","u":"123e4567-e89b-12d3-a456-426614174000","t":"2024-01-01 12:30:00","e":"a@b.c"})",
        R"({"d":"2024-01-01","u":"123e4567-e89b-12d3-a456-426614174000","t":"2024-01-01T12:30:00Z","e":"ab.c"})"}},
      {"recursive ref", R"({"$defs":{"tree":{"type":"object","properties":{"v":{"type":"integer"},
          "kids":{"type":"array","items":{"$ref":"#/$defs/tree"}}},"required":["v"]}},"$ref":"#/$defs/tree"})",
       {R"({"v":1})", R"({"v":1,"kids":[]})", R"({"v":1,"kids":[{"v":2,"kids":[{"v":3}]},{"v":4}]})"},
       {R"({"kids":[]})", R"({"v":1,"kids":[{"w":2}]})", R"({"v":1,"kids":{}})"}},
      {"anyOf", R"({"anyOf":[{"type":"string","maxLength":2},{"type":"integer","minimum":0},{"type":"null"}]})",
       {R"("ab")", "5", "null"}, {R"("abc")", "-5", "true"}},
      {"type array", R"({"type":["boolean","null"]})", {"true", "false", "null"}, {"0", R"("true")"}},
      {"additional properties", R"({"type":"object","properties":{"id":{"type":"integer"}},"required":["id"],
          "additionalProperties":{"type":"string"}})",
       {R"({"id":1})", R"({"id":1,"x":"y"})", R"({"id":1,"idx":"y","i":"z"})"},
       {R"({"id":1,"id":"y"})", R"({"id":1,"x":2})", R"({"x":"y","id":1})"}},
      {"any object", R"({"type":"object"})", {"{}", R"({"a":[1,{"b":null}],"c":"d"})"}, {"[]", R"({"a"})", "{,}"}},
      {"allOf", R"({"allOf":[{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]},
          {"properties":{"b":{"type":"boolean"}}}]})",
       {R"({"a":1})", R"({"a":1,"b":true})"}, {R"({"b":true})", R"({"a":1,"b":1})"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string text = gbnf(c.schema);
    std::shared_ptr<const Grammar> g;
    ASSERT_NO_THROW(g = Grammar::parse(text)) << text;
    for (const auto& a : c.accept) EXPECT_TRUE(matches(g, a)) << "should accept " << a << "\n" << text;
    for (const auto& r : c.reject) EXPECT_FALSE(matches(g, r)) << "should reject " << r << "\n" << text;
  }
}

// Whitespace between tokens is bounded: a model cannot pad forever.
TEST(JsonSchemaGbnf, WhitespaceIsBounded) {
  const auto g = Grammar::parse(gbnf(R"({"type":"array","items":{"type":"integer"}})"));
  EXPECT_TRUE(matches(g, "[ 1,\n    2 ]"));
  EXPECT_FALSE(matches(g, "[  1]"));
  EXPECT_FALSE(matches(g, "[\n" + std::string(21, ' ') + "1]"));
  EXPECT_FALSE(matches(g, " [1]"));  // nothing before the value
}

}  // namespace
}  // namespace bitnet
