#pragma once
// Hyper-parameters of the supported architectures, read from GGUF metadata and validated.
// Architecture facts: shared/spec/architectures.md.
#include <cstdint>
#include <string>
#include <vector>

#include "ops/ops.h"

namespace bitnet {

class GgufFile;

enum class FfnActivation { Silu, ReluSquared };

// What distinguishes one architecture string from another (architectures.md §0).
struct ArchTraits {
  std::string name;          // general.architecture
  bool sub_norms;            // attn_sub_norm / ffn_sub_norm present (BitNet family)
  ops::RopeStyle rope_style;
  FfnActivation activation;  // default; `bitnet` may override via bitnet.hidden_activation
  bool always_tied;          // logits always use token_embd.weight
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

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
};

// Reads {arch}.* keys; every missing required key or out-of-range value is a FormatError naming it.
HParams read_hparams(const GgufFile& file);

}  // namespace bitnet
