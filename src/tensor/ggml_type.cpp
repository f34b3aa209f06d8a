#include "tensor/ggml_type.h"

#include <cctype>

namespace bitnet {
namespace {

constexpr int kNumTypes = 40;
// Types this engine can compute with are marked true; the others are recognised (so a file is
// reported as "unsupported type Q4_K" rather than "unknown type 12") but rejected by the loader.
constexpr std::array<GgmlTypeInfo, kNumTypes> kTypes = {{
    {"F32", 1, 4, true},        {"F16", 1, 2, true},       {"Q4_0", 32, 18, false},
    {"Q4_1", 32, 20, false},    {"", 0, 0, false},         {"", 0, 0, false},
    {"Q5_0", 32, 22, false},    {"Q5_1", 32, 24, false},   {"Q8_0", 32, 34, true},
    {"Q8_1", 32, 36, false},    {"Q2_K", 256, 84, false},  {"Q3_K", 256, 110, false},
    {"Q4_K", 256, 144, false},  {"Q5_K", 256, 176, false}, {"Q6_K", 256, 210, true},
    {"Q8_K", 256, 292, false},  {"IQ2_XXS", 256, 66, false}, {"IQ2_XS", 256, 74, false},
    {"IQ3_XXS", 256, 98, false}, {"IQ1_S", 256, 50, false}, {"IQ4_NL", 32, 18, false},
    {"IQ3_S", 256, 110, false}, {"IQ2_S", 256, 82, false}, {"IQ4_XS", 256, 136, false},
    {"I8", 1, 1, false},        {"I16", 1, 2, false},      {"I32", 1, 4, false},
    {"I64", 1, 8, false},       {"F64", 1, 8, false},      {"IQ1_M", 256, 56, false},
    {"BF16", 1, 2, true},       {"Q4_0_4_4", 32, 18, false}, {"Q4_0_4_8", 32, 18, false},
    {"Q4_0_8_8", 32, 18, false}, {"TQ1_0", 256, 54, true}, {"TQ2_0", 256, 66, true},
    {"I2_S", 0, 0, true},       {"I8_S", 1, 1, false},     {"TL1", 0, 0, true},
    {"TL2", 0, 0, true},
}};

bool mul_overflows(int64_t a, int64_t b, int64_t* out) { return __builtin_mul_overflow(a, b, out); }

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
  if (id >= kNumTypes || kTypes[id].name.empty()) return nullptr;
  return &kTypes[id];
}

std::string_view ggml_type_name(GgmlType t) {
  const GgmlTypeInfo* info = ggml_type_info(uint32_t(t));
  return info ? info->name : std::string_view("?");
}

std::optional<GgmlType> ggml_type_from_name(std::string_view name) {
  for (uint32_t id = 0; id < kNumTypes; ++id) {
    const std::string_view n = kTypes[id].name;
    if (n.empty() || n.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < n.size() && same; ++i)
      same = std::toupper(static_cast<unsigned char>(name[i])) == n[i];
    if (same) return GgmlType(id);
  }
  return std::nullopt;
}

std::optional<uint64_t> ggml_tensor_nbytes(GgmlType t, const std::array<int64_t, 4>& ne) {
  const GgmlTypeInfo* info = ggml_type_info(uint32_t(t));
  if (!info) return std::nullopt;
  int64_t n = 1;
  for (int64_t d : ne) {
    if (d <= 0 || mul_overflows(n, d, &n)) return std::nullopt;
  }
  const int64_t k = ne[0];
  int64_t bytes = 0;
  switch (t) {
    case GgmlType::I2_S:
    case GgmlType::TL1:
      if (n % 4 != 0) return std::nullopt;
      bytes = n / 4 + 32;
      break;
    case GgmlType::TL2: {
      // P = (K-256)*M/3*5/8 + 256*M/2*4/8, left to right, rounded up to 32, plus the scale slot.
      const int64_t m = n / k;
      if (k < 256) return std::nullopt;
      int64_t a, b;
      if (mul_overflows(k - 256, m, &a) || mul_overflows(a / 3, 5, &a)) return std::nullopt;
      a /= 8;
      if (mul_overflows(256, m, &b)) return std::nullopt;
      b = b / 2 * 4 / 8;
      int64_t p = a + b;
      if (p > INT64_MAX - 64) return std::nullopt;
      bytes = (p + 31) / 32 * 32 + 32;
      break;
    }
    default: {
      if (k % info->block_size != 0) return std::nullopt;
      if (mul_overflows(n / info->block_size, info->block_bytes, &bytes)) return std::nullopt;
    }
  }
  return uint64_t(bytes);
}

}  // namespace bitnet
