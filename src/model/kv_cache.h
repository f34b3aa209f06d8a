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
//
// Storage types, chosen per K and per V (-ctk / -ctv; model/kv_type.h): f16 (the default), or q8_0,
// which holds the int8 codes in exactly the places the halves take in f16 (same region, same
// index: keys transposed in blocks of kKeyBlock positions, values position after position) plus one
// f16 scale per 32 dimensions of one position's head vector, in a separate array with one region per
// (layer, sequence, kv head) of n_ctx_padded × head_dim/32 scales:
//   key scales:   block b of kKeyBlock positions at b·(head_dim/32)·kKeyBlock; in it the scale of
//                 dimensions [32j, 32j+32) of position p at j·kKeyBlock + p%kKeyBlock (transposed
//                 like the keys, so one key block converts with 8 contiguous scales per 32 dims);
//   value scales: position p's head_dim/32 scales at p·(head_dim/32) + j.
// A q8_0 value x reads back as code·d, exactly, in f32 (8-bit code × 11-bit mantissa). q8_0 needs
// head_dim % 32 == 0.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "memory/page_buffer.h"
#include "model/attention.h"
#include "model/kv_type.h"

namespace bitnet::cuda {
class GpuCache;  // backends/cuda/offload.h
}

namespace bitnet {

// How a KvCache's memory is committed.
enum class KvCommit {
  // Huge pages, all faulted in at construction: attention streams the whole cache of a sequence,
  // and a timed run should not pay for page faults.
  Upfront,
  // 4 KiB pages, committed only as positions are written, and given back by release(): the address
  // space may be far larger than the memory in use, even than the machine's (MAP_NORESERVE; the
  // server's unified KV cache reserves every slot's whole context, the slots sharing one
  // context's worth of positions; docs/server.md).
  OnWrite,
};

class KvCache {
 public:
  static constexpr int64_t kKeyBlock = 8;

  // Throws Error for q8_0 with a head size that is not a multiple of 32.
  KvCache(int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t n_head_kv, int64_t head_dim,
          KvType type_k = KvType::F16, KvType type_v = KvType::F16, KvCommit commit = KvCommit::Upfront);

  KvType type_k() const { return type_k_; }
  KvType type_v() const { return type_v_; }

  int64_t n_seq() const { return n_seq_; }
  int64_t n_ctx() const { return n_ctx_; }  // positions per sequence
  int64_t n_head_kv() const { return n_head_kv_; }
  int64_t head_dim() const { return head_dim_; }
  int64_t kv_dim() const { return n_head_kv_ * head_dim_; }
  KvCommit commit() const { return commit_; }
  // What the cache allocates (codes and scales of both K and V): with KvCommit::OnWrite, address
  // space; memory only where written (resident_bytes()).
  uint64_t bytes() const { return side_bytes(type_k_) + side_bytes(type_v_); }
  // Bytes of the cache backed by memory now (whole 4 KiB pages; PageBuffer::resident_bytes).
  uint64_t resident_bytes() const;
  // The same for a cache of this geometry and these types, without making one (diagnostics).
  static uint64_t bytes_for(int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t n_head_kv, int64_t head_dim,
                            KvType type_k, KvType type_v);

  // Writes position `pos` of a sequence: kv_dim keys and values (head after head), rounded to f16
  // or quantized to q8_0 (per the side's type).
  void store(int64_t layer, int64_t seq, int64_t pos, const float* key, const float* value);
  // The same for one kv head: head_dim keys and values.
  void store_head(int64_t layer, int64_t seq, int64_t pos, int64_t head, const float* key, const float* value);

  // One kv head of one sequence as attention reads it (the f16 or the q8_0 pointers of each side).
  KvHead head(int64_t layer, int64_t seq, int64_t head) const;

  // f16 caches — the key blocks of one kv head: block b (positions [b·kKeyBlock, (b+1)·kKeyBlock)) starts at
  // key_blocks(...) + b·key_block_stride(); dimension d of position p sits at d·kKeyBlock + p%kKeyBlock.
  const uint16_t* key_blocks(int64_t layer, int64_t seq, int64_t head) const { return k_data() + base(layer, seq, head); }
  int64_t key_block_stride() const { return head_dim_ * kKeyBlock; }
  // The values of one kv head: position p's head_dim values at values(...) + p·head_dim().
  const uint16_t* values(int64_t layer, int64_t seq, int64_t head) const { return v_data() + base(layer, seq, head); }

