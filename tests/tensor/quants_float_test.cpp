// F32 / F16 / BF16 / Q8_0 / Q6_K encode -> decode, layouts and error handling.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "errors.h"
#include "formats/half.h"
#include "quant_test_util.h"

namespace bitnet {
namespace {

using test::dequantize_all;
using test::make_view;
using test::random_floats;

TEST(QuantsFloat, F32RoundTripIsExact) {
  const auto x = random_floats(3 * 40, 1, -5, 5);
  const auto bytes = quantize_tensor(GgmlType::F32, x.data(), 40, 3);
  ASSERT_EQ(bytes.size(), x.size() * 4);
  EXPECT_EQ(dequantize_all(make_view(GgmlType::F32, 40, 3, bytes)), x);
}

TEST(Half, EveryHalfConvertsToItsValueAndBack) {
  // Independent of half.h's code paths (bit manipulation on x86, FCVT on aarch64):
  // (−1)^s · 2^(e−15) · (1 + m/1024), subnormals 2^−14 · m/1024, e = 31 infinities and NaNs.
  for (uint32_t h = 0; h < 65536; ++h) {
    const int sign = (h >> 15) ? -1 : 1, e = int(h >> 10) & 31, m = int(h & 1023);
    const float got = fp16_to_fp32(uint16_t(h));
    if (e == 31 && m != 0) {
      EXPECT_TRUE(std::isnan(got)) << h;
      continue;
    }
    const double want = e == 31  ? sign * INFINITY
                        : e == 0 ? sign * std::ldexp(double(m), -24)
                                 : sign * std::ldexp(1024.0 + m, e - 25);
    ASSERT_EQ(double(got), want) << "half 0x" << std::hex << h;
    ASSERT_EQ(std::signbit(got), sign < 0) << "half 0x" << std::hex << h;
    ASSERT_EQ(fp32_to_fp16(got), uint16_t(h)) << "half 0x" << std::hex << h;
  }
}

TEST(QuantsFloat, F16AndBF16RoundTripMatchConversion) {
  const auto x = random_floats(4 * 33, 2, -70000, 70000);
  for (GgmlType type : {GgmlType::F16, GgmlType::BF16}) {
    const auto bytes = quantize_tensor(type, x.data(), 33, 4);
    const auto y = dequantize_all(make_view(type, 33, 4, bytes));
    for (size_t i = 0; i < x.size(); ++i) {
      const float want = type == GgmlType::F16 ? fp16_to_fp32(fp32_to_fp16(x[i]))
                                               : bf16_to_fp32(fp32_to_bf16(x[i]));
      ASSERT_EQ(y[i], want) << ggml_type_name(type) << " element " << i;
    }
  }
}

TEST(QuantsFloat, Q8_0LayoutAndTolerance) {
  const int64_t cols = 96, rows = 3;
  auto x = random_floats(cols * rows, 3, -2, 2);
  x[5] = 2.5f;  // block 0 amax
  const auto bytes = quantize_tensor(GgmlType::Q8_0, x.data(), cols, rows);
  ASSERT_EQ(bytes.size(), size_t(rows * cols / 32 * 34));
  // Block 0: d = f16(2.5/127), the max element is q = 127 at byte 2 + 5.
  EXPECT_EQ(load_u16(bytes.data()), fp32_to_fp16(2.5f / 127));
  EXPECT_EQ(int8_t(bytes[2 + 5]), 127);
  const auto y = dequantize_all(make_view(GgmlType::Q8_0, cols, rows, bytes));
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * b + j]));
    // half a step of d plus the f16 rounding of d scaled by |q| <= 127
    const float tol = amax / 127 * 0.5f + amax * 1e-3f;
    for (size_t j = 0; j < 32; ++j) ASSERT_NEAR(y[32 * b + j], x[32 * b + j], tol) << b << "," << j;
  }
}

