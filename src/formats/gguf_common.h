#pragma once
// Internal helpers shared by the GGUF reader and writer (not part of the public contract).
#include <array>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/untrusted_text.h"
#include "formats/gguf.h"

namespace bitnet::gguf_detail {

constexpr uint8_t kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr uint32_t kVersion = 3;
constexpr uint32_t kDefaultAlignment = 32;
constexpr uint64_t kHeaderSize = 24;
// ggml keeps tensor names in a 64-byte buffer including the terminator.
constexpr size_t kMaxTensorNameLen = 63;
constexpr uint32_t kMaxDims = 4;
constexpr std::string_view kAlignmentKey = "general.alignment";
constexpr std::string_view kArchitectureKey = "general.architecture";

// Highest valid value-type tag (FLOAT64 = 12).
constexpr uint32_t kMaxValueType = 12;

inline bool is_valid_value_type(uint32_t tag) { return tag <= kMaxValueType; }

// Fixed payload size of a scalar value type; 0 for STRING and ARRAY (variable length).
uint64_t fixed_value_size(GgufValueType t);

inline bool is_unsigned_int_type(GgufValueType t) {
  return t == GgufValueType::UINT8 || t == GgufValueType::UINT16 || t == GgufValueType::UINT32 ||
         t == GgufValueType::UINT64;
}
inline bool is_signed_int_type(GgufValueType t) {
  return t == GgufValueType::INT8 || t == GgufValueType::INT16 || t == GgufValueType::INT32 ||
         t == GgufValueType::INT64;
}
inline bool is_int_type(GgufValueType t) { return is_unsigned_int_type(t) || is_signed_int_type(t); }
inline bool is_float_type(GgufValueType t) {
  return t == GgufValueType::FLOAT32 || t == GgufValueType::FLOAT64;
}

// Whether an integer fits the value range of an integer value type.
bool int_fits(GgufValueType t, int64_t v);
bool uint_fits(GgufValueType t, uint64_t v);

// "UINT32", or "ARRAY[FLOAT32]" for arrays: used in type-mismatch messages.
std::string describe_type(const GgufValue& v);

inline bool is_power_of_two(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

// Overflow-safe align_up; the caller guarantees `align` is a power of two. Returns false on
// overflow.
inline bool align_up(uint64_t x, uint64_t align, uint64_t* out) {
  if (x > UINT64_MAX - (align - 1)) return false;
  *out = (x + align - 1) & ~(align - 1);
  return true;
}

std::string format_shape(const std::array<int64_t, 4>& ne, uint32_t n_dims);

}  // namespace bitnet::gguf_detail

// ---- Parser interface (gguf_reader.cpp), used by GgufFile (gguf_file.cpp) ----------------------
namespace bitnet::gguf_detail {

using NameIndex = std::map<std::string, size_t, std::less<>>;

struct ParsedGguf {
  uint32_t version = 0;
  uint32_t alignment = kDefaultAlignment;
  uint64_t data_start = 0;
  std::vector<GgufKV> kvs;
  std::vector<GgufTensorInfo> tensors;
  NameIndex key_index;     // key -> index into kvs
  NameIndex tensor_index;  // name -> index into tensors
};

// Parses and fully validates a GGUF image; `name` prefixes every error message.
ParsedGguf parse_gguf(std::span<const uint8_t> bytes, const std::string& name);

// A key / tensor name made safe for an error message (a malicious file may use control bytes or
// a multi-megabyte name): base/untrusted_text.h.
inline std::string quote(std::string_view s) { return quote_untrusted(s, 80); }

}  // namespace bitnet::gguf_detail
