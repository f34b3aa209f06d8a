// HF checkpoint → GGUF: metadata, tensor layout, exact ternarization, packed checkpoints, the
// LLaMA q/k permutation, logits, and GGUF → GGUF re-quantization.
#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>

#include "output_files.h"
#include "conversion/hf_convert.h"
#include "conversion/requantize.h"
#include "hf_fixture.h"
#include "kernels/thread_pool.h"
#include "model/forward.h"
#include "model/model.h"
#include "ops/ops.h"
#include "tensor/quants.h"

namespace bitnet {
namespace {

namespace fs = std::filesystem;
using testing::HfModel;

fs::path fresh_dir(const std::string& name) {
  const fs::path d = testing::temp_dir() / name;
  fs::remove_all(d);
  return d;
}

std::string convert(const fs::path& dir, GgmlType type, std::optional<GgmlType> emb = std::nullopt,
                    const std::string& suffix = "") {
  const std::string out = (dir.string() + "-" + std::string(ggml_type_name(type)) + suffix + ".gguf");
  ConvertOptions o;
  o.type = type;
  o.embedding_type = emb;
  convert_hf_checkpoint(dir.string(), out, o);
  return out;
}

RequantizeOptions requant_options(GgmlType type) {
  RequantizeOptions o;
  o.type = type;
  return o;
}

std::vector<float> decode(const GgufFile& f, const std::string& name) {
  const TensorView v = f.view(name);
  EXPECT_TRUE(v.valid()) << name;
  if (!v.valid()) return {};
  std::vector<float> out(size_t(v.elements()));
  dequantize_rows(v, 0, v.rows(), out.data());
  return out;
}

// HF rotate_half rows → adjacent pairs, written out from the spec formula (architectures.md §1).
std::vector<float> spec_permute(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t heads) {
  std::vector<float> out(w.size());
  const int64_t hd = rows / heads;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t l = 0; l < 2; ++l)
      for (int64_t i = 0; i < hd / 2; ++i)
        std::copy_n(&w[size_t((h * hd + l * hd / 2 + i) * cols)], cols, &out[size_t((h * hd + 2 * i + l) * cols)]);
  return out;
}

std::vector<float> ternarized(std::vector<float> w) {
  ternarize_absmean(w.data(), int64_t(w.size()));
  return w;
}

const char* const kProj[][2] = {{"self_attn.q_proj", "attn_q"},    {"self_attn.k_proj", "attn_k"},
                                {"self_attn.v_proj", "attn_v"},    {"self_attn.o_proj", "attn_output"},
                                {"mlp.gate_proj", "ffn_gate"},     {"mlp.up_proj", "ffn_up"},
                                {"mlp.down_proj", "ffn_down"}};

// Every projection of the GGUF equals the expected ternary tensor exactly.
void expect_projections(const GgufFile& f, HfModel& m, bool ternarize, bool permute) {
  const int64_t hd = m.d / m.H;
  for (int64_t i = 0; i < m.L; ++i)
    for (const auto& [hf, gg] : kProj) {
      const std::string hname = "model.layers." + std::to_string(i) + "." + hf + ".weight";
      const std::string gname = "blk." + std::to_string(i) + "." + gg + ".weight";
      std::vector<float> want = ternarize ? ternarized(m.values[hname]) : m.values[hname];
      const int64_t rows = std::string(gg) == "attn_q" ? m.H * hd : std::string(gg) == "attn_k" ? m.Hkv * hd : 0;
      if (permute && rows) want = spec_permute(want, rows, m.d, rows / hd);
      EXPECT_EQ(decode(f, gname), want) << gname;
    }
}

TEST(Convert, BitNetMetadataShapesAndExactTernarization) {
  HfModel m;
  const fs::path dir = fresh_dir("b158");
  testing::write_checkpoint(dir, m);
  const GgufFile f = GgufFile::open(convert(dir, GgmlType::I2_S));
  EXPECT_EQ(f.get_string("general.architecture"), "bitnet-b1.58");
  EXPECT_EQ(f.get_uint("general.file_type"), 40u);
  EXPECT_EQ(f.get_uint("bitnet-b1.58.embedding_length"), 256u);
  EXPECT_EQ(f.get_uint("bitnet-b1.58.block_count"), 2u);
  EXPECT_EQ(f.get_uint("bitnet-b1.58.attention.head_count"), 4u);
  EXPECT_EQ(f.get_uint("bitnet-b1.58.attention.head_count_kv"), 2u);
  EXPECT_EQ(f.get_uint("bitnet-b1.58.feed_forward_length"), 512u);
  EXPECT_EQ(f.get_uint("bitnet-b1.58.context_length"), 512u);
  EXPECT_EQ(f.get_uint("bitnet-b1.58.rope.dimension_count"), 64u);
  EXPECT_EQ(f.get_uint("bitnet-b1.58.vocab_size"), uint64_t(m.n_vocab));
  EXPECT_FLOAT_EQ(float(*f.get_float("bitnet-b1.58.rope.freq_base")), 500000.0f);
  EXPECT_FLOAT_EQ(float(*f.get_float("bitnet-b1.58.attention.layer_norm_rms_epsilon")), 1e-5f);
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "llama-bpe");

