// ops::exp_vectorizable (the SiLU gate's e^x) against std::exp, and silu_mul against the scalar
// silu, on dense sweeps and the extremes.
#include <gtest/gtest.h>

#include <bit>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "ops/ops.h"

namespace bitnet {
namespace {

// Distance in units in the last place between two positive finite floats.
int64_t ulps(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  return std::llabs(int64_t(ia) - int64_t(ib));
}

TEST(ExpVectorizable, WithinTwoUlpOfStdExpOverItsRange) {
  int64_t worst = 0;
  float worst_x = 0;
  for (int64_t i = 0; i <= 2'000'000; ++i) {
    const float x = -87.0f + 175.0f * float(i) / 2'000'000.0f;
    const int64_t d = ulps(ops::exp_vectorizable(x), std::exp(x));
    if (d > worst) worst = d, worst_x = x;
  }
  EXPECT_LE(worst, 2) << "at x = " << worst_x;
  EXPECT_EQ(ops::exp_vectorizable(0.0f), 1.0f);
}

TEST(ExpVectorizable, ExtremesStayFinite) {
  const float lo = ops::exp_vectorizable(-87.0f), hi = ops::exp_vectorizable(88.0f);
  EXPECT_GT(lo, 0.0f);
  EXPECT_TRUE(std::isfinite(hi));
  EXPECT_EQ(ops::exp_vectorizable(-1e30f), lo);
  EXPECT_EQ(ops::exp_vectorizable(std::numeric_limits<float>::infinity()), hi);
  EXPECT_EQ(ops::exp_vectorizable(std::numeric_limits<float>::quiet_NaN()), lo);
}

TEST(ReluSquaredMul, EqualsTheScalarExpressionBitForBit) {
  std::vector<float> g, u, expect;
  for (int i = 0; i < 10'001; ++i) {
    const float z = -5.0f + 10.0f * float(i) / 10'000.0f, up = -1.5f + float(i % 5);
    g.push_back(z);
    u.push_back(up);
    expect.push_back(ops::relu_squared(z) * up);
  }
  for (float z : {std::numeric_limits<float>::quiet_NaN(), -0.0f, std::numeric_limits<float>::infinity()}) {
    g.push_back(z);
    u.push_back(2.0f);
    expect.push_back(ops::relu_squared(z) * 2.0f);
  }
  ops::relu_squared_mul(g.data(), u.data(), int64_t(g.size()));
  for (size_t i = 0; i < expect.size(); ++i) ASSERT_EQ(std::bit_cast<uint32_t>(g[i]), std::bit_cast<uint32_t>(expect[i])) << i;
}

TEST(SiluMul, MatchesScalarSiluTimesUp) {
  std::vector<float> g, u, expect;
  for (int i = 0; i < 20'001; ++i) {
    const float z = -40.0f + 80.0f * float(i) / 20'000.0f, up = 0.5f + float(i % 7);
    g.push_back(z);
    u.push_back(up);
    expect.push_back(ops::silu(z) * up);
  }
  g.push_back(std::numeric_limits<float>::quiet_NaN());
  u.push_back(1.0f);
  ops::silu_mul(g.data(), u.data(), int64_t(g.size()));
  for (size_t i = 0; i < expect.size(); ++i)
    ASSERT_NEAR(g[i], expect[i], 1e-6f * std::fabs(expect[i]) + 1e-30f) << "z = " << -40.0f + 80.0f * float(i) / 20'000.0f;
  EXPECT_TRUE(std::isnan(g.back()));
}

// silu_mul's explicit AVX-512 body (where the CPU has it) against the plain loop it replaces: every
// length 0–40 (the vector body and the loop's tail), random gates over the whole range the clamps
// touch, and the special values.
TEST(SiluMul, EqualsTheLoopBitForBit) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> wide(-120.0f, 120.0f);
  for (int n = 0; n <= 40; ++n)
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> g(static_cast<size_t>(n)), u(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) {
        g[size_t(i)] = trial % 2 ? wide(rng) : 4.0f * normal(rng);
        u[size_t(i)] = normal(rng);
      }
      const float special[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(), -0.0f, 0.0f, 87.0f, -87.0f, 88.0f, -88.0f,
                               1e-40f, -1e-40f, 3.4e38f};
      if (n > 0) g[size_t(trial) % size_t(n)] = special[size_t(trial) % std::size(special)];
      std::vector<float> a = g, b = g;
      ops::silu_mul(a.data(), u.data(), n);
      ops::silu_mul_loop(b.data(), u.data(), n);
      for (int i = 0; i < n; ++i)
        ASSERT_EQ(std::bit_cast<uint32_t>(a[size_t(i)]), std::bit_cast<uint32_t>(b[size_t(i)]))
            << "n " << n << " i " << i << " g " << g[size_t(i)];
    }
}

}  // namespace
}  // namespace bitnet
