// Every CUDA kernel against the CPU reference on random data. Integer parts (activation codes and
// sums, ternary products) must match exactly — the ternary results are even bit-identical to
// dot_ternary_ref —; float parts within the tolerance stated at each test. Without a GPU each test
// is skipped with the reason probe() gives.
#include <gtest/gtest.h>

#if defined(BITNET_WITH_CUDA) && BITNET_WITH_CUDA

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "backends/cuda/device.h"
#include "backends/cuda/gpu_layout.h"
#include "backends/cuda/kernels.h"
#include "cuda_test_util.h"
#include "formats/half.h"
#include "ops/ops.h"

namespace bitnet::cuda {
namespace {

using test::make_ternary_case;
using test::random_activations;
using test::random_floats;
using test::TernaryCase;

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    static const DeviceInfo info = probe();
    if (!info.available()) GTEST_SKIP() << "no CUDA device: " << info.error;
  }
};

// The host reference of one token's quantized activations, for n tokens of x.
std::vector<GpuQuantizedToken> quantize_on_host(const std::vector<float>& x, int64_t n_tokens, int64_t cols) {
  std::vector<GpuQuantizedToken> tokens;
  for (int64_t t = 0; t < n_tokens; ++t)
    tokens.push_back(quantize_token_for_gpu(x.data() + t * cols, cols, gpu_padded_cols(cols)));
  return tokens;
}

// Uploads host-quantized tokens into `buffers` (the layout DeviceActivations describes).
void upload_tokens(const std::vector<GpuQuantizedToken>& tokens, DeviceActivationBuffers& buffers) {
  const int64_t padded = buffers.view.padded_cols, nb = padded / kGpuBlock;
  for (size_t t = 0; t < tokens.size(); ++t) {
    buffers.q.upload(tokens[t].q.data(), size_t(padded), t * size_t(padded));
    buffers.scale.upload(&tokens[t].scale, sizeof(float), t * sizeof(float));
    buffers.sum.upload(&tokens[t].sum, sizeof(int32_t), t * sizeof(int32_t));
    const size_t block_bytes = size_t(nb) * sizeof(int32_t);
    buffers.block_sums.upload(tokens[t].block_sums.data(), block_bytes, t * block_bytes);
  }
}

// ---- activation quantization ------------------------------------------------------------------

TEST_F(CudaKernels, QuantizeActivationsIsBitIdenticalToTheCpu) {
  for (int64_t cols : {2560, 3200, 8640, 100}) {
    SCOPED_TRACE(cols);
    const int64_t n_tokens = 5, padded = gpu_padded_cols(cols), nb = padded / kGpuBlock;
    std::vector<float> x = random_activations(n_tokens * cols, uint64_t(cols));
    std::fill(x.begin() + 2 * cols, x.begin() + 3 * cols, 0.0f);  // an all-zero token: s = 127/1e-5
    for (int64_t i = 0; i < cols; ++i) x[size_t(3 * cols + i)] *= 1e-3f;  // a small one
    const DeviceBuffer x_dev = upload_vector(x);
    DeviceActivationBuffers out(n_tokens, padded);
    quantize_activations(x_dev.as<float>(), n_tokens, cols, out.view);
    const auto q = download_vector<int8_t>(out.q, size_t(n_tokens * padded));
    const auto scale = download_vector<float>(out.scale, size_t(n_tokens));
    const auto sum = download_vector<int32_t>(out.sum, size_t(n_tokens));
    const auto block_sums = download_vector<int32_t>(out.block_sums, size_t(n_tokens * nb));
    const auto want = quantize_on_host(x, n_tokens, cols);
    for (int64_t t = 0; t < n_tokens; ++t) {
      EXPECT_EQ(scale[size_t(t)], want[size_t(t)].scale) << "token " << t;
      EXPECT_EQ(sum[size_t(t)], want[size_t(t)].sum) << "token " << t;
      EXPECT_TRUE(std::equal(q.begin() + t * padded, q.begin() + (t + 1) * padded, want[size_t(t)].q.begin()))
          << "codes of token " << t;
      EXPECT_TRUE(std::equal(block_sums.begin() + t * nb, block_sums.begin() + (t + 1) * nb,
                             want[size_t(t)].block_sums.begin()))
          << "block sums of token " << t;
    }
  }
}

