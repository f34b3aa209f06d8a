#include "model/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "backends/cuda/offload.h"
#include "errors.h"
#include "formats/half.h"
#include "kernels/cpu_features.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace bitnet {

KvCache::KvCache(int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t n_head_kv, int64_t head_dim, KvType type_k,
                 KvType type_v, KvCommit commit)
    : n_layer_(n_layer), n_seq_(n_seq), n_ctx_(n_ctx), n_head_kv_(n_head_kv), head_dim_(head_dim), type_k_(type_k),
      type_v_(type_v), commit_(commit) {
  if (n_layer <= 0 || n_seq <= 0 || n_ctx <= 0 || n_head_kv <= 0 || head_dim <= 0)
    throw Error("invalid KV cache geometry");
  if ((type_k == KvType::Q8_0 || type_v == KvType::Q8_0) && head_dim % kKvQ8Block != 0)
    throw Error("q8_0 K/V cache needs a head size that is a multiple of 32; this model's is " +
                std::to_string(head_dim));
  if (n_ctx > (int64_t(1) << 40)) throw Error("KV cache of " + std::to_string(n_ctx) + " positions is too large");
  n_ctx_padded_ = (n_ctx + kKeyBlock - 1) / kKeyBlock * kKeyBlock;
  const unsigned __int128 cells = (unsigned __int128)n_layer * n_seq * n_ctx_padded_ * n_head_kv * head_dim;
  if (cells > (unsigned __int128)(int64_t(1) << 40))
    throw Error("KV cache of " + std::to_string(n_ctx) + " positions is too large");
  cells_ = size_t(cells);
  const auto pages = commit == KvCommit::OnWrite ? PageBuffer::Pages::SmallOnWrite : PageBuffer::Pages::Huge;
  auto make = [&](PageBuffer& codes, PageBuffer& scales, KvType t) {
    if (t == KvType::Q8_0) {
      codes = PageBuffer(cells_, pages);
      scales = PageBuffer(cells_ / kKvQ8Block * sizeof(uint16_t), pages);
      if (commit == KvCommit::Upfront) scales.prefault();
    } else {
      codes = PageBuffer(cells_ * sizeof(uint16_t), pages);
    }
    if (commit == KvCommit::Upfront) codes.prefault();
  };
  make(k_, ks_, type_k);
  make(v_, vs_, type_v);
  length_.assign(size_t(n_seq), 0);
}

uint64_t KvCache::bytes_for(int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t n_head_kv, int64_t head_dim,
                            KvType type_k, KvType type_v) {
  const uint64_t padded = uint64_t((n_ctx + kKeyBlock - 1) / kKeyBlock * kKeyBlock);
  const uint64_t cells = uint64_t(n_layer) * uint64_t(n_seq) * padded * uint64_t(n_head_kv) * uint64_t(head_dim);
  auto side = [&](KvType t) {
    return t == KvType::Q8_0 ? cells + cells / kKvQ8Block * sizeof(uint16_t) : cells * sizeof(uint16_t);
  };
  return side(type_k) + side(type_v);
}

uint64_t KvCache::resident_bytes() const {
  return k_.resident_bytes() + v_.resident_bytes() + ks_.resident_bytes() + vs_.resident_bytes();
}

