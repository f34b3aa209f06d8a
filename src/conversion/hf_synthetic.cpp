#include "conversion/hf_synthetic.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "conversion/dummy_model.h"
#include "errors.h"
#include "formats/half.h"

namespace bitnet {
namespace {

namespace fs = std::filesystem;

struct Spec {
  std::string name;
  std::vector<int64_t> shape;
  float sd, mean;
};

// One safetensors shard: header first, then each tensor generated and written on its own.
uint64_t write_shard(const fs::path& path, const std::vector<Spec>& specs, std::mt19937_64& rng) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  uint64_t off = 0;
  for (const Spec& s : specs) {
    uint64_t n = 2;
    for (int64_t d : s.shape) n *= uint64_t(d);
    h[s.name] = {{"dtype", "BF16"}, {"shape", s.shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string header = h.dump();
  while (header.size() % 8) header += ' ';
  std::ofstream out(path, std::ios::binary);
  const uint64_t len = header.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(header.data(), std::streamsize(header.size()));
  std::vector<uint16_t> buf;
  for (const Spec& s : specs) {
    uint64_t n = 1;
    for (int64_t d : s.shape) n *= uint64_t(d);
    buf.resize(size_t(n));
    // Cheap pseudo-normal values (sum of uniforms): generating 2.4 B Box-Muller samples would
    // dominate the benchmark set-up time.
    for (uint16_t& x : buf) {
      const uint64_t r = rng();
      const float u = (float(r & 0xffff) + float((r >> 16) & 0xffff) + float((r >> 32) & 0xffff) - 98302.5f) / 32768.0f;
      x = fp32_to_bf16(s.mean + s.sd * u);
    }
    out.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(n * 2));
  }
  if (!out) throw Error(path.string() + ": write failed");
  return off;
}

// Several shards as model-0000k-of-0000n.safetensors plus the index HF loaders read.
uint64_t write_shards(const fs::path& dir, const std::vector<std::vector<Spec>>& shards, std::mt19937_64& rng) {
  nlohmann::json index = {{"weight_map", nlohmann::json::object()}};
  uint64_t total = 0;
  for (size_t k = 0; k < shards.size(); ++k) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
    for (const Spec& s : shards[k]) index["weight_map"][s.name] = name;
    total += write_shard(dir / name, shards[k], rng);
  }
  std::ofstream(dir / "model.safetensors.index.json") << index.dump(2);
  return total;
}

}  // namespace

uint64_t write_synthetic_hf_checkpoint(const std::string& dir_s, const std::string& arch, const std::string& preset,
                                       const std::string& vocab_dir, uint64_t seed) {
  const ModelPreset* p = find_preset(preset);
  if (!p) throw Error("unknown preset '" + preset + "'");
  const bool llama = arch == "LlamaForCausalLM";
  if (!llama && arch != "BitNetForCausalLM") throw Error("synthetic checkpoints: arch must be BitNetForCausalLM or LlamaForCausalLM");
  const fs::path dir(dir_s);
  fs::create_directories(dir);
  const int64_t V = 128256, d = p->n_embd, hd = d / p->n_head, F = p->n_ff;
  nlohmann::json cfg = {{"architectures", {arch}}, {"hidden_act", llama ? "silu" : "relu2"}, {"hidden_size", d},
                        {"num_hidden_layers", p->n_layer}, {"num_attention_heads", p->n_head},
                        {"num_key_value_heads", p->n_head_kv}, {"intermediate_size", F}, {"vocab_size", V},
                        {"max_position_embeddings", p->n_ctx}, {"rms_norm_eps", 1e-5}, {"rope_theta", 500000.0},
                        {"tie_word_embeddings", !llama}, {"_name_or_path", "synthetic-" + preset}};
  std::ofstream(dir / "config.json") << cfg.dump(2);
  fs::copy_file(vocab_dir + "/llama3-tokenizer.tiktoken", dir / "tokenizer.model", fs::copy_options::overwrite_existing);

  // Shard per layer group so no single file is huge; embeddings in the first shard.
  std::vector<std::vector<Spec>> shards(1);
  const float emb_sd = 2.0f / std::sqrt(float(d));
  shards[0].push_back({"model.embed_tokens.weight", {V, d}, emb_sd, 0});
  shards[0].push_back({"model.norm.weight", {d}, 0.05f, 1});
  if (llama) shards[0].push_back({"lm_head.weight", {V, d}, emb_sd, 0});
  for (int64_t i = 0; i < p->n_layer; ++i) {
    if (i % 8 == 0) shards.emplace_back();
    auto& s = shards.back();
    const std::string b = "model.layers." + std::to_string(i) + ".";
    const float sd = 1.0f / std::sqrt(float(d));
    s.push_back({b + "input_layernorm.weight", {d}, 0.05f, 1});
    s.push_back({b + "self_attn.q_proj.weight", {p->n_head * hd, d}, sd, 0});
    s.push_back({b + "self_attn.k_proj.weight", {p->n_head_kv * hd, d}, sd, 0});
    s.push_back({b + "self_attn.v_proj.weight", {p->n_head_kv * hd, d}, sd, 0});
    s.push_back({b + "self_attn.o_proj.weight", {d, p->n_head * hd}, sd, 0});
    if (!llama) s.push_back({b + "self_attn.attn_sub_norm.weight", {d}, 0.05f, 1});
    s.push_back({b + "post_attention_layernorm.weight", {d}, 0.05f, 1});
    s.push_back({b + "mlp.gate_proj.weight", {F, d}, sd, 0});
    s.push_back({b + "mlp.up_proj.weight", {F, d}, sd, 0});
    s.push_back({b + "mlp.down_proj.weight", {d, F}, 1.0f / std::sqrt(float(F)), 0});
    if (!llama) s.push_back({b + "mlp.ffn_sub_norm.weight", {F}, 0.05f, 1});
  }
  std::mt19937_64 rng(seed);
  return write_shards(dir, shards, rng);
}

uint64_t write_synthetic_embedding_checkpoint(const std::string& dir_s, const std::string& preset,
                                              const std::string& vocab_dir, const SyntheticEmbeddingOptions& o,
                                              uint64_t seed) {
  const EmbeddingPreset* p = find_embedding_preset(preset);
  if (!p) throw Error("unknown embedding preset '" + preset + "'");
  if (!o.pooling.empty() && o.pooling != "mean" && o.pooling != "cls" && o.pooling != "last")
    throw Error("synthetic pooling must be mean, cls, last or none (got '" + o.pooling + "')");
  const std::string tok_dir = embedding_tokenizer_dir(vocab_dir, p->arch);
  const bool gemma = p->arch == "gemma3";
  const fs::path dir(dir_s);
  fs::create_directories(dir);
  const int64_t d = p->n_embd, L = p->n_layer, hd = p->head_dim, F = p->n_ff, V = p->n_vocab;
  nlohmann::ordered_json cfg = {
      {"architectures", {gemma ? "Gemma3TextModel" : "Qwen3Model"}}, {"model_type", gemma ? "gemma3_text" : "qwen3"},
      {gemma ? "hidden_activation" : "hidden_act", gemma ? "gelu_pytorch_tanh" : "silu"}, {"hidden_size", d},
      {"num_hidden_layers", L}, {"num_attention_heads", p->n_head}, {"num_key_value_heads", p->n_head_kv},
      {"head_dim", hd}, {"intermediate_size", F}, {"vocab_size", V}, {"max_position_embeddings", p->n_ctx},
      {"rms_norm_eps", p->norm_eps}, {"rope_theta", p->rope_theta}, {"rope_scaling", nullptr},
      {"tie_word_embeddings", true}, {"attention_bias", false}, {"torch_dtype", "bfloat16"},
      {"_name_or_path", std::string("synthetic-") + preset + (o.bitnet ? "" : "-plain")}};
  if (gemma) {
    nlohmann::json types = nlohmann::json::array();
    for (int64_t i = 0; i < L; ++i)
      types.push_back((i + 1) % p->swa_pattern == 0 ? "full_attention" : "sliding_attention");
    cfg["sliding_window"] = p->sliding_window;
    cfg["layer_types"] = types;
    cfg["rope_local_base_freq"] = p->rope_theta_swa;
    cfg["query_pre_attn_scalar"] = p->query_pre_attn_scalar;
    cfg["attn_logit_softcapping"] = nullptr;
    cfg["final_logit_softcapping"] = nullptr;
    cfg["bos_token_id"] = 2, cfg["eos_token_id"] = 1, cfg["pad_token_id"] = 0;
  } else {
    cfg["use_sliding_window"] = false;
    cfg["bos_token_id"] = 151643, cfg["eos_token_id"] = 151643;
  }
  std::ofstream(dir / "config.json") << cfg.dump(2);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fs::path(tok_dir) / f, dir / f, fs::copy_options::overwrite_existing);
  if (!o.pooling.empty()) {
    nlohmann::ordered_json modules = nlohmann::ordered_json::array();
    modules.push_back({{"idx", 0}, {"name", "0"}, {"path", ""}, {"type", "sentence_transformers.models.Transformer"}});
    modules.push_back({{"idx", 1}, {"name", "1"}, {"path", "1_Pooling"}, {"type", "sentence_transformers.models.Pooling"}});
    modules.push_back({{"idx", 2}, {"name", "2"}, {"path", "2_Normalize"}, {"type", "sentence_transformers.models.Normalize"}});
    std::ofstream(dir / "modules.json") << modules.dump(2);
    fs::create_directories(dir / "1_Pooling");
    fs::create_directories(dir / "2_Normalize");
    nlohmann::ordered_json pc = {{"word_embedding_dimension", d},
                                 {"pooling_mode_cls_token", o.pooling == "cls"},
                                 {"pooling_mode_mean_tokens", o.pooling == "mean"},
                                 {"pooling_mode_max_tokens", false},
                                 {"pooling_mode_mean_sqrt_len_tokens", false},
                                 {"pooling_mode_weightedmean_tokens", false},
                                 {"pooling_mode_lasttoken", o.pooling == "last"},
                                 {"include_prompt", true}};
    std::ofstream(dir / "1_Pooling" / "config.json") << pc.dump(2);
  }