// ---- RMSNorm ---------------------------------------------------------------------------------

// The normalized values may differ from ops::rms_norm by the last bit of the scale r (the double
// sum of squares is added in another order): relative 1e-6. The codes then differ by at most 1
// where x·s lies within that of a rounding tie: allowed for at most 0.5% of the columns.
TEST_F(CudaKernels, RmsNormAndFusedQuantizeMatchTheCpu) {
  const float eps = 1e-5f;
  for (int64_t cols : {2560, 6912, 3200, 100}) {
    SCOPED_TRACE(cols);
    const int64_t n_tokens = 3, padded = gpu_padded_cols(cols), nb = padded / kGpuBlock;
    const std::vector<float> x = random_activations(n_tokens * cols, uint64_t(cols) + 1);
    const std::vector<float> gain = random_floats(cols, uint64_t(cols) + 2, 0.5f, 2.0f);
    const DeviceBuffer x_dev = upload_vector(x), gain_dev = upload_vector(gain);
    DeviceBuffer normed_dev(size_t(n_tokens * cols) * sizeof(float)), fused_normed_dev(normed_dev.size());
    DeviceActivationBuffers out(n_tokens, padded);
    rms_norm(x_dev.as<float>(), gain_dev.as<float>(), n_tokens, cols, eps, normed_dev.as<float>());
    rms_norm_quantize(x_dev.as<float>(), gain_dev.as<float>(), n_tokens, cols, eps, out.view,
                      fused_normed_dev.as<float>());
    const auto normed = download_vector<float>(normed_dev, size_t(n_tokens * cols));
    const auto fused_normed = download_vector<float>(fused_normed_dev, size_t(n_tokens * cols));
    const auto q = download_vector<int8_t>(out.q, size_t(n_tokens * padded));
    const auto scale = download_vector<float>(out.scale, size_t(n_tokens));
    const auto sum = download_vector<int32_t>(out.sum, size_t(n_tokens));
    const auto block_sums = download_vector<int32_t>(out.block_sums, size_t(n_tokens * nb));
    EXPECT_EQ(normed, fused_normed);
    for (int64_t t = 0; t < n_tokens; ++t) {
      std::vector<float> cpu(static_cast<size_t>(cols));
      ops::rms_norm(x.data() + t * cols, gain.data(), cols, eps, cpu.data());
      for (int64_t i = 0; i < cols; ++i)
        ASSERT_NEAR(normed[size_t(t * cols + i)], cpu[size_t(i)], 1e-6f * std::fabs(cpu[size_t(i)]) + 1e-30f)
            << "token " << t << " column " << i;
      const GpuQuantizedToken want = quantize_token_for_gpu(cpu.data(), cols, padded);
      EXPECT_NEAR(scale[size_t(t)], want.scale, 1e-6f * want.scale);
      int64_t off_by_one = 0;
      int32_t gpu_sum = 0;
      for (int64_t i = 0; i < padded; ++i) {
        const int d = int(q[size_t(t * padded + i)]) - int(want.q[size_t(i)]);
        ASSERT_LE(std::abs(d), 1) << "token " << t << " column " << i;
        off_by_one += d != 0;
        gpu_sum += q[size_t(t * padded + i)];
      }
      EXPECT_LE(off_by_one, cols / 200 + 1);
      // The sums are exact for the codes the GPU produced.
      EXPECT_EQ(sum[size_t(t)], gpu_sum);
      for (int64_t b = 0; b < nb; ++b) {
        int32_t s = 0;
        for (int64_t i = b * kGpuBlock; i < (b + 1) * kGpuBlock; ++i) s += q[size_t(t * padded + i)];
        EXPECT_EQ(block_sums[size_t(t * nb + b)], s);
      }
    }
  }
}

