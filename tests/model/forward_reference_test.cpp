// The forward pass against an independent float64 evaluation of the same math, for every
// architecture × weight type on `tiny` models.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "formats/half.h"
#include "model/forward.h"
#include "tensor/quants.h"
#include "gguf_edit.h"
#include "model/reference64.h"
#include "test_data.h"

namespace bitnet {
namespace {

using namespace testing::ref64;

// Independent float64 model: logits for every position of `tokens` (one sequence).
std::vector<std::vector<double>> reference_logits(const Model& m, const std::vector<int32_t>& tokens) {
  const HParams& hp = m.hp;
  const bool neox = hp.arch.rope_style == ops::RopeStyle::Neox;
  struct L {
    Matrix q, k, v, o, g, u, d;
  };
  std::vector<L> lw;
  for (const auto& l : m.layers)
    lw.push_back({dequant(l.wq), dequant(l.wk), dequant(l.wv), dequant(l.wo), dequant(l.w_gate),
                  dequant(l.w_up), dequant(l.w_down)});
  const Matrix emb = dequant(m.tok_embd), out = dequant(m.output);
  std::vector<std::vector<std::vector<double>>> K(hp.n_layer), V(hp.n_layer);
  std::vector<std::vector<double>> result;
  for (size_t t = 0; t < tokens.size(); ++t) {
    std::vector<double> x(emb.begin() + tokens[t] * hp.n_embd, emb.begin() + (tokens[t] + 1) * hp.n_embd);
    for (int64_t il = 0; il < hp.n_layer; ++il) {
      const LayerWeights& w = m.layers[size_t(il)];
      auto h = rmsnorm64(x, w.attn_norm, hp.norm_eps);
      auto q = linear64(w.wq, lw[il].q, h), k = linear64(w.wk, lw[il].k, h), v = linear64(w.wv, lw[il].v, h);
      for (int64_t hh = 0; hh < hp.n_head; ++hh) rope64(&q[hh * hp.head_dim], hp.n_rot, int64_t(t), hp.rope_base, neox);
      for (int64_t hh = 0; hh < hp.n_head_kv; ++hh) rope64(&k[hh * hp.head_dim], hp.n_rot, int64_t(t), hp.rope_base, neox);
      // The model caches K and V in f16 (as llama.cpp does): part of the math being checked.
      for (double& e : k) e = fp16_to_fp32(fp32_to_fp16(float(e)));
      for (double& e : v) e = fp16_to_fp32(fp32_to_fp16(float(e)));
      K[il].push_back(k);
      V[il].push_back(v);
      std::vector<double> o(static_cast<size_t>(hp.q_dim()));
      for (int64_t hh = 0; hh < hp.n_head; ++hh) {
        const int64_t kvh = hh / (hp.n_head / hp.n_head_kv);
        std::vector<double> s(t + 1);
        double mx = -1e300, sum = 0;
        for (size_t p = 0; p <= t; ++p) {
          double d = 0;
          for (int64_t i = 0; i < hp.head_dim; ++i) d += q[hh * hp.head_dim + i] * K[il][p][kvh * hp.head_dim + i];
          s[p] = d / std::sqrt(double(hp.head_dim));
          mx = std::max(mx, s[p]);
        }
        for (double& e : s) sum += e = std::exp(e - mx);
        for (size_t p = 0; p <= t; ++p)
          for (int64_t i = 0; i < hp.head_dim; ++i) o[hh * hp.head_dim + i] += s[p] / sum * V[il][p][kvh * hp.head_dim + i];
      }
      if (!w.attn_sub_norm.empty()) o = rmsnorm64(o, w.attn_sub_norm, hp.norm_eps);
      auto a = linear64(w.wo, lw[il].o, o);
      for (size_t i = 0; i < x.size(); ++i) x[i] += a[i];
      h = rmsnorm64(x, w.ffn_norm, hp.norm_eps);
      auto g = linear64(w.w_gate, lw[il].g, h), u = linear64(w.w_up, lw[il].u, h);
      for (size_t i = 0; i < g.size(); ++i) {
        const double z = g[i];
        g[i] = (hp.activation == FfnActivation::ReluSquared ? (z > 0 ? z * z : 0.0) : z / (1 + std::exp(-z))) * u[i];
      }
      if (!w.ffn_sub_norm.empty()) g = rmsnorm64(g, w.ffn_sub_norm, hp.norm_eps);
      auto dn = linear64(w.w_down, lw[il].d, g);
      for (size_t i = 0; i < x.size(); ++i) x[i] += dn[i];
    }
    auto y = rmsnorm64(x, m.output_norm, hp.norm_eps);
    result.push_back(linear64(m.output, out, y));
  }
  return result;
}

struct Case {
  std::string arch;
  GgmlType type;
  // TQ2_0 with a different scale in every block of a row: the loader keeps such tensors as TQ2_0
  // (single-scale ones, as the generator writes, are repacked to I2_S), so the TQ2_0 kernels run.
  bool per_block_scales = false;
  std::string preset = "tiny";  // tiny-odd: rows that are not whole 128-blocks, head size 100
};

// The model file of a case: the generated one, or its TQ2_0 blocks' d scaled by 1, 1.25, 1.5, …
std::vector<uint8_t> case_file(const Case& c) {
  return testing::edited_gguf(testing::dummy_model(c.arch, c.preset, c.type), [&](auto&, auto& tensors) {
    if (!c.per_block_scales) return;
    for (testing::TensorCopy& t : tensors) {
      if (t.type != GgmlType::TQ2_0) continue;
      for (size_t b = 0; b * 66 < t.bytes.size(); ++b) {
        const float d = fp16_to_fp32(load_u16(&t.bytes[b * 66 + 64])) * (1.0f + 0.25f * float(b % 4));
        const uint16_t d16 = fp32_to_fp16(d);
        std::memcpy(&t.bytes[b * 66 + 64], &d16, 2);
      }
    }
  });
}

class ForwardReference : public ::testing::TestWithParam<Case> {};

TEST_P(ForwardReference, MatchesFloat64Evaluation) {
  const Case c = GetParam();
  const std::vector<uint8_t> file = case_file(c);
  const auto model = load_model(GgufFile::parse(file));
  bool has_tq2 = false;
  for (const LayerWeights& w : model->layers) has_tq2 |= w.wq.type == GgmlType::TQ2_0;
  EXPECT_EQ(has_tq2, c.per_block_scales) << "which TQ2_0 tensors the loader keeps";
  if (c.preset == "tiny-odd" && ggml_type_is_ternary(c.type))
    for (const LayerWeights& w : model->layers) {
      EXPECT_EQ(w.w_down.pad_cols, 640 - 544) << "ffn_down rows padded to whole 128-blocks";
      EXPECT_EQ(w.wq.pad_cols, 512 - 400);
    }
  const std::vector<int32_t> tokens = model->tokenizer->encode("The quick brown fox jumps over", true, false);
  ASSERT_GE(tokens.size(), 5u);

  ThreadPool pool(2);
  KvCache cache(model->hp.n_layer, 1, 64, model->hp.n_head_kv, model->hp.head_dim);
  Batch b;  // the prompt in one batch, logits at every position
  for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], int32_t(i), 0, true);
  const std::vector<float> logits = forward(*model, cache, b, pool);
  const auto ref = reference_logits(*model, tokens);
  // Tolerance. Float-stored weights: the engine differs from float64 only by f32 rounding and
  // the f16 KV cache (modelled above), so logits (std ≈ 2) agree to 5e-2 absolute.
  // Ternary, Q8_0 and Q6_K weights: int8 activation quantization (per token / per block) is a step function; an f32-vs-f64
  // difference of one ulp can put an element on the other side of a rounding boundary, moving
  // that q by 1 (1/127 of the row's largest input), and later layers carry the change on. That
  // shows as a few-percent relative difference in some positions' logits (measured: at most
  // ~3% relative RMS, 0.35 absolute), so we require relative RMS error < 5% and max error
  // < 0.2·std per position. Any real defect (wrong layout, scale, norm, RoPE pairing,
  // activation) decorrelates the logits: relative RMS error ≈ 100%.
  const int64_t V = model->hp.n_vocab;
  const bool quantized_input = ggml_type_is_ternary(c.type) || q8_activation_block(c.type) != 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    double max_err = 0, err_sq = 0, ref_sq = 0;
    for (int64_t v = 0; v < V; ++v) {
      const double d = double(logits[t * V + v]) - ref[t][v];
      max_err = std::max(max_err, std::fabs(d));
      err_sq += d * d;
      ref_sq += ref[t][v] * ref[t][v];
    }
    const double std_dev = std::sqrt(ref_sq / double(V)), rel_rms = std::sqrt(err_sq / ref_sq);
    EXPECT_GT(std_dev, 0.5) << "logits should have a standard deviation of a few units";
    EXPECT_LT(std_dev, 20.0);
    if (quantized_input) {
      EXPECT_LT(rel_rms, 0.05) << "position " << t;
      EXPECT_LT(max_err, 0.2 * std_dev) << "position " << t;
    } else {
      EXPECT_LT(max_err, 5e-2) << "position " << t;
    }
  }
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const char* arch : {"bitnet-b1.58", "bitnet", "llama"})
    for (GgmlType t : {GgmlType::I2_S, GgmlType::TQ1_0, GgmlType::TQ2_0, GgmlType::F32, GgmlType::F16,
                       GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q6_K})
      cases.push_back({arch, t});
  for (const char* arch : {"bitnet-b1.58", "bitnet", "llama"}) cases.push_back({arch, GgmlType::TQ2_0, true});
  // TQ1_0/TQ2_0 cannot store rows of 400 or 544 (not whole 256-blocks): the generator writes them
  // as I2_S, as convert and quantize do, and the loader pads their rows.
  for (const char* arch : {"bitnet-b1.58", "bitnet", "llama"})
    for (GgmlType t : {GgmlType::I2_S, GgmlType::TQ2_0, GgmlType::F16}) cases.push_back({arch, t, false, "tiny-odd"});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllArchsAndTypes, ForwardReference, ::testing::ValuesIn(all_cases()),
                         [](const auto& info) {
                           std::string n = info.param.arch + "_" + std::string(ggml_type_name(info.param.type)) +
                                         (info.param.per_block_scales ? "_block_scales" : "") +
                                         (info.param.preset != "tiny" ? "_" + info.param.preset : "");
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace bitnet
