// I2_S, TQ1_0, TQ2_0: spec worked examples, exact round trips, invalid codes.
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
using test::random_trits;
using test::scaled;

// ---- I2_S ----

TEST(I2S, WorkedExampleByte0x86) {
  // §2.2: t[0] = +1, t[32] = −1, t[64] = 0, t[96] = +1, others 0 -> byte 0 = 0x86, rest 0x55.
  std::vector<float> x(128, 0.0f);
  x[0] = 0.5f;
  x[32] = -0.5f;
  x[96] = 0.5f;
  const auto bytes = quantize_tensor(GgmlType::I2_S, x.data(), 128, 1);
  ASSERT_EQ(bytes.size(), 32u + 32u);
  EXPECT_EQ(bytes[0], 0x86);
  for (int j = 1; j < 32; ++j) EXPECT_EQ(bytes[size_t(j)], 0x55) << j;
  EXPECT_EQ(load_f32(&bytes[32]), 0.5f);
  for (int j = 36; j < 64; ++j) EXPECT_EQ(bytes[size_t(j)], 0) << "tail byte " << j;
  EXPECT_EQ(dequantize_all(make_view(GgmlType::I2_S, 128, 1, bytes)), x);
}

TEST(I2S, ByteMappingFromHandBuiltBytes) {
  // 0x55 = all four elements 0; byte j of block b holds elements 128b + j + {0, 32, 64, 96}.
  std::vector<uint8_t> bytes(256 / 4 + 32, 0x55);
  bytes[32 + 7] = 0b00'10'01'10;  // block 1, j = 7: elements 135 (-1), 167 (+1), 199 (0), 231 (+1)
  const float alpha = 1.25f;
  std::memcpy(&bytes[64], &alpha, 4);
  const auto y = dequantize_all(make_view(GgmlType::I2_S, 256, 1, bytes));
  for (int n = 0; n < 256; ++n) {
    const float want = n == 135 ? -alpha : (n == 167 || n == 231) ? alpha : 0.0f;
    ASSERT_EQ(y[size_t(n)], want) << n;
  }
}

TEST(I2S, RoundTripExact) {
  struct Shape {
    int64_t cols, rows;
  };
  // 8640-wide rows (3B ffn_down, K % 128 != 0, N % 128 == 0 with an even row count) and 192.
  for (Shape s : {Shape{256, 3}, Shape{8640, 2}, Shape{192, 2}, Shape{192, 6}, Shape{128, 1}}) {
    const auto t = random_trits(s.cols * s.rows, uint64_t(s.cols * 31 + s.rows));
    const auto x = scaled(t, 0.037f);
    const auto bytes = quantize_tensor(GgmlType::I2_S, x.data(), s.cols, s.rows);
    const TensorView w = make_view(GgmlType::I2_S, s.cols, s.rows, bytes);
    EXPECT_EQ(dequantize_all(w), x) << s.cols << "x" << s.rows;
    for (int64_t r = 0; r < s.rows; ++r) {
      const TernaryRow tr = unpack_ternary_row(w, r);
      ASSERT_EQ(tr.block, s.cols);
      ASSERT_EQ(tr.block_scales, std::vector<float>{0.037f});
      ASSERT_TRUE(std::equal(tr.t.begin(), tr.t.end(), t.begin() + r * s.cols)) << r;
    }
  }
}

