#pragma once
// Ternary test matrices for the GPU layout tests: random, non-zero data in every source format,
// at the widths of the real models (including ones that are not multiples of 128 / 256).
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/quant_test_util.h"
#include "tensor/quants.h"
#include "tensor/tensor_view.h"

namespace bitnet::test {

// A ternary tensor and the bytes its view points at (move-only: a copy's view would point into the
// original's bytes).
struct TernaryCase {
  std::string label;
  std::vector<uint8_t> bytes;
  TensorView view;

  TernaryCase() = default;
  TernaryCase(TernaryCase&&) = default;
  TernaryCase& operator=(TernaryCase&&) = default;
  TernaryCase(const TernaryCase&) = delete;
  TernaryCase& operator=(const TernaryCase&) = delete;
};

// Random trits × scale(s) encoded as `type`: one α for I2_S; for TQ a different scale per
// 256-block (so the per-block path is really exercised). `pad_i2s`: the I2_S tensor as the model
// loader keeps a width that is not a multiple of 128 (i2s_pad_rows, TensorView::pad_cols).
inline TernaryCase make_ternary_case(GgmlType type, int64_t cols, int64_t rows, uint64_t seed, bool pad_i2s = false) {
  const std::vector<int8_t> t = random_trits(cols * rows, seed);
  std::vector<float> x(t.size());
  Rng rng(seed ^ 0x5eed);
  const bool per_block = type == GgmlType::TQ1_0 || type == GgmlType::TQ2_0;
  const float alpha = 0.0173f;
  float block_scale = alpha;
  for (size_t i = 0; i < t.size(); ++i) {
    if (per_block && i % 256 == 0) block_scale = rng.uniform(0.01f, 2.0f);
    x[i] = (per_block ? block_scale : alpha) * float(t[i]);
  }
  TernaryCase c;
  c.label = std::string(ggml_type_name(type)) + " " + std::to_string(rows) + "x" + std::to_string(cols) +
            (pad_i2s ? " (padded rows)" : "");
  c.bytes = quantize_tensor(type, x.data(), cols, rows);
  c.view = make_view(type, cols, rows, c.bytes);
  if (pad_i2s) {
    c.bytes = i2s_pad_rows(c.view);
    c.view = make_view(type, i2s_padded_cols(cols), rows, c.bytes);
    c.view.pad_cols = i2s_padded_cols(cols) - cols;
  }
  return c;
}

// Activations of a realistic spread: mostly small values plus a few outliers, which decide s.
inline std::vector<float> random_activations(int64_t n, uint64_t seed) {
  std::vector<float> x = random_floats(n, seed, -1.0f, 1.0f);
  Rng rng(seed + 99);
  for (int i = 0; i < 4 && n > 0; ++i) x[size_t(rng.next() % uint64_t(n))] = rng.uniform(-20.0f, 20.0f);
  return x;
}

}  // namespace bitnet::test