void KvCache::release(int64_t seq, int64_t from) {
  if (seq < 0 || seq >= n_seq_) throw Error("KvCache::release: sequence " + std::to_string(seq) + " out of range");
  from = std::clamp<int64_t>(from, 0, n_ctx_);
  length_[size_t(seq)] = std::min(length_[size_t(seq)], from);
  if (commit_ != KvCommit::OnWrite) return;
  // Per (layer, kv head) region, in elements: keys from the first whole key block at or past
  // `from`, values from `from`; the scales likewise (head_dim/32 per position).
  const int64_t first_block = (from + kKeyBlock - 1) / kKeyBlock;
  const size_t region = size_t(n_ctx_padded_ * head_dim_), scale_region = size_t(n_ctx_padded_ * (head_dim_ / kKvQ8Block));
  const size_t key_from = size_t(first_block * key_block_stride()), value_from = size_t(from * head_dim_);
  const size_t nb = size_t(head_dim_ / kKvQ8Block);
  const size_t key_scale_from = size_t(first_block) * nb * size_t(kKeyBlock), value_scale_from = size_t(from) * nb;
  auto drop = [](PageBuffer& b, size_t elem, size_t region_begin, size_t region_size, size_t from_elem) {
    if (from_elem < region_size) b.release((region_begin + from_elem) * elem, (region_size - from_elem) * elem);
  };
  const size_t ek = type_k_ == KvType::Q8_0 ? 1 : sizeof(uint16_t), ev = type_v_ == KvType::Q8_0 ? 1 : sizeof(uint16_t);
  for (int64_t l = 0; l < n_layer_; ++l)
    for (int64_t h = 0; h < n_head_kv_; ++h) {
      drop(k_, ek, base(l, seq, h), region, key_from);
      drop(v_, ev, base(l, seq, h), region, value_from);
      if (type_k_ == KvType::Q8_0) drop(ks_, sizeof(uint16_t), scale_base(l, seq, h), scale_region, key_scale_from);
      if (type_v_ == KvType::Q8_0) drop(vs_, sizeof(uint16_t), scale_base(l, seq, h), scale_region, value_scale_from);
    }
}

KvHead KvCache::head(int64_t layer, int64_t seq, int64_t head) const {
  KvHead kv{nullptr, key_block_stride(), nullptr, head_dim_, head_dim_};
  if (type_k_ == KvType::Q8_0) {
    kv.key_codes = key_codes(layer, seq, head);
    kv.key_scales = key_scales(layer, seq, head);
  } else {
    kv.keys = key_blocks(layer, seq, head);
  }
  if (type_v_ == KvType::Q8_0) {
    kv.value_codes = value_codes(layer, seq, head);
    kv.value_scales = value_scales(layer, seq, head);
  } else {
    kv.values = values(layer, seq, head);
  }
  return kv;
}

float KvCache::key_f32(int64_t layer, int64_t seq, int64_t pos, int64_t d) const {
  const int64_t h = d / head_dim_, dd = d % head_dim_;
  if (type_k_ == KvType::F16) return fp16_to_fp32(key_blocks(layer, seq, h)[key_offset(pos, dd)]);
  return float(key_codes(layer, seq, h)[key_offset(pos, dd)]) *
         fp16_to_fp32(key_scales(layer, seq, h)[key_scale_offset(pos, dd)]);
}

float KvCache::value_f32(int64_t layer, int64_t seq, int64_t pos, int64_t d) const {
  const int64_t h = d / head_dim_, dd = d % head_dim_;
  if (type_v_ == KvType::F16) return fp16_to_fp32(values(layer, seq, h)[pos * head_dim_ + dd]);
  return float(value_codes(layer, seq, h)[pos * head_dim_ + dd]) *
         fp16_to_fp32(value_scales(layer, seq, h)[pos * (head_dim_ / kKvQ8Block) + dd / kKvQ8Block]);
}

uint16_t KvCache::key(int64_t layer, int64_t seq, int64_t pos, int64_t d) const {
  if (type_k_ != KvType::F16) throw Error("KvCache::key: the keys are not f16");
  return key_blocks(layer, seq, d / head_dim_)[key_offset(pos, d % head_dim_)];
}

uint16_t KvCache::value(int64_t layer, int64_t seq, int64_t pos, int64_t d) const {
  if (type_v_ != KvType::F16) throw Error("KvCache::value: the values are not f16");
  return values(layer, seq, d / head_dim_)[pos * head_dim_ + d % head_dim_];
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

// ggml's q8_0 of one block of 32: d = max|x|/127 (stored as f16), codes round_half_even(x·(127/max|x|))
// in f32 (a block of zeros: d = 0, codes 0). The rounding adds and subtracts 1.5·2^23, which rounds
// half to even in the default rounding mode whatever the compiler's flags.
void quantize_q8_block(const float* x, int8_t* codes, uint16_t* scale) {
  float m = 0;
  for (int64_t i = 0; i < kKvQ8Block; ++i) m = std::max(m, std::fabs(x[i]));
  const float id = m > 0 ? 127.0f / m : 0.0f;
  *scale = fp32_to_fp16(m / 127.0f);
  const float magic = 12582912.0f;
  for (int64_t i = 0; i < kKvQ8Block; ++i) {
    float r = (x[i] * id + magic) - magic;
    r = std::clamp(r, -127.0f, 127.0f);
    codes[i] = int8_t(int32_t(r));
  }
}

}  // namespace

