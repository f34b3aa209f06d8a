// SIMD / generic kernels against the scalar references (tensor/quants.h), for every ISA level
// this CPU supports: ternary dots bit-identical, float dots within a stated f32 tolerance, and
// ops::matmul independent of the thread count.
#include <cstdlib>
#include <set>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "errors.h"
#include "formats/half.h"
#include "kernels/kernels.h"
#include "ops/ops.h"
#include "kernels/kernel_test_util.h"
#include "tensor/quant_test_util.h"

namespace bitnet {
namespace {

using kernels::Isa;
using test::make_view;
using test::Rng;
using test::Token;
using test::ternary_weights;
using test::tokens_for;

class KernelIsa : public test::IsaTest {};

kernels::TernaryRowsFn ternary_fn(const kernels::KernelSet& ks, GgmlType type) {
  return type == GgmlType::I2_S ? ks.i2s : type == GgmlType::TQ1_0 ? ks.tq1 : ks.tq2;
}

void check_ternary(const kernels::KernelSet& ks, GgmlType type, int64_t K, int64_t rows) {
  SCOPED_TRACE(std::string(ggml_type_name(type)) + " K=" + std::to_string(K) +
               " rows=" + std::to_string(rows));
  const auto x = ternary_weights(K, rows, uint64_t(K * 1000 + rows));
  const auto bytes = quantize_tensor(type, x.data(), K, rows);
  const TensorView w = make_view(type, K, rows, bytes);
  for (const Token& tk : tokens_for(K, uint64_t(K + rows))) {
    kernels::TernaryJob j;
    j.w = w.data;
    j.K = K;
    j.q = tk.q.data();
    j.act = tk.act;
    j.alpha = type == GgmlType::I2_S ? load_f32(w.data + w.elements() / 4) : 0.0f;
    j.block_qsum = tk.qsum.data();
    std::vector<float> y(size_t(rows), NAN);
    ternary_fn(ks, type)(j, 0, rows, y.data());
    for (int64_t r = 0; r < rows; ++r)
      EXPECT_EQ(y[size_t(r)], dot_ternary_ref(w, r, tk.q.data(), tk.act)) << "row " << r;
    // A sub-range writes exactly its rows.
    std::vector<float> z(size_t(rows), -7.0f);
    const int64_t a = std::min<int64_t>(1, rows), b = std::max<int64_t>(a, rows - 2);
    ternary_fn(ks, type)(j, a, b, z.data());
    for (int64_t r = 0; r < rows; ++r)
      EXPECT_EQ(z[size_t(r)], r >= a && r < b ? y[size_t(r)] : -7.0f) << "row " << r;
  }
}

TEST_P(KernelIsa, I2sBitIdenticalToReference) {
  for (int64_t K : {128, 256, 384, 1536, 2560, 6912})
    for (int64_t rows : {1, 7, 13}) check_ternary(ks(), GgmlType::I2_S, K, rows);
}

TEST_P(KernelIsa, Tq2BitIdenticalToReference) {
  for (int64_t K : {256, 512, 1536, 2560, 6912})
    for (int64_t rows : {1, 7, 13}) check_ternary(ks(), GgmlType::TQ2_0, K, rows);
}

TEST_P(KernelIsa, Tq1BitIdenticalToReference) {
  for (int64_t K : {256, 512, 1536, 2560, 6912})
    for (int64_t rows : {1, 7, 13}) check_ternary(ks(), GgmlType::TQ1_0, K, rows);
}

TEST_P(KernelIsa, Tq1EveryByteValueDecodes) {
  // Rows whose qs/qh bytes run through all 256 values (not only the 243 an encoder writes).
  const int64_t K = 256, rows = 6;
  std::vector<uint8_t> bytes(size_t(rows * 54));
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i * 7 + 3);
  for (int64_t r = 0; r < rows; ++r) std::memcpy(&bytes[size_t(r * 54 + 52)], "\x00\x3c", 2);
  const TensorView w = make_view(GgmlType::TQ1_0, K, rows, bytes);
  for (const Token& tk : tokens_for(K, 5)) {
    kernels::TernaryJob j{w.data, K, tk.q.data(), tk.act, 0.0f, tk.qsum.data()};
    std::vector<float> y(static_cast<size_t>(rows));
    ks().tq1(j, 0, rows, y.data());
    for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(y[size_t(r)], dot_ternary_ref(w, r, tk.q.data(), tk.act));
  }
}

// The kernels trust the codes; ops::matmul_kernels checks views that are not marked checked, and
// a view marked checked (as the model loader marks them) skips the check.
TEST_P(KernelIsa, InvalidCodeIsRejectedBeforeTheKernels) {
  for (GgmlType type : {GgmlType::I2_S, GgmlType::TQ2_0}) {
    const int64_t K = 512, rows = 9;
    const auto x = ternary_weights(K, rows, 3);
    auto bytes = quantize_tensor(type, x.data(), K, rows);
    TensorView w = make_view(type, K, rows, bytes);
    EXPECT_TRUE(ternary_codes_valid(w));
    const int64_t row_bytes = type == GgmlType::I2_S ? K / 4 : K / 256 * 66;
    bytes[size_t(6 * row_bytes + 37)] |= 0x0C;  // one code 3 in row 6
    EXPECT_FALSE(ternary_codes_valid(w));
    std::vector<float> y(static_cast<size_t>(rows));
    ThreadPool pool(2);
    const auto xa = test::random_floats(K, 2);
    EXPECT_THROW(ops::matmul_kernels(GetParam(), w, xa.data(), 1, y.data(), pool), FormatError);
    w.codes_checked = true;
    EXPECT_TRUE(ops::matmul_kernels(GetParam(), w, xa.data(), 1, y.data(), pool));
  }
}

// ---- float-storage weights ----
// Tolerance: |fast − ref| ≤ 1e-5 · Σ|w·x| (+1e-30). The reference sums in double and rounds once;
// the kernels sum in f32 over 8–16 lanes (≤ K/8 terms per lane), whose rounding error for these
// random inputs is ~√(K/8)·2^-24 ≈ 2e-6 of Σ|w·x| at K = 6912, so 1e-5 leaves a 5x margin.
void check_float(const kernels::KernelSet& ks, GgmlType type, int64_t K, int64_t rows) {
  SCOPED_TRACE(std::string(ggml_type_name(type)) + " K=" + std::to_string(K) +
               " rows=" + std::to_string(rows));
  const auto wf = test::random_floats(K * rows, uint64_t(K * 7 + rows), -2, 2);
  const auto bytes = quantize_tensor(type, wf.data(), K, rows);
  const TensorView w = make_view(type, K, rows, bytes);
  const auto deq = test::dequantize_all(w);
  const auto x = test::random_floats(K, uint64_t(K + 11), -3, 3);
  kernels::FloatRowsFn fn = type == GgmlType::F32 ? ks.f32 : type == GgmlType::F16 ? ks.f16 : ks.bf16;
  std::vector<float> y(size_t(rows), NAN);
  fn(w.data, K, x.data(), 0, rows, y.data());
  for (int64_t r = 0; r < rows; ++r) {
    double mag = 0;
    for (int64_t c = 0; c < K; ++c) mag += std::fabs(double(deq[size_t(r * K + c)]) * x[size_t(c)]);
    const float ref = dot_float_ref(w, r, x.data());
    EXPECT_NEAR(y[size_t(r)], ref, 1e-5 * mag + 1e-30) << "row " << r;
  }
}

TEST_P(KernelIsa, FloatRowsWithinTolerance) {
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16})
    for (int64_t K : {1, 7, 8, 15, 16, 17, 31, 128, 768, 2560, 6912})
      for (int64_t rows : {1, 6, 13}) check_float(ks(), type, K, rows);
}

