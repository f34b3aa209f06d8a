// Matrix-matrix ternary kernels (several tokens per call) and the attention helpers, for every
// ISA level this CPU supports: each output bit-identical to dot_ternary_ref, for token counts that
// are and are not multiples of the 8-token tile, row counts across the 64-row tile, and the
// activation extremes that reach the int16 accumulation bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "errors.h"
#include "kernels/kernel_test_util.h"
#include "kernels/kernels.h"
#include "ops/ops.h"

namespace bitnet {
namespace {

using kernels::Isa;
using test::make_view;

class MatrixKernelIsa : public test::IsaTest {};

kernels::TernaryMatFn matrix_fn(const kernels::KernelSet& ks, GgmlType type) {
  return type == GgmlType::I2_S ? ks.i2s_mm : type == GgmlType::TQ1_0 ? ks.tq1_mm : ks.tq2_mm;
}

// n tokens: the extremes of tokens_for (all 127, all −128, alternating, random int8) cycled with
// quantized random floats, contiguous as the kernels expect.
struct Tokens {
  std::vector<int8_t> q;
  std::vector<ActivationQuant> act;
  std::vector<int32_t> qsum;
};
Tokens make_tokens(int64_t K, int64_t n, uint64_t seed) {
  const std::vector<test::Token> base = test::tokens_for(K, seed);
  Tokens out;
  for (int64_t t = 0; t < n; ++t) {
    const test::Token& tk = base[size_t(t) % base.size()];
    out.q.insert(out.q.end(), tk.q.begin(), tk.q.end());
    out.act.push_back(tk.act);
  }
  out.qsum.resize(size_t(n * (K / 256)));
  kernels::block_qsums(out.q.data(), K, n, out.qsum.data());
  return out;
}

void check_matrix(const kernels::KernelSet& ks, GgmlType type, int64_t K, int64_t rows, int64_t n) {
  SCOPED_TRACE(std::string(ggml_type_name(type)) + " K=" + std::to_string(K) +
               " rows=" + std::to_string(rows) + " tokens=" + std::to_string(n));
  const auto x = test::ternary_weights(K, rows, uint64_t(K * 100 + rows));
  const auto bytes = quantize_tensor(type, x.data(), K, rows);
  const TensorView w = make_view(type, K, rows, bytes);
  const Tokens tk = make_tokens(K, n, uint64_t(K + n));
  const kernels::TernaryBatch j{w.data, K, n, tk.q.data(), tk.act.data(), tk.qsum.data(),
                                type == GgmlType::I2_S ? load_f32(w.data + w.elements() / 4) : 0.0f};
  // Output stride larger than rows; a sub-range [a, b) writes exactly its rows.
  const int64_t ld = rows + 3, a = std::min<int64_t>(1, rows - 1), b = rows;
  std::vector<float> y(size_t(ld * n), -7.0f);
  matrix_fn(ks, type)(j, a, b, y.data(), ld);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < ld; ++r) {
      const float got = y[size_t(t * ld + r)];
      if (r < a || r >= b)
        EXPECT_EQ(got, -7.0f) << "token " << t << " row " << r;
      else
        EXPECT_EQ(got, dot_ternary_ref(w, r, &tk.q[size_t(t * K)], tk.act[size_t(t)]))
            << "token " << t << " row " << r;
    }
}

TEST_P(MatrixKernelIsa, I2sBitIdenticalToReference) {
  for (int64_t K : {128, 1536, 2176, 6912})  // 6912: 54 blocks, a partial int16 chunk
    for (int64_t rows : {1, 7, 67})
      for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16}) check_matrix(ks(), GgmlType::I2_S, K, rows, n);
}

TEST_P(MatrixKernelIsa, Tq2BitIdenticalToReference) {
  for (int64_t K : {256, 2560, 4096})
    for (int64_t rows : {2, 67})
      for (int64_t n : {1, 3, 5, 9, 16}) check_matrix(ks(), GgmlType::TQ2_0, K, rows, n);
}

