#include "model/kv_cache.h"

#include <algorithm>
#include <string>

#include "errors.h"
#include "formats/half.h"

namespace bitnet {

KvCache::KvCache(int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t kv_dim)
    : n_layer_(n_layer), n_seq_(n_seq), n_ctx_(n_ctx), kv_dim_(kv_dim) {
  if (n_layer <= 0 || n_seq <= 0 || n_ctx <= 0 || kv_dim <= 0)
    throw Error("invalid KV cache geometry");
  if (n_ctx > (int64_t(1) << 40)) throw Error("KV cache of " + std::to_string(n_ctx) + " positions is too large");
  n_ctx_padded_ = (n_ctx + kKeyBlock - 1) / kKeyBlock * kKeyBlock;
  const unsigned __int128 cells = (unsigned __int128)n_layer * n_seq * n_ctx_padded_ * kv_dim;
  if (cells > (unsigned __int128)(int64_t(1) << 40))
    throw Error("KV cache of " + std::to_string(n_ctx) + " positions is too large");
  k_.assign(size_t(cells), 0);
  v_.assign(size_t(cells), 0);
  length_.assign(size_t(n_seq), 0);
}

void KvCache::store(int64_t layer, int64_t seq, int64_t pos, const float* key, const float* value) {
  uint16_t* k = &k_[base(layer, seq)];
  uint16_t* v = &v_[base(layer, seq) + size_t(pos * kv_dim_)];
  for (int64_t d = 0; d < kv_dim_; ++d) {
    k[key_offset(pos, d)] = fp32_to_fp16(key[d]);
    v[d] = fp32_to_fp16(value[d]);
  }
}

void KvCache::copy_prefix(int64_t from, int64_t to, int64_t n) {
  // Whole key blocks: the positions past n in the last block are beyond the length anyway.
  const size_t key_cells = size_t((n + kKeyBlock - 1) / kKeyBlock * key_block_stride());
  const size_t value_cells = size_t(n * kv_dim_);
  for (int64_t l = 0; l < n_layer_; ++l) {
    std::copy_n(&k_[base(l, from)], key_cells, &k_[base(l, to)]);
    std::copy_n(&v_[base(l, from)], value_cells, &v_[base(l, to)]);
  }
}

}  // namespace bitnet
