#pragma once
// q8_0 KV cache cells → f32 for attention (model/kv_cache.h has the layout): each value is
// code·scale computed in f32, which is exact (an 8-bit code times an 11-bit f16 mantissa), so every
// level — portable, AVX2, AVX-512 — gives the same floats.
#include <cstdint>

#include "kernels/cpu_features.h"

namespace bitnet {

// One key block of 8 positions: dst[d·8 + l] = codes[d·8 + l] · f16(scales[(d/32)·8 + l]), d < head_dim.
void q8_key_block_to_f32(kernels::Isa isa, const int8_t* codes, const uint16_t* scales, int64_t head_dim,
                         float* dst);
// `n` positions of values, one after another: dst[p·head_dim + d] = codes[p·head_dim + d] ·
// f16(scales[p·(head_dim/32) + d/32]).
void q8_values_to_f32(kernels::Isa isa, const int8_t* codes, const uint16_t* scales, int64_t head_dim, int64_t n,
                      float* dst);

}  // namespace bitnet