TEST_P(MatrixKernelIsa, Tq1BitIdenticalToReference) {
  for (int64_t K : {256, 2560})
    for (int64_t rows : {2, 67})
      for (int64_t n : {1, 3, 5, 9, 16}) check_matrix(ks(), GgmlType::TQ1_0, K, rows, n);
}

TEST_P(MatrixKernelIsa, InvalidCodeIsRejectedBeforeTheKernels) {
  for (GgmlType type : {GgmlType::I2_S, GgmlType::TQ2_0}) {
    const int64_t K = 512, rows = 9, n = 5;
    const auto x = test::ternary_weights(K, rows, 3);
    auto bytes = quantize_tensor(type, x.data(), K, rows);
    const int64_t row_bytes = type == GgmlType::I2_S ? K / 4 : K / 256 * 66;
    bytes[size_t(6 * row_bytes + 37)] |= 0x0C;  // one code 3 in row 6
    const TensorView w = make_view(type, K, rows, bytes);
    std::vector<float> y(size_t(rows * n));
    ThreadPool pool(2);
    const auto xa = test::random_floats(K * n, 2);
    EXPECT_THROW(ops::matmul_kernels(GetParam(), w, xa.data(), n, y.data(), pool), FormatError);
  }
}

// ops::matmul over several tokens: matrix kernels == one-token kernels == reference, bit for bit,
// with one and two threads; the shared quantized input gives the same as a fresh one.
TEST_P(MatrixKernelIsa, MatmulMatchesOneTokenKernelsAndReference) {
  ThreadPool one(1), two(2);
  for (GgmlType type : {GgmlType::I2_S, GgmlType::TQ1_0, GgmlType::TQ2_0})
    for (int64_t n : {2, 3, 9, 21}) {
      SCOPED_TRACE(std::string(ggml_type_name(type)) + " tokens=" + std::to_string(n));
      const int64_t K = 768, rows = 203;
      const auto wf = test::ternary_weights(K, rows, 5);
      const auto bytes = quantize_tensor(type, wf.data(), K, rows);
      const TensorView w = make_view(type, K, rows, bytes);
      const auto x = test::random_floats(K * n, uint64_t(n), -2, 2);
      const ops::MatmulInput in(x.data(), K, n);
      std::vector<float> mm1(size_t(rows * n)), mm2(mm1.size()), rows1(mm1.size()), ref(mm1.size());
      ASSERT_TRUE(ops::matmul_kernels(GetParam(), w, in, mm1.data(), one));
      ASSERT_TRUE(ops::matmul_kernels(GetParam(), w, in, mm2.data(), two));
      ASSERT_TRUE(ops::matmul_kernels(GetParam(), w, x.data(), n, rows1.data(), two));
      ops::matmul_reference(w, x.data(), n, ref.data(), two);
      EXPECT_EQ(mm1, ref);
      EXPECT_EQ(mm2, ref);
      EXPECT_EQ(rows1, ref);
      std::vector<float> per_token(mm1.size());
      ASSERT_TRUE(ops::matmul_kernels(GetParam(), w, in, per_token.data(), two, /*matrix_kernels=*/false));
      EXPECT_EQ(per_token, ref);
    }
}