  ASSERT_EQ(f.tensors().size(), 2u + 11u * 2u);
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
  const auto* emb = f.find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->type, GgmlType::F16);
  EXPECT_EQ(emb->ne[0], 256);
  EXPECT_EQ(emb->ne[1], m.n_vocab);
  const auto* k = f.find_tensor("blk.1.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->type, GgmlType::I2_S);
  EXPECT_EQ(k->ne[0], 256);
  EXPECT_EQ(k->ne[1], 128);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_down.weight")->ne[0], 512);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_sub_norm.weight")->ne[0], 512);
  EXPECT_EQ(f.find_tensor("blk.0.attn_sub_norm.weight")->type, GgmlType::F32);

  expect_projections(f, m, true, false);
  EXPECT_EQ(decode(f, "blk.1.ffn_sub_norm.weight"), m.values["model.layers.1.mlp.ffn_sub_norm.weight"]);
  EXPECT_EQ(decode(f, "output_norm.weight"), m.values["model.norm.weight"]);
  std::vector<float> e = m.values["model.embed_tokens.weight"];
  for (float& x : e) x = fp16_to_fp32(fp32_to_fp16(x));
  EXPECT_EQ(decode(f, "token_embd.weight"), e);
  EXPECT_NO_THROW(load_model(f.path()));
}

TEST(Convert, ShardedCheckpointGivesTheSameFileAsASingleOne) {
  HfModel a, b;
  b.shards = 3;
  const fs::path da = fresh_dir("single"), db = fresh_dir("sharded");
  testing::write_checkpoint(da, a);
  testing::write_checkpoint(db, b);
  ASSERT_TRUE(fs::exists(db / "model-00003-of-00003.safetensors"));
  EXPECT_EQ(testing::read_bytes(convert(da, GgmlType::TQ2_0)), testing::read_bytes(convert(db, GgmlType::TQ2_0)));
}

TEST(Convert, LlamaPermutesQkRowsAndKeepsAnUntiedHead) {
  HfModel m;
  m.hf_arch = "LlamaForCausalLM";
  m.act = "silu";
  m.tied = false;
  const fs::path dir = fresh_dir("llama");
  testing::write_checkpoint(dir, m);
  const GgufFile f = GgufFile::open(convert(dir, GgmlType::F32));
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_uint("general.file_type"), 0u);
  EXPECT_EQ(f.find_tensor("blk.0.attn_sub_norm.weight"), nullptr);
  ASSERT_NE(f.find_tensor("output.weight"), nullptr);
  EXPECT_EQ(f.find_tensor("output.weight")->type, GgmlType::F32) << "f32 output keeps f32 embeddings";
  EXPECT_EQ(decode(f, "output.weight"), m.values["lm_head.weight"]);
  expect_projections(f, m, true, true);
  EXPECT_NO_THROW(load_model(f.path()));
}

