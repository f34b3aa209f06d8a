#pragma once
// Hugging Face `config.json` → the hyper-parameters and GGUF architecture of a supported ternary
// model (shared/spec/architectures.md §2–§4). Every missing, mistyped or inconsistent key is an
// Error naming the key and the file.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bitnet {

// How a pre-packed projection's `weight_scale` turns ternaries into real weights
// (ternary-formats.md §13): AutoBitLinear multiplies, plain BitLinear divides.
enum class ScaleRule { Multiply, Divide };

struct HfConfig {
  std::string hf_architecture;  // architectures[0] (or model_type when absent)
  std::string arch;             // GGUF general.architecture: bitnet-b1.58, bitnet, llama, qwen3, gemma3
  std::string model_type;       // config.json model_type ("" when absent)
  int64_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0;
  int64_t n_vocab = 0, n_ctx = 0;
  float norm_eps = 0, rope_theta = 10000;
  bool tied = true;          // LM head = token embedding
  ScaleRule scale_rule = ScaleRule::Multiply;
  std::string name;          // general.name (from _name_or_path, else the directory name)
  std::optional<int64_t> bos_id, eos_id, pad_id;  // config.json *_token_id (fallbacks)

  // qwen3 / gemma3 (docs/embeddings-conversion.md).
  bool causal_lm = false;  // architectures[0] ends in ForCausalLM (else a bare backbone: Qwen3Model, ...)
  // gemma3: sliding-window attention. Layer i is a full-attention layer iff (i+1) % swa_pattern == 0
  // (from layer_types, else sliding_window_pattern, default 6); sliding layers see the last
  // sliding_window positions and use rope_theta_swa (rope_local_base_freq).
  int64_t sliding_window = 0, swa_pattern = 0;
  float rope_theta_swa = 10000;
  float query_pre_attn_scalar = 0;  // attention scale 1/sqrt(this); gemma3 only
};

// Parses and validates `<dir>/config.json`.
HfConfig read_hf_config(const std::string& dir);
// The HF class names this converter accepts.
std::vector<std::string> supported_hf_architectures();

}  // namespace bitnet
