#include "ops/ops.h"

#include <cmath>
#include <vector>

#include "tensor/quants.h"

namespace bitnet::ops {

void rms_norm(const float* x, const float* gain, int64_t n, float eps, float* out) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += double(x[i]) * x[i];
  const float scale = 1.0f / std::sqrt(float(sum / double(n)) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = gain[i] * (x[i] * scale);
}

void rope(float* head, int n_rot, int64_t pos, float base, float freq_scale, RopeStyle style) {
  const float theta_scale = std::pow(base, -2.0f / float(n_rot));
  float theta = float(pos) * freq_scale;
  const int half = n_rot / 2;
  for (int j = 0; j < half; ++j) {
    const float c = std::cos(theta), s = std::sin(theta);
    float* u = style == RopeStyle::Neox ? &head[j] : &head[2 * j];
    float* v = style == RopeStyle::Neox ? &head[j + half] : &head[2 * j + 1];
    const float a = *u, b = *v;
    *u = a * c - b * s;
    *v = a * s + b * c;
    theta *= theta_scale;
  }
}

void matmul(const TensorView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  const int64_t rows = w.rows(), cols = w.cols();
  if (ggml_type_is_ternary(w.type)) {
    std::vector<int8_t> q(static_cast<size_t>(n_tokens * cols));
    std::vector<ActivationQuant> act(static_cast<size_t>(n_tokens));
    for (int64_t t = 0; t < n_tokens; ++t) act[t] = quantize_activations(x + t * cols, cols, &q[t * cols]);
    pool.parallel_for(rows, 16, [&](int64_t r0, int64_t r1, int) {
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = r0; r < r1; ++r) y[t * rows + r] = dot_ternary_ref(w, r, &q[t * cols], act[t]);
    });
    return;
  }
  pool.parallel_for(rows, 16, [&](int64_t r0, int64_t r1, int) {
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t r = r0; r < r1; ++r) y[t * rows + r] = dot_float_ref(w, r, x + t * cols);
  });
}

void embedding_row(const TensorView& table, int64_t index, float* out) {
  dequantize_rows(table, index, 1, out);
}

}  // namespace bitnet::ops