  // Master weights with standard deviation gain/sqrt(K): outputs of RMS ~gain for unit-RMS inputs
  // (a ternarized BitNet projection gives ~0.66·gain). Residual gains 1/sqrt(2L) for Qwen3; Gemma's
  // post-norms renormalize each residual addition, so 1 there. Gemma's own norms are stored as w
  // (HF applies 1 + w), everything else near 1. Embedding RMS 1 (Gemma: 1/sqrt(d), scaled by sqrt(d)).
  const double res = gemma ? 1.0 : 1.0 / std::sqrt(2.0 * double(L));
  const float gnorm_mean = gemma ? 0.0f : 1.0f;
  std::vector<std::vector<Spec>> shards(1);
  shards[0].push_back({"embed_tokens.weight", {V, d}, gemma ? 1.0f / std::sqrt(float(d)) : 1.0f, 0});
  shards[0].push_back({"norm.weight", {d}, 0.05f, gnorm_mean});
  for (int64_t i = 0; i < L; ++i) {
    if (L > 8 && i % 8 == 0) shards.emplace_back();
    auto& s = shards.back();
    const std::string b = "layers." + std::to_string(i) + ".";
    auto proj = [&](const std::string& name, int64_t rows, int64_t cols, double gain) {
      s.push_back({b + name + ".weight", {rows, cols}, float(gain / std::sqrt(double(cols))), 0});
      if (o.bitnet) s.push_back({b + name + ".norm.weight", {cols}, 0.05f, 1});
    };
    s.push_back({b + "input_layernorm.weight", {d}, 0.05f, gnorm_mean});
    proj("self_attn.q_proj", p->n_head * hd, d, 1.0);
    proj("self_attn.k_proj", p->n_head_kv * hd, d, 1.0);
    proj("self_attn.v_proj", p->n_head_kv * hd, d, 1.0);
    proj("self_attn.o_proj", d, p->n_head * hd, res);
    s.push_back({b + "self_attn.q_norm.weight", {hd}, 0.05f, gnorm_mean});
    s.push_back({b + "self_attn.k_norm.weight", {hd}, 0.05f, gnorm_mean});
    s.push_back({b + "post_attention_layernorm.weight", {d}, 0.05f, gnorm_mean});
    if (gemma) {
      s.push_back({b + "pre_feedforward_layernorm.weight", {d}, 0.05f, gnorm_mean});
      s.push_back({b + "post_feedforward_layernorm.weight", {d}, 0.05f, gnorm_mean});
    }
    proj("mlp.gate_proj", F, d, 1.0);
    proj("mlp.up_proj", F, d, 1.0);
    proj("mlp.down_proj", d, F, res);
  }
  std::mt19937_64 rng(seed);
  if (shards.size() == 1) return write_shard(dir / "model.safetensors", shards[0], rng);
  return write_shards(dir, shards, rng);
}

}  // namespace bitnet
