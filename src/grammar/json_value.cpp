// json_value_gbnf: a grammar for any JSON text (RFC 8259), with bounded whitespace so that a
// model cannot pad forever between tokens.
#include "grammar/json_schema.h"

namespace bitnet {

std::string json_value_gbnf(bool object_only) {
  std::string g = object_only ? "root ::= object\n" : "root ::= value\n";
  g += R"(value ::= object | array | string | number | "true" | "false" | "null"
object ::= "{" ws ( member ( "," ws member )* )? "}" ws
member ::= string ":" ws value
array ::= "[" ws ( value ( "," ws value )* )? "]" ws
string ::= "\"" ( [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )* "\"" ws
number ::= "-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )? ws
ws ::= ( [ \t\n] [ \t]{0,20} )?
)";
  return g;
}

}  // namespace bitnet