// What the permutation is for: NORM RoPE on the permuted rows equals HF's rotate_half RoPE on the
// original rows, permuted the same way.
TEST(Convert, PermutedRowsTurnRotateHalfIntoAdjacentPairRope) {
  const int64_t hd = 64, heads = 2;
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0, 1);
  std::vector<float> q(size_t(hd * heads));  // a projection output = one column of the weights
  for (float& x : q) x = n(rng);
  std::vector<float> permuted = q;
  permute_qk_rows(permuted.data(), hd * heads, 1, heads);
  for (int64_t h = 0; h < heads; ++h) {
    ops::rope(q.data() + h * hd, int(hd), 7, 10000.0f, 1.0f, ops::RopeStyle::Neox);
    ops::rope(permuted.data() + h * hd, int(hd), 7, 10000.0f, 1.0f, ops::RopeStyle::Norm);
  }
  permute_qk_rows(q.data(), hd * heads, 1, heads);
  for (size_t i = 0; i < q.size(); ++i) EXPECT_FLOAT_EQ(permuted[i], q[i]) << i;
}

TEST(Convert, PackedCheckpointsMultiplyOrDivideTheScale) {
  for (const auto& [arch, cls] : std::vector<std::pair<std::string, std::string>>{
           {"BitNetForCausalLM", ""}, {"LlamaForCausalLM", ""}, {"BitNetForCausalLM", "bitlinear"}}) {
    HfModel m;
    m.hf_arch = arch;
    m.act = arch == "LlamaForCausalLM" ? "silu" : "relu2";
    m.packed = true;
    m.quant_linear_class = cls;
    m.L = 1;
    const fs::path dir = fresh_dir("packed-" + arch + cls);
    testing::write_checkpoint(dir, m);
    const GgufFile f = GgufFile::open(convert(dir, GgmlType::I2_S));
    SCOPED_TRACE(arch + " " + cls);
    expect_projections(f, m, false, arch == "LlamaForCausalLM");
  }
}

TEST(Convert, OneBitLlmNamesGiveArchBitnet) {
  HfModel m;
  m.hf_arch = "BitnetForCausalLM";
  m.act = "silu";
  m.H = m.Hkv = 4;
  m.one_bit_llm_names = true;
  m.L = 1;
  const fs::path dir = fresh_dir("onebit");
  testing::write_checkpoint(dir, m);
  const GgufFile f = GgufFile::open(convert(dir, GgmlType::I2_S));
  EXPECT_EQ(f.get_string("general.architecture"), "bitnet");
  EXPECT_EQ(decode(f, "blk.0.attn_sub_norm.weight"), m.values["model.layers.0.self_attn.inner_attn_ln.weight"]);
  EXPECT_EQ(decode(f, "blk.0.ffn_sub_norm.weight"), m.values["model.layers.0.mlp.ffn_layernorm.weight"]);
  expect_projections(f, m, true, false);
}

std::vector<float> logits(const std::string& path, const std::vector<int32_t>& tokens) {
  const auto model = load_model(path);
  KvCache cache(model->hp.n_layer, 1, 64, model->hp.n_head_kv, model->hp.head_dim);
  Batch b;
  for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], int32_t(i), 0, true);
  ThreadPool pool(2);
  return forward(*model, cache, b, pool);
}

double relative_rms(const std::vector<float>& a, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - ref[i]) * (double(a[i]) - ref[i]);
    den += double(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);
}

