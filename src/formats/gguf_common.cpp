#include "formats/gguf_common.h"

#include <limits>

namespace bitnet {

std::string_view gguf_value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: return "UINT8";
    case GgufValueType::INT8: return "INT8";
    case GgufValueType::UINT16: return "UINT16";
    case GgufValueType::INT16: return "INT16";
    case GgufValueType::UINT32: return "UINT32";
    case GgufValueType::INT32: return "INT32";
    case GgufValueType::FLOAT32: return "FLOAT32";
    case GgufValueType::BOOL: return "BOOL";
    case GgufValueType::STRING: return "STRING";
    case GgufValueType::ARRAY: return "ARRAY";
    case GgufValueType::UINT64: return "UINT64";
    case GgufValueType::INT64: return "INT64";
    case GgufValueType::FLOAT64: return "FLOAT64";
  }
  return "UNKNOWN";
}

size_t GgufArray::size() const {
  // Only the vector that matches elem_type is filled, so the largest is the element count.
  size_t n = ints.size();
  if (floats.size() > n) n = floats.size();
  if (bools.size() > n) n = bools.size();
  if (strings.size() > n) n = strings.size();
  return n;
}

namespace gguf_detail {

uint64_t fixed_value_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16:
    case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
    case GgufValueType::FLOAT64: return 8;
    case GgufValueType::STRING:
    case GgufValueType::ARRAY: return 0;
  }
  return 0;
}

bool int_fits(GgufValueType t, int64_t v) {
  switch (t) {
    case GgufValueType::INT8: return v >= INT8_MIN && v <= INT8_MAX;
    case GgufValueType::INT16: return v >= INT16_MIN && v <= INT16_MAX;
    case GgufValueType::INT32: return v >= INT32_MIN && v <= INT32_MAX;
    case GgufValueType::INT64: return true;
    default: return v >= 0 && uint_fits(t, uint64_t(v));
  }
}

bool uint_fits(GgufValueType t, uint64_t v) {
  switch (t) {
    case GgufValueType::UINT8: return v <= UINT8_MAX;
    case GgufValueType::UINT16: return v <= UINT16_MAX;
    case GgufValueType::UINT32: return v <= UINT32_MAX;
    case GgufValueType::UINT64: return true;
    default: return v <= uint64_t(INT64_MAX) && int_fits(t, int64_t(v));
  }
}

std::string describe_type(const GgufValue& v) {
  std::string s(gguf_value_type_name(v.type));
  if (v.type == GgufValueType::ARRAY) {
    if (const auto* a = std::get_if<GgufArray>(&v.value)) {
      s += "[";
      s += gguf_value_type_name(a->elem_type);
      s += "]";
    }
  }
  return s;
}

std::string format_shape(const std::array<int64_t, 4>& ne, uint32_t n_dims) {
  std::string s = "[";
  for (uint32_t i = 0; i < n_dims && i < 4; ++i) {
    if (i) s += ", ";
    s += std::to_string(ne[i]);
  }
  return s + "]";
}

}  // namespace gguf_detail
}  // namespace bitnet
