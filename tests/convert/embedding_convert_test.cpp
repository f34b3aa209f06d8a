// Qwen3 / Gemma 3 embedding checkpoints → GGUF (docs/embeddings-conversion.md): tensor mapping,
// BitNet per-projection norms, Gemma's 1 + w norms, ternarization of BitNet masters and plain
// teachers kept as floats, sentence-transformers pooling, the embedding tokenizer settings, the
// Gemma 3 sliding-window keys, and the errors for what cannot be represented. The checkpoints come
// from the synthetic writer (`convert --write-synthetic embed-tiny-*`) with a small stand-in
// tokenizer, so these tests do not depend on the real tokenizers' import; the end-to-end numbers
// against a PyTorch reference are python/tests/test_embedding_conversion.py.
#include <gtest/gtest.h>

#include <cmath>

#include "conversion/dummy_model.h"
#include "conversion/hf_checkpoint.h"
#include "conversion/hf_convert.h"
#include "conversion/hf_synthetic.h"
#include "errors.h"
#include "hf_fixture.h"
#include "tensor/quants.h"

namespace bitnet {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A vocabulary directory whose tokenizers/<arch>/ hold the small byte-level BPE plus the specials
// the converter looks up for embedding models.
std::string stand_in_vocab_dir() {
  const fs::path root = testing::temp_dir() / "embed-vocab";
  for (const char* arch : {"qwen3", "gemma3"}) {
    const fs::path d = root / "tokenizers" / arch;
    fs::create_directories(d);
    json tj = testing::small_bpe_tokenizer_json(false);
    int64_t id = int64_t(tj["model"]["vocab"].size() + tj["added_tokens"].size());
    for (const char* s : {"<|endoftext|>", "<eos>", "<bos>"})
      tj["added_tokens"].push_back({{"id", id++}, {"content", s}, {"special", true}});
    testing::write_text(d / "tokenizer.json", tj.dump());
    testing::write_text(d / "tokenizer_config.json", json{{"add_bos_token", false}}.dump());
  }
  return root.string();
}

fs::path synthetic(const std::string& name, const std::string& preset, bool bitnet, const std::string& pooling) {
  const fs::path d = testing::temp_dir() / name;
  fs::remove_all(d);
  SyntheticEmbeddingOptions o;
  o.bitnet = bitnet;
  o.pooling = pooling;
  write_synthetic_embedding_checkpoint(d.string(), preset, stand_in_vocab_dir(), o, 7);
  return d;
}

std::string convert(const fs::path& dir, GgmlType type, bool defaulted = false, const std::string& suffix = "") {
  const std::string out = dir.string() + suffix + ".gguf";
  ConvertOptions o;
  o.type = type;
  o.type_defaulted = defaulted;
  convert_hf_checkpoint(dir.string(), out, o);
  return out;
}

std::vector<float> hf_values(const HfCheckpoint& ck, const std::string& name) {
  const StTensor* t = ck.find(name);
  EXPECT_NE(t, nullptr) << name;
  if (!t) return {};
  std::vector<float> v(size_t(t->elements()));
  st_to_f32(*t, 0, t->elements(), v.data());
  return v;
}

std::vector<float> decode(const GgufFile& f, const std::string& name) {
  const TensorView v = f.view(name);
  EXPECT_TRUE(v.valid()) << name;
  if (!v.valid()) return {};
  std::vector<float> out(size_t(v.elements()));
  dequantize_rows(v, 0, v.rows(), out.data());
  return out;
}

int32_t token_id(const GgufFile& f, const std::string& text) {
  const auto toks = *f.get_string_array("tokenizer.ggml.tokens");
  return int32_t(std::find(toks.begin(), toks.end(), text) - toks.begin());
}

const char* const kProj[][2] = {{"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"},
                                {"self_attn.v_proj", "attn_v"}, {"self_attn.o_proj", "attn_output"},
                                {"mlp.gate_proj", "ffn_gate"},  {"mlp.up_proj", "ffn_up"},
                                {"mlp.down_proj", "ffn_down"}};

TEST(EmbeddingConvert, Qwen3BitNetMetadataTensorsAndTokenizer) {
  const fs::path dir = synthetic("q-bitnet", "embed-tiny-qwen3", true, "last");
  const GgufFile f = GgufFile::open(convert(dir, GgmlType::I2_S));
  const EmbeddingPreset& p = *find_embedding_preset("embed-tiny-qwen3");
  EXPECT_EQ(f.get_string("general.architecture"), "qwen3");
  EXPECT_EQ(f.get_uint("qwen3.embedding_length"), uint64_t(p.n_embd));
  EXPECT_EQ(f.get_uint("qwen3.block_count"), uint64_t(p.n_layer));
  EXPECT_EQ(f.get_uint("qwen3.feed_forward_length"), uint64_t(p.n_ff));
  EXPECT_EQ(f.get_uint("qwen3.attention.head_count"), uint64_t(p.n_head));
  EXPECT_EQ(f.get_uint("qwen3.attention.head_count_kv"), uint64_t(p.n_head_kv));
  // head_dim 32 ≠ d / heads = 16: the lengths must be written.
  EXPECT_EQ(f.get_uint("qwen3.attention.key_length"), uint64_t(p.head_dim));
  EXPECT_EQ(f.get_uint("qwen3.attention.value_length"), uint64_t(p.head_dim));
  EXPECT_EQ(f.get_uint("qwen3.rope.dimension_count"), uint64_t(p.head_dim));
  EXPECT_EQ(f.get_uint("qwen3.context_length"), uint64_t(p.n_ctx));
  EXPECT_EQ(f.get_uint("qwen3.vocab_size"), uint64_t(p.n_vocab));
  EXPECT_FLOAT_EQ(float(*f.get_float("qwen3.rope.freq_base")), p.rope_theta);
  EXPECT_FLOAT_EQ(float(*f.get_float("qwen3.attention.layer_norm_rms_epsilon")), p.norm_eps);
  EXPECT_EQ(f.get_uint("qwen3.pooling_type"), 3u);
  EXPECT_EQ(f.get_uint("general.file_type"), 40u);
  EXPECT_FALSE(f.find("qwen3.attention.sliding_window"));
  EXPECT_FALSE(f.find_tensor("output.weight")) << "an embedding model has no LM head";
  // Last-token pooling reads the EOS the tokenizer appends: <|endoftext|>.
  EXPECT_EQ(f.get_uint("tokenizer.ggml.eos_token_id"), uint64_t(token_id(f, "<|endoftext|>")));
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_eos_token"), true);

  const HfCheckpoint ck = HfCheckpoint::open(dir.string());
  EXPECT_EQ(decode(f, "token_embd.weight"), hf_values(ck, "embed_tokens.weight"));  // bf16 → f16 is exact here
  EXPECT_EQ(f.view("token_embd.weight").type, GgmlType::F16);
  EXPECT_EQ(decode(f, "output_norm.weight"), hf_values(ck, "norm.weight"));
  for (int64_t i = 0; i < p.n_layer; ++i) {
    const std::string h = "layers." + std::to_string(i) + ".", b = "blk." + std::to_string(i) + ".";
    EXPECT_EQ(decode(f, b + "attn_norm.weight"), hf_values(ck, h + "input_layernorm.weight"));
    EXPECT_EQ(decode(f, b + "ffn_norm.weight"), hf_values(ck, h + "post_attention_layernorm.weight"));
    EXPECT_EQ(decode(f, b + "attn_q_norm.weight"), hf_values(ck, h + "self_attn.q_norm.weight"));
    EXPECT_EQ(decode(f, b + "attn_k_norm.weight"), hf_values(ck, h + "self_attn.k_norm.weight"));
    for (const auto& [hf, gguf] : kProj) {
      std::vector<float> w = hf_values(ck, h + hf + ".weight");
      ternarize_absmean(w.data(), int64_t(w.size()));
      EXPECT_EQ(f.view(b + gguf + ".weight").type, GgmlType::I2_S);
      EXPECT_EQ(decode(f, b + gguf + ".weight"), w) << b << gguf;
      EXPECT_EQ(decode(f, b + gguf + "_norm_in.weight"), hf_values(ck, h + hf + ".norm.weight")) << b << gguf;
    }
  }
}

TEST(EmbeddingConvert, Gemma3NormsAreOnePlusWeightExceptBitNetInputNorms) {
  const fs::path dir = synthetic("g-bitnet", "embed-tiny-gemma3", true, "last");
  const GgufFile f = GgufFile::open(convert(dir, GgmlType::I2_S));
  const EmbeddingPreset& p = *find_embedding_preset("embed-tiny-gemma3");
  EXPECT_EQ(f.get_string("general.architecture"), "gemma3");
  EXPECT_EQ(f.get_uint("gemma3.attention.sliding_window"), uint64_t(p.sliding_window));
  EXPECT_EQ(f.get_uint("gemma3.attention.sliding_window_pattern"), uint64_t(p.swa_pattern));
  EXPECT_FLOAT_EQ(float(*f.get_float("gemma3.rope.freq_base_swa")), p.rope_theta_swa);
  EXPECT_FLOAT_EQ(float(*f.get_float("gemma3.rope.freq_base")), p.rope_theta);
  EXPECT_FLOAT_EQ(float(*f.get_float("gemma3.attention.scale")), 1.0f / std::sqrt(p.query_pre_attn_scalar));
  EXPECT_EQ(f.get_uint("gemma3.pooling_type"), 3u);
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_eos_token"), true);
  EXPECT_EQ(f.get_uint("tokenizer.ggml.eos_token_id"), uint64_t(token_id(f, "<eos>")));

  const HfCheckpoint ck = HfCheckpoint::open(dir.string());
  auto plus_one = [&](const std::string& name) {
    std::vector<float> v = hf_values(ck, name);
    for (float& x : v) x += 1.0f;
    return v;
  };
  EXPECT_EQ(decode(f, "output_norm.weight"), plus_one("norm.weight"));
  for (int64_t i = 0; i < p.n_layer; ++i) {
    const std::string h = "layers." + std::to_string(i) + ".", b = "blk." + std::to_string(i) + ".";
    EXPECT_EQ(decode(f, b + "attn_norm.weight"), plus_one(h + "input_layernorm.weight"));
    EXPECT_EQ(decode(f, b + "attn_q_norm.weight"), plus_one(h + "self_attn.q_norm.weight"));
    EXPECT_EQ(decode(f, b + "attn_k_norm.weight"), plus_one(h + "self_attn.k_norm.weight"));
    EXPECT_EQ(decode(f, b + "post_attention_norm.weight"), plus_one(h + "post_attention_layernorm.weight"));
    EXPECT_EQ(decode(f, b + "ffn_norm.weight"), plus_one(h + "pre_feedforward_layernorm.weight"));
    EXPECT_EQ(decode(f, b + "post_ffw_norm.weight"), plus_one(h + "post_feedforward_layernorm.weight"));
    for (const auto& [hf, gguf] : kProj)
      EXPECT_EQ(decode(f, b + gguf + "_norm_in.weight"), hf_values(ck, h + hf + ".norm.weight")) << b << gguf;
  }
}

TEST(EmbeddingConvert, PlainTeacherKeepsFloatProjections) {
  const fs::path dir = synthetic("q-plain", "embed-tiny-qwen3", false, "mean");
  // The CLI's default type (i2_s, not asked for) becomes f16 for a plain checkpoint...
  const GgufFile f = GgufFile::open(convert(dir, GgmlType::I2_S, /*defaulted=*/true));
  EXPECT_EQ(f.get_uint("general.file_type"), 1u);
  EXPECT_EQ(f.get_uint("qwen3.pooling_type"), 1u);
  const HfCheckpoint ck = HfCheckpoint::open(dir.string());
  for (const auto& [hf, gguf] : kProj) {
    EXPECT_EQ(f.view(std::string("blk.1.") + gguf + ".weight").type, GgmlType::F16);
    // bf16 → f16 is exact except below f16's normal range (2^-14), where f16 keeps fewer bits.
    const std::vector<float> got = decode(f, std::string("blk.1.") + gguf + ".weight"),
                             want = hf_values(ck, std::string("layers.1.") + hf + ".weight");
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      if (std::fabs(want[i]) >= 0x1p-14f) ASSERT_EQ(got[i], want[i]) << gguf << " element " << i;
      else ASSERT_NEAR(got[i], want[i], 0x1p-25f) << gguf << " element " << i;
    EXPECT_FALSE(f.find_tensor(std::string("blk.1.") + gguf + "_norm_in.weight"));
  }
  // ... f32 as asked; an explicit ternary type would destroy the model and is refused.
  const GgufFile f32 = GgufFile::open(convert(dir, GgmlType::F32, false, "-f32"));
  EXPECT_EQ(f32.view("blk.0.ffn_down.weight").type, GgmlType::F32);
  EXPECT_EQ(decode(f32, "blk.0.ffn_down.weight"), hf_values(ck, "layers.0.mlp.down_proj.weight"));
  try {
    convert(dir, GgmlType::I2_S, false, "-i2s");
    FAIL() << "a plain checkpoint was ternarized";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("plain float qwen3 checkpoint"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.string() + "-i2s.gguf"));
}

TEST(EmbeddingConvert, PoolingFromSentenceTransformersModules) {
  for (const auto& [pooling, id] : std::vector<std::pair<std::string, uint32_t>>{{"mean", 1}, {"cls", 2}, {"last", 3}}) {
    const fs::path dir = synthetic("g-pool-" + pooling, "embed-tiny-gemma3", false, pooling);
    const GgufFile f = GgufFile::open(convert(dir, GgmlType::F16));
    EXPECT_EQ(f.get_uint("gemma3.pooling_type"), id) << pooling;
  }
  // No modules.json: a bare backbone (Gemma3TextModel) or a BitNet checkpoint is an embedding model
  // of this family, pooled on the last token.
  const fs::path bare = synthetic("g-pool-none", "embed-tiny-gemma3", false, "");
  EXPECT_EQ(GgufFile::open(convert(bare, GgmlType::F16)).get_uint("gemma3.pooling_type"), 3u);
}

// Rewrites a checkpoint as a causal LM: "model." prefix on every tensor, an untied lm_head.
void make_causal_lm(const fs::path& dir, bool tied) {
  std::vector<testing::HfTensor> ts;
  {
    const SafetensorsFile sf = SafetensorsFile::open((dir / "model.safetensors").string());
    for (const StTensor& t : sf.tensors())
      ts.push_back({"model." + t.name, "BF16", t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)});
    if (!tied) {
      const StTensor& e = *sf.find("embed_tokens.weight");
      ts.push_back({"lm_head.weight", "BF16", e.shape, std::vector<uint8_t>(e.data, e.data + e.nbytes)});
    }
  }
  testing::write_file(dir / "model.safetensors", testing::safetensors_bytes(ts));
  std::ifstream in(dir / "config.json");
  json cfg = json::parse(in);
  cfg["architectures"] = {"Qwen3ForCausalLM"};
  cfg["tie_word_embeddings"] = tied;
  testing::write_text(dir / "config.json", cfg.dump());
}

