#include "model/kv_cache.h"

#include "errors.h"

namespace bitnet {

KvCache::KvCache(int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t kv_dim)
    : n_layer_(n_layer), n_seq_(n_seq), n_ctx_(n_ctx), kv_dim_(kv_dim) {
  if (n_layer <= 0 || n_seq <= 0 || n_ctx <= 0 || kv_dim <= 0)
    throw Error("invalid KV cache geometry");
  const unsigned __int128 cells = (unsigned __int128)n_layer * n_seq * n_ctx * kv_dim;
  if (cells > (unsigned __int128)(int64_t(1) << 40))
    throw Error("KV cache of " + std::to_string(n_ctx) + " positions is too large");
  k_.assign(size_t(cells), 0);
  v_.assign(size_t(cells), 0);
  length_.assign(size_t(n_seq), 0);
}

}  // namespace bitnet