// The converted I2_S model computes what the f32 conversion (= the ternarized HF weights as
// floats, checked exactly above) computes. The only difference is I2_S's int8 activation
// quantization (1/254 of each token's max per projection input), so a few-percent relative
// RMS error is the honest bound (measured: 1–3 %); wrong weights or a wrong layout give ≈ 100 %.
// TQ2_0 differs from I2_S only by the f16 rounding of its block scale, but that moves some int8
// activations across a rounding boundary in later layers, so it gets the same bound.
TEST(Convert, LogitsOfTernaryConversionsMatchTheFloatConversion) {
  for (const std::string arch : {"BitNetForCausalLM", "LlamaForCausalLM"}) {
    SCOPED_TRACE(arch);
    HfModel m;
    m.hf_arch = arch;
    m.act = arch == "LlamaForCausalLM" ? "silu" : "relu2";
    m.tied = arch != "LlamaForCausalLM";
    const fs::path dir = fresh_dir("logits-" + arch);
    testing::write_checkpoint(dir, m);
    const std::vector<int32_t> tokens = {256, 72, 101, 108, 108, 111, 257, 32, 259};
    const auto f32 = logits(convert(dir, GgmlType::F32), tokens);
    const auto i2s = logits(convert(dir, GgmlType::I2_S, GgmlType::F32), tokens);
    const auto tq2 = logits(convert(dir, GgmlType::TQ2_0, GgmlType::F32), tokens);
    ASSERT_EQ(f32.size(), tokens.size() * size_t(m.n_vocab));
    std::printf("relative RMS: i2_s vs f32 %.4f, tq2_0 vs f32 %.4f, tq2_0 vs i2_s %.4f\n",
                relative_rms(i2s, f32), relative_rms(tq2, f32), relative_rms(tq2, i2s));
    EXPECT_LT(relative_rms(i2s, f32), 0.05);
    EXPECT_LT(relative_rms(tq2, f32), 0.05);
  }
}

TEST(Convert, QuantizeFromF32IsByteIdenticalToDirectConversion) {
  HfModel m;
  const fs::path dir = fresh_dir("roundtrip");
  testing::write_checkpoint(dir, m);
  const std::string f32 = convert(dir, GgmlType::F32);
  for (GgmlType t : {GgmlType::I2_S, GgmlType::TQ1_0, GgmlType::TQ2_0, GgmlType::F16}) {
    SCOPED_TRACE(ggml_type_name(t));
    const std::string direct = convert(dir, t);
    const std::string requant = dir.string() + "-requant.gguf";
    requantize_gguf(f32, requant, requant_options(t));
    EXPECT_EQ(testing::read_bytes(requant), testing::read_bytes(direct));
    // Ternary → ternary keeps the weights: I2_S → TQ2_0 equals the direct TQ2_0 too.
    if (t == GgmlType::I2_S) {
      const std::string tq2 = dir.string() + "-i2s-to-tq2.gguf";
      requantize_gguf(direct, tq2, requant_options(GgmlType::TQ2_0));
      EXPECT_EQ(testing::read_bytes(tq2), testing::read_bytes(convert(dir, GgmlType::TQ2_0)));
    }
  }
}

TEST(Convert, QuantizeRefusesNonTernaryFloatProjections) {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("general.file_type", 0);
  std::vector<float> x(256 * 4);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7) * 0.1f;
  w.add_tensor_bytes("blk.0.attn_q.weight", GgmlType::F32, {256, 4},
                     std::vector<uint8_t>(reinterpret_cast<uint8_t*>(x.data()), reinterpret_cast<uint8_t*>(x.data() + x.size())));
  const std::string in = (testing::temp_dir() / "nonternary.gguf").string(), out = in + ".out";
  w.write(in);
  try {
    requantize_gguf(in, out, requant_options(GgmlType::I2_S));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'blk.0.attn_q.weight' is not ternary"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(testing::temp_output_left(out));
}

TEST(Convert, EmbeddingTypesAreHonoured) {
  HfModel m;
  m.L = 1;
  const fs::path dir = fresh_dir("embtypes");
  testing::write_checkpoint(dir, m);
  const auto& src = m.values["model.embed_tokens.weight"];
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q6_K, GgmlType::BF16}) {
    const GgufFile f = GgufFile::open(convert(dir, GgmlType::I2_S, t, "-emb"));
    EXPECT_EQ(f.find_tensor("token_embd.weight")->type, t);
    const auto d = decode(f, "token_embd.weight");
    const auto want = quantize_tensor(t, src.data(), m.d, m.n_vocab);
    EXPECT_EQ(std::vector<uint8_t>(f.tensor_data(*f.find_tensor("token_embd.weight")),
                                   f.tensor_data(*f.find_tensor("token_embd.weight")) + want.size()),
              want) << ggml_type_name(t);
  }
}

