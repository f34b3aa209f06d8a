// Activation quantization of bitnet.cpp's I2_S matmul (ternary-formats.md §3) and the absmean
// weight ternarization of its converters (§1). Both round half to even: std::nearbyint under the
// default FE_TONEAREST mode, which the library never changes.
#include <algorithm>
#include <cmath>

#include "tensor/quants.h"

namespace bitnet {

float ternarize_absmean(float* w, int64_t n) {
  // mean|W| accumulated in double so the result does not depend on summation order in practice;
  // α itself is an f32 like the converters' torch tensor.
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::fabs(double(w[i]));
  const float mean = n > 0 ? float(sum / double(n)) : 0.0f;
  const float alpha = std::max(mean, 1e-5f);
  for (int64_t i = 0; i < n; ++i) {
    const float t = std::clamp(std::nearbyint(w[i] / alpha), -1.0f, 1.0f);
    w[i] = alpha * t;
  }
  return alpha;
}

ActivationQuant quantize_activations(const float* x, int64_t k, int8_t* q) {
  double m = 0;
  for (int64_t i = 0; i < k; ++i) m = std::max(m, std::fabs(double(x[i])));
  m = std::max(m, 1e-5);  // ε keeps an all-zero token finite (s = 127/1e-5, all q = 0)
  ActivationQuant act;
  act.scale = float(127.0 / m);
  int32_t sum = 0;
  for (int64_t i = 0; i < k; ++i) {
    const float scaled = x[i] * act.scale;  // the f32 product, as the kernel computes it
    const float r = std::clamp(std::nearbyint(scaled), -128.0f, 127.0f);
    q[i] = int8_t(r);
    sum += q[i];
  }
  act.sum = sum;
  return act;
}

}  // namespace bitnet
