#pragma once
// Key/value cache: for every layer and sequence, `n_ctx` positions of K and V vectors stored as
// f16 (like llama.cpp; halves the memory traffic of attention). Sized once by the context option;
// the forward pass refuses positions outside it, so it never reads or writes out of bounds.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bitnet {

class KvCache {
 public:
  KvCache(int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t kv_dim);

  int64_t n_seq() const { return n_seq_; }
  int64_t n_ctx() const { return n_ctx_; }  // positions per sequence
  int64_t kv_dim() const { return kv_dim_; }
  uint64_t bytes() const { return 2 * k_.size() * sizeof(uint16_t); }

  uint16_t* k(int64_t layer, int64_t seq, int64_t pos) { return &k_[index(layer, seq, pos)]; }
  uint16_t* v(int64_t layer, int64_t seq, int64_t pos) { return &v_[index(layer, seq, pos)]; }
  const uint16_t* k(int64_t layer, int64_t seq, int64_t pos) const { return &k_[index(layer, seq, pos)]; }
  const uint16_t* v(int64_t layer, int64_t seq, int64_t pos) const { return &v_[index(layer, seq, pos)]; }

  // Positions [0, length) of a sequence hold valid entries (tracked for prefix reuse).
  int64_t length(int64_t seq) const { return length_[size_t(seq)]; }
  void set_length(int64_t seq, int64_t n) { length_[size_t(seq)] = n; }
  void clear(int64_t seq) { length_[size_t(seq)] = 0; }

 private:
  size_t index(int64_t layer, int64_t seq, int64_t pos) const {
    return size_t(((layer * n_seq_ + seq) * n_ctx_ + pos) * kv_dim_);
  }
  int64_t n_layer_, n_seq_, n_ctx_, kv_dim_;
  std::vector<uint16_t> k_, v_;
  std::vector<int64_t> length_;
};

}  // namespace bitnet