// ---- Q8_0 / Q6_K × block-quantized int8 activations ----

kernels::QuantRowsFn quant_fn(const kernels::KernelSet& ks, GgmlType type) {
  return type == GgmlType::Q8_0 ? ks.q8_0 : ks.q6_k;
}

// Against dot_q8_ref (double) within 1e-5·Σ_b|d_b·d_x,b·isum_b|: the kernels sum the blocks in
// f32 lanes, as the float kernels do (same margin argument as check_float).
void check_quant(const kernels::KernelSet& ks, GgmlType type, int64_t K, int64_t rows) {
  SCOPED_TRACE(std::string(ggml_type_name(type)) + " K=" + std::to_string(K) + " rows=" + std::to_string(rows));
  const int64_t block = q8_activation_block(type);
  const auto wf = test::random_floats(K * rows, uint64_t(K * 5 + rows), -2, 2);
  const auto bytes = quantize_tensor(type, wf.data(), K, rows);
  const TensorView w = make_view(type, K, rows, bytes);
  const auto x = test::random_floats(K, uint64_t(K + 3), -3, 3);
  std::vector<int8_t> q(static_cast<size_t>(K));
  std::vector<float> d(size_t(K / block));
  std::vector<int16_t> sum16(size_t(K / 16));
  quantize_activation_blocks(x.data(), K, block, q.data(), d.data(), sum16.data());
  std::vector<float> y(size_t(rows), NAN);
  quant_fn(ks, type)(w.data, K, {q.data(), d.data(), sum16.data()}, 0, rows, y.data());
  const int64_t block_bytes = type == GgmlType::Q8_0 ? 34 : 210;
  for (int64_t r = 0; r < rows; ++r) {
    double mag = 0;
    for (int64_t b = 0; b < K / block; ++b) {
      const uint8_t* blk = w.data + (r * (K / block) + b) * block_bytes;
      const int32_t isum = type == GgmlType::Q8_0 ? q8_0_block_isum(blk, &q[size_t(b * block)])
                                                  : q6_k_block_isum(blk, &q[size_t(b * block)]);
      mag += std::fabs(double(fp16_to_fp32(load_u16(blk + (type == GgmlType::Q8_0 ? 0 : 208)))) * d[size_t(b)] * isum);
    }
    EXPECT_NEAR(y[size_t(r)], dot_q8_ref(w, r, q.data(), d.data()), 1e-5 * mag + 1e-30) << "row " << r;
  }
}

