#pragma once
// Causal attention of query vectors over one key/value head of one sequence of the f16 KV cache.
// Many queries of the same sequence (prompt processing) share the f16 → f32 conversion of keys and
// values; the arithmetic of each output does not depend on which other queries came along.
#include <cstdint>
#include <span>

#include "kernels/cpu_features.h"

namespace bitnet {

// One kv head of one sequence, in KvCache's layout: dimension d of the key of position p at
// keys[(p / 8)·key_block_stride + d·8 + p % 8], value dimension d at values[p·value_stride + d].
struct KvHead {
  const uint16_t* keys;
  int64_t key_block_stride;
  const uint16_t* values;
  int64_t value_stride;
  int64_t head_dim;
};

// One query row: head_dim floats in, head_dim floats out, attending to positions
// [kv_begin, n_kv) (kv_begin > 0: a sliding-window layer).
struct AttentionQuery {
  const float* q;
  float* out;
  int64_t n_kv;
  int64_t kv_begin = 0;
};

// out = Σ_p softmax_p(scale · q·k_p) · v_p for each query, computed by a fixed sequence of
// operations that depends only on the query itself, its n_kv and the cache — so one call with many
// queries equals one call per query bit for bit, whatever the grouping:
//   score_p = Σ_d q_d·k_p,d, one sequential chain d = 0 .. head_dim-1 (fused multiply-adds on the
//             SIMD levels, multiply then add on Generic), then × scale, in f32;
//   e_p     = exp(score_p − max_p score_p) in f32 (std::exp on Generic, a vectorized polynomial
//             on the SIMD levels), summed in double with partial sums by p mod 4 (Generic) or 8;
//   out_d   = (Σ_p e_p·v_p,d, one sequential chain p = 0 .. n_kv-1) · float(1 / sum).
// Positions before kv_begin take part with e_p = 0 exactly (a window changes no other arithmetic).
// The SIMD path needs head_dim % 8 == 0; other head sizes take Generic.
void attend(kernels::Isa isa, const KvHead& kv, std::span<const AttentionQuery> queries, float scale);

// The level attend() uses in the forward pass: kernels::active_isa(), or Generic when
// BITNET_KERNELS=reference.
kernels::Isa attention_isa();

}  // namespace bitnet
