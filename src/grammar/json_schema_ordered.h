#pragma once
// json_schema_to_gbnf for a schema parsed with nlohmann::ordered_json: object properties are then
// produced in the order the schema declares them (nlohmann::json sorts keys by name).
#include <string>

#include <nlohmann/json.hpp>

#include "grammar/json_schema.h"

namespace bitnet {

std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema);

}  // namespace bitnet
