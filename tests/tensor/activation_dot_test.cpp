// quantize_activations (§3), ternarize_absmean (§1) and dot_ternary_ref against independent sums.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>

#include "quant_test_util.h"
#include "tensor/tl_tiles.h"

namespace bitnet {
namespace {

using test::make_view;
using test::random_floats;
using test::random_trits;
using test::Rng;
using test::scaled;

// ---- quantize_activations ----

TEST(ActivationQuant, TiesRoundToEven) {
  // max|x| = 127 -> s = 1 exactly, so q = nearest_even(x).
  const std::vector<float> x = {127.0f, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, 1.5f, -0.5f, 126.5f, 2.4f};
  std::vector<int8_t> q(x.size());
  const ActivationQuant a = quantize_activations(x.data(), int64_t(x.size()), q.data());
  EXPECT_EQ(a.scale, 1.0f);
  EXPECT_EQ(q, (std::vector<int8_t>{127, 2, 4, -2, -4, 0, 2, 0, 126, 2}));
  EXPECT_EQ(a.sum, 127 + 2 + 4 - 2 - 4 + 0 + 2 + 0 + 126 + 2);
}

TEST(ActivationQuant, MaxElementMapsTo127AndMatchesSpecFormula) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    auto x = random_floats(333, seed, -4, 4);
    const size_t imax = seed * 7 % 333;
    x[imax] = seed % 2 ? 9.0f + float(seed) * 0.01f : -9.0f - float(seed) * 0.01f;
    std::vector<int8_t> q(x.size());
    const ActivationQuant a = quantize_activations(x.data(), int64_t(x.size()), q.data());
    EXPECT_EQ(q[imax], seed % 2 ? 127 : -127);
    const float s = float(127.0 / double(std::fabs(x[imax])));
    EXPECT_EQ(a.scale, s);
    int32_t sum = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const float p = x[i] * s;
      ASSERT_EQ(q[i], int8_t(std::max(-128.0f, std::min(127.0f, std::nearbyint(p))))) << i;
      sum += q[i];
    }
    EXPECT_EQ(a.sum, sum);
  }
}

TEST(ActivationQuant, MaxSearchMatchesAFloatCompareAtEveryLength) {
  // The max |x| is searched on bit patterns (it vectorizes): every length around the vector widths,
  // the maximum at every position, NaN skipped as a float compare skips it.
  for (int64_t n = 1; n <= 70; ++n)
    for (int64_t at = 0; at < n; at += 5) {
      auto x = random_floats(size_t(n), uint64_t(n * 100 + at), -2, 2);
      x[size_t(at)] = at % 2 ? -7.25f : 7.25f;
      if (n > 3) x[size_t((at + 2) % n)] = std::nanf("");
      float m = 0;
      for (float v : x) m = std::fabs(v) > m ? std::fabs(v) : m;
      std::vector<int8_t> q(static_cast<size_t>(n));
      const ActivationQuant a = quantize_activations(x.data(), n, q.data());
      ASSERT_EQ(a.scale, float(127.0 / double(m))) << "n=" << n << " at=" << at;
      ASSERT_EQ(q[size_t(at)], at % 2 ? -127 : 127);
    }
}

TEST(ActivationQuant, SimdBodyEqualsTheLoopsBitForBit) {
  // quantize_activations' AVX-512 body (where the CPU has one) against the plain loops: every
  // length 0–70 (vector body and tail), random scales, and in turn NaN, ±inf, ±0, subnormals, huge
  // values and exact rounding ties in the body and in the tail.
  const float special[] = {std::nanf(""), INFINITY, -INFINITY, -0.0f, 0.0f, 1e-40f, -3e38f, 3e38f};
  for (int64_t n = 0; n <= 70; ++n)
    for (uint64_t trial = 0; trial < 12; ++trial) {
      auto x = random_floats(size_t(n), n * 131 + trial, trial % 3 == 0 ? -1e-3f : -5.0f, trial % 3 == 0 ? 1e-3f : 5.0f);
      if (n > 0 && trial < std::size(special)) x[size_t(int64_t(trial * 7) % n)] = special[trial];
      if (n > 1 && trial >= std::size(special)) {  // a tie: max 127 → scale 1, x = 2.5 rounds to 2
        x[0] = 127.0f;
        x[size_t(n - 1)] = 2.5f;
      }
      std::vector<int8_t> qa(static_cast<size_t>(n), 9), qb(static_cast<size_t>(n), 9);
      const ActivationQuant a = quantize_activations(x.data(), n, qa.data());
      const ActivationQuant b = quantize_activations_loop(x.data(), n, qb.data());
      ASSERT_EQ(std::bit_cast<uint32_t>(a.scale), std::bit_cast<uint32_t>(b.scale)) << "n=" << n << " trial=" << trial;
      ASSERT_EQ(a.sum, b.sum) << "n=" << n << " trial=" << trial;
      ASSERT_EQ(qa, qb) << "n=" << n << " trial=" << trial;
    }
}

