// The LM head's storage type (bitnet quantize --output-tensor-type): logits of an F16, Q8_0 or
// Q6_K head against the same model with an F32 head. Prints the measured error (docs/kernels.md
// quotes it) and bounds it well above what each type's rounding gives, far below a wrong decode.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "conversion/requantize.h"
#include "model/forward.h"
#include "test_data.h"

namespace bitnet {
namespace {

std::vector<float> prompt_logits(const Model& m, const std::vector<int32_t>& tokens) {
  ThreadPool pool(2);
  KvCache cache(m.hp.n_layer, 1, 64, m.hp.n_head_kv, m.hp.head_dim);
  Batch b;
  for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], int32_t(i), 0, true);
  return forward(m, cache, b, pool);
}

TEST(HeadTypes, LogitErrorAgainstAnF32HeadIsWithinEachTypesBound) {
  // `llama` (the HF1BitLLM models) has an untied output.weight, so only the head changes below.
  const std::string f32 = testing::dummy_model("llama", "tiny", GgmlType::I2_S, GgmlType::F32);
  const auto reference = load_model(f32);
  const auto tokens = reference->tokenizer->encode("The head type decides how many bytes a token reads", true, false);
  const std::vector<float> want = prompt_logits(*reference, tokens);
  double ref_sq = 0;
  for (float x : want) ref_sq += double(x) * x;
  const double ref_rms = std::sqrt(ref_sq / double(want.size()));
  ASSERT_GT(ref_rms, 0.5) << "logits of a few units";

  struct Bound {
    GgmlType type;
    double max_rel_rms;
  };
  for (const Bound& b : {Bound{GgmlType::F16, 2e-3}, Bound{GgmlType::Q8_0, 1e-2}, Bound{GgmlType::Q6_K, 3e-2}}) {
    SCOPED_TRACE(ggml_type_name(b.type));
    const std::string out = (testing::temp_dir() / ("head-" + std::string(ggml_type_name(b.type)) + ".gguf")).string();
    RequantizeOptions o;
    o.type = GgmlType::I2_S;
    o.embedding_type = GgmlType::F32;  // token_embd as it was: only the head changes
    o.output_type = b.type;
    requantize_gguf(f32, out, o);
    const auto m = load_model(out);
    ASSERT_EQ(m->output.type, b.type);
    ASSERT_EQ(m->tok_embd.type, GgmlType::F32);
    const std::vector<float> got = prompt_logits(*m, tokens);
    ASSERT_EQ(got.size(), want.size());
    double err_sq = 0, max_err = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const double d = double(got[i]) - want[i];
      err_sq += d * d;
      max_err = std::max(max_err, std::fabs(d));
    }
    const double rel_rms = std::sqrt(err_sq / double(want.size())) / ref_rms;
    std::printf("head %-5s: logit error vs F32 head: relative RMS %.2e, max %.3f (logit RMS %.2f)\n",
                std::string(ggml_type_name(b.type)).c_str(), rel_rms, max_err, ref_rms);
    EXPECT_GT(rel_rms, 0.0) << "the head was re-encoded, so the logits move a little";
    EXPECT_LT(rel_rms, b.max_rel_rms);
  }
}

}  // namespace
}  // namespace bitnet