// llama-quantize's head options: --output-tensor-type sets output.weight only (token_embd where
// the model ties them), --token-embedding-type token_embd only; the rest keeps --embedding-type.
TEST(Convert, QuantizeOutputAndTokenEmbeddingTypesApplyToTheirTensorOnly) {
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    HfModel m;
    m.L = 1;
    m.hf_arch = "LlamaForCausalLM";  // an architecture that may untie the head
    m.act = "silu";
    m.tied = tied;
    const fs::path dir = fresh_dir(tied ? "headtype-tied" : "headtype");
    testing::write_checkpoint(dir, m);
    const std::string f32 = convert(dir, GgmlType::F32), out = dir.string() + "-q.gguf";
    RequantizeOptions o = requant_options(GgmlType::I2_S);
    o.output_type = GgmlType::Q6_K;
    requantize_gguf(f32, out, o);
    {
      const GgufFile f = GgufFile::open(out);
      EXPECT_EQ(f.find_tensor("token_embd.weight")->type, tied ? GgmlType::Q6_K : GgmlType::F16);
      if (!tied) {
        EXPECT_EQ(f.find_tensor("output.weight")->type, GgmlType::Q6_K);
      }
      EXPECT_EQ(f.find_tensor("blk.0.attn_q.weight")->type, GgmlType::I2_S);
    }
    o.output_type.reset();
    o.token_embedding_type = GgmlType::Q8_0;
    requantize_gguf(f32, out, o);
    const GgufFile f = GgufFile::open(out);
    EXPECT_EQ(f.find_tensor("token_embd.weight")->type, GgmlType::Q8_0);
    if (!tied) {
      EXPECT_EQ(f.find_tensor("output.weight")->type, GgmlType::F16);
    }
  }
}

// Widths a block type cannot store fall back, with a note, instead of failing: TQ2_0 rows of
// 384 (1.5 blocks of 256) are written as I2_S with the same trits, Q6_K ones as Q8_0.
TEST(Convert, QuantizeFallsBackForWidthsTheTypeCannotStore) {
  HfModel m;
  m.L = 1;
  m.d = 384;
  m.H = 6;
  m.Hkv = 2;
  m.F = 640;
  const fs::path dir = fresh_dir("fallback");
  testing::write_checkpoint(dir, m);
  const std::string f32 = convert(dir, GgmlType::F32), out = dir.string() + "-tq2.gguf";
  std::vector<std::string> notes;
  RequantizeOptions o = requant_options(GgmlType::TQ2_0);
  o.output_type = GgmlType::Q6_K;
  requantize_gguf(f32, out, o, {}, &notes);
  const GgufFile f = GgufFile::open(out);
  EXPECT_EQ(f.find_tensor("blk.0.attn_q.weight")->type, GgmlType::I2_S);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_down.weight")->type, GgmlType::I2_S);
  EXPECT_EQ(f.find_tensor("token_embd.weight")->type, GgmlType::Q8_0) << "tied: the head's type, Q6_K → Q8_0";
  const auto has_note = [&](const std::string& text) {
    return std::any_of(notes.begin(), notes.end(), [&](const std::string& n) { return n.find(text) != std::string::npos; });
  };
  EXPECT_TRUE(has_note("blk.0.ffn_down.weight: row length 640 is not a multiple of the TQ2_0 block size 256; stored as I2_S"));
  EXPECT_TRUE(has_note("token_embd.weight: row length 384 is not a multiple of the Q6_K block size 256; stored as Q8_0"));
  // The same trits: the I2_S tensors decode to the F32 file's values.
  const GgufFile src = GgufFile::open(f32);
  EXPECT_EQ(decode(f, "blk.0.ffn_down.weight"), decode(src, "blk.0.ffn_down.weight"));
}

}  // namespace
}  // namespace bitnet
