// -ngl offload (backends/cuda/offload.h). Without a GPU: the layer split, the memory estimate, the
// refusal (in process and through the `bitnet` binary) and that -ngl 0 changes nothing. With a GPU
// (each test skips with probe()'s reason otherwise): whole models of every architecture and
// ternary type give the CPU's logits within relative RMS 1e-3 and the same greedy tokens with
// -ngl n_layer/2 and all, for prompts, decode steps and several sequences in one batch.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <string>
#include <vector>

#include "backends/cuda/device.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/offload.h"
#include "model/forward.h"
#include "ops/ops.h"
#include "process_runner.h"
#include "runtime/generate.h"
#include "runtime/session.h"
#include "test_data.h"

namespace bitnet {
namespace {

const cuda::DeviceInfo& device() {
  static const cuda::DeviceInfo info = cuda::probe();
  return info;
}

#define SKIP_WITHOUT_GPU() \
  if (!device().available()) GTEST_SKIP() << "no CUDA device: " << device().error

// ---- host bookkeeping (every machine) --------------------------------------------------------

TEST(GpuOffloadSplit, LastLayersAndTheHeadOnlyForAll) {
  cuda::LayerSplit s = cuda::split_layers(30, 0);
  EXPECT_EQ(s.gpu_layers, 0);
  EXPECT_EQ(s.first_gpu_layer, 30);
  EXPECT_FALSE(s.output_on_gpu);
  s = cuda::split_layers(30, 15);
  EXPECT_EQ(s.gpu_layers, 15);
  EXPECT_EQ(s.first_gpu_layer, 15);
  EXPECT_FALSE(s.output_on_gpu);
  s = cuda::split_layers(30, 29);
  EXPECT_EQ(s.first_gpu_layer, 1);
  EXPECT_FALSE(s.output_on_gpu);
  s = cuda::split_layers(30, 30);
  EXPECT_EQ(s.first_gpu_layer, 0);
  EXPECT_TRUE(s.output_on_gpu);
  s = cuda::split_layers(30, 99);  // llama.cpp's "-ngl 99": everything
  EXPECT_EQ(s.gpu_layers, 30);
  EXPECT_EQ(s.first_gpu_layer, 0);
  EXPECT_TRUE(s.output_on_gpu);
}

TEST(GpuOffloadEstimate, ScalesWithLayersSequencesAndContext) {
  HParams hp;  // 2B-4T's shape
  hp.arch.sub_norms = true;
  hp.n_vocab = 128256, hp.n_embd = 2560, hp.n_layer = 30, hp.n_head = 20, hp.n_head_kv = 5, hp.head_dim = 128;
  hp.n_ff = 6912, hp.n_rot = 128;
  const auto none = cuda::estimate_offload(hp, cuda::split_layers(30, 0), false, true, 1, 4096, 512);
  EXPECT_EQ(none.total(), 0u);
  const auto all = cuda::estimate_offload(hp, cuda::split_layers(30, 99), false, true, 1, 4096, 512);
  const auto half = cuda::estimate_offload(hp, cuda::split_layers(30, 15), false, true, 1, 4096, 512);
  // 2 bits per weight: q 2560², k and v 640×2560, o 2560², gate/up 6912×2560, down 2560×6912 (all
  // whole 256-column blocks), plus f32 norms.
  const uint64_t ternary = (2560ull * 2560 * 2 + 640ull * 2560 * 2 + 6912ull * 2560 * 2 + 2560ull * 6912) / 4;
  const uint64_t norms = 4ull * (2 * 2560 + 2560 + 6912);
  EXPECT_EQ(half.weights, 15 * (ternary + norms));
  EXPECT_EQ(all.weights, 30 * (ternary + norms) + 128256ull * 2560 * 2 + 2560 * 4);  // + F16 head, output norm
  EXPECT_EQ(all.kv_cache, 2ull * 2 * 30 * 4096 * 640);                                // f16 K and V
  EXPECT_EQ(half.kv_cache, all.kv_cache / 2);
  const auto eight = cuda::estimate_offload(hp, cuda::split_layers(30, 99), false, true, 8, 4096, 512);
  EXPECT_EQ(eight.kv_cache, 8 * all.kv_cache);
  // TQ: one f16 scale per row and 256 columns on top.
  const auto tq = cuda::estimate_offload(hp, cuda::split_layers(30, 15), true, true, 1, 4096, 512);
  EXPECT_GT(tq.weights, half.weights);
  EXPECT_LT(tq.weights, half.weights * 105 / 100);
  // A non-F16 head stays on the CPU.
  const auto cpu_head = cuda::estimate_offload(hp, cuda::split_layers(30, 99), false, false, 1, 4096, 512);
  EXPECT_EQ(cpu_head.weights, 30 * (ternary + norms));
  EXPECT_GT(all.scratch, cpu_head.scratch);
  // 3B's widths: 3200 → 3328 and 8640 → 8704 padded columns.
  HParams b3 = hp;
  b3.n_embd = 3200, b3.n_head = 32, b3.n_head_kv = 32, b3.head_dim = 100, b3.n_ff = 8640, b3.n_rot = 100;
  b3.arch.sub_norms = false;
  const auto e3 = cuda::estimate_offload(b3, cuda::split_layers(26, 1), false, true, 1, 16, 1);
  EXPECT_EQ(e3.weights, (4ull * 3200 * 3328 + 2ull * 8640 * 3328 + 3200ull * 8704) / 4 + 4ull * 2 * 3200);
}

// ---- without a GPU: the refusal, and -ngl 0 is the CPU path ------------------------------------

TEST(GpuOffloadRefusal, LoadModelNamesTheProbesReason) {
  if (device().available()) GTEST_SKIP() << "a GPU is present: " << device().gpus[0].name;
  LoadOptions o;
  o.gpu_layers = 2;
  try {
    load_model(testing::dummy_model("bitnet-b1.58", "tiny", GgmlType::I2_S), o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("-ngl 2"), std::string::npos) << what;
    EXPECT_NE(what.find(device().error), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST(GpuOffloadRefusal, CliExitsWithOneLineError) {
  if (device().available()) GTEST_SKIP() << "a GPU is present: " << device().gpus[0].name;
  const std::string model = testing::dummy_model("bitnet-b1.58", "tiny", GgmlType::I2_S);
  const auto r = testing::run_process({testing::bin_dir() + "/bitnet", "run", "-m", model, "-p", "Hi", "-n", "4",
                                       "--temp", "0", "-c", "64", "-ngl", "99"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("-ngl 99"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(device().error), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.find("Segmentation"), std::string::npos);
}

TEST(GpuOffloadCpu, NglZeroIsTheCpuPathBitForBit) {
  const std::string model = testing::dummy_model("bitnet", "tiny", GgmlType::TQ2_0);
  const std::vector<std::string> base = {testing::bin_dir() + "/bitnet", "run", "-m", model, "-p", "Once upon",
                                         "-n", "12", "--temp", "0", "-c", "64", "-t", "2"};
  auto with_ngl = base;
  with_ngl.insert(with_ngl.end(), {"-ngl", "0"});
  const auto plain = testing::run_process(base), zero_flag = testing::run_process(with_ngl);
  ASSERT_EQ(plain.code, 0) << plain.err;
  ASSERT_EQ(zero_flag.code, 0) << zero_flag.err;
  EXPECT_FALSE(plain.out.empty());
  EXPECT_EQ(plain.out, zero_flag.out);
  // In process: no GPU object, and the same logits.
  LoadOptions zero;
  zero.gpu_layers = 0;
  const auto m0 = load_model(model), m1 = load_model(model, zero);
  EXPECT_EQ(m1->gpu, nullptr);
  ThreadPool pool(2);
  KvCache c0(m0->hp.n_layer, 1, 32, m0->hp.n_head_kv, m0->hp.head_dim);
  KvCache c1(m1->hp.n_layer, 1, 32, m1->hp.n_head_kv, m1->hp.head_dim);
  Batch b;
  for (int32_t i = 0; i < 6; ++i) b.add(3 + 5 * i, i, 0, true);
  EXPECT_EQ(forward(*m0, c0, b, pool), forward(*m1, c1, b, pool));
  EXPECT_EQ(c1.gpu_cache(), nullptr);
}

// ---- with a GPU: the element-wise kernels of a layer (layer_ops.cu) ----------------------------

#if defined(BITNET_WITH_CUDA) && BITNET_WITH_CUDA
TEST(GpuLayerOps, MatchTheCpuOps) {
  SKIP_WITHOUT_GPU();
  const int64_t n = 5000;
  std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    x[size_t(i)] = std::sin(0.37f * float(i)) * 3.0f;
    y[size_t(i)] = std::cos(0.11f * float(i)) * 2.0f - 0.3f;
  }
  auto device_result = [&](auto&& launch) {
    cuda::DeviceBuffer dx = cuda::upload_vector(x), dy = cuda::upload_vector(y);
    launch(dx.as<float>(), dy.as<float>());
    cuda::synchronize();
    return cuda::download_vector<float>(dx, size_t(n));
  };
  // scale, then residual add: the CPU's `y *= s; x += y`.
  std::vector<float> want = x;
  for (int64_t i = 0; i < n; ++i) want[size_t(i)] += y[size_t(i)] * 0.73f;
  EXPECT_EQ(device_result([&](float* dx, float* dy) { cuda::add_scaled(dx, dy, n, 0.73f); }), want);
  want = x;
  for (float& v : want) v *= 1.618f;
  EXPECT_EQ(device_result([&](float* dx, float*) { cuda::scale_in_place(dx, n, 1.618f); }), want);
  want = x;
  ops::relu_squared_mul(want.data(), y.data(), n);
  EXPECT_EQ(device_result([&](float* dx, float* dy) { cuda::relu_squared_mul(dx, dy, n); }), want);
  want = x;
  ops::silu_mul(want.data(), y.data(), n);
  const std::vector<float> silu = device_result([&](float* dx, float* dy) { cuda::silu_mul(dx, dy, n); });
  for (int64_t i = 0; i < n; ++i)
    EXPECT_NEAR(silu[size_t(i)], want[size_t(i)], 2e-6f * (1.0f + std::fabs(want[size_t(i)]))) << i;
  // gather: rows 3, 0, 3 of a 10 × 500 matrix.
  const std::vector<int32_t> rows = {3, 0, 3};
  cuda::DeviceBuffer src = cuda::upload_vector(x), idx = cuda::upload_vector(rows), dst(3 * 500 * sizeof(float));
  cuda::gather_rows(src.as<float>(), idx.as<int32_t>(), 3, 500, dst.as<float>());
  const std::vector<float> got = cuda::download_vector<float>(dst, 1500);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 500; ++c) ASSERT_EQ(got[size_t(r * 500 + c)], x[size_t(rows[size_t(r)] * 500 + c)]);
}
#endif

// ---- with a GPU: whole-model parity ----------------------------------------------------------

double relative_rms(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += double(got[i] - want[i]) * double(got[i] - want[i]);
    ref += double(want[i]) * double(want[i]);
  }
  return std::sqrt(diff / std::max(ref, 1e-30));
}

std::unique_ptr<Model> load_with(const std::string& path, int64_t ngl) {
  LoadOptions o;
  o.gpu_layers = ngl;
  return load_model(path, o);
}

std::vector<int32_t> greedy(const Model& m, const std::string& prompt, int n) {
  Session s(m, 128, 2, 4);  // prompts in batches of 4 tokens, then one token per step
  SamplingParams sp;
  sp.temperature = 0;
  Sampler sampler(sp);
  std::vector<int32_t> out;
  generate(s, s.set_tokens(m.tokenizer->encode(prompt, true, false)), sampler, {n, true}, [&](int32_t t) {
    out.push_back(t);
    return true;
  });
  return out;
}

struct ParityCase {
  const char* arch;
  GgmlType type;
};

class GpuOffloadParity : public ::testing::TestWithParam<ParityCase> {};

TEST_P(GpuOffloadParity, LogitsAndGreedyTokensMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const ParityCase pc = GetParam();
  const std::string path = testing::dummy_model(pc.arch, "tiny", pc.type);
  const auto cpu = load_model(path);
  const int64_t n_layer = cpu->hp.n_layer;
  const std::vector<int32_t> prompt = cpu->tokenizer->encode("The quick brown fox jumps over", true, false);
  ThreadPool pool(2);
  auto run = [&](const Model& m) {
    // The prompt as one batch (all logits), then 8 single-token steps.
    KvCache c(m.hp.n_layer, 1, 64, m.hp.n_head_kv, m.hp.head_dim);
    Batch b;
    for (size_t i = 0; i < prompt.size(); ++i) b.add(prompt[i], int32_t(i), 0, true);
    std::vector<float> all = forward(m, c, b, pool);
    for (int32_t step = 0; step < 8; ++step) {
      Batch one;
      one.add(int32_t((7 * step + 11) % m.hp.n_vocab), int32_t(prompt.size()) + step, 0, true);
      const std::vector<float> l = forward(m, c, one, pool);
      all.insert(all.end(), l.begin(), l.end());
    }
    return all;
  };
  const std::vector<float> want = run(*cpu);
  const std::vector<int32_t> want_tokens = greedy(*cpu, "Once upon a time", 32);
  for (const int64_t ngl : {n_layer / 2, n_layer, int64_t(99)}) {
    if (ngl == 0) continue;
    const auto gpu = load_with(path, ngl);
    ASSERT_NE(gpu->gpu, nullptr);
    const std::vector<float> got = run(*gpu);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_LE(relative_rms(got, want), 1e-3) << pc.arch << " " << ggml_type_name(pc.type) << " -ngl " << ngl;
    EXPECT_EQ(greedy(*gpu, "Once upon a time", 32), want_tokens)
        << pc.arch << " " << ggml_type_name(pc.type) << " -ngl " << ngl;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, GpuOffloadParity,
    ::testing::Values(ParityCase{"bitnet-b1.58", GgmlType::I2_S}, ParityCase{"bitnet-b1.58", GgmlType::TQ2_0},
                      ParityCase{"bitnet-b1.58", GgmlType::TQ1_0}, ParityCase{"bitnet", GgmlType::I2_S},
                      ParityCase{"bitnet", GgmlType::TQ2_0}, ParityCase{"bitnet", GgmlType::TQ1_0},
                      ParityCase{"llama", GgmlType::I2_S}, ParityCase{"llama", GgmlType::TQ2_0},
                      ParityCase{"llama", GgmlType::TQ1_0}),
    [](const ::testing::TestParamInfo<ParityCase>& i) {
      std::string name = std::string(i.param.arch) + "_" + std::string(ggml_type_name(i.param.type));
      for (char& ch : name)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return name;
    });

// Continuous batching: two sequences interleaved in shared batches (and a prefix copied between
// sequences, as the server does) give each sequence the CPU's logits.
TEST(GpuOffloadBatching, InterleavedSequencesAndPrefixCopyMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const std::string path = testing::dummy_model("llama", "tiny", GgmlType::TQ2_0);
  const auto cpu = load_model(path);
  ThreadPool pool(2);
  const auto s0 = cpu->tokenizer->encode("first sequence here", true, false);
  const auto s1 = cpu->tokenizer->encode("and a second, longer one", true, false);
  auto run = [&](const Model& m) {
    KvCache c(m.hp.n_layer, 3, 64, m.hp.n_head_kv, m.hp.head_dim);
    std::vector<float> all;
    for (size_t i = 0; i < std::max(s0.size(), s1.size()); ++i) {
      Batch b;
      if (i < s1.size()) b.add(s1[i], int32_t(i), 1, true);
      if (i < s0.size()) b.add(s0[i], int32_t(i), 0, i % 2 == 0);
      const auto l = forward(m, c, b, pool);
      all.insert(all.end(), l.begin(), l.end());
    }
    // Sequence 2 continues sequence 0's prefix.
    c.copy_prefix(0, 2, int64_t(s0.size()));
    c.set_length(2, int64_t(s0.size()));
    Batch b;
    b.add(s1[0], int32_t(s0.size()), 2, true);
    b.add(s1[1], int32_t(s0.size()) + 1, 2, true);
    const auto l = forward(m, c, b, pool);
    all.insert(all.end(), l.begin(), l.end());
    return all;
  };
  const std::vector<float> want = run(*cpu);
  for (const int64_t ngl : {cpu->hp.n_layer / 2, int64_t(99)}) {
    if (ngl == 0) continue;
    const std::vector<float> got = run(*load_with(path, ngl));
    ASSERT_EQ(got.size(), want.size());
    EXPECT_LE(relative_rms(got, want), 1e-3) << "-ngl " << ngl;
  }
}

TEST(GpuOffloadEstimate, MatchesWhatIsUploaded) {
  SKIP_WITHOUT_GPU();
  const std::string path = testing::dummy_model("bitnet-b1.58", "tiny", GgmlType::TQ2_0);
  const auto m = load_with(path, 99);
  const auto e = cuda::estimate_offload(*m, 99, 1, 64, 4);
  EXPECT_EQ(cuda::device_bytes(*m->gpu), e.weights);
}

}  // namespace
}  // namespace bitnet
