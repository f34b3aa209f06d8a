// The GPU ternary layout on the CPU: the repack from I2_S / TQ2_0 / TQ1_0 reproduces the CPU
// decoder's ternaries and scales exactly, and the host reference of the device GEMV has exact
// integer sums and the CPU reference's float result. Runs in every build (no GPU needed).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "backends/cuda/device.h"
#include "backends/cuda/gpu_layout.h"
#include "cuda_test_util.h"
#include "errors.h"

namespace bitnet::cuda {
namespace {

using test::make_ternary_case;
using test::TernaryCase;

// The shapes of the real models: 2B-4T (2560, 6912), large (1536, 4096), 3B (3200 and 8640, which
// are not multiples of 256, 8640 not even of 128), and odd small ones.
std::vector<TernaryCase> all_cases() {
  std::vector<TernaryCase> cases;
  cases.push_back(make_ternary_case(GgmlType::I2_S, 2560, 24, 1));
  cases.push_back(make_ternary_case(GgmlType::I2_S, 6912, 6, 2));
  cases.push_back(make_ternary_case(GgmlType::I2_S, 3200, 10, 3));        // 12.5 GPU blocks
  cases.push_back(make_ternary_case(GgmlType::I2_S, 8640, 6, 4));         // flat layout, rows share blocks
  cases.push_back(make_ternary_case(GgmlType::I2_S, 8640, 6, 5, true));   // as the loader pads it
  cases.push_back(make_ternary_case(GgmlType::I2_S, 128, 3, 6));
  cases.push_back(make_ternary_case(GgmlType::TQ2_0, 6912, 5, 7));
  cases.push_back(make_ternary_case(GgmlType::TQ2_0, 2560, 9, 8));
  cases.push_back(make_ternary_case(GgmlType::TQ2_0, 256, 1, 9));
  cases.push_back(make_ternary_case(GgmlType::TQ1_0, 2560, 7, 10));
  cases.push_back(make_ternary_case(GgmlType::TQ1_0, 1536, 4, 11));
  return cases;
}

TEST(GpuLayout, CodeSlotsCoverEachBlockOnce) {
  std::set<std::pair<int64_t, int>> seen;
  for (int64_t c = 0; c < 2 * kGpuBlock; ++c) {
    const GpuCodeSlot s = gpu_code_slot(c);
    EXPECT_EQ(s.word / kGpuBlockWords, c / kGpuBlock) << c;
    EXPECT_EQ(s.shift % 2, 0);
    EXPECT_LT(s.shift, 32);
    EXPECT_TRUE(seen.insert({s.word, s.shift}).second) << "column " << c << " shares a slot";
  }
  EXPECT_EQ(seen.size(), size_t(2 * kGpuBlock));
}

TEST(GpuLayout, PlaneIsFourConsecutiveColumnsAndLaneWordsAreContiguousActivations) {
  // Word (lane chunk k, j) = group 4j + k; plane p byte i = column 16(4j + k) + 4p + i.
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 4; ++j)
      for (int p = 0; p < 4; ++p)
        for (int i = 0; i < 4; ++i) {
          const int64_t column = 16 * (4 * j + k) + 4 * p + i;
          const GpuCodeSlot s = gpu_code_slot(column);
          EXPECT_EQ(s.word, 4 * k + j);
          EXPECT_EQ(s.shift, 8 * i + 2 * p);
        }
}

TEST(GpuLayout, RepackReproducesTheCpuDecoder) {
  for (const TernaryCase& c : all_cases()) {
    SCOPED_TRACE(c.label);
    const TensorView& w = c.view;
    const GpuTernaryMatrix m = repack_for_gpu(w);
    EXPECT_EQ(m.rows, w.rows());
    EXPECT_EQ(m.cols, w.input_cols());
    EXPECT_EQ(m.padded_cols % kGpuBlock, 0);
    EXPECT_GE(m.padded_cols, w.cols());
    EXPECT_LT(m.padded_cols - w.cols(), kGpuBlock);
    EXPECT_EQ(m.codes.size(), size_t(m.rows * m.padded_cols / 16));

    std::vector<int8_t> cpu(size_t(w.rows() * w.cols()));
    unpack_ternary_rows(w, 0, w.rows(), cpu.data());
    std::vector<int8_t> gpu(size_t(m.padded_cols));
    int64_t nonzero = 0;
    for (int64_t r = 0; r < w.rows(); ++r) {
      unpack_gpu_row(m, r, gpu.data());
      for (int64_t col = 0; col < m.padded_cols; ++col) {
        const int8_t want = col < w.cols() ? cpu[size_t(r * w.cols() + col)] : 0;
        ASSERT_EQ(gpu[size_t(col)], want) << "row " << r << " column " << col;
        nonzero += want != 0;
      }
      const TernaryRow tr = unpack_ternary_row(w, r);
      if (m.scale_kind == GpuScaleKind::PerTensor) {
        ASSERT_EQ(tr.block_scales.size(), 1u);
        EXPECT_EQ(gpu_block_scale(m, r, 0), tr.block_scales[0]);
      } else {
        ASSERT_EQ(int64_t(tr.block_scales.size()), m.blocks_per_row());
        for (int64_t b = 0; b < m.blocks_per_row(); ++b)
          EXPECT_EQ(gpu_block_scale(m, r, b), tr.block_scales[size_t(b)]) << "row " << r << " block " << b;
      }
    }
    EXPECT_GT(nonzero, w.rows() * w.input_cols() / 2);  // the data really is random ternary
  }
}

TEST(GpuLayout, ScaleKindFollowsTheSourceType) {
  EXPECT_EQ(repack_for_gpu(make_ternary_case(GgmlType::I2_S, 256, 1, 1).view).scale_kind, GpuScaleKind::PerTensor);
  EXPECT_EQ(repack_for_gpu(make_ternary_case(GgmlType::TQ2_0, 256, 1, 1).view).scale_kind, GpuScaleKind::PerBlock);
  EXPECT_EQ(repack_for_gpu(make_ternary_case(GgmlType::TQ1_0, 256, 1, 1).view).scale_kind, GpuScaleKind::PerBlock);
  const TernaryCase i2s = make_ternary_case(GgmlType::I2_S, 512, 2, 3);
  EXPECT_EQ(repack_for_gpu(i2s.view).tensor_scale, 0.0173f);
}

TEST(GpuLayout, RowRangesRepackIndependently) {
  const TernaryCase c = make_ternary_case(GgmlType::TQ2_0, 2560, 11, 21);
  const GpuTernaryMatrix whole = repack_for_gpu(c.view);
  GpuTernaryMatrix parts = allocate_gpu_ternary(c.view);
  repack_rows_for_gpu(c.view, 7, 4, parts);
  repack_rows_for_gpu(c.view, 0, 7, parts);
  EXPECT_EQ(parts.codes, whole.codes);
  EXPECT_EQ(parts.block_scales, whole.block_scales);
  EXPECT_THROW(repack_rows_for_gpu(c.view, 10, 2, parts), Error);
}

TEST(GpuLayout, RejectsNonTernaryTypesAndInvalidCodes) {
  std::vector<uint8_t> f32(256 * 4, 0);
  EXPECT_THROW(repack_for_gpu(test::make_view(GgmlType::F32, 256, 1, f32)), Error);
  TernaryCase c = make_ternary_case(GgmlType::I2_S, 256, 2, 5);
  c.bytes[17] = 0xFF;  // code 3: never written, corrupt
  EXPECT_THROW(repack_for_gpu(c.view), FormatError);
}

TEST(GpuLayout, Dp4aReferenceIsSignedBytewise) {
  // bytes a = (2, 0, 1, 2), b = (−128, 127, −1, 5): 2·−128 + 0 + 1·−1 + 2·5 = −247, plus c = 1000.
  const uint32_t a = 0x02010002u, b = 0x05FF7F80u;
  EXPECT_EQ(dp4a_reference(a, b, 1000), 1000 - 256 - 1 + 10);
}

TEST(GpuLayout, TokenQuantizationIsTheCpusPaddedWithZeros) {
  for (int64_t cols : {2560, 3200, 8640, 100}) {
    SCOPED_TRACE(cols);
    const std::vector<float> x = test::random_activations(cols, uint64_t(cols));
    const int64_t padded = gpu_padded_cols(cols);
    const GpuQuantizedToken act = quantize_token_for_gpu(x.data(), cols, padded);
    std::vector<int8_t> q(static_cast<size_t>(cols));
    const ActivationQuant aq = bitnet::quantize_activations(x.data(), cols, q.data());
    EXPECT_EQ(act.scale, aq.scale);
    EXPECT_EQ(act.sum, aq.sum);
    ASSERT_EQ(int64_t(act.q.size()), padded);
    for (int64_t i = 0; i < padded; ++i) ASSERT_EQ(act.q[size_t(i)], i < cols ? q[size_t(i)] : 0) << i;
    int32_t total = 0;
    for (int64_t b = 0; b < padded / kGpuBlock; ++b) {
      int32_t s = 0;
      for (int64_t i = b * kGpuBlock; i < (b + 1) * kGpuBlock; ++i) s += act.q[size_t(i)];
      EXPECT_EQ(act.block_sums[size_t(b)], s) << "block " << b;
      total += s;
    }
    EXPECT_EQ(total, act.sum);
  }
}

TEST(GpuLayout, ReferenceGemvHasExactIntegerSumsAndTheCpuResult) {
  for (const TernaryCase& c : all_cases()) {
    SCOPED_TRACE(c.label);
    const TensorView& w = c.view;
    const GpuTernaryMatrix m = repack_for_gpu(w);
    const std::vector<float> x = test::random_activations(m.cols, uint64_t(w.rows() * 7 + m.cols));
    const GpuQuantizedToken act = quantize_token_for_gpu(x.data(), m.cols, m.padded_cols);
    std::vector<float> y(size_t(m.rows));
    gpu_ternary_gemv_reference(m, act, y.data());

    std::vector<int8_t> t(size_t(w.rows() * w.cols()));
    unpack_ternary_rows(w, 0, w.rows(), t.data());
    const ActivationQuant aq{act.scale, act.sum};
    int64_t nonzero_sums = 0;
    for (int64_t r = 0; r < m.rows; ++r) {
      // Plain scalar int32: Σ t·q per 256-block from the CPU decoder's ternaries.
      int32_t row_sum = 0;
      for (int64_t b = 0; b < m.blocks_per_row(); ++b) {
        int32_t plain = 0;
        for (int64_t col = b * kGpuBlock; col < std::min((b + 1) * kGpuBlock, w.cols()); ++col)
          plain += int32_t(t[size_t(r * w.cols() + col)]) * act.q[size_t(col)];
        ASSERT_EQ(gpu_block_isum_reference(m, r, b, act.q.data(), act.block_sums[size_t(b)]), plain)
            << "row " << r << " block " << b;
        row_sum += plain;
      }
      nonzero_sums += row_sum != 0;
      // The float result: the CPU reference's, to the bit.
      const float cpu = dot_ternary_ref(w, r, act.q.data(), aq);
      EXPECT_EQ(y[size_t(r)], cpu) << "row " << r;
      if (m.scale_kind == GpuScaleKind::PerTensor) {
        const float from_plain = (float(row_sum + act.sum) - float(act.sum)) / act.scale * m.tensor_scale;
        EXPECT_EQ(y[size_t(r)], from_plain) << "row " << r;
      }
    }
    EXPECT_GT(nonzero_sums, m.rows / 2);
  }
}

TEST(CudaProbe, NeverThrowsAndExplainsAnAbsentDevice) {
  const DeviceInfo info = probe();
  if (!built_with_cuda()) {
    EXPECT_FALSE(info.available());
    EXPECT_NE(info.error.find("no CUDA backend"), std::string::npos) << info.error;
  }
  if (!info.available()) {
    EXPECT_FALSE(info.error.empty());
  } else {
    for (const GpuInfo& g : info.gpus) {
      EXPECT_FALSE(g.name.empty());
      EXPECT_GT(g.total_memory, 0u);
      EXPECT_GE(g.compute_major, 1);
    }
  }
}

}  // namespace
}  // namespace bitnet::cuda
