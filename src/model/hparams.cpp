#include "model/hparams.h"

#include <cmath>

#include "base/untrusted_text.h"
#include "errors.h"
#include "formats/gguf.h"

namespace bitnet {
namespace {

const std::vector<ArchTraits>& all_archs() {
  static const std::vector<ArchTraits> archs = {
      {"bitnet-b1.58", true, ops::RopeStyle::Neox, FfnActivation::ReluSquared, true},
      {"bitnet-25", true, ops::RopeStyle::Neox, FfnActivation::ReluSquared, true},
      {"bitnet", true, ops::RopeStyle::Neox, FfnActivation::Silu, true},
      {"llama", false, ops::RopeStyle::Norm, FfnActivation::Silu, false},
      {"qwen3", false, ops::RopeStyle::Neox, FfnActivation::Silu, false, true, false},
      {"gemma3", false, ops::RopeStyle::Neox, FfnActivation::GeluTanh, false, true, true},
  };
  return archs;
}

constexpr int64_t kMaxLayers = 512;
constexpr int64_t kMaxDim = int64_t(1) << 20;  // far above any real model, small enough for int math

int64_t required(const GgufFile& f, const std::string& key, int64_t lo, int64_t hi) {
  const auto v = f.get_uint(key);
  if (!v) throw FormatError(f.path() + ": missing required key '" + key + "'");
  if (int64_t(*v) < lo || int64_t(*v) > hi || *v > uint64_t(INT64_MAX))
    throw FormatError(f.path() + ": key '" + key + "' = " + std::to_string(*v) +
                      " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return int64_t(*v);
}

int64_t optional_int(const GgufFile& f, const std::string& key, int64_t fallback, int64_t lo,
                     int64_t hi) {
  if (!f.find(key)) return fallback;
  return required(f, key, lo, hi);
}

float optional_float(const GgufFile& f, const std::string& key, float fallback, float lo, float hi) {
  const auto v = f.get_float(key);
  if (!v) return fallback;
  if (!std::isfinite(*v) || *v < lo || *v > hi)
    throw FormatError(f.path() + ": key '" + key + "' = " + std::to_string(*v) + " is out of range");
  return float(*v);
}

}  // namespace

std::vector<std::string> supported_architectures() {
  std::vector<std::string> names;
  for (const auto& a : all_archs()) names.push_back(a.name);
  return names;
}

const ArchTraits& arch_traits(const std::string& name) {
  for (const auto& a : all_archs())
    if (a.name == name) return a;
  std::string list;
  for (const auto& a : all_archs()) list += (list.empty() ? "" : ", ") + a.name;
  throw FormatError("unsupported architecture " + quote_untrusted(name) + " (supported: " + list + ")");
}

HParams read_hparams(const GgufFile& f) {
  const auto arch_name = f.get_string("general.architecture");
  if (!arch_name) throw FormatError(f.path() + ": missing required key 'general.architecture'");
  HParams hp;
  hp.arch = arch_traits(*arch_name);
  const std::string p = *arch_name + ".";
  hp.n_embd = required(f, p + "embedding_length", 1, kMaxDim);
  hp.n_layer = required(f, p + "block_count", 1, kMaxLayers);
  hp.n_ff = required(f, p + "feed_forward_length", 1, kMaxDim);
  hp.n_head = required(f, p + "attention.head_count", 1, 4096);
  hp.n_head_kv = optional_int(f, p + "attention.head_count_kv", hp.n_head, 1, hp.n_head);
  hp.n_ctx_train = required(f, p + "context_length", 1, int64_t(1) << 24);
  if (hp.n_head % hp.n_head_kv != 0)
    throw FormatError(f.path() + ": head_count " + std::to_string(hp.n_head) +
                      " is not a multiple of head_count_kv " + std::to_string(hp.n_head_kv));
  if (!f.find(p + "attention.key_length") && hp.n_embd % hp.n_head != 0)
    throw FormatError(f.path() + ": embedding_length " + std::to_string(hp.n_embd) +
                      " is not divisible by head_count " + std::to_string(hp.n_head));
  hp.head_dim = optional_int(f, p + "attention.key_length", hp.n_embd / hp.n_head, 2, 4096);
  const int64_t v_len = optional_int(f, p + "attention.value_length", hp.head_dim, 1, 4096);
  if (v_len != hp.head_dim)
    throw FormatError(f.path() + ": value_length " + std::to_string(v_len) +
                      " differs from key_length " + std::to_string(hp.head_dim) + " (unsupported)");
  hp.n_rot = optional_int(f, p + "rope.dimension_count", hp.head_dim, 2, hp.head_dim);
  if (hp.n_rot % 2 != 0) throw FormatError(f.path() + ": rope.dimension_count must be even");
  hp.norm_eps = optional_float(f, p + "attention.layer_norm_rms_epsilon", -1.0f, 0.0f, 1.0f);
  if (hp.norm_eps <= 0)
    throw FormatError(f.path() + ": missing or non-positive '" + p +
                      "attention.layer_norm_rms_epsilon'");
  hp.rope_base = optional_float(f, p + "rope.freq_base", 10000.0f, 1e-3f, 1e12f);
  const auto scaling = f.get_string(p + "rope.scaling.type");
  if (scaling && *scaling != "none" && *scaling != "linear")
    throw FormatError(f.path() + ": rope scaling type '" + *scaling + "' is not supported");
  const float factor = optional_float(f, p + "rope.scaling.factor", 1.0f, 1e-6f, 1e6f);
  hp.rope_freq_scale = (scaling && *scaling == "linear") ? 1.0f / factor : 1.0f;

  hp.attn_scale = optional_float(f, p + "attention.scale", 0.0f, 1e-6f, 1e3f);
  if (hp.arch.gemma) {
    // Microsoft's converter writes no window: every layer then attends to the whole input (the
    // same for inputs up to the window of 512; docs/embeddings.md).
    hp.n_swa = optional_int(f, p + "attention.sliding_window", 0, 0, int64_t(1) << 24);
    hp.swa_pattern = optional_int(f, p + "attention.sliding_window_pattern", 6, 1, kMaxLayers);
    hp.rope_base_swa = optional_float(f, p + "rope.freq_base_swa", 10000.0f, 1e-3f, 1e12f);
  }
  hp.pooling_type = optional_int(f, p + "pooling_type", -1, 0, 4);

  hp.activation = hp.arch.activation;
  if (const auto act = f.get_string(p + "hidden_activation")) {
    if (*act == "relu2") hp.activation = FfnActivation::ReluSquared;
    else if (*act == "silu") hp.activation = FfnActivation::Silu;
    else if (*act == "gelu") hp.activation = FfnActivation::GeluTanh;
    else throw FormatError(f.path() + ": hidden_activation '" + *act + "' is not supported");
  }
  // Vocabulary size: explicit key, else the token list (checked against the tensors at bind time).
  if (f.find(p + "vocab_size")) {
    hp.n_vocab = required(f, p + "vocab_size", 1, INT32_MAX);
  } else if (const auto* tokens = f.find("tokenizer.ggml.tokens");
             tokens && std::holds_alternative<GgufArray>(tokens->value)) {
    hp.n_vocab = int64_t(std::get<GgufArray>(tokens->value).size());
  }
  return hp;
}

}  // namespace bitnet