TEST(EmbeddingConvert, PlainCausalLmHasNoPoolingAndKeepsItsHead) {
  const fs::path dir = synthetic("q-causal", "embed-tiny-qwen3", false, "");
  make_causal_lm(dir, false);
  const GgufFile f = GgufFile::open(convert(dir, GgmlType::F16));
  EXPECT_FALSE(f.find("qwen3.pooling_type"));
  ASSERT_TRUE(f.find_tensor("output.weight"));
  EXPECT_EQ(decode(f, "output.weight"), decode(f, "token_embd.weight"));
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_eos_token").value_or(false), false);
  const fs::path tied = synthetic("q-causal-tied", "embed-tiny-qwen3", false, "");
  make_causal_lm(tied, true);
  EXPECT_FALSE(GgufFile::open(convert(tied, GgmlType::F16)).find_tensor("output.weight"));
}

std::string convert_error(const fs::path& dir) {
  try {
    convert(dir, GgmlType::I2_S, false, "-bad");
  } catch (const Error& e) {
    EXPECT_FALSE(fs::exists(dir.string() + "-bad.gguf"));
    return e.what();
  }
  return "(no error)";
}

void edit_json(const fs::path& p, const std::function<void(json&)>& edit) {
  std::ifstream in(p);
  json j = json::parse(in);
  in.close();
  edit(j);
  testing::write_text(p, j.dump());
}