TEST_P(KernelIsa, QuantRowsWithinTolerance) {
  for (int64_t K : {32, 64, 96, 768, 2560, 3200, 6912}) check_quant(ks(), GgmlType::Q8_0, K, 11);
  for (int64_t K : {256, 768, 2560, 6912}) check_quant(ks(), GgmlType::Q6_K, K, 11);
}

// The integer block sums are exact: with every d = 1 and small codes each f32 partial sum is an
// integer below 2^24, so the kernels' result must equal the exact Σ isum_b. Random bytes give
// every 6-bit code and signed sub-block scales (which our encoder never writes, llama.cpp's may).
TEST_P(KernelIsa, QuantBlockSumsExact) {
  Rng rng(77);
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q6_K}) {
    const int64_t block = q8_activation_block(type), block_bytes = type == GgmlType::Q8_0 ? 34 : 210;
    for (int64_t K : {256, 2560, 6912}) {
      SCOPED_TRACE(std::string(ggml_type_name(type)) + " K=" + std::to_string(K));
      const int64_t rows = 9, nb = K / block;
      std::vector<uint8_t> bytes(size_t(rows * nb * block_bytes));
      for (auto& v : bytes) v = uint8_t(rng.i8());
      for (int64_t b = 0; b < rows * nb; ++b) {
        uint8_t* blk = &bytes[size_t(b * block_bytes)];
        std::memcpy(type == GgmlType::Q8_0 ? blk : blk + 208, "\x00\x3c", 2);  // d = 1.0
        if (type == GgmlType::Q6_K)
          for (int j = 0; j < 16; ++j) blk[192 + j] = uint8_t(int8_t(int(rng.i8()) % 3));  // sc ∈ {−2 … 2}
      }
      std::vector<int8_t> q(static_cast<size_t>(K));
      for (auto& v : q) v = int8_t(int(rng.i8()) % 16);
      if (type == GgmlType::Q8_0) q[0] = 15, bytes[2] = 0x80;  // w = −128 (|w| = 128 unsigned)
      std::vector<int16_t> sum16(size_t(K / 16));
      for (int64_t j = 0; j < K / 16; ++j)
        for (int i = 0; i < 16; ++i) sum16[size_t(j)] = int16_t(sum16[size_t(j)] + q[size_t(16 * j + i)]);
      const std::vector<float> d(size_t(nb), 1.0f);
      std::vector<float> y(size_t(rows), NAN);
      quant_fn(ks(), type)(bytes.data(), K, {q.data(), d.data(), sum16.data()}, 0, rows, y.data());
      for (int64_t r = 0; r < rows; ++r) {
        int64_t want = 0;
        for (int64_t b = 0; b < nb; ++b) {
          const uint8_t* blk = &bytes[size_t((r * nb + b) * block_bytes)];
          want += type == GgmlType::Q8_0 ? q8_0_block_isum(blk, &q[size_t(b * block)])
                                         : q6_k_block_isum(blk, &q[size_t(b * block)]);
        }
        ASSERT_LT(std::llabs(want), int64_t(1) << 24);
        EXPECT_EQ(y[size_t(r)], float(want)) << "row " << r;
      }
    }
  }
}

TEST_P(KernelIsa, F16EveryHalfValueConvertsExactly) {
  // 65536 rows of one column each, x = 1: y[r] = 0 + half(r), exact for every bit pattern.
  const int64_t rows = 65536;
  std::vector<uint8_t> bytes(size_t(rows * 2));
  for (int64_t r = 0; r < rows; ++r) std::memcpy(&bytes[size_t(2 * r)], &r, 2);
  const float one = 1.0f;
  std::vector<float> y(static_cast<size_t>(rows));
  ks().f16(bytes.data(), 1, &one, 0, rows, y.data());
  for (int64_t r = 0; r < rows; ++r) {
    const float want = fp16_to_fp32(uint16_t(r));
    if (std::isnan(want))
      EXPECT_TRUE(std::isnan(y[size_t(r)])) << "half 0x" << std::hex << r;
    else
      EXPECT_EQ(y[size_t(r)], want) << "half 0x" << std::hex << r;
  }
}

