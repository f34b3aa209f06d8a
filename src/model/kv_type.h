#pragma once
// Storage types of the KV cache (llama.cpp's -ctk / -ctv): f16, or q8_0 — blocks of 32 consecutive
// dimensions of one position's head vector sharing one f16 scale d = max|x|/127, int8 codes
// round_half_even(x·127/max|x|) (ggml's q8_0; model/kv_cache.h has the layout).
#include <cstdint>
#include <optional>
#include <string_view>

namespace bitnet {

enum class KvType : uint8_t { F16, Q8_0 };

// Dimensions per q8_0 scale.
inline constexpr int64_t kKvQ8Block = 32;

constexpr const char* kv_type_name(KvType t) { return t == KvType::Q8_0 ? "q8_0" : "f16"; }
// "f16" / "q8_0" (llama.cpp's names); nullopt for anything else.
inline std::optional<KvType> parse_kv_type(std::string_view s) {
  if (s == "f16") return KvType::F16;
  if (s == "q8_0") return KvType::Q8_0;
  return std::nullopt;
}
// The accepted names, for error messages.
inline constexpr const char* kKvTypeNames = "f16, q8_0";

}  // namespace bitnet