// ---- ternary products -----------------------------------------------------------------------

// Made once per process (the two 2B-4T shapes hold 35M weights).
const std::vector<TernaryCase>& matmul_cases() {
  static const std::vector<TernaryCase> all = [] {
    std::vector<TernaryCase> cases;
    cases.push_back(make_ternary_case(GgmlType::I2_S, 2560, 6912, 1));   // 2B-4T ffn_gate / ffn_up
    cases.push_back(make_ternary_case(GgmlType::I2_S, 6912, 2560, 2));   // 2B-4T ffn_down
    cases.push_back(make_ternary_case(GgmlType::I2_S, 3200, 97, 3));     // 3B widths, odd row count
    cases.push_back(make_ternary_case(GgmlType::I2_S, 8640, 64, 4, true));
    cases.push_back(make_ternary_case(GgmlType::I2_S, 8640, 10, 5));     // flat (unpadded) layout
    cases.push_back(make_ternary_case(GgmlType::TQ2_0, 6912, 130, 6));   // per-block scales
    cases.push_back(make_ternary_case(GgmlType::TQ2_0, 256, 5, 7));
    cases.push_back(make_ternary_case(GgmlType::TQ1_0, 2560, 77, 8));
    return cases;
  }();
  return all;
}

bool is_large(const TernaryCase& c) { return c.view.elements() > (int64_t(1) << 22); }

// Runs the device product for each token count and checks every output against the host reference
// of the same layout (and a sample of rows against dot_ternary_ref), bit for bit.
void check_ternary_product(const TernaryCase& c, const std::vector<int64_t>& token_counts, bool force_gemm) {
  const GpuTernaryMatrix m = repack_for_gpu(c.view);
  const DeviceTernaryMatrix w = upload_ternary(m);
  for (int64_t n_tokens : token_counts) {
    SCOPED_TRACE(c.label + ", " + std::to_string(n_tokens) + " tokens" + (force_gemm ? " (gemm)" : ""));
    const std::vector<float> x = random_activations(n_tokens * m.cols, uint64_t(m.rows + n_tokens));
    const auto tokens = quantize_on_host(x, n_tokens, m.cols);
    DeviceActivationBuffers act(n_tokens, m.padded_cols);
    upload_tokens(tokens, act);
    DeviceBuffer y_dev(size_t(n_tokens * m.rows) * sizeof(float));
    if (force_gemm)
      ternary_gemm(w, act.view, n_tokens, y_dev.as<float>());
    else
      ternary_matmul(w, act.view, n_tokens, y_dev.as<float>());
    const auto y = download_vector<float>(y_dev, size_t(n_tokens * m.rows));
    std::vector<float> want(size_t(m.rows));
    for (int64_t t = 0; t < n_tokens; ++t) {
      gpu_ternary_gemv_reference(m, tokens[size_t(t)], want.data());
      for (int64_t r = 0; r < m.rows; ++r)
        ASSERT_EQ(y[size_t(t * m.rows + r)], want[size_t(r)]) << "token " << t << " row " << r;
      const ActivationQuant aq{tokens[size_t(t)].scale, tokens[size_t(t)].sum};
      for (int64_t r = 0; r < m.rows; r += std::max<int64_t>(1, m.rows / 16))
        ASSERT_EQ(y[size_t(t * m.rows + r)], dot_ternary_ref(c.view, r, tokens[size_t(t)].q.data(), aq))
            << "token " << t << " row " << r;
    }
  }
}

TEST_F(CudaKernels, TernaryGemvIsBitIdenticalToTheReference) {
  for (const TernaryCase& c : matmul_cases()) check_ternary_product(c, {1}, false);
}

