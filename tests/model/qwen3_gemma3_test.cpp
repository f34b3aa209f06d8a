// The qwen3 and gemma3 architectures (BitNet-embedding models, architectures.md §5) against an
// independent float64 evaluation: per-head q/k norms, per-projection input norms, head_dim ≠
// d/heads, Gemma's embedding scale, output norms, GELU, attention scale and sliding windows.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "formats/half.h"
#include "model/forward.h"
#include "model/reference64.h"
#include "synthetic_embedding_model.h"
#include "test_data.h"

namespace bitnet {
namespace {

using namespace testing::ref64;
using testing::Spec;
using testing::synthetic_model;

std::vector<double> maybe_norm(const std::vector<double>& x, const std::vector<float>& g, double eps) {
  return g.empty() ? x : rmsnorm64(x, g, eps);
}

// Output-normed hidden states at every position of one sequence, in float64.
std::vector<std::vector<double>> reference_hidden(const Model& m, const std::vector<int32_t>& tokens) {
  const HParams& hp = m.hp;
  const double eps = hp.norm_eps;
  struct L {
    Matrix q, k, v, o, g, u, d;
  };
  std::vector<L> lw;
  for (const auto& l : m.layers)
    lw.push_back({dequant(l.wq), dequant(l.wk), dequant(l.wv), dequant(l.wo), dequant(l.w_gate),
                  dequant(l.w_up), dequant(l.w_down)});
  const Matrix emb = dequant(m.tok_embd);
  const int64_t hd = hp.head_dim;
  std::vector<std::vector<std::vector<double>>> K(size_t(hp.n_layer)), V(size_t(hp.n_layer));
  std::vector<std::vector<double>> result;
  for (size_t t = 0; t < tokens.size(); ++t) {
    std::vector<double> x(emb.begin() + tokens[t] * hp.n_embd, emb.begin() + (tokens[t] + 1) * hp.n_embd);
    if (hp.arch.gemma)
      for (double& e : x) e *= double(float(std::sqrt(float(hp.n_embd))));
    for (int64_t il = 0; il < hp.n_layer; ++il) {
      const LayerWeights& w = m.layers[size_t(il)];
      const bool swa = hp.n_swa > 0 && (il + 1) % hp.swa_pattern != 0;
      const double base = swa ? hp.rope_base_swa : hp.rope_base;
      const auto h = rmsnorm64(x, w.attn_norm, eps);
      auto q = linear64(w.wq, lw[il].q, maybe_norm(h, w.q_norm_in, eps));
      auto k = linear64(w.wk, lw[il].k, maybe_norm(h, w.k_norm_in, eps));
      auto v = linear64(w.wv, lw[il].v, maybe_norm(h, w.v_norm_in, eps));
      for (int64_t hh = 0; hh < hp.n_head; ++hh) {
        std::vector<double> head(q.begin() + hh * hd, q.begin() + (hh + 1) * hd);
        head = rmsnorm64(head, w.attn_q_norm, eps);
        rope64(head.data(), hp.n_rot, int64_t(t), base, true);
        std::copy(head.begin(), head.end(), q.begin() + hh * hd);
      }
      for (int64_t hh = 0; hh < hp.n_head_kv; ++hh) {
        std::vector<double> head(k.begin() + hh * hd, k.begin() + (hh + 1) * hd);
        head = rmsnorm64(head, w.attn_k_norm, eps);
        rope64(head.data(), hp.n_rot, int64_t(t), base, true);
        std::copy(head.begin(), head.end(), k.begin() + hh * hd);
      }
      for (double& e : k) e = fp16_to_fp32(fp32_to_fp16(float(e)));  // the f16 cache
      for (double& e : v) e = fp16_to_fp32(fp32_to_fp16(float(e)));
      K[size_t(il)].push_back(k);
      V[size_t(il)].push_back(v);
      const double scale = hp.attn_scale > 0 ? hp.attn_scale : 1.0 / std::sqrt(double(hd));
      const size_t first = swa && int64_t(t) + 1 > hp.n_swa ? t + 1 - size_t(hp.n_swa) : 0;
      std::vector<double> o(size_t(hp.q_dim()));
      for (int64_t hh = 0; hh < hp.n_head; ++hh) {
        const int64_t kvh = hh / (hp.n_head / hp.n_head_kv);
        std::vector<double> sc(t + 1, 0.0);
        double mx = -1e300, sum = 0;
        for (size_t p = first; p <= t; ++p) {
          double d = 0;
          for (int64_t i = 0; i < hd; ++i) d += q[size_t(hh * hd + i)] * K[size_t(il)][p][size_t(kvh * hd + i)];
          mx = std::max(mx, sc[p] = d * scale);
        }
        for (size_t p = first; p <= t; ++p) sum += sc[p] = std::exp(sc[p] - mx);
        for (size_t p = first; p <= t; ++p)
          for (int64_t i = 0; i < hd; ++i) o[size_t(hh * hd + i)] += sc[p] / sum * V[size_t(il)][p][size_t(kvh * hd + i)];
      }
      auto a = maybe_norm(linear64(w.wo, lw[il].o, maybe_norm(o, w.o_norm_in, eps)), w.post_attn_norm, eps);
      for (size_t i = 0; i < x.size(); ++i) x[i] += a[i];
      const auto h2 = rmsnorm64(x, w.ffn_norm, eps);
      auto g = linear64(w.w_gate, lw[il].g, maybe_norm(h2, w.gate_norm_in, eps));
      const auto u = linear64(w.w_up, lw[il].u, maybe_norm(h2, w.up_norm_in, eps));
      for (size_t i = 0; i < g.size(); ++i) {
        const double z = g[i];
        const double act = hp.activation == FfnActivation::GeluTanh
                               ? 0.5 * z * (1 + std::tanh(std::sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)))
                               : z / (1 + std::exp(-z));
        g[i] = act * u[i];
      }
      auto dn = maybe_norm(linear64(w.w_down, lw[il].d, maybe_norm(g, w.down_norm_in, eps)), w.post_ffw_norm, eps);
      for (size_t i = 0; i < x.size(); ++i) x[i] += dn[i];
    }
    result.push_back(rmsnorm64(x, m.output_norm, eps));
  }
  return result;
}

class Qwen3Gemma3 : public ::testing::TestWithParam<Spec> {};

TEST_P(Qwen3Gemma3, HiddenStatesMatchFloat64Evaluation) {
  const Spec s = GetParam();
  const std::vector<uint8_t> file = synthetic_model(s);
  const auto model = load_model(GgufFile::parse(file));
  ASSERT_EQ(model->hp.head_dim, s.head_dim);
  ASSERT_EQ(model->layers[0].has_norm_in(), s.norm_in);
  std::vector<int32_t> tokens;
  for (int i = 0; i < 24; ++i) tokens.push_back(int32_t((i * 37 + 11) % model->hp.n_vocab));

  ThreadPool pool(2);
  KvCache cache(model->hp.n_layer, 1, 64, model->hp.n_head_kv, model->hp.head_dim);
  Batch b;
  for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], int32_t(i), 0, true);
  const std::vector<float> hidden = forward_hidden(*model, cache, b, pool);
  const auto ref = reference_hidden(*model, tokens);
  const int64_t d = model->hp.n_embd;
  // Output-normed hidden states have RMS ≈ 1 · gain. Float weights: f32 vs f64 only (< 1e-3);
  // ternary: int8 activation rounding flips carry through the layers (see forward_reference_test),
  // a defect decorrelates (cosine ≈ 0).
  const bool ternary = ggml_type_is_ternary(s.type);
  for (size_t t = 0; t < tokens.size(); ++t) {
    double dot = 0, nr = 0, nh = 0, max_err = 0;
    for (int64_t i = 0; i < d; ++i) {
      const double a = hidden[t * size_t(d) + size_t(i)], r = ref[t][size_t(i)];
      dot += a * r, nr += r * r, nh += a * a;
      max_err = std::max(max_err, std::fabs(a - r));
    }
    const double cosine = dot / std::sqrt(nr * nh);
    EXPECT_GT(std::sqrt(nr / double(d)), 0.3) << "hidden states of a sensible size";
    if (ternary)
      EXPECT_GT(cosine, 0.999) << "position " << t;
    else {
      EXPECT_GT(cosine, 0.999999) << "position " << t;
      EXPECT_LT(max_err, 2e-3) << "position " << t;
    }
  }
}

