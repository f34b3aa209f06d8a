// TL1 / TL2: hand-computed index positions from the spec's loops, round trips on every known
// shape, unknown-shape errors.
#include <gtest/gtest.h>

#include <cstring>

#include "errors.h"
#include "formats/half.h"
#include "quant_test_util.h"
#include "tensor/tl_tiles.h"

namespace bitnet {
namespace {

using test::make_view;
using test::random_trits;
using test::scaled;

// A mostly-zero tensor with a few set elements (never all zero).
std::vector<int8_t> sparse(int64_t M, int64_t K,
                           std::initializer_list<std::array<int64_t, 3>> set) {
  std::vector<int8_t> t(size_t(M * K), 0);
  for (auto [r, c, v] : set) t[size_t(r * K + c)] = int8_t(v);
  return t;
}

std::vector<uint8_t> encode(GgmlType type, const std::vector<int8_t>& t, int64_t M, int64_t K,
                            float alpha) {
  std::vector<uint8_t> out(size_t(*ggml_tensor_nbytes(type, {K, M, 1, 1})));
  tl_encode(type, t.data(), M, K, alpha, out);
  return out;
}

TEST(TlTiles, TableMatchesSpec) {
  EXPECT_EQ(tl_known_shapes().size(), 10u);
  const auto tl1 = tl_tiles(GgmlType::TL1, 3200, 3200);
  ASSERT_TRUE(tl1);
  EXPECT_EQ(tl1->BM, 320);
  EXPECT_EQ(tl1->BK, 128);
  EXPECT_EQ(tl1->bm, 64);
  const auto tl2 = tl_tiles(GgmlType::TL2, 4096, 1536);
  ASSERT_TRUE(tl2);  // the bm = 64 --use-pretuned entry is not used; default is 256/96/32
  EXPECT_EQ(tl2->bm, 32);
  EXPECT_FALSE(tl_tiles(GgmlType::TL2, 2560, 2560));
  EXPECT_FALSE(tl_tiles(GgmlType::I2_S, 1536, 4096));
}

TEST(TL1, HandCheckedPositions) {
  // 1536x4096, BM/BK/bm = 256/128/32, by = 8.
  // (r=37, c=10): A=0 C=1 E=0 G=5; pair 5: B=0 D=1 F=0, second pair of its byte -> low nibble.
  // byte = ((((((0·32+0)·8+1)·16+1)·2+0)·2+0)·16+5 = 1093; idx(+1, 0) = 7 -> 0x47.
  // (r=300, c=4095): A=1 C=1 E=0 G=12; pair 2047: B=31 D=15 F=1 low nibble; idx(0, -1) = 3.
  // byte = (((((1·32+31)·8+1)·16+15)·2+0)·2+1)·16+12 = 518,108 -> 0x43.
  const int64_t M = 1536, K = 4096;
  const auto t = sparse(M, K, {{37, 10, 1}, {300, 4095, -1}});
  const auto bytes = encode(GgmlType::TL1, t, M, K, 0.5f);
  ASSERT_EQ(bytes.size(), size_t(M * K / 4 + 32));
  EXPECT_EQ(bytes[1093], 0x47);
  EXPECT_EQ(bytes[518108], 0x43);
  size_t other = 0;
  for (size_t i = 0; i < size_t(M * K / 4); ++i)
    if (i != 1093 && i != 518108 && bytes[i] != 0x44) ++other;
  EXPECT_EQ(other, 0u);
  EXPECT_EQ(load_f32(&bytes[size_t(M * K / 4)]), 0.5f);
  const TensorView w = make_view(GgmlType::TL1, K, M, bytes);
  EXPECT_EQ(unpack_ternary_row(w, 37).t[10], 1);
  EXPECT_EQ(unpack_ternary_row(w, 300).t[4095], -1);
}

TEST(TL2, HandCheckedPositions) {
  // 1536x4096, BM/BK/bm = 256/96/32: K3 = 4032, K2 = 64.
  // (9, 7) = −1: triple T=2 (b digit) -> v = −3: mag 3, sign 1. Triple 2: B=0, D=1, high nibble;
  //   row 9 -> P = perm[1]·8 + 1 = 17; mag byte = (0·16+1)·32 + 17 = 49 -> 0x30.
  //   sign: Eg=0, j=2, h=0, c=9: word 9 at 1536·4032/6 = 1,032,192 + 18, bit 15−4 = 11
  //   -> high byte (offset +19) = 0x08.
  // (40, 4037) = +1: two part pair q=2 (b): B=0, D=1, high nibble; r=40: C=1, rr=8 -> P=16;
  //   byte = 1,032,192 + 258,048 + ((0·8+1)·8+1)·32 + 16 = 1,290,544; idx(0,+1)=5 -> 0x54.
  // Scale at align_up(P, 32), P = 3840·1536/3·5/8 + 256·1536/2·4/8 = 1,327,104.
  const int64_t M = 1536, K = 4096;
  const auto t = sparse(M, K, {{9, 7, -1}, {40, 4037, 1}});
  const auto bytes = encode(GgmlType::TL2, t, M, K, 0.25f);
  ASSERT_EQ(bytes.size(), 1327104u + 32u);
  EXPECT_EQ(tl_scale_offset(GgmlType::TL2, M, K), 1327104);
  EXPECT_EQ(bytes[49], 0x30);
  EXPECT_EQ(bytes[1032192 + 18], 0x00);
  EXPECT_EQ(bytes[1032192 + 19], 0x08);
  EXPECT_EQ(bytes[1290544], 0x54);
  EXPECT_EQ(load_f32(&bytes[1327104]), 0.25f);
  size_t unexpected = 0;
  for (size_t i = 0; i < 1327104; ++i) {
    const bool two_part = i >= 1290240 && i < 1290240 + size_t(M * 64 / 4);
    const uint8_t want = i == 49        ? 0x30
                         : i == 1032211 ? 0x08
                         : i == 1290544 ? 0x54
                         : two_part     ? 0x44
                                        : 0x00;
    if (bytes[i] != want) ++unexpected;
  }
  EXPECT_EQ(unexpected, 0u);
  const TensorView w = make_view(GgmlType::TL2, K, M, bytes);
  EXPECT_EQ(unpack_ternary_row(w, 9).t[7], -1);
  EXPECT_EQ(unpack_ternary_row(w, 40).t[4037], 1);
  EXPECT_EQ(unpack_ternary_row(w, 40).block_scales, std::vector<float>{0.25f});
}

TEST(TL2, SignBitOfSecondHalfRow) {
  // 1536x1536 (128/192/32, K2 = 0). (r=20, c=3·10+2) = −1: triple 10, j = 2, Eg = 1;
  // rr = 20 -> h = 1, c = 4: word (0·8+1)·16 + 4 = 20, bit 14 − 4 = 10 -> high byte 0x04.
  const int64_t M = 1536, K = 1536;
  const auto t = sparse(M, K, {{20, 32, -1}});
  const auto bytes = encode(GgmlType::TL2, t, M, K, 1.0f);
  const size_t sign_base = size_t(M * K / 6);
  EXPECT_EQ(bytes[sign_base + 2 * 20 + 1], 0x04);
  EXPECT_EQ(unpack_ternary_row(make_view(GgmlType::TL2, K, M, bytes), 20).t[32], -1);
}

// Encode random ternaries with tl_encode (the spec's loops) and decode every row with the
// locating decoder; also quantize_tensor's float path on the smallest shape.
void round_trip_all_shapes(GgmlType type) {
  uint64_t seed = 100;
  for (const TlKnownShape& s : tl_known_shapes()) {
    const auto t = random_trits(s.M * s.K, ++seed);
    const auto bytes = encode(type, t, s.M, s.K, 0.125f);
    const TensorView w = make_view(type, s.K, s.M, bytes);
    std::vector<int8_t> back(t.size());
    unpack_ternary_rows(w, 0, s.M, back.data());
    ASSERT_TRUE(back == t) << ggml_type_name(type) << " " << s.M << "x" << s.K;
  }
}

TEST(TL1, RoundTripEveryKnownShape) { round_trip_all_shapes(GgmlType::TL1); }
TEST(TL2, RoundTripEveryKnownShape) { round_trip_all_shapes(GgmlType::TL2); }

TEST(TL, QuantizeTensorFloatPathAndDequantize) {
  const int64_t M = 1536, K = 1536;
  const auto t = random_trits(M * K, 7);
  const auto x = scaled(t, 0.0625f);
  for (GgmlType type : {GgmlType::TL1, GgmlType::TL2}) {
    const auto bytes = quantize_tensor(type, x.data(), K, M);
    const TensorView w = make_view(type, K, M, bytes);
    std::vector<float> y(size_t(3 * K));
    dequantize_rows(w, 700, 3, y.data());
    EXPECT_TRUE(std::equal(y.begin(), y.end(), x.begin() + 700 * K)) << ggml_type_name(type);
  }
}

TEST(TL, UnknownShapeNamesTensorAndFix) {
  std::vector<int8_t> t = random_trits(256 * 512, 3);
  EXPECT_THROW(encode(GgmlType::TL2, t, 256, 512, 1.0f), Error);
  std::vector<uint8_t> bytes(size_t(*ggml_tensor_nbytes(GgmlType::TL2, {512, 256, 1, 1})), 0);
  const TensorView w = make_view(GgmlType::TL2, 512, 256, bytes, "blk.0.attn_q.weight");
  try {
    unpack_ternary_row(w, 0);
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_STREQ(e.what(),
                 "tensor 'blk.0.attn_q.weight' (TL2, 256x512): tile layout unknown for this "
                 "shape; convert the model to I2_S with: bitnet quantize IN.gguf OUT.gguf i2_s");
  }
}

TEST(TL, InvalidIndexIsCorrupt) {
  const int64_t M = 1536, K = 4096;
  auto bytes = encode(GgmlType::TL1, random_trits(M * K, 5), M, K, 1.0f);
  bytes[1093] = 0x4F;  // row 37, pair 5 gets idx 15
  const TensorView w = make_view(GgmlType::TL1, K, M, bytes);
  EXPECT_THROW(unpack_ternary_row(w, 37), FormatError);
  std::vector<float> y(static_cast<size_t>(K));
  dequantize_rows(w, 37, 1, y.data());
  EXPECT_EQ(y[10], 0.0f);
  EXPECT_EQ(y[11], 0.0f);
}

}  // namespace
}  // namespace bitnet
