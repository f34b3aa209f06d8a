#pragma once
// JSON Schema → GBNF (docs/structured-output.md). json_schema_to_gbnf lives in json_schema.cpp,
// json_value_gbnf in json_value.cpp.
#include <string>

#include <nlohmann/json.hpp>

#include "errors.h"

namespace bitnet {

// GBNF text (root rule "root") accepting exactly the JSON texts valid under `schema`; throws
// SchemaError naming the unsupported keyword or the bad value.
struct SchemaError : Error { using Error::Error; };
std::string json_schema_to_gbnf(const nlohmann::json& schema);
// GBNF for any JSON value (response_format json_object; "root" is a value, objects at top level
// only when object_only).
std::string json_value_gbnf(bool object_only);

}  // namespace bitnet