TEST(EmbeddingConvert, UnrepresentableCheckpointsAreRefused) {
  const fs::path dir = synthetic("q-errors", "embed-tiny-qwen3", true, "last");
  const fs::path modules = dir / "modules.json", pool = dir / "1_Pooling" / "config.json";
  edit_json(modules, [](json& j) { j.push_back({{"path", "2_Dense"}, {"type", "sentence_transformers.models.Dense"}}); });
  EXPECT_NE(convert_error(dir).find("sentence_transformers.models.Dense"), std::string::npos);
  edit_json(modules, [](json& j) { j.erase(j.size() - 1); });
  edit_json(pool, [](json& j) { j["pooling_mode_mean_tokens"] = true; });
  EXPECT_NE(convert_error(dir).find("several pooling modes"), std::string::npos);
  edit_json(pool, [](json& j) { j["pooling_mode_lasttoken"] = false, j["pooling_mode_mean_tokens"] = false, j["pooling_mode_max_tokens"] = true; });
  EXPECT_NE(convert_error(dir).find("pooling_mode_max_tokens is not supported"), std::string::npos);
  edit_json(modules, [](json& j) { j[1]["path"] = "../elsewhere"; });
  EXPECT_NE(convert_error(dir).find("not a folder of the checkpoint"), std::string::npos);
  fs::remove(modules);
  edit_json(dir / "config.json", [](json& j) { j["use_sliding_window"] = true; });
  EXPECT_NE(convert_error(dir).find("use_sliding_window"), std::string::npos);
  edit_json(dir / "config.json", [](json& j) { j["use_sliding_window"] = false, j["hidden_act"] = "gelu"; });
  EXPECT_NE(convert_error(dir).find("activation 'gelu'"), std::string::npos);
  edit_json(dir / "config.json", [](json& j) { j["hidden_act"] = "silu", j["num_hidden_layers"] = 1; });
  EXPECT_NE(convert_error(dir).find("unexpected tensor 'layers.1."), std::string::npos);

  const fs::path g = synthetic("g-errors", "embed-tiny-gemma3", true, "last");
  edit_json(g / "config.json", [](json& j) { j["layer_types"][0] = "full_attention"; });
  EXPECT_NE(convert_error(g).find("is not periodic"), std::string::npos);
  edit_json(g / "config.json", [](json& j) { j.erase("layer_types"), j["attn_logit_softcapping"] = 50.0; });
  EXPECT_NE(convert_error(g).find("attn_logit_softcapping"), std::string::npos);
  edit_json(g / "config.json", [](json& j) { j["attn_logit_softcapping"] = nullptr, j["model_type"] = "gemma3"; });
  EXPECT_NE(convert_error(g).find("multimodal"), std::string::npos);
  // A BitNet checkpoint missing one projection norm.
  edit_json(g / "config.json", [](json& j) { j["model_type"] = "gemma3_text"; });
  {
    std::vector<testing::HfTensor> ts;
    const SafetensorsFile sf = SafetensorsFile::open((g / "model.safetensors").string());
    for (const StTensor& t : sf.tensors())
      if (t.name != "layers.2.mlp.up_proj.norm.weight")
        ts.push_back({t.name, "BF16", t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)});
    testing::write_file(g / "model.safetensors.new", testing::safetensors_bytes(ts));
  }
  fs::rename(g / "model.safetensors.new", g / "model.safetensors");
  EXPECT_NE(convert_error(g).find("missing tensor 'layers.2.mlp.up_proj.norm.weight'"), std::string::npos);
}

TEST(EmbeddingConvert, LayerTypesAndPatternKeys) {
  // sliding_window_pattern instead of layer_types, and query_pre_attn_scalar = head_dim: no scale key.
  const fs::path g = synthetic("g-pattern", "embed-tiny-gemma3", false, "last");
  edit_json(g / "config.json", [](json& j) {
    j.erase("layer_types"), j["sliding_window_pattern"] = 3, j["query_pre_attn_scalar"] = 32;
  });
  const GgufFile f = GgufFile::open(convert(g, GgmlType::F16));
  EXPECT_EQ(f.get_uint("gemma3.attention.sliding_window_pattern"), 3u);
  EXPECT_FALSE(f.find("gemma3.attention.scale"));
  // All layers sliding: a period longer than the model.
  edit_json(g / "config.json", [](json& j) {
    j["layer_types"] = {"sliding_attention", "sliding_attention", "sliding_attention"};
  });
  EXPECT_EQ(GgufFile::open(convert(g, GgmlType::F16)).get_uint("gemma3.attention.sliding_window_pattern"), 4u);
}

}  // namespace
}  // namespace bitnet
