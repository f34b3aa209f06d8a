#pragma once
// Key/value cache: for every layer and sequence, `n_ctx` positions of K and V vectors stored as
// f16 (like llama.cpp; halves the memory traffic of attention). Sized once by the context option;
// the forward pass refuses positions outside it, so it never reads or writes out of bounds.
//
// Each (layer, sequence, kv head) owns one contiguous region, so attention over one head streams
// its keys and then its values front to back (decode at 4000 positions reads more cache than
// weights). In a region, values are stored one position after another (head_dim halves each);
// keys are stored transposed in blocks of kKeyBlock positions — block b holds head_dim × kKeyBlock
// halves with the position fastest — so that attention scores are computed for several positions
// at once, each score a plain sequential sum over the head dimension (model/attention.h), without
// transposing anything at run time.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "memory/page_buffer.h"

namespace bitnet::cuda {
class GpuCache;  // backends/cuda/offload.h
}

namespace bitnet {

class KvCache {
 public:
  static constexpr int64_t kKeyBlock = 8;

  KvCache(int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t n_head_kv, int64_t head_dim);

  int64_t n_seq() const { return n_seq_; }
  int64_t n_ctx() const { return n_ctx_; }  // positions per sequence
  int64_t n_head_kv() const { return n_head_kv_; }
  int64_t head_dim() const { return head_dim_; }
  int64_t kv_dim() const { return n_head_kv_ * head_dim_; }
  uint64_t bytes() const { return 2 * cells_ * sizeof(uint16_t); }

  // Writes position `pos` of a sequence: kv_dim keys and values (head after head), rounded to f16.
  void store(int64_t layer, int64_t seq, int64_t pos, const float* key, const float* value);
  // The same for one kv head: head_dim keys and values.
  void store_head(int64_t layer, int64_t seq, int64_t pos, int64_t head, const float* key, const float* value);

  // The key blocks of one kv head: block b (positions [b·kKeyBlock, (b+1)·kKeyBlock)) starts at
  // key_blocks(...) + b·key_block_stride(); dimension d of position p sits at d·kKeyBlock + p%kKeyBlock.
  const uint16_t* key_blocks(int64_t layer, int64_t seq, int64_t head) const { return k_data() + base(layer, seq, head); }
  int64_t key_block_stride() const { return head_dim_ * kKeyBlock; }
  // The values of one kv head: position p's head_dim values at values(...) + p·head_dim().
  const uint16_t* values(int64_t layer, int64_t seq, int64_t head) const { return v_data() + base(layer, seq, head); }

  // Dimension d ∈ [0, kv_dim) of one position's key / value (tests and diagnostics).
  uint16_t key(int64_t layer, int64_t seq, int64_t pos, int64_t d) const {
    return key_blocks(layer, seq, d / head_dim_)[key_offset(pos, d % head_dim_)];
  }
  uint16_t value(int64_t layer, int64_t seq, int64_t pos, int64_t d) const {
    return values(layer, seq, d / head_dim_)[pos * head_dim_ + d % head_dim_];
  }

  // Copies positions [0, n) of sequence `from` to sequence `to` (every layer, the GPU's too).
  void copy_prefix(int64_t from, int64_t to, int64_t n);

  // The f16 cache of the layers a model runs on the GPU (-ngl), made by the forward pass on first
  // use; null otherwise. Lengths are this object's for both.
  cuda::GpuCache* gpu_cache() const { return gpu_.get(); }
  void set_gpu_cache(std::shared_ptr<cuda::GpuCache> c) { gpu_ = std::move(c); }

  // Positions [0, length) of a sequence hold valid entries (tracked for prefix reuse).
  int64_t length(int64_t seq) const { return length_[size_t(seq)]; }
  void set_length(int64_t seq, int64_t n) { length_[size_t(seq)] = n; }
  void clear(int64_t seq) { length_[size_t(seq)] = 0; }

 private:
  // Both arrays hold n_ctx_padded_ positions per (layer, seq, head) (whole key blocks).
  size_t base(int64_t layer, int64_t seq, int64_t head) const {
    return size_t(((layer * n_seq_ + seq) * n_head_kv_ + head) * n_ctx_padded_ * head_dim_);
  }
  int64_t key_offset(int64_t pos, int64_t d) const {
    return (pos / kKeyBlock) * key_block_stride() + d * kKeyBlock + pos % kKeyBlock;
  }
  uint16_t* k_data() { return reinterpret_cast<uint16_t*>(k_.data()); }
  const uint16_t* k_data() const { return reinterpret_cast<const uint16_t*>(k_.data()); }
  uint16_t* v_data() { return reinterpret_cast<uint16_t*>(v_.data()); }
  const uint16_t* v_data() const { return reinterpret_cast<const uint16_t*>(v_.data()); }
  int64_t n_layer_, n_seq_, n_ctx_, n_ctx_padded_, n_head_kv_, head_dim_;
  size_t cells_ = 0;  // halves in each of k_ and v_
  // Attention streams the whole cache of a sequence every step: huge pages, zero-filled and
  // faulted in at construction.
  PageBuffer k_, v_;
  std::vector<int64_t> length_;
  std::shared_ptr<cuda::GpuCache> gpu_;
};

}  // namespace bitnet
