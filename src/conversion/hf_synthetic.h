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

}  // namespace bitnet
