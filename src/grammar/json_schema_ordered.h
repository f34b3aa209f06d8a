#pragma once
// json_schema_to_gbnf for a schema parsed with nlohmann::ordered_json: object properties are then
// produced in the order the schema declares them (nlohmann::json sorts keys by name).
#include <string>

#include <nlohmann/json.hpp>

#include "grammar/json_schema.h"

namespace bitnet {

// rule_prefix: names the root `<prefix>root` and prefixes every rule made for this schema, so that
// several schemas' grammars can be joined (the shared primitive rules — ws, string, number,
// value, … — keep their names and identical text: keep one copy of each line).
std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema, const std::string& rule_prefix = "");

}  // namespace bitnet
