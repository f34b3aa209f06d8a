#pragma once
// Shared helpers for the tensor tests: a fast seeded PRNG, random ternary / float data, and
// TensorViews over test buffers.
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/ggml_type.h"
#include "tensor/quants.h"
#include "tensor/tensor_view.h"

namespace bitnet::test {

// splitmix64: deterministic across platforms (unlike std:: distributions) and fast enough to fill
// 60M-element tensors.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  float uniform(float lo, float hi) { return lo + float(uniform()) * (hi - lo); }
  int8_t trit() { return int8_t(int(next() % 3) - 1); }
  int8_t i8() { return int8_t(next() & 0xFF); }
};

inline std::vector<int8_t> random_trits(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int8_t> t(static_cast<size_t>(n));
  // 40 base-3 digits per 64-bit draw (3^40 < 2^64; the tiny bias is irrelevant here): keeps the
  // 60M-element TL shapes cheap to fill.
  uint64_t bits = 0;
  int left = 0;
  for (auto& v : t) {
    if (left == 0) {
      bits = rng.next();
      left = 40;
    }
    v = int8_t(int(bits % 3) - 1);
    bits /= 3;
    --left;
  }
  return t;
}

inline std::vector<float> scaled(const std::vector<int8_t>& t, float alpha) {
  std::vector<float> x(t.size());
  for (size_t i = 0; i < t.size(); ++i) x[i] = alpha * float(t[i]);
  return x;
}

inline std::vector<float> random_floats(int64_t n, uint64_t seed, float lo = -1, float hi = 1) {
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = rng.uniform(lo, hi);
  return x;
}

inline TensorView make_view(GgmlType type, int64_t cols, int64_t rows,
                            const std::vector<uint8_t>& bytes, std::string name = "blk.0.w") {
  TensorView w;
  w.name = std::move(name);
  w.type = type;
  w.ne = {cols, rows, 1, 1};
  w.data = bytes.data();
  w.nbytes = bytes.size();
  return w;
}

inline std::vector<float> dequantize_all(const TensorView& w) {
  std::vector<float> out(static_cast<size_t>(w.elements()));
  dequantize_rows(w, 0, w.rows(), out.data());
  return out;
}

}  // namespace bitnet::test
