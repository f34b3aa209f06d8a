#pragma once
// Hyper-parameters of the supported architectures, read from GGUF metadata and validated.
// Architecture facts: shared/spec/architectures.md.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ops/ops.h"

namespace bitnet {

class GgufFile;

enum class FfnActivation { Silu, ReluSquared, GeluTanh };

// What distinguishes one architecture string from another (architectures.md §0).
struct ArchTraits {
  std::string name;          // general.architecture
  bool sub_norms;            // attn_sub_norm / ffn_sub_norm present (BitNet family)
  ops::RopeStyle rope_style;
  FfnActivation activation;  // default; `bitnet` may override via bitnet.hidden_activation
  bool always_tied;          // logits always use token_embd.weight
  // Qwen3 / Gemma 3 (architectures.md §5): per-head RMSNorm of q and k (attn_q_norm, attn_k_norm).
  bool qk_norm = false;
  // Gemma 3: token embeddings × sqrt(n_embd); RMSNorm of the attention and FFN outputs before
  // their residual adds (post_attention_norm, post_ffw_norm); sliding-window layers.
  bool gemma = false;
};
// Throws FormatError listing the supported architectures for an unknown name.
const ArchTraits& arch_traits(const std::string& name);
std::vector<std::string> supported_architectures();

struct HParams {
  ArchTraits arch;
  FfnActivation activation = FfnActivation::Silu;
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;  // key_length = value_length
  int64_t n_ff = 0;
  int64_t n_rot = 0;
  float norm_eps = 1e-5f;
  float rope_base = 10000.0f;
  float rope_freq_scale = 1.0f;
  float attn_scale = 0;  // {arch}.attention.scale; 0: 1/sqrt(head_dim), see attention_scale()
  // Sliding-window attention (Gemma 3): 0 = none. Layer il is a full-attention layer iff
  // (il + 1) % swa_pattern == 0; the others attend to the last n_swa positions and rotate with
  // rope_base_swa.
  int64_t n_swa = 0;
  int64_t swa_pattern = 0;
  float rope_base_swa = 10000.0f;
  // {arch}.pooling_type as written (0 none, 1 mean, 2 cls, 3 last, 4 rank); -1: absent.
  int64_t pooling_type = -1;

  float attention_scale() const { return attn_scale > 0 ? attn_scale : 1.0f / std::sqrt(float(head_dim)); }
  bool is_swa_layer(int64_t il) const { return n_swa > 0 && swa_pattern > 0 && (il + 1) % swa_pattern != 0; }

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
};

// Reads {arch}.* keys; every missing required key or out-of-range value is a FormatError naming it.
HParams read_hparams(const GgufFile& file);

}  // namespace bitnet