  // q8_0 caches — the codes in the places above, and the scales (layout in the header comment).
  const int8_t* key_codes(int64_t layer, int64_t seq, int64_t head) const { return k_codes() + base(layer, seq, head); }
  const int8_t* value_codes(int64_t layer, int64_t seq, int64_t head) const { return v_codes() + base(layer, seq, head); }
  const uint16_t* key_scales(int64_t layer, int64_t seq, int64_t head) const {
    return k_scales() + scale_base(layer, seq, head);
  }
  const uint16_t* value_scales(int64_t layer, int64_t seq, int64_t head) const {
    return v_scales() + scale_base(layer, seq, head);
  }

  // Dimension d ∈ [0, kv_dim) of one position's key / value as attention reads it: the f16 value,
  // or code·scale (either type; tests and diagnostics).
  float key_f32(int64_t layer, int64_t seq, int64_t pos, int64_t d) const;
  float value_f32(int64_t layer, int64_t seq, int64_t pos, int64_t d) const;
  // The stored f16 bits (f16 side only; Error on a q8_0 side).
  uint16_t key(int64_t layer, int64_t seq, int64_t pos, int64_t d) const;
  uint16_t value(int64_t layer, int64_t seq, int64_t pos, int64_t d) const;

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
  // Drops positions [from, n_ctx) of a sequence (its length becomes at most `from`). With
  // KvCommit::OnWrite their memory goes back to the system: the whole 4 KiB pages past `from` in
  // each of the sequence's (layer, kv head) regions of K, V and the q8_0 scales (a partly used page
  // at either end of a region stays). With KvCommit::Upfront only the length changes. The GPU
  // part, if any, keeps its memory.
  void release(int64_t seq, int64_t from);

 private:
  // Both arrays hold n_ctx_padded_ positions per (layer, seq, head) (whole key blocks).
  size_t base(int64_t layer, int64_t seq, int64_t head) const {
    return size_t(((layer * n_seq_ + seq) * n_head_kv_ + head) * n_ctx_padded_ * head_dim_);
  }
  int64_t key_offset(int64_t pos, int64_t d) const {
    return (pos / kKeyBlock) * key_block_stride() + d * kKeyBlock + pos % kKeyBlock;
  }
  size_t scale_base(int64_t layer, int64_t seq, int64_t head) const {
    return size_t(((layer * n_seq_ + seq) * n_head_kv_ + head) * n_ctx_padded_ * (head_dim_ / kKvQ8Block));
  }
  int64_t key_scale_offset(int64_t pos, int64_t d) const {
    return (pos / kKeyBlock) * (head_dim_ / kKvQ8Block) * kKeyBlock + (d / kKvQ8Block) * kKeyBlock + pos % kKeyBlock;
  }
  uint64_t side_bytes(KvType t) const {
    return t == KvType::Q8_0 ? cells_ + cells_ / kKvQ8Block * sizeof(uint16_t) : cells_ * sizeof(uint16_t);
  }
  int8_t* k_codes() { return reinterpret_cast<int8_t*>(k_.data()); }
  const int8_t* k_codes() const { return reinterpret_cast<const int8_t*>(k_.data()); }
  int8_t* v_codes() { return reinterpret_cast<int8_t*>(v_.data()); }
  const int8_t* v_codes() const { return reinterpret_cast<const int8_t*>(v_.data()); }
  uint16_t* k_scales() { return reinterpret_cast<uint16_t*>(ks_.data()); }
  const uint16_t* k_scales() const { return reinterpret_cast<const uint16_t*>(ks_.data()); }
  uint16_t* v_scales() { return reinterpret_cast<uint16_t*>(vs_.data()); }
  const uint16_t* v_scales() const { return reinterpret_cast<const uint16_t*>(vs_.data()); }
  uint16_t* k_data() { return reinterpret_cast<uint16_t*>(k_.data()); }
  const uint16_t* k_data() const { return reinterpret_cast<const uint16_t*>(k_.data()); }
  uint16_t* v_data() { return reinterpret_cast<uint16_t*>(v_.data()); }
  const uint16_t* v_data() const { return reinterpret_cast<const uint16_t*>(v_.data()); }
  int64_t n_layer_, n_seq_, n_ctx_, n_ctx_padded_, n_head_kv_, head_dim_;
  KvType type_k_, type_v_;
  KvCommit commit_;
  size_t cells_ = 0;  // halves (f16) or codes (q8_0) in each of k_ and v_
  // Attention streams the whole cache of a sequence every step: huge pages, zero-filled and
  // faulted in at construction (KvCommit::Upfront), or 4 KiB pages as written (KvCommit::OnWrite).
  PageBuffer k_, v_;
  PageBuffer ks_, vs_;  // q8_0 scales (empty for an f16 side)
  std::vector<int64_t> length_;
  std::shared_ptr<cuda::GpuCache> gpu_;
};

}  // namespace bitnet
