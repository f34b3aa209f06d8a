#pragma once
// A loaded model: hyper-parameters, tensors bound by name, the tokenizer. Loading checks every
// tensor's presence, shape and type against the hyper-parameters, so the forward pass can trust
// them. The matrices the forward pass streams are copied into huge-page memory (WeightArena)
// unless LoadOptions::map_weights; everything else stays a view into the memory-mapped file.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "memory/page_buffer.h"
#include "model/hparams.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::cuda {
class GpuLayers;  // backends/cuda/offload.h
}

namespace bitnet {

struct LayerWeights {
  std::vector<float> attn_norm, attn_sub_norm, ffn_norm, ffn_sub_norm;  // sub-norms may be empty
  TensorView wq, wk, wv, wo, w_gate, w_up, w_down;
  // Qwen3 / Gemma 3: per-head q/k norms (head_dim wide); Gemma 3: output norms before the residual.
  std::vector<float> attn_q_norm, attn_k_norm, post_attn_norm, post_ffw_norm;
  // BitNet-embedding models: each projection's own input RMSNorm (`blk.i.attn_q_norm_in`, …);
  // empty where the file has none.
  std::vector<float> q_norm_in, k_norm_in, v_norm_in, o_norm_in, gate_norm_in, up_norm_in, down_norm_in;
  bool has_norm_in() const {
    return !q_norm_in.empty() || !k_norm_in.empty() || !v_norm_in.empty() || !o_norm_in.empty() ||
           !gate_norm_in.empty() || !up_norm_in.empty() || !down_norm_in.empty();
  }
  // Optional per-projection output multipliers (`blk.i.attn_q.scale`, … of arch `bitnet`).
  float scale_q = 1, scale_k = 1, scale_v = 1, scale_o = 1, scale_gate = 1, scale_up = 1,
        scale_down = 1;
};

struct Model {
  explicit Model(GgufFile f) : file(std::move(f)) {}
  GgufFile file;
  HParams hp;
  std::shared_ptr<const Tokenizer> tokenizer;  // null when loaded without one
  TensorView tok_embd;
  TensorView output;  // == tok_embd when tied
  std::vector<float> output_norm;
  std::vector<LayerWeights> layers;
  // The streamed matrices (and any repacked tensor, see load_notes); views point into it.
  WeightArena arena;
  std::vector<std::string> load_notes;  // one line per load-time transformation (shown by inspect)
  // The last LoadOptions::gpu_layers layers uploaded to the GPU (-ngl); null: all on the CPU.
  std::shared_ptr<const cuda::GpuLayers> gpu;

  uint64_t weight_bytes() const;  // bytes of all tensor data the forward pass reads
  // A model made for embeddings ({arch}.pooling_type in the file): no LM head is read or kept
  // apart, generation is refused (runtime/embed.h).
  bool embedding_only() const { return hp.pooling_type >= 0; }
};

struct LoadOptions {
  bool load_tokenizer = true;
  // false: the layer matrices and the output matrix are copied into huge-page memory at load
  // (faster decode, PageBuffer); true: the kernels read them from the file mapping (the page
  // cache, shared between processes and reclaimable; faster start). Repacked tensors live in the arena either way.
  bool map_weights = false;
  // -ngl: run the last gpu_layers layers (≥ n_layer: all, plus the output norm and an F16 head) on
  // the GPU. load_model throws Error with the reason when that is impossible (no CUDA backend, no
  // usable GPU, a non-ternary layer matrix); 0 touches no GPU code at all.
  int64_t gpu_layers = 0;
};

// Throws FormatError with a specific message on any problem.
std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& options = {});
// Same checks on an already parsed file (used by `doctor` and tests).
std::unique_ptr<Model> load_model(GgufFile file, const LoadOptions& options = {});

}  // namespace bitnet