void KvCache::store(int64_t layer, int64_t seq, int64_t pos, const float* key, const float* value) {
  for (int64_t h = 0; h < n_head_kv_; ++h)
    store_head(layer, seq, pos, h, key + h * head_dim_, value + h * head_dim_);
}

void KvCache::store_head(int64_t layer, int64_t seq, int64_t pos, int64_t head, const float* key,
                         const float* value) {
  if (type_v_ == KvType::Q8_0) {
    const int64_t nb = head_dim_ / kKvQ8Block;
    int8_t* codes = v_codes() + base(layer, seq, head) + size_t(pos * head_dim_);
    uint16_t* scales = v_scales() + scale_base(layer, seq, head) + size_t(pos * nb);
    for (int64_t j = 0; j < nb; ++j) quantize_q8_block(value + j * kKvQ8Block, codes + j * kKvQ8Block, scales + j);
  } else {
    round_to_fp16(value, v_data() + base(layer, seq, head) + size_t(pos * head_dim_), head_dim_);
  }
  if (type_k_ == KvType::Q8_0) {
    int8_t row[kKvQ8Block];
    int8_t* codes = k_codes() + base(layer, seq, head);
    uint16_t* scales = k_scales() + scale_base(layer, seq, head);
    for (int64_t j = 0; j < head_dim_ / kKvQ8Block; ++j) {
      const int64_t d0 = j * kKvQ8Block;
      quantize_q8_block(key + d0, row, scales + key_scale_offset(pos, d0));
      for (int64_t i = 0; i < kKvQ8Block; ++i) codes[key_offset(pos, d0 + i)] = row[i];
    }
    return;
  }
  static thread_local std::vector<uint16_t> key_row;
  key_row.resize(size_t(head_dim_));
  round_to_fp16(key, key_row.data(), head_dim_);
  uint16_t* k = k_data() + base(layer, seq, head);
  for (int64_t d = 0; d < head_dim_; ++d) k[key_offset(pos, d)] = key_row[size_t(d)];
}

void KvCache::copy_prefix(int64_t from, int64_t to, int64_t n) {
  // Whole key blocks: the positions past n in the last block are beyond the length anyway.
  const int64_t key_blocks_n = (n + kKeyBlock - 1) / kKeyBlock;
  const size_t key_cells = size_t(key_blocks_n * key_block_stride());
  const size_t value_cells = size_t(n * head_dim_);
  const int64_t nb = head_dim_ / kKvQ8Block;
  for (int64_t l = 0; l < n_layer_; ++l)
    for (int64_t h = 0; h < n_head_kv_; ++h) {
      if (type_k_ == KvType::Q8_0) {
        std::copy_n(k_codes() + base(l, from, h), key_cells, k_codes() + base(l, to, h));
        std::copy_n(k_scales() + scale_base(l, from, h), size_t(key_blocks_n * nb * kKeyBlock),
                    k_scales() + scale_base(l, to, h));
      } else {
        std::copy_n(k_data() + base(l, from, h), key_cells, k_data() + base(l, to, h));
      }
      if (type_v_ == KvType::Q8_0) {
        std::copy_n(v_codes() + base(l, from, h), value_cells, v_codes() + base(l, to, h));
        std::copy_n(v_scales() + scale_base(l, from, h), size_t(n * nb), v_scales() + scale_base(l, to, h));
      } else {
        std::copy_n(v_data() + base(l, from, h), value_cells, v_data() + base(l, to, h));
      }
    }
  if (gpu_) cuda::copy_prefix(*gpu_, from, to, n);
}

}  // namespace bitnet