// I2_S rows that are not whole 128-blocks (bitnet_b1_58-3B's 8640-wide ffn_down; K % 128 = 16,
// 32, 64, 96 here) padded by i2s_pad_rows as the loader does: the kernels of every ISA — the
// one-token and the matrix kernels, one and two threads — equal the flat-layout reference on the
// unpadded tensor bit for bit, inputs with and without the activation extremes.
TEST_P(MatrixKernelIsa, I2sRowsPaddedToWholeBlocksEqualTheFlatReference) {
  ThreadPool one(1), two(2);
  for (int64_t K : {192, 224, 400, 544, 8640})
    for (int64_t n : {1, 3, 9}) {
      const int64_t rows = K == 8640 ? 38 : 136;  // K·rows whole 128-blocks, as I2_S needs
      SCOPED_TRACE("K=" + std::to_string(K) + " tokens=" + std::to_string(n));
      const auto wf = test::ternary_weights(K, rows, uint64_t(K));
      const auto flat_bytes = quantize_tensor(GgmlType::I2_S, wf.data(), K, rows);
      const TensorView flat = make_view(GgmlType::I2_S, K, rows, flat_bytes);
      const std::vector<uint8_t> padded_bytes = i2s_pad_rows(flat);
      TensorView padded = make_view(GgmlType::I2_S, i2s_padded_cols(K), rows, padded_bytes);
      padded.pad_cols = i2s_padded_cols(K) - K;
      auto x = test::random_floats(K * n, uint64_t(K + n), -2, 2);
      if (n > 1) x[size_t(K + 5)] = 40.0f;  // token 1: one dominant input, the rest near 0 and ±1
      std::vector<float> ref(size_t(rows * n)), mm(ref.size()), per_token(ref.size()), y1(ref.size());
      ops::matmul_reference(flat, x.data(), n, ref.data(), two);
      ASSERT_TRUE(ops::matmul_kernels(GetParam(), padded, x.data(), n, mm.data(), two));
      EXPECT_EQ(mm, ref);
      const ops::MatmulInput in(x.data(), K, n);
      ASSERT_TRUE(ops::matmul_kernels(GetParam(), padded, in, per_token.data(), one, /*matrix_kernels=*/false));
      EXPECT_EQ(per_token, ref);
      ASSERT_TRUE(ops::matmul_kernels(GetParam(), padded, in, y1.data(), one));
      EXPECT_EQ(y1, ref);
      std::vector<float> ref_padded(ref.size());
      ops::matmul_reference(padded, x.data(), n, ref_padded.data(), two);
      EXPECT_EQ(ref_padded, ref);
    }
}

// ops::matmul_group (q/k/v, gate/up as one job) writes exactly what ops::matmul writes for each
// matrix, for mixed types, one and several tokens, one and two threads.
TEST(MatmulGroup, EqualsOneMatmulPerMatrix) {
  const int64_t K = 768;
  const std::vector<std::pair<GgmlType, int64_t>> shapes = {
      {GgmlType::I2_S, 203}, {GgmlType::TQ2_0, 64}, {GgmlType::F16, 17}, {GgmlType::I2_S, 1}};
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<TensorView> views;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto [type, rows] = shapes[i];
    const auto wf = test::ternary_weights(K, rows, 40 + i);
    bytes.push_back(quantize_tensor(type, wf.data(), K, rows));
  }
  for (size_t i = 0; i < shapes.size(); ++i) views.push_back(make_view(shapes[i].first, K, shapes[i].second, bytes[i]));
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 5}) {
      SCOPED_TRACE("threads=" + std::to_string(threads) + " tokens=" + std::to_string(n));
      const auto x = test::random_floats(K * n, uint64_t(n + 7), -2, 2);
      std::vector<std::vector<float>> grouped, alone;
      std::vector<const TensorView*> ws;
      std::vector<float*> ys;
      for (const TensorView& w : views) {
        grouped.emplace_back(size_t(w.rows() * n), -1.0f);
        alone.emplace_back(size_t(w.rows() * n), -2.0f);
        ws.push_back(&w);
      }
      for (auto& y : grouped) ys.push_back(y.data());
      ops::matmul_group(ws, ops::MatmulInput(x.data(), K, n), ys, pool);
      for (size_t i = 0; i < views.size(); ++i) {
        ops::matmul(views[i], x.data(), n, alone[i].data(), pool);
        EXPECT_EQ(grouped[i], alone[i]) << "matrix " << i;
      }
    }
  }
}

