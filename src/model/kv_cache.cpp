#include "model/kv_cache.h"

#include <algorithm>
#include <string>

#include "backends/cuda/offload.h"
#include "errors.h"
#include "formats/half.h"
#include "kernels/cpu_features.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace bitnet {

KvCache::KvCache(int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t n_head_kv, int64_t head_dim)
    : n_layer_(n_layer), n_seq_(n_seq), n_ctx_(n_ctx), n_head_kv_(n_head_kv), head_dim_(head_dim) {
  if (n_layer <= 0 || n_seq <= 0 || n_ctx <= 0 || n_head_kv <= 0 || head_dim <= 0)
    throw Error("invalid KV cache geometry");
  if (n_ctx > (int64_t(1) << 40)) throw Error("KV cache of " + std::to_string(n_ctx) + " positions is too large");
  n_ctx_padded_ = (n_ctx + kKeyBlock - 1) / kKeyBlock * kKeyBlock;
  const unsigned __int128 cells = (unsigned __int128)n_layer * n_seq * n_ctx_padded_ * n_head_kv * head_dim;
  if (cells > (unsigned __int128)(int64_t(1) << 40))
    throw Error("KV cache of " + std::to_string(n_ctx) + " positions is too large");
  cells_ = size_t(cells);
  k_ = PageBuffer(cells_ * sizeof(uint16_t));
  v_ = PageBuffer(cells_ * sizeof(uint16_t));
  k_.prefault();
  v_.prefault();
  length_.assign(size_t(n_seq), 0);
}

namespace {

void to_fp16(const float* in, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = fp32_to_fp16(in[i]);
}

#if defined(__x86_64__)
// F16C rounds to nearest even like fp32_to_fp16 (identical for every non-NaN input), 8× faster.
__attribute__((target("avx,f16c"))) void to_fp16_f16c(const float* in, uint16_t* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  to_fp16(in + i, out + i, n - i);
}
#endif

void round_to_fp16(const float* in, uint16_t* out, int64_t n) {
#if defined(__x86_64__)
  if (kernels::cpu_features().f16c) return to_fp16_f16c(in, out, n);
#endif
  to_fp16(in, out, n);
}

}  // namespace

void KvCache::store(int64_t layer, int64_t seq, int64_t pos, const float* key, const float* value) {
  for (int64_t h = 0; h < n_head_kv_; ++h)
    store_head(layer, seq, pos, h, key + h * head_dim_, value + h * head_dim_);
}

void KvCache::store_head(int64_t layer, int64_t seq, int64_t pos, int64_t head, const float* key,
                         const float* value) {
  static thread_local std::vector<uint16_t> key_row;
  key_row.resize(size_t(head_dim_));
  round_to_fp16(key, key_row.data(), head_dim_);
  round_to_fp16(value, v_data() + base(layer, seq, head) + size_t(pos * head_dim_), head_dim_);
  uint16_t* k = k_data() + base(layer, seq, head);
  for (int64_t d = 0; d < head_dim_; ++d) k[key_offset(pos, d)] = key_row[size_t(d)];
}

void KvCache::copy_prefix(int64_t from, int64_t to, int64_t n) {
  // Whole key blocks: the positions past n in the last block are beyond the length anyway.
  const size_t key_cells = size_t((n + kKeyBlock - 1) / kKeyBlock * key_block_stride());
  const size_t value_cells = size_t(n * head_dim_);
  for (int64_t l = 0; l < n_layer_; ++l)
    for (int64_t h = 0; h < n_head_kv_; ++h) {
      std::copy_n(k_data() + base(l, from, h), key_cells, k_data() + base(l, to, h));
      std::copy_n(v_data() + base(l, from, h), value_cells, v_data() + base(l, to, h));
    }
  if (gpu_) cuda::copy_prefix(*gpu_, from, to, n);
}

}  // namespace bitnet
