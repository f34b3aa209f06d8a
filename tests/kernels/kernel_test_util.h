#pragma once
// Shared inputs of the kernel tests: ternary weights with extreme rows, and int8 activation
// vectors including the extremes.
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include <string>

#include "kernels/kernels.h"
#include "tensor/quant_test_util.h"

namespace bitnet::test {

// Ternary weights with all three codes; per-256-block scales vary so TQ's d_b differ. Row 0 is
// all +1 and row 1 all −1 (with all-127 / all-−128 activations they overflow any int16 sum).
inline std::vector<float> ternary_weights(int64_t K, int64_t rows, uint64_t seed) {
  std::vector<int8_t> t = test::random_trits(K * rows, seed);
  for (int64_t c = 0; c < K; ++c) {
    t[size_t(c)] = 1;
    if (rows > 1) t[size_t(K + c)] = -1;
  }
  std::vector<float> x(t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    const float d = 0.01f + 0.001f * float((i / 256) % 7);
    x[i] = d * float(t[i]);
  }
  return x;
}

struct Token {
  std::vector<int8_t> q;
  ActivationQuant act;
  std::vector<int32_t> qsum;  // Σq per 256-block (K % 256 == 0), for the TQ kernels
};

// Activation vectors: quantized random floats, the extremes (all 127, all −128, alternating
// 127/−128), and random int8 with the full range.
inline std::vector<Token> tokens_for(int64_t K, uint64_t seed) {
  std::vector<Token> out;
  const auto x = test::random_floats(K, seed, -3, 3);
  Token a;
  a.q.resize(size_t(K));
  a.act = quantize_activations(x.data(), K, a.q.data());
  out.push_back(a);
  auto fill = [&](auto f) {
    Token tk;
    tk.q.resize(size_t(K));
    int32_t sum = 0;
    for (int64_t i = 0; i < K; ++i) sum += (tk.q[size_t(i)] = int8_t(f(i)));
    tk.act.scale = 0.8125f;
    tk.act.sum = sum;
    out.push_back(tk);
  };
  Rng rng(seed * 31 + 7);
  fill([](int64_t) { return 127; });
  fill([](int64_t) { return -128; });
  fill([](int64_t i) { return i % 2 ? 127 : -128; });
  fill([&](int64_t) { return rng.i8(); });
  for (Token& tk : out) {
    tk.qsum.resize(size_t(K / 256));
    kernels::block_qsums(tk.q.data(), K, 1, tk.qsum.data());
  }
  return out;
}

// Base fixture of the per-ISA kernel tests: skips ISAs this CPU lacks, naming the missing features.
class IsaTest : public ::testing::TestWithParam<kernels::Isa> {
 protected:
  void SetUp() override {
    if (!kernels::isa_supported(GetParam()))
      GTEST_SKIP() << "ISA " << kernels::isa_name(GetParam())
                   << " not supported by this CPU; missing: " << kernels::missing_features(GetParam());
  }
  const kernels::KernelSet& ks() const { return kernels::kernel_set(GetParam()); }
};

inline std::string isa_param_name(const ::testing::TestParamInfo<kernels::Isa>& info) {
  std::string name(kernels::isa_name(info.param));
  for (char& c : name)
    if (c == '-') c = '_';  // test names must be identifiers
  return name;
}

}  // namespace bitnet::test