TEST(ActivationQuant, AllZeroInputUsesEpsilon) {
  const std::vector<float> x(64, 0.0f);
  std::vector<int8_t> q(64, 5);
  const ActivationQuant a = quantize_activations(x.data(), 64, q.data());
  EXPECT_EQ(a.scale, float(127.0 / 1e-5));
  EXPECT_EQ(a.sum, 0);
  for (int8_t v : q) EXPECT_EQ(v, 0);
}

TEST(ActivationQuant, TinyValuesBelowEpsilon) {
  const std::vector<float> x = {5e-6f, -1e-6f, 0.0f};
  std::vector<int8_t> q(3);
  const ActivationQuant a = quantize_activations(x.data(), 3, q.data());
  EXPECT_EQ(a.scale, float(127.0 / 1e-5));
  EXPECT_EQ(q[0], int8_t(std::nearbyint(5e-6f * a.scale)));  // 63.5 -> 64 (even)
  EXPECT_EQ(q[1], int8_t(std::nearbyint(-1e-6f * a.scale)));
}

// ---- ternarize_absmean ----

TEST(Ternarize, KnownInput) {
  std::vector<float> w = {0.5f, -1.0f, 0.0f, 2.5f, -0.25f, 0.25f};  // mean|W| = 0.75
  EXPECT_EQ(ternarize_absmean(w.data(), int64_t(w.size())), 0.75f);
  EXPECT_EQ(w, (std::vector<float>{0.75f, -0.75f, 0.0f, 0.75f, 0.0f, 0.0f}));
}

TEST(Ternarize, HalfToEvenAndClamp) {
  std::vector<float> w = {1.0f, 3.0f, -1.0f, -3.0f};  // α = 2: ±0.5 -> 0, ±1.5 -> ±2 -> ±1
  EXPECT_EQ(ternarize_absmean(w.data(), 4), 2.0f);
  EXPECT_EQ(w, (std::vector<float>{0.0f, 2.0f, 0.0f, -2.0f}));
}

TEST(Ternarize, EpsilonFloor) {
  std::vector<float> w = {1e-7f, -3e-6f, 2e-5f};
  EXPECT_EQ(ternarize_absmean(w.data(), 3), 1e-5f);
  EXPECT_EQ(w, (std::vector<float>{0.0f, 0.0f, 1e-5f}));
}

// ---- dot_ternary_ref ----

struct Case {
  GgmlType type;
  int64_t cols, rows;
};

// Ternaries and per-block scales are chosen by the test, so the expected value never goes through
// the decoder under test. TQ scales vary per block and are exact in f16.
float block_scale(GgmlType type, int64_t r, int64_t b) {
  if (type == GgmlType::TQ1_0 || type == GgmlType::TQ2_0) return 0.5f + 0.25f * float((r + b) % 5);
  return 0.0371f;
}

std::vector<int8_t> extreme_activations(int64_t k, uint64_t seed) {
  Rng rng(seed);
  std::vector<int8_t> q(static_cast<size_t>(k));
  for (auto& v : q) {
    const uint64_t u = rng.next() % 4;
    v = u == 0 ? int8_t(127) : u == 1 ? int8_t(-128) : rng.i8();
  }
  return q;
}

