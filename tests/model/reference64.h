#pragma once
// Float64 building blocks of the independent model evaluations the forward-pass tests compare
// against (forward_reference_test.cpp, qwen3_gemma3_test.cpp).
#include <algorithm>
#include <cmath>
#include <vector>

#include "model/model.h"
#include "tensor/quants.h"

namespace bitnet::testing::ref64 {

using Matrix = std::vector<double>;  // row-major rows × cols

inline Matrix dequant(const TensorView& w) {
  std::vector<float> f(static_cast<size_t>(w.elements()));
  dequantize_rows(w, 0, w.rows(), f.data());
  return Matrix(f.begin(), f.end());
}

// y = W x, with BitNet's per-token int8 activation quantization for ternary types (x → q/s,
// q = round-half-even(x·127/max|x|)) and the per-block one of Q8_0/Q6_K, all in double.
inline std::vector<double> linear64(const TensorView& w, const Matrix& wd, const std::vector<double>& x) {
  // Rows padded at load (TensorView::pad_cols) hold zeros past the input's length.
  const int64_t rows = w.rows(), stride = w.cols(), cols = w.input_cols();
  std::vector<double> in = x;
  if (ggml_type_is_ternary(w.type)) {
    // The int8 grid is part of the model's definition (ternary-formats.md §3): s is an f32 and
    // x·s an f32 product. Computing it in double would put exact ties (frequent when x comes
    // from the f16 cache) on the other side.
    double m = 1e-5;
    for (double v : x) m = std::max(m, std::fabs(double(float(v))));
    const float s = float(127.0 / m);
    for (double& v : in) v = std::clamp(double(std::nearbyint(float(v) * s)), -128.0, 127.0) / double(s);
  } else if (const int64_t block = q8_activation_block(w.type)) {
    // Q8_0 / Q6_K: int8 per weight block, x ≈ d·q with d = max|x|/127 (quantize_activation_blocks).
    for (int64_t b = 0; b < cols / block; ++b) {
      float m = 0;
      for (int64_t c = b * block; c < (b + 1) * block; ++c) m = std::max(m, std::fabs(float(x[size_t(c)])));
      const float s = m > 0 ? 127.0f / m : 0.0f, d = m / 127.0f;
      for (int64_t c = b * block; c < (b + 1) * block; ++c)
        in[size_t(c)] = std::clamp(double(std::nearbyint(float(x[size_t(c)]) * s)), -127.0, 127.0) * double(d);
    }
  }
  std::vector<double> y(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    double acc = 0;
    for (int64_t c = 0; c < cols; ++c) acc += wd[size_t(r * stride + c)] * in[size_t(c)];
    y[size_t(r)] = acc;
  }
  return y;
}

inline std::vector<double> rmsnorm64(const std::vector<double>& x, const std::vector<float>& g, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double scale = 1.0 / std::sqrt(ss / double(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = g[i] * x[i] * scale;
  return y;
}

inline void rope64(double* v, int64_t n_rot, int64_t pos, double base, bool neox) {
  for (int64_t j = 0; j < n_rot / 2; ++j) {
    const double theta = double(pos) * std::pow(base, -2.0 * double(j) / double(n_rot));
    double* a = neox ? &v[j] : &v[2 * j];
    double* b = neox ? &v[j + n_rot / 2] : &v[2 * j + 1];
    const double x = *a, y = *b;
    *a = x * std::cos(theta) - y * std::sin(theta);
    *b = x * std::sin(theta) + y * std::cos(theta);
  }
}

}  // namespace bitnet::testing::ref64