// Token counts around the 8-token tiles; the 2B-4T-sized matrices only with one partial tile (time).
TEST_F(CudaKernels, TernaryGemmIsBitIdenticalToTheReference) {
  for (const TernaryCase& c : matmul_cases())
    check_ternary_product(c, is_large(c) ? std::vector<int64_t>{9} : std::vector<int64_t>{2, 8, 13}, false);
  check_ternary_product(matmul_cases()[2], {1}, true);  // a tile with one token
}

TEST_F(CudaKernels, QuantizeThenGemvEqualsTheCpuPipeline) {
  // End to end on the device: f32 activations → codes → product, against the CPU's reference.
  const TernaryCase c = make_ternary_case(GgmlType::I2_S, 2560, 640, 31);
  const GpuTernaryMatrix m = repack_for_gpu(c.view);
  const DeviceTernaryMatrix w = upload_ternary(m);
  const std::vector<float> x = random_activations(m.cols, 32);
  const DeviceBuffer x_dev = upload_vector(x);
  DeviceActivationBuffers act(1, m.padded_cols);
  DeviceBuffer y_dev(size_t(m.rows) * sizeof(float));
  quantize_activations(x_dev.as<float>(), 1, m.cols, act.view);
  ternary_gemv(w, act.view, y_dev.as<float>());
  const auto y = download_vector<float>(y_dev, size_t(m.rows));
  std::vector<int8_t> q(size_t(m.padded_cols), 0);
  const ActivationQuant aq = bitnet::quantize_activations(x.data(), m.cols, q.data());
  for (int64_t r = 0; r < m.rows; ++r) ASSERT_EQ(y[size_t(r)], dot_ternary_ref(c.view, r, q.data(), aq)) << r;
}

// ---- RoPE and the KV cache ---------------------------------------------------------------------

// θ_j is the CPU's to the bit; sincosf is within 2 ulp of the host's cos/sin, so each rotated value
// is within 4e-6 of ops::rope for inputs in [−1, 1]; the dims past n_rot are untouched.
TEST_F(CudaKernels, RopeMatchesTheCpu) {
  const int n_heads = 5;
  const std::vector<int32_t> positions = {0, 1, 17, 4095, 100000};
  const int64_t n_tokens = int64_t(positions.size());
  const DeviceBuffer positions_dev = upload_vector(positions);
  struct Shape {
    int head_dim, n_rot;
  };
  for (RopePairing pairing : {RopePairing::Neox, RopePairing::Norm}) {
    for (Shape s : {Shape{128, 128}, Shape{100, 100}, Shape{96, 64}}) {
      SCOPED_TRACE(std::string(pairing == RopePairing::Neox ? "NEOX" : "NORM") + " head_dim " +
                   std::to_string(s.head_dim) + " n_rot " + std::to_string(s.n_rot));
      const std::vector<float> x = random_floats(n_tokens * n_heads * s.head_dim, uint64_t(s.head_dim + s.n_rot));
      DeviceBuffer x_dev = upload_vector(x);
      const float base = 500000.0f, freq_scale = 1.0f;
      rope(x_dev.as<float>(), n_tokens, n_heads, s.head_dim, s.n_rot, positions_dev.as<int32_t>(), base, freq_scale,
           pairing);
      const auto y = download_vector<float>(x_dev, x.size());
      std::vector<float> cpu = x;
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int h = 0; h < n_heads; ++h)
          ops::rope(cpu.data() + (t * n_heads + h) * s.head_dim, s.n_rot, positions[size_t(t)], base, freq_scale,
                    pairing == RopePairing::Neox ? ops::RopeStyle::Neox : ops::RopeStyle::Norm);
      for (size_t i = 0; i < y.size(); ++i) {
        if (int(i % size_t(s.head_dim)) >= s.n_rot)
          ASSERT_EQ(y[i], x[i]) << i;
        else
          ASSERT_NEAR(y[i], cpu[i], 4e-6f) << i;
      }
    }
  }
}