// ---- ops::matmul: thread-count independence, and agreement with the reference path ----

TEST_P(KernelIsa, MatmulSameWithOneAndTwoThreads) {
  ThreadPool one(1), two(2);
  const int64_t n_tokens = 3;
  struct Case {
    GgmlType type;
    int64_t K, rows;
  };
  for (const Case c : {Case{GgmlType::I2_S, 384, 77}, Case{GgmlType::TQ1_0, 512, 45},
                       Case{GgmlType::TQ2_0, 256, 150}, Case{GgmlType::F16, 200, 91},
                       Case{GgmlType::Q8_0, 128, 37}, Case{GgmlType::Q6_K, 256, 19},
                       Case{GgmlType::F32, 33, 70}}) {
    SCOPED_TRACE(std::string(ggml_type_name(c.type)));
    const bool ternary = ggml_type_is_ternary(c.type);
    const auto wf = ternary ? ternary_weights(c.K, c.rows, 9) : test::random_floats(c.K * c.rows, 9);
    const auto bytes = quantize_tensor(c.type, wf.data(), c.K, c.rows);
    const TensorView w = make_view(c.type, c.K, c.rows, bytes);
    const auto x = test::random_floats(c.K * n_tokens, 4, -2, 2);
    std::vector<float> y1(size_t(c.rows * n_tokens)), y2(y1.size()), yr(y1.size());
    ASSERT_TRUE(ops::matmul_kernels(GetParam(), w, x.data(), n_tokens, y1.data(), one));
    ASSERT_TRUE(ops::matmul_kernels(GetParam(), w, x.data(), n_tokens, y2.data(), two));
    EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)));
    if (ternary) {
      ops::matmul_reference(w, x.data(), n_tokens, yr.data(), two);
      EXPECT_EQ(y1, yr);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, KernelIsa, ::testing::ValuesIn(kernels::kAllIsas), test::isa_param_name);

TEST(Matmul, I2sWithUnalignedWidthFallsBackToReference) {
  // K = 192: not a multiple of 128, so no kernel; the flat-layout reference still computes it.
  const int64_t K = 192, rows = 10;
  const auto wf = ternary_weights(K, rows, 12);
  const auto bytes = quantize_tensor(GgmlType::I2_S, wf.data(), K, rows);
  const TensorView w = make_view(GgmlType::I2_S, K, rows, bytes);
  const auto x = test::random_floats(K * 2, 8);
  ThreadPool pool(2);
  std::vector<float> y(size_t(rows * 2)), yr(y.size());
  EXPECT_FALSE(ops::matmul_kernels(kernels::best_isa(), w, x.data(), 2, y.data(), pool));
  ops::matmul(w, x.data(), 2, y.data(), pool);
  ops::matmul_reference(w, x.data(), 2, yr.data(), pool);
  EXPECT_EQ(y, yr);
}

TEST(CpuFeatures, BestIsaIsSupportedAndActiveIsClamped) {
  EXPECT_TRUE(kernels::isa_supported(Isa::Generic));
  EXPECT_TRUE(kernels::isa_supported(kernels::best_isa()));
  EXPECT_TRUE(kernels::isa_supported(kernels::active_isa()));
  if (!std::getenv("BITNET_ISA")) {
    EXPECT_EQ(kernels::active_isa(), kernels::best_isa());
  }
  EXPECT_EQ(kernels::kernel_set(kernels::best_isa()).isa, kernels::best_isa());
}

TEST(CpuFeatures, EveryLevelHasItsOwnNameAndTable) {
  std::set<std::string> names;
  for (Isa isa : kernels::kAllIsas) {
    EXPECT_TRUE(names.insert(std::string(kernels::isa_name(isa))).second) << kernels::isa_name(isa);
    if (kernels::isa_supported(isa)) {
      EXPECT_EQ(kernels::kernel_set(isa).isa, isa) << kernels::isa_name(isa);
    }
  }
  const kernels::CpuFeatures& f = kernels::cpu_features();
  // AVX-VNNI is its own extension of AVX2 (Intel client CPUs have it without AVX-512).
  EXPECT_EQ(kernels::isa_supported(Isa::AvxVnni), f.avx2 && f.fma && f.f16c && f.avxvnni);
  EXPECT_EQ(kernels::missing_features(Isa::AvxVnni).find("avx512"), std::string::npos);
}

}  // namespace
}  // namespace bitnet