// Float weights × several tokens (the LM head of a batch): the token-tiled kernels equal the
// one-token row kernels bit for bit, so a token's logits do not depend on its batch.
TEST_P(MatrixKernelIsa, FloatMatmulOverTokensEqualsRowKernels) {
  ThreadPool two(2);
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16})
    for (int64_t K : {24, 100, 2560})
      for (int64_t n : {2, 5, 9}) {
        SCOPED_TRACE(std::string(ggml_type_name(type)) + " K=" + std::to_string(K) + " tokens=" + std::to_string(n));
        const int64_t rows = 67;
        const auto wf = test::random_floats(K * rows, uint64_t(K + n), -2, 2);
        const auto bytes = quantize_tensor(type, wf.data(), K, rows);
        const TensorView w = make_view(type, K, rows, bytes);
        const auto x = test::random_floats(K * n, uint64_t(n), -2, 2);
        const ops::MatmulInput in(x.data(), K, n);
        std::vector<float> tiled(size_t(rows * n)), per_token(tiled.size());
        ASSERT_TRUE(ops::matmul_kernels(GetParam(), w, in, tiled.data(), two));
        ASSERT_TRUE(ops::matmul_kernels(GetParam(), w, in, per_token.data(), two, /*matrix_kernels=*/false));
        EXPECT_EQ(tiled, per_token);
      }
}

// Q8_0 / Q6_K weights × several tokens (the LM head of a multi-stream step): where an ISA has a
// token-tiled kernel, every value equals the one-token row kernel's for that token, for token
// counts below, at and above the 8-token tile, and a row sub-range with an output stride.
TEST_P(MatrixKernelIsa, QuantMatmulOverTokensEqualsRowKernels) {
  ThreadPool two(2);
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q6_K})
    for (int64_t K : {256, 2560, 288})  // 288: nine Q8_0 blocks, an odd last one
      for (int64_t n : {2, 3, 4, 5, 6, 7, 8, 9, 16}) {
        if (K % 256 != 0 && type == GgmlType::Q6_K) continue;
        SCOPED_TRACE(std::string(ggml_type_name(type)) + " K=" + std::to_string(K) + " tokens=" + std::to_string(n));
        const int64_t rows = 131;
        const auto wf = test::random_floats(K * rows, uint64_t(K + n), -2, 2);
        const auto bytes = quantize_tensor(type, wf.data(), K, rows);
        const TensorView w = make_view(type, K, rows, bytes);
        const auto x = test::random_floats(K * n, uint64_t(n), -3, 3);
        const ops::MatmulInput in(x.data(), K, n);
        std::vector<float> tiled(size_t(rows * n), NAN), per_token(tiled.size(), NAN);
        ASSERT_TRUE(ops::matmul_kernels(GetParam(), w, in, tiled.data(), two));
        ASSERT_TRUE(ops::matmul_kernels(GetParam(), w, in, per_token.data(), two, /*matrix_kernels=*/false));
        ASSERT_EQ(0, std::memcmp(tiled.data(), per_token.data(), tiled.size() * sizeof(float)));
        ASSERT_NE(tiled[0], tiled[1]);

        const kernels::QuantMatFn mm = type == GgmlType::Q6_K ? ks().q6_k_mm : ks().q8_0_mm;
        if (!mm) continue;
        const int64_t block = q8_activation_block(type), ld = rows + 5, a = 3, b = rows - 2;
        const ops::MatmulInput::BlockCodes& c = in.block_codes(block, two);
        std::vector<kernels::Q8Input> xs;
        for (int64_t t = 0; t < n; ++t)
          xs.push_back({&c.q[size_t(t * K)], &c.d[size_t(t * (K / block))], &c.sum16[size_t(t * (K / 16))]});
        std::vector<float> y(size_t(ld * n), -7.0f);
        mm(w.data, K, xs.data(), n, a, b, y.data(), ld);
        for (int64_t t = 0; t < n; ++t)
          for (int64_t r = 0; r < ld; ++r)
            if (r < a || r >= b)
              ASSERT_EQ(y[size_t(t * ld + r)], -7.0f) << "token " << t << " row " << r;
            else
              ASSERT_EQ(y[size_t(t * ld + r)], per_token[size_t(t * rows + r)]) << "token " << t << " row " << r;
      }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, MatrixKernelIsa, ::testing::ValuesIn(kernels::kAllIsas), test::isa_param_name);

}  // namespace
}  // namespace bitnet