// A cache filled through store_kv (f16 rounding to nearest-even, compared exactly), then attention
// against an exact softmax in double over the same f16 keys and values: within 2e-5 absolute.
TEST_F(CudaKernels, StoreKvAndAttentionMatchAnExactReference) {
  struct Shape {
    int n_heads, n_kv_heads, head_dim;
  };
  for (Shape s : {Shape{8, 2, 128}, Shape{4, 4, 100}, Shape{6, 1, 64}}) {
    SCOPED_TRACE("heads " + std::to_string(s.n_heads) + "/" + std::to_string(s.n_kv_heads) + " head_dim " +
                 std::to_string(s.head_dim));
    const int64_t capacity = 2600, n_pos = 2500;
    const int64_t kv_width = int64_t(s.n_kv_heads) * s.head_dim;
    const std::vector<float> k = random_floats(n_pos * kv_width, 11, -1.0f, 1.0f);
    const std::vector<float> v = random_floats(n_pos * kv_width, 12, -1.0f, 1.0f);
    std::vector<int32_t> all_positions(static_cast<size_t>(n_pos));
    for (int64_t p = 0; p < n_pos; ++p) all_positions[size_t(p)] = int32_t(p);
    DeviceBuffer keys(size_t(s.n_kv_heads * capacity * s.head_dim) * 2), values(keys.size());
    keys.fill_zero();
    values.fill_zero();
    const DeviceKvCache cache{keys.as<uint16_t>(), values.as<uint16_t>(), capacity, s.n_kv_heads, s.head_dim};
    const DeviceBuffer k_dev = upload_vector(k), v_dev = upload_vector(v), pos_dev = upload_vector(all_positions);
    store_kv(k_dev.as<float>(), v_dev.as<float>(), n_pos, pos_dev.as<int32_t>(), cache);
    const auto keys_host = download_vector<uint16_t>(keys, keys.size() / 2);
    const auto values_host = download_vector<uint16_t>(values, values.size() / 2);
    for (int64_t p = 0; p < n_pos; ++p)
      for (int h = 0; h < s.n_kv_heads; ++h)
        for (int d = 0; d < s.head_dim; ++d) {
          const size_t src = size_t((p * s.n_kv_heads + h) * s.head_dim + d);
          const size_t dst = size_t((h * capacity + p) * s.head_dim + d);
          ASSERT_EQ(keys_host[dst], fp32_to_fp16(k[src]));
          ASSERT_EQ(values_host[dst], fp32_to_fp16(v[src]));
        }

    // Tokens with n_kv on both sides of the 1024-position chunks.
    const std::vector<int32_t> n_kv = {1, 5, 1024, 1025, 2500};
    const int64_t n_tokens = int64_t(n_kv.size());
    const std::vector<float> q = random_floats(n_tokens * s.n_heads * s.head_dim, 13, -1.0f, 1.0f);
    const DeviceBuffer q_dev = upload_vector(q), n_kv_dev = upload_vector(n_kv);
    DeviceBuffer out_dev(q.size() * sizeof(float));
    const float scale = 1.0f / std::sqrt(float(s.head_dim));
    attention_decode(q_dev.as<float>(), n_tokens, s.n_heads, cache, n_kv_dev.as<int32_t>(), scale, out_dev.as<float>());
    const auto out = download_vector<float>(out_dev, q.size());
    const int group = s.n_heads / s.n_kv_heads;
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int h = 0; h < s.n_heads; ++h) {
        const int kvh = h / group;
        const float* qh = q.data() + (t * s.n_heads + h) * s.head_dim;
        std::vector<double> scores(size_t(n_kv[size_t(t)]));
        double max_score = -1e300;
        for (int64_t p = 0; p < n_kv[size_t(t)]; ++p) {
          double dot = 0;
          for (int d = 0; d < s.head_dim; ++d)
            dot += double(qh[d]) * fp16_to_fp32(keys_host[size_t((kvh * capacity + p) * s.head_dim + d)]);
          scores[size_t(p)] = dot * scale;
          max_score = std::max(max_score, scores[size_t(p)]);
        }
        double denom = 0;
        for (double& sc : scores) denom += (sc = std::exp(sc - max_score));
        for (int d = 0; d < s.head_dim; ++d) {
          double want = 0;
          for (int64_t p = 0; p < n_kv[size_t(t)]; ++p)
            want += scores[size_t(p)] * fp16_to_fp32(values_host[size_t((kvh * capacity + p) * s.head_dim + d)]);
          want /= denom;
          ASSERT_NEAR(out[size_t((t * s.n_heads + h) * s.head_dim + d)], want, 2e-5)
              << "token " << t << " head " << h << " dim " << d;
        }
      }
  }
}