TEST(QuantsFloat, Q6_KRelativeErrorIsSmall) {
  const int64_t cols = 512, rows = 4;
  auto x = random_floats(cols * rows, 4, -1, 1);
  // Give sub-blocks very different ranges so the per-16 scales matter.
  for (size_t i = 0; i < x.size(); ++i)
    x[i] *= float(1 + (i / 16) % 7) * (i % 256 < 128 ? 1 : 0.05f);
  const auto bytes = quantize_tensor(GgmlType::Q6_K, x.data(), cols, rows);
  ASSERT_EQ(bytes.size(), size_t(rows * cols / 256 * 210));
  const auto y = dequantize_all(make_view(GgmlType::Q6_K, cols, rows, bytes));
  double err2 = 0, ref2 = 0;
  for (size_t b = 0; b < x.size() / 16; ++b) {
    float amax = 0, block_amax = 0;
    for (size_t i = 0; i < 16; ++i) amax = std::max(amax, std::fabs(x[16 * b + i]));
    for (size_t i = 0; i < 256; ++i)
      block_amax = std::max(block_amax, std::fabs(x[b / 16 * 256 + i]));
    // half a step: step = d·sc_j <= amax_j/31 + d, d ≈ block_amax/(31·127) (f16 slop included)
    const float tol = 0.5f * (amax / 31 + block_amax / (31 * 127) * 1.01f) * 1.01f;
    for (size_t i = 0; i < 16; ++i) {
      const size_t e = 16 * b + i;
      ASSERT_LE(std::fabs(y[e] - x[e]), tol) << "element " << e;
      err2 += double(y[e] - x[e]) * (y[e] - x[e]);
      ref2 += double(x[e]) * x[e];
    }
  }
  EXPECT_LT(std::sqrt(err2 / ref2), 0.02);
}

TEST(QuantsFloat, Q6_KDecodesHandBuiltBlock) {
  // d = 0.5, sc[j] = j - 8, element e has 6-bit value (e * 7) % 64.
  std::vector<uint8_t> blk(210, 0);
  const uint16_t d = fp32_to_fp16(0.5f);
  std::memcpy(&blk[208], &d, 2);
  for (int j = 0; j < 16; ++j) blk[192 + j] = uint8_t(int8_t(j - 8));
  for (int e = 0; e < 256; ++e) {
    const int u = (e * 7) % 64, h = e / 128, k = (e % 128) / 32, l = e % 32;
    blk[64 * h + 32 * (k % 2) + l] |= uint8_t((u & 15) << (k < 2 ? 0 : 4));
    blk[128 + 32 * h + l] |= uint8_t((u >> 4) << (2 * k));
  }
  const auto y = dequantize_all(make_view(GgmlType::Q6_K, 256, 1, blk));
  for (int e = 0; e < 256; ++e)
    ASSERT_EQ(y[size_t(e)], 0.5f * float(e / 16 - 8) * float((e * 7) % 64 - 32)) << e;
}

TEST(QuantsFloat, DotFloatRefMatchesDoubleSum) {
  const int64_t cols = 256, rows = 3;
  const auto x = random_floats(cols * rows, 5);
  const auto act = random_floats(cols, 6, -3, 3);
  for (GgmlType type :
       {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q6_K}) {
    const auto bytes = quantize_tensor(type, x.data(), cols, rows);
    const TensorView w = make_view(type, cols, rows, bytes);
    const auto wf = dequantize_all(w);
    for (int64_t r = 0; r < rows; ++r) {
      double want = 0;
      for (int64_t i = 0; i < cols; ++i) want += double(wf[size_t(r * cols + i)]) * act[size_t(i)];
      EXPECT_EQ(dot_float_ref(w, r, act.data()), float(want)) << ggml_type_name(type);
    }
  }
}

TEST(QuantsFloat, DequantizeRowsSubrange) {
  const auto x = random_floats(5 * 64, 7);
  const auto bytes = quantize_tensor(GgmlType::Q8_0, x.data(), 64, 5);
  const TensorView w = make_view(GgmlType::Q8_0, 64, 5, bytes);
  const auto all = dequantize_all(w);
  std::vector<float> part(2 * 64);
  dequantize_rows(w, 2, 2, part.data());
  EXPECT_TRUE(std::equal(part.begin(), part.end(), all.begin() + 2 * 64));
}

TEST(QuantsFloat, RejectsBadInput) {
  const auto x = random_floats(64, 8);
  auto bytes = quantize_tensor(GgmlType::Q8_0, x.data(), 64, 1);
  TensorView w = make_view(GgmlType::Q8_0, 64, 1, bytes);
  std::vector<float> out(64);
  EXPECT_THROW(dequantize_rows(w, 1, 1, out.data()), Error);  // row out of range
  w.nbytes -= 1;
  EXPECT_THROW(dequantize_rows(w, 0, 1, out.data()), FormatError);  // truncated data
  w = make_view(GgmlType::Q4_0, 64, 1, bytes);
  EXPECT_THROW(dequantize_rows(w, 0, 1, out.data()), FormatError);        // not computable
  EXPECT_THROW(quantize_tensor(GgmlType::Q6_K, x.data(), 64, 1), Error);  // 64 % 256 != 0
  std::vector<uint8_t> small(10);
  EXPECT_THROW(quantize_tensor(GgmlType::Q8_0, x.data(), 64, 1, small), Error);
}

}  // namespace
}  // namespace bitnet
