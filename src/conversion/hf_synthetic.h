#pragma once
// Writes a synthetic Hugging Face checkpoint (bf16 master weights, sharded safetensors + index,
// config.json, the Llama-3 tiktoken tokenizer) in the shapes of a dummy-model preset, streaming
// one tensor at a time. Used to benchmark `bitnet convert` on real model sizes without downloads.
#include <cstdint>
#include <string>

namespace bitnet {

// arch: "BitNetForCausalLM" or "LlamaForCausalLM"; preset: a dummy_model.h preset name.
// Returns the bytes of tensor data written.
uint64_t write_synthetic_hf_checkpoint(const std::string& dir, const std::string& arch, const std::string& preset,
                                       const std::string& vocab_dir, uint64_t seed = 1);

// A Qwen3 / Gemma 3 text-embedding checkpoint in the shapes of an embedding preset (dummy_model.h
// embedding_presets): bare backbone (Qwen3Model / Gemma3TextModel, tensor names without "model."),
// bf16, config.json, the real tokenizer files from <vocab_dir>/tokenizers/<arch>/, and for a
// pooling other than "" a sentence-transformers modules.json + 1_Pooling/config.json (+ Normalize).
// bitnet: every projection gets its BitNet input norm `<proj>.norm.weight` (master weights that
// convert ternarizes); otherwise a plain float "teacher". Values are tame (docs/dummy-models.md):
// projection outputs of RMS ~1 for unit-RMS inputs, norm gains near 1.
struct SyntheticEmbeddingOptions {
  bool bitnet = true;
  std::string pooling = "last";  // mean, cls, last, or "" (no sentence-transformers files)
};
uint64_t write_synthetic_embedding_checkpoint(const std::string& dir, const std::string& preset,
                                              const std::string& vocab_dir, const SyntheticEmbeddingOptions& options,
                                              uint64_t seed = 1);

}  // namespace bitnet