// ---- F16 head --------------------------------------------------------------------------------

// f32 accumulation in another order than dot_float_ref's double: within 1e-5 · Σ|w·x|.
TEST_F(CudaKernels, F16MatmulMatchesTheCpu) {
  for (int64_t cols : {2560, 100}) {
    for (int64_t n_tokens : {1, 3, 9}) {
      SCOPED_TRACE(std::to_string(cols) + " columns, " + std::to_string(n_tokens) + " tokens");
      const int64_t rows = 301;
      const std::vector<float> wf = random_floats(rows * cols, uint64_t(cols), -0.1f, 0.1f);
      std::vector<uint16_t> w16(wf.size());
      for (size_t i = 0; i < wf.size(); ++i) w16[i] = fp32_to_fp16(wf[i]);
      const std::vector<float> x = random_activations(n_tokens * cols, uint64_t(cols + n_tokens));
      const DeviceBuffer w_dev = upload_vector(w16), x_dev = upload_vector(x);
      DeviceBuffer y_dev(size_t(rows * n_tokens) * sizeof(float));
      f16_matmul(w_dev.as<uint16_t>(), rows, cols, x_dev.as<float>(), n_tokens, y_dev.as<float>());
      const auto y = download_vector<float>(y_dev, size_t(rows * n_tokens));
      std::vector<uint8_t> bytes(w16.size() * 2);
      std::memcpy(bytes.data(), w16.data(), bytes.size());
      const TensorView view = test::make_view(GgmlType::F16, cols, rows, bytes, "output.weight");
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
          const float want = dot_float_ref(view, r, x.data() + t * cols);
          double magnitude = 0;
          for (int64_t c = 0; c < cols; ++c)
            magnitude += std::fabs(double(fp16_to_fp32(w16[size_t(r * cols + c)])) * x[size_t(t * cols + c)]);
          ASSERT_NEAR(y[size_t(t * rows + r)], want, 1e-5 * magnitude + 1e-7) << "token " << t << " row " << r;
        }
    }
  }
}

TEST_F(CudaKernels, ProbeDescribesTheDevice) {
  const DeviceInfo info = probe();
  ASSERT_TRUE(info.available());
  for (const GpuInfo& g : info.gpus) {
    std::printf("GPU %d: %s, compute %d.%d, %d SMs, %.1f GiB (%.1f free)\n", g.index, g.name.c_str(), g.compute_major,
                g.compute_minor, g.multiprocessors, double(g.total_memory) / (1 << 30),
                double(g.free_memory) / (1 << 30));
    EXPECT_GE(g.compute_major, 8) << "the kernels are built for sm_80 and sm_90";
  }
}

}  // namespace
}  // namespace bitnet::cuda

#else  // built without CUDA

TEST(CudaKernels, NotBuilt) {
  GTEST_SKIP() << "no CUDA device: this build has no CUDA backend (configure with -DBITNET_CUDA=ON or AUTO with nvcc)";
}

#endif
