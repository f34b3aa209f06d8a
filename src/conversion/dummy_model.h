#pragma once
// Generates GGUF models with random ternary weights in the real architectures' shapes, carrying
// the real tokenizers, deterministic for a seed. See docs/dummy-models.md for how the random
// weights are scaled so activations and logits stay numerically tame.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tensor/ggml_type.h"

namespace bitnet {

struct ModelPreset {
  std::string name;
  int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
  std::string models;  // which published models share these shapes
};
const std::vector<ModelPreset>& model_presets();
const ModelPreset* find_preset(const std::string& name);

// Text-embedding models (BitNet-embedding family, docs/embeddings-conversion.md): Qwen3 or Gemma 3
// backbones with BitNet per-projection input norms, no LM head, last-token pooling.
struct EmbeddingPreset {
  std::string name;
  std::string arch;  // GGUF general.architecture: qwen3 or gemma3
  int64_t n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx;
  float rope_theta, norm_eps;
  // gemma3 only: sliding window, period of the full-attention layers, local RoPE base, and the
  // attention scale's query_pre_attn_scalar.
  int64_t sliding_window = 0, swa_pattern = 0;
  float rope_theta_swa = 0, query_pre_attn_scalar = 0;
  std::string models;
};
const std::vector<EmbeddingPreset>& embedding_presets();
const EmbeddingPreset* find_embedding_preset(const std::string& name);
// data/tokenizers/<qwen3|gemma3> under the vocabulary directory (scripts/fetch_tokenizers.sh);
// throws Error naming the script when tokenizer.json is missing.
std::string embedding_tokenizer_dir(const std::string& vocab_dir, const std::string& arch);

struct DummyModelSpec {
  std::string arch = "bitnet-b1.58";  // general.architecture: bitnet-b1.58, bitnet, llama
  std::string preset = "tiny";
  GgmlType type = GgmlType::I2_S;            // the seven projections per layer
  GgmlType embedding_type = GgmlType::F16;   // token_embd (and output.weight when untied)
  uint64_t seed = 42;
  std::string vocab_dir;  // holds llama3-tokenizer.tiktoken and ggml-vocab-llama-spm.gguf
  // > 0: a SentencePiece vocabulary of this many tokens (`bitnet`'s LLaMA one only): the special and
  // byte tokens, the single ASCII characters and "▁", and the highest-scoring merges to fill it — a
  // small vocabulary like stories260K's 512 pieces, in which texts take many more tokens. Throws
  // Error for another vocabulary or a size below those fixed tokens.
  int64_t vocab_size = 0;
};

// Directory with the tokenizer data: $BITNET_DATA_DIR, else the source tree's data/
// (data/README.md). Throws Error listing the places searched if none has the files.
std::string default_vocab_dir();

using GenerateProgress = std::function<void(uint64_t done, uint64_t total)>;
// Writes the model to `path` (via a temporary file renamed on success). Tensors whose row length
// does not fit the requested type's block size are stored as F16 and reported in `notes`.
void generate_dummy_model(const DummyModelSpec& spec, const std::string& path,
                          const GenerateProgress& progress = {},
                          std::vector<std::string>* notes = nullptr);

}  // namespace bitnet