TEST(I2S, FlatLayoutAcrossRowBoundary) {
  // 192-wide rows: row 1 starts at element 192 = block 1, element 64 -> byte 32 + 0, shift 2.
  std::vector<float> x(192 * 2, 0.0f);
  x[192] = -2.0f;
  x[5] = 2.0f;
  const auto bytes = quantize_tensor(GgmlType::I2_S, x.data(), 192, 2);
  EXPECT_EQ(bytes[32], 0b01'01'00'01);
  EXPECT_EQ(bytes[5], 0b10'01'01'01);
}

TEST(I2S, ZeroBandAndAlphaIsMaxAbs) {
  std::vector<float> x(128, 0.0f);
  x[3] = 5e-7f;  // |x| < 1e-6 -> code 1 (zero)
  x[4] = -3.0f;
  x[9] = 2.0f;  // not ternarized: stored as +α anyway (sign coding)
  const auto bytes = quantize_tensor(GgmlType::I2_S, x.data(), 128, 1);
  EXPECT_EQ(load_f32(&bytes[32]), 3.0f);
  const auto y = dequantize_all(make_view(GgmlType::I2_S, 128, 1, bytes));
  EXPECT_EQ(y[3], 0.0f);
  EXPECT_EQ(y[4], -3.0f);
  EXPECT_EQ(y[9], 3.0f);
}

TEST(I2S, Code3IsCorrupt) {
  std::vector<uint8_t> bytes(128 / 4 + 32, 0x55);
  bytes[10] = 0b01'11'01'01;  // element 32 + 10 = 42 has code 3
  const float alpha = 1.0f;
  std::memcpy(&bytes[32], &alpha, 4);
  const TensorView w = make_view(GgmlType::I2_S, 128, 1, bytes, "blk.3.ffn_up.weight");
  const auto y = dequantize_all(w);  // dequantizes as 0
  EXPECT_EQ(y[42], 0.0f);
  try {
    unpack_ternary_row(w, 0);
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("blk.3.ffn_up.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("invalid I2_S code 3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("column 42"), std::string::npos) << msg;
  }
}

TEST(I2S, PartialLastBlockRejected) {
  // 192 x 3 = 576 elements: the last block would overlap the scale; no defined layout.
  const auto x = scaled(random_trits(192 * 3, 9), 1.0f);
  EXPECT_THROW(quantize_tensor(GgmlType::I2_S, x.data(), 192, 3), Error);
  std::vector<uint8_t> bytes(576 / 4 + 32, 0x55);
  EXPECT_THROW(dequantize_all(make_view(GgmlType::I2_S, 192, 3, bytes)), FormatError);
}

// ---- TQ1_0 ----

TEST(TQ1_0, WorkedExampleByte207) {
  // Trits (+1, 0, −1, +1, 0) are elements 0, 32, 64, 96, 128 (qs[0], p = 0..4).
  std::vector<float> x(256, 0.0f);
  for (int e = 1; e < 256; e += 2) x[size_t(e)] = 0.75f;  // keep d = 0.75 for the block
  x[0] = 0.75f;
  x[32] = 0.0f;
  x[64] = -0.75f;
  x[96] = 0.75f;
  x[128] = 0.0f;
  const auto bytes = quantize_tensor(GgmlType::TQ1_0, x.data(), 256, 1);
  ASSERT_EQ(bytes.size(), 54u);
  EXPECT_EQ(bytes[0], 207);
  EXPECT_EQ(load_u16(&bytes[52]), fp32_to_fp16(0.75f));
  EXPECT_EQ(dequantize_all(make_view(GgmlType::TQ1_0, 256, 1, bytes)), x);
}

TEST(TQ1_0, ExhaustiveDecodeOfAll243Values) {
  // Row v has qs[0] = ceil(v·256/243): elements 0, 32, 64, 96, 128 must be the base-3 digits of
  // v (most significant first) minus 1. Other bytes 0 -> all trits u = 0 (t = −1), d = 1.
  const int64_t rows = 243;
  std::vector<uint8_t> bytes(size_t(rows) * 54, 0);
  for (int v = 0; v < rows; ++v) {
    bytes[size_t(v) * 54] = uint8_t((v * 256 + 242) / 243);
    const uint16_t one = fp32_to_fp16(1.0f);
    std::memcpy(&bytes[size_t(v) * 54 + 52], &one, 2);
  }
  const TensorView w = make_view(GgmlType::TQ1_0, 256, rows, bytes);
  for (int v = 0; v < rows; ++v) {
    const TernaryRow tr = unpack_ternary_row(w, v);
    int rest = v;
    for (int p = 4; p >= 0; --p) {
      ASSERT_EQ(tr.t[size_t(32 * p)], rest % 3 - 1) << "v=" << v << " p=" << p;
      rest /= 3;
    }
    ASSERT_EQ(tr.t[1], -1);
  }
}

TEST(TQ1_0, QhTritsAndPlacement) {
  // Elements 240 + 4p + j live in qh[j] (byte 48 + j), trit p; 160 + 16p + m in qs[32 + m].
  std::vector<int8_t> t(256, 0);
  t[240 + 4 * 0 + 2] = 1;    // qh[2], p = 0
  t[240 + 4 * 3 + 2] = -1;   // qh[2], p = 3
  t[160 + 16 * 4 + 15] = 1;  // qs[47], p = 4
  const auto bytes = quantize_tensor(GgmlType::TQ1_0, scaled(t, 2.0f).data(), 256, 1);
  // qh[2]: u = (2, 1, 1, 0) -> v = 54+9+3+0 = 66, times 3 = 198 -> ceil(198·256/243) = 209
  EXPECT_EQ(bytes[50], 209);
  // qs[47]: u = (1, 1, 1, 1, 2) -> v = 81+27+9+3+2 = 122 -> ceil(122·256/243) = 129
  EXPECT_EQ(bytes[47], 129);
  const TernaryRow tr = unpack_ternary_row(make_view(GgmlType::TQ1_0, 256, 1, bytes), 0);
  EXPECT_EQ(tr.t, t);
  EXPECT_EQ(tr.block, 256);
  EXPECT_EQ(tr.block_scales, std::vector<float>{2.0f});
}

// ---- TQ2_0 ----

TEST(TQ2_0, PlacementLowBitsFirst) {
  // Element e = 128h + 32p + m is in byte 32h + m at bits 2p.
  std::vector<int8_t> t(256, 0);
  t[128 + 32 * 3 + 5] = 1;   // byte 37, bits 6-7 -> code 2
  t[128 + 32 * 0 + 5] = -1;  // byte 37, bits 0-1 -> code 0
  const auto bytes = quantize_tensor(GgmlType::TQ2_0, scaled(t, 0.5f).data(), 256, 1);
  ASSERT_EQ(bytes.size(), 66u);
  EXPECT_EQ(bytes[37], 0b10'01'01'00);
  EXPECT_EQ(bytes[0], 0x55);
  EXPECT_EQ(load_u16(&bytes[64]), fp32_to_fp16(0.5f));
}

TEST(TQ2_0, Code3IsCorrupt) {
  std::vector<uint8_t> bytes(66, 0x55);
  bytes[3] = 0x57;  // element 3 has code 3
  const TensorView w = make_view(GgmlType::TQ2_0, 256, 1, bytes);
  EXPECT_EQ(dequantize_all(w)[3], 0.0f);
  EXPECT_THROW(unpack_ternary_row(w, 0), FormatError);
}

// ---- both TQ types ----

TEST(TQ, RoundTripExactWithPerBlockScales) {
  const int64_t cols = 768, rows = 3;
  const auto t = random_trits(cols * rows, 11);
  // Per-block scales exactly representable in f16, so the round trip is exact.
  std::vector<float> x(t.size());
  for (size_t i = 0; i < t.size(); ++i) x[i] = float(t[i]) * (0.25f + 0.125f * float(i / 256));
  for (GgmlType type : {GgmlType::TQ1_0, GgmlType::TQ2_0}) {
    const auto bytes = quantize_tensor(type, x.data(), cols, rows);
    const TensorView w = make_view(type, cols, rows, bytes);
    EXPECT_EQ(dequantize_all(w), x) << ggml_type_name(type);
    const TernaryRow tr = unpack_ternary_row(w, 1);
    EXPECT_EQ(tr.block_scales, (std::vector<float>{0.625f, 0.75f, 0.875f}));
    EXPECT_TRUE(std::equal(tr.t.begin(), tr.t.end(), t.begin() + cols));
  }
}

// The load-time TQ1_0 -> TQ2_0 repack keeps every trit and scale: equal to encoding TQ2_0 directly,
// and for arbitrary bytes (values an encoder never writes) equal to the TQ1_0 reference decoding.
TEST(TQ, Tq1ToTq2KeepsTritsAndScales) {
  const int64_t cols = 768, rows = 3;
  const auto t = random_trits(cols * rows, 12);
  std::vector<float> x(t.size());
  for (size_t i = 0; i < t.size(); ++i) x[i] = float(t[i]) * (0.25f + 0.125f * float(i / 256));
  const auto tq1 = quantize_tensor(GgmlType::TQ1_0, x.data(), cols, rows);
  EXPECT_EQ(tq1_to_tq2(make_view(GgmlType::TQ1_0, cols, rows, tq1)),
            quantize_tensor(GgmlType::TQ2_0, x.data(), cols, rows));

  std::vector<uint8_t> noise(size_t(rows * 3 * 54));
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = uint8_t(i * 37 + 11);
  for (int64_t b = 0; b < rows * 3; ++b) std::memcpy(&noise[size_t(b * 54 + 52)], "\x00\x3c", 2);  // d = 1
  const TensorView w1 = make_view(GgmlType::TQ1_0, cols, rows, noise);
  const auto tq2 = tq1_to_tq2(w1);
  EXPECT_EQ(dequantize_all(make_view(GgmlType::TQ2_0, cols, rows, tq2)), dequantize_all(w1));
  EXPECT_THROW(tq1_to_tq2(make_view(GgmlType::TQ2_0, cols, rows, tq2)), Error);
}

// The load-time TQ2_0 -> I2_S repack of single-scale tensors: the same bytes as encoding I2_S
// directly, the same dequantized values; all-zero blocks may carry any d; mixed scales stay TQ2_0.
TEST(TQ, Tq2WithOneScaleBecomesI2s) {
  const int64_t cols = 768, rows = 4;
  auto t = random_trits(cols * rows, 13);
  std::fill(t.begin() + 256, t.begin() + 512, int8_t(0));  // row 0, block 1: all zero
  std::vector<float> x(t.size());
  for (size_t i = 0; i < t.size(); ++i) x[i] = float(t[i]) * 0.375f;  // f16-exact α
  auto tq2 = quantize_tensor(GgmlType::TQ2_0, x.data(), cols, rows);
  EXPECT_EQ(load_u16(&tq2[66 + 64]), 0u);  // the encoder writes d = 0 for the zero block
  const TensorView w = make_view(GgmlType::TQ2_0, cols, rows, tq2);
  const auto i2s = tq2_to_i2s(w);
  ASSERT_TRUE(i2s.has_value());
  EXPECT_EQ(*i2s, quantize_tensor(GgmlType::I2_S, x.data(), cols, rows));
  EXPECT_EQ(dequantize_all(make_view(GgmlType::I2_S, cols, rows, *i2s)), dequantize_all(w));

  const uint16_t other = fp32_to_fp16(2.0f);
  std::memcpy(&tq2[66 + 64], &other, 2);  // the zero block's d does not matter
  EXPECT_EQ(tq2_to_i2s(make_view(GgmlType::TQ2_0, cols, rows, tq2)), i2s);
  std::memcpy(&tq2[2 * 66 + 64], &other, 2);  // a non-zero block with another d
  EXPECT_FALSE(tq2_to_i2s(make_view(GgmlType::TQ2_0, cols, rows, tq2)).has_value());
  EXPECT_THROW(tq2_to_i2s(make_view(GgmlType::I2_S, cols, rows, *i2s)), Error);
}

TEST(TQ, ScaleIsF16OfBlockAmaxAndRoundsHalfAway) {
  std::vector<float> x(256, 0.0f);
  x[0] = 0.1f;     // not f16-exact
  x[1] = 0.05f;    // x/d = 0.5 exactly -> rounds away from zero to 1
  x[2] = -0.05f;   // -> -1
  x[3] = 0.0499f;  // -> 0
  for (GgmlType type : {GgmlType::TQ1_0, GgmlType::TQ2_0}) {
    const auto bytes = quantize_tensor(type, x.data(), 256, 1);
    const TernaryRow tr = unpack_ternary_row(make_view(type, 256, 1, bytes), 0);
    EXPECT_EQ(tr.block_scales[0], fp16_to_fp32(fp32_to_fp16(0.1f)));
    EXPECT_EQ(tr.t[0], 1);
    EXPECT_EQ(tr.t[1], 1);
    EXPECT_EQ(tr.t[2], -1);
    EXPECT_EQ(tr.t[3], 0);
  }
}

TEST(TQ, ZeroBlockHasZeroScale) {
  std::vector<float> x(512, 0.0f);
  x[300] = 1.0f;  // block 1 non-zero, block 0 all zero
  const auto bytes = quantize_tensor(GgmlType::TQ2_0, x.data(), 512, 1);
  EXPECT_EQ(load_u16(&bytes[64]), 0);
  EXPECT_EQ(dequantize_all(make_view(GgmlType::TQ2_0, 512, 1, bytes)), x);
}

}  // namespace
}  // namespace bitnet

namespace bitnet {
namespace {

// i2s_pad_rows: every row of the flat layout reappears at the start of its padded row, the added
// columns are weight 0, α is kept, and an invalid code stays visible to check_ternary_codes.
TEST(I2sPadRows, RowsKeepTheirTritsAndTheAddedColumnsAreZero) {
  for (int64_t K : {192, 224, 400, 544, 8640}) {
    SCOPED_TRACE("K=" + std::to_string(K));
    const int64_t rows = K == 8640 ? 6 : 8, Kp = i2s_padded_cols(K);  // K·rows whole 128-blocks
    ASSERT_EQ(Kp % 128, 0);
    ASSERT_LT(Kp - K, 128);
    const std::vector<int8_t> t = test::random_trits(K * rows, uint64_t(K));
    std::vector<float> x(t.size());
    for (size_t i = 0; i < t.size(); ++i) x[i] = 0.25f * float(t[i]);
    const auto flat_bytes = quantize_tensor(GgmlType::I2_S, x.data(), K, rows);
    const TensorView flat = test::make_view(GgmlType::I2_S, K, rows, flat_bytes);
    std::vector<uint8_t> padded_bytes = i2s_pad_rows(flat);
    ASSERT_EQ(padded_bytes.size(), size_t(rows * Kp / 4 + 32));
    const TensorView padded = test::make_view(GgmlType::I2_S, Kp, rows, padded_bytes);
    std::vector<int8_t> got(size_t(rows * Kp));
    unpack_ternary_rows(padded, 0, rows, got.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < Kp; ++c)
        ASSERT_EQ(got[size_t(r * Kp + c)], c < K ? t[size_t(r * K + c)] : 0) << "row " << r << " col " << c;
    EXPECT_EQ(unpack_ternary_row(padded, 0).block_scales, unpack_ternary_row(flat, 0).block_scales);
    // Code 3 at (row 1, col K−1) of the flat tensor is reported at the same place once padded.
    const int64_t n = K + K - 1;
    std::vector<uint8_t> bad = flat_bytes;
    bad[size_t(32 * (n / 128) + n % 32)] |= uint8_t(3 << (6 - 2 * ((n % 128) / 32)));
    const std::vector<uint8_t> bad_padded = i2s_pad_rows(test::make_view(GgmlType::I2_S, K, rows, bad));
    try {
      check_ternary_codes(test::make_view(GgmlType::I2_S, Kp, rows, bad_padded));
      FAIL() << "code 3 not reported";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("row 1"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace bitnet
