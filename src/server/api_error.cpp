#include "server/api_error.h"

#include <cmath>

namespace bitnet::server {

using nlohmann::json;

json error_body(int status, const std::string& type, const std::string& message) {
  return {{"error", {{"code", status}, {"message", message}, {"type", type}}}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json parse_object(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) throw bad_request("request body is not valid JSON");
  if (!j.is_object()) throw bad_request("request body must be a JSON object");
  return j;
}

namespace {
const json* field(const json& o, const char* key) {
  const auto it = o.find(key);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}
}  // namespace

std::optional<int64_t> get_int(const json& o, const char* key, int64_t min, int64_t max) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  int64_t n = 0;
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))
      throw bad_request(std::string("'") + key + "' is out of range");
    n = v->get<int64_t>();
  } else if (v->is_number_float() && std::isfinite(v->get<double>()) && v->get<double>() == std::floor(v->get<double>()) &&
             std::fabs(v->get<double>()) < 9e15) {
    n = int64_t(v->get<double>());  // 16.0 is an integer in JSON's eyes
  } else {
    throw bad_request(std::string("'") + key + "' must be an integer");
  }
  if (n < min || n > max)
    throw bad_request(std::string("'") + key + "' must be between " + std::to_string(min) + " and " +
                      std::to_string(max) + ", got " + std::to_string(n));
  return n;
}

std::optional<double> get_number(const json& o, const char* key, double min, double max) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw bad_request(std::string("'") + key + "' must be a number");
  const double d = v->get<double>();
  if (!(d >= min && d <= max))
    throw bad_request(std::string("'") + key + "' must be between " + json(min).dump() + " and " + json(max).dump() +
                      ", got " + json(d).dump());
  return d;
}

std::optional<bool> get_bool(const json& o, const char* key) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw bad_request(std::string("'") + key + "' must be true or false");
  return v->get<bool>();
}

std::optional<std::string> get_string(const json& o, const char* key) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw bad_request(std::string("'") + key + "' must be a string");
  return v->get<std::string>();
}

std::vector<std::string> get_stop(const json& o) {
  const json* v = field(o, "stop");
  if (!v) return {};
  if (v->is_string()) {
    if (v->get<std::string>().empty()) throw bad_request("'stop' must not be empty");
    if (v->get<std::string>().size() > 256) throw bad_request("'stop' strings may be at most 256 bytes long");
    return {v->get<std::string>()};
  }
  if (!v->is_array()) throw bad_request("'stop' must be a string or an array of strings");
  if (v->size() > 16) throw bad_request("'stop' may hold at most 16 strings");
  std::vector<std::string> out;
  for (const json& s : *v) {
    if (!s.is_string() || s.get<std::string>().empty()) throw bad_request("'stop' entries must be non-empty strings");
    // Held-back text is matched against every stop string at each token: keep that cheap.
    if (s.get<std::string>().size() > 256) throw bad_request("'stop' strings may be at most 256 bytes long");
    out.push_back(s.get<std::string>());
  }
  return out;
}

std::vector<int32_t> get_tokens(const json& value, const char* key, int32_t n_vocab) {
  if (!value.is_array()) throw bad_request(std::string("'") + key + "' must be an array of token ids");
  std::vector<int32_t> out;
  out.reserve(value.size());
  for (const json& t : value) {
    if (!t.is_number_integer()) throw bad_request(std::string("'") + key + "' must hold integers only");
    const int64_t id = t.is_number_unsigned() && t.get<uint64_t>() > uint64_t(INT64_MAX) ? -1 : t.get<int64_t>();
    if (id < 0 || id >= n_vocab)
      throw bad_request(std::string("token id ") + t.dump() + " in '" + key + "' is outside the vocabulary [0, " +
                        std::to_string(n_vocab) + ")");
    out.push_back(int32_t(id));
  }
  return out;
}

}  // namespace bitnet::server