std::vector<Spec> all_specs() {
  std::vector<Spec> v;
  for (GgmlType t : {GgmlType::I2_S, GgmlType::F16, GgmlType::F32}) {
    v.push_back({"qwen3", t, true});
    v.push_back({"qwen3", t, false});
    // Gemma 3: window 5 on layers 0 and 1 of 3 (pattern 3), another attention scale, head 64.
    v.push_back({"gemma3", t, true, 64, 5, 3, 1.0f / 16});
    v.push_back({"gemma3", t, false, 128, 7, 2});
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(Archs, Qwen3Gemma3, ::testing::ValuesIn(all_specs()), [](const auto& info) {
  std::string n = info.param.arch + "_" + std::string(ggml_type_name(info.param.type)) +
                  (info.param.norm_in ? "_norm_in" : "_plain") + "_hd" + std::to_string(info.param.head_dim);
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
});

TEST(Qwen3Gemma3, WindowChangesOnlyPositionsBeyondIt) {
  // Same weights with and without a window: positions inside the window agree exactly.
  Spec with{"gemma3", GgmlType::F32, true, 64, 6, 2};
  with.rope_base_swa = 1e6f;  // the full layers' base: only the window differs
  Spec without = with;
  without.n_swa = 0;
  const auto fa = synthetic_model(with), fb = synthetic_model(without);
  const auto ma = load_model(GgufFile::parse(fa)), mb = load_model(GgufFile::parse(fb));
  ThreadPool pool(2);
  auto run = [&](const Model& m) {
    KvCache cache(m.hp.n_layer, 1, 32, m.hp.n_head_kv, m.hp.head_dim);
    Batch b;
    for (int i = 0; i < 12; ++i) b.add(int32_t(5 + 3 * i), i, 0, true);
    return forward_hidden(m, cache, b, pool);
  };
  const auto a = run(*ma), b = run(*mb);
  const size_t d = size_t(ma->hp.n_embd);
  for (size_t t = 0; t < 6; ++t)
    for (size_t i = 0; i < d; ++i) ASSERT_EQ(a[t * d + i], b[t * d + i]) << "position " << t;
  double diff = 0;
  for (size_t i = 6 * d; i < a.size(); ++i) diff += std::fabs(a[i] - b[i]);
  EXPECT_GT(diff, 1.0) << "beyond the window, the windowed layers see fewer positions";
}

TEST(Qwen3Gemma3, EmbeddingModelKeepsNoHeadAndRefusesGpuLayers) {
  Spec s;
  s.pooling = 3;
  const auto file = synthetic_model(s);
  const auto model = load_model(GgufFile::parse(file));
  EXPECT_TRUE(model->embedding_only());
  EXPECT_EQ(model->hp.pooling_type, 3);
  LoadOptions gpu;
  gpu.gpu_layers = 1;
  try {
    load_model(GgufFile::parse(file), gpu);
    FAIL() << "-ngl must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("-ngl"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace bitnet