float expected_dot(GgmlType type, const int8_t* t, const int8_t* q, int64_t cols, int64_t r,
                   ActivationQuant act) {
  if (type == GgmlType::TQ1_0 || type == GgmlType::TQ2_0) {
    float acc = 0;
    for (int64_t b = 0; b < cols / 256; ++b) {
      int64_t s = 0;
      for (int64_t i = 256 * b; i < 256 * (b + 1); ++i) s += int64_t(t[i]) * q[i];
      acc += block_scale(type, r, b) * float(s);
    }
    return acc / act.scale;
  }
  int64_t s = 0;
  for (int64_t i = 0; i < cols; ++i) s += int64_t(t[i]) * q[i];
  return (float(s + act.sum) - float(act.sum)) / act.scale * block_scale(type, r, 0);
}

TEST(DotTernaryRef, MatchesIndependentSumEveryType) {
  const Case cases[] = {
      {GgmlType::I2_S, 256, 3},    {GgmlType::I2_S, 192, 2},    {GgmlType::I2_S, 8640, 2},
      {GgmlType::TQ1_0, 768, 3},   {GgmlType::TQ2_0, 512, 5},   {GgmlType::TL1, 1536, 1536},
      {GgmlType::TL2, 4096, 1536}, {GgmlType::TL2, 1536, 1536},
  };
  uint64_t seed = 500;
  for (const Case& c : cases) {
    const auto t = random_trits(c.cols * c.rows, ++seed);
    std::vector<float> x(t.size());
    for (int64_t r = 0; r < c.rows; ++r)
      for (int64_t i = 0; i < c.cols; ++i)
        x[size_t(r * c.cols + i)] =
            float(t[size_t(r * c.cols + i)]) * block_scale(c.type, r, i / 256);
    const auto bytes = quantize_tensor(c.type, x.data(), c.cols, c.rows);
    const TensorView w = make_view(c.type, c.cols, c.rows, bytes);
    const auto q = extreme_activations(c.cols, ++seed);
    ActivationQuant act;
    act.scale = 3.7f;
    for (int8_t v : q) act.sum += v;
    for (int64_t r : {int64_t(0), c.rows / 2, c.rows - 1}) {
      const float want = expected_dot(c.type, t.data() + r * c.cols, q.data(), c.cols, r, act);
      EXPECT_EQ(dot_ternary_ref(w, r, q.data(), act), want)
          << ggml_type_name(c.type) << " " << c.rows << "x" << c.cols << " row " << r;
    }
  }
}

TEST(DotTernaryRef, AgreesAcrossPerTensorFormats) {
  // The same ternary matrix in I2_S, TL1 and TL2 gives bit-identical dot products (§8).
  const int64_t M = 1536, K = 1536;
  const auto t = random_trits(M * K, 77);
  const auto x = scaled(t, 0.02f);
  const auto act_x = random_floats(K, 78, -2, 2);
  std::vector<int8_t> q(static_cast<size_t>(K));
  const ActivationQuant act = quantize_activations(act_x.data(), K, q.data());
  const auto i2 = quantize_tensor(GgmlType::I2_S, x.data(), K, M);
  const auto tl1 = quantize_tensor(GgmlType::TL1, x.data(), K, M);
  const auto tl2 = quantize_tensor(GgmlType::TL2, x.data(), K, M);
  for (int64_t r : {0, 511, 1535}) {
    const float a = dot_ternary_ref(make_view(GgmlType::I2_S, K, M, i2), r, q.data(), act);
    EXPECT_EQ(dot_ternary_ref(make_view(GgmlType::TL1, K, M, tl1), r, q.data(), act), a);
    EXPECT_EQ(dot_ternary_ref(make_view(GgmlType::TL2, K, M, tl2), r, q.data(), act), a);
    double exact = 0;
    for (int64_t i = 0; i < K; ++i) exact += double(t[size_t(r * K + i)]) * q[size_t(i)];
    EXPECT_NEAR(a, 0.02 / act.scale * exact, 1e-5 * (1 + std::fabs(a)));
  }
}

}  // namespace
}  // namespace bitnet
