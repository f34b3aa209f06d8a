#pragma once
// Small open-addressing hash maps (linear probing, power-of-two capacity, no deletion) for the
// large read-mostly tables of the tokenizer: token text -> id and merge pair -> rank. They avoid
// one heap node per entry, which keeps building a 128k-token / 280k-merge vocabulary fast.
#include <cstdint>
#include <string_view>
#include <vector>

namespace bitnet::tok {

inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, then a final mix
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 32);
}

inline uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

inline size_t table_capacity(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  return cap;
}

// string_view -> int32 (the viewed strings must outlive the map). First insertion wins.
class TextIdMap {
 public:
  void reserve(size_t n) {
    keys_.assign(table_capacity(n), std::string_view());
    vals_.assign(keys_.size(), -1);
  }
  // Returns false if the key was already present.
  bool insert(std::string_view key, int32_t val) {
    if ((size_ + 1) * 2 > keys_.size()) grow();
    size_t i = slot(key);
    if (vals_[i] >= 0) return false;
    keys_[i] = key;
    vals_[i] = val;
    ++size_;
    return true;
  }
  int32_t find(std::string_view key) const {
    if (keys_.empty()) return -1;
    return vals_[slot(key)];
  }

 private:
  size_t slot(std::string_view key) const {
    const size_t mask = keys_.size() - 1;
    size_t i = hash_bytes(key) & mask;
    while (vals_[i] >= 0 && keys_[i] != key) i = (i + 1) & mask;
    return i;
  }
  void grow() {
    std::vector<std::string_view> k;
    std::vector<int32_t> v;
    k.swap(keys_);
    v.swap(vals_);
    reserve(k.empty() ? 8 : k.size());
    size_ = 0;
    for (size_t i = 0; i < k.size(); ++i)
      if (v[i] >= 0) insert(k[i], v[i]);
  }
  std::vector<std::string_view> keys_;
  std::vector<int32_t> vals_;  // -1 = empty slot (values are non-negative)
  size_t size_ = 0;
};

// (left id, right id) -> (rank, result id). First insertion wins.
class PairMap {
 public:
  struct Value {
    int32_t rank = -1;  // -1 = empty slot
    int32_t result = -1;
  };
  void reserve(size_t n) {
    keys_.assign(table_capacity(n), 0);
    vals_.assign(keys_.size(), Value{});
  }
  void insert(int32_t l, int32_t r, Value v) {
    if ((size_ + 1) * 2 > keys_.size()) grow();
    const uint64_t key = pack(l, r);
    const size_t i = slot(key);
    if (vals_[i].rank >= 0) return;
    keys_[i] = key;
    vals_[i] = v;
    ++size_;
  }
  const Value* find(int32_t l, int32_t r) const {
    if (keys_.empty()) return nullptr;
    const size_t i = slot(pack(l, r));
    return vals_[i].rank >= 0 ? &vals_[i] : nullptr;
  }

 private:
  static uint64_t pack(int32_t l, int32_t r) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
  }
  size_t slot(uint64_t key) const {
    const size_t mask = keys_.size() - 1;
    size_t i = hash_u64(key) & mask;
    while (vals_[i].rank >= 0 && keys_[i] != key) i = (i + 1) & mask;
    return i;
  }
  void grow() {
    std::vector<uint64_t> k;
    std::vector<Value> v;
    k.swap(keys_);
    v.swap(vals_);
    reserve(k.empty() ? 8 : k.size());
    size_ = 0;
    for (size_t i = 0; i < k.size(); ++i)
      if (v[i].rank >= 0) insert(static_cast<int32_t>(k[i] >> 32), static_cast<int32_t>(k[i] & 0xFFFFFFFFu), v[i]);
  }
  std::vector<uint64_t> keys_;
  std::vector<Value> vals_;
  size_t size_ = 0;
};

}  // namespace bitnet::tok
