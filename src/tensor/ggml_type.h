#pragma once
// ggml tensor type ids as used in GGUF files written by bitnet.cpp (ids 36-39 are its own types),
// with block geometry and the byte-size rules of shared/spec/gguf.md §7.
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace bitnet {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  Q4_0_4_4 = 31,
  Q4_0_4_8 = 32,
  Q4_0_8_8 = 33,
  TQ1_0 = 34,
  TQ2_0 = 35,
  I2_S = 36,
  I8_S = 37,
  TL1 = 38,
  TL2 = 39,
};

struct GgmlTypeInfo {
  std::string_view name;  // upper case as in ggml, e.g. "I2_S"
  int64_t block_size;     // elements per block; 0 for the BitNet special-size types
  int64_t block_bytes;    // bytes per block
  bool computable;        // this engine can dequantize / multiply with it
};

// nullptr for ids that are not valid ggml types in a bitnet.cpp file (4, 5, > 39).
const GgmlTypeInfo* ggml_type_info(uint32_t id);
inline const GgmlTypeInfo& ggml_type_info(GgmlType t) { return *ggml_type_info(uint32_t(t)); }
std::string_view ggml_type_name(GgmlType t);
// Case-insensitive lookup by name ("i2_s", "TQ2_0", "f16").
std::optional<GgmlType> ggml_type_from_name(std::string_view name);

// Number of bytes a tensor of this type and shape occupies in the file (what the next offset
// skips), including the I2_S/TL1/TL2 32-byte scale tail. std::nullopt if the shape is invalid for
// the type (row length not a multiple of the block size, element count not a multiple of 4 for
// I2_S/TL1) or any product overflows int64.
std::optional<uint64_t> ggml_tensor_nbytes(GgmlType t, const std::array<int64_t, 4>& ne);

// True for the ternary packed types whose matrix products quantize activations to int8.
inline bool ggml_type_is_ternary(GgmlType t) {
  return t == GgmlType::I2_S || t == GgmlType::TQ1_0 || t == GgmlType::TQ2_0 ||
         t == GgmlType::TL1 || t == GgmlType::TL2;
}

}  // namespace bitnet
