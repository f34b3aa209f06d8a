#pragma once
// Hugging Face checkpoint directory → GGUF, streamed tensor by tensor (docs/conversion.md).
// Projections are ternarized with absmean (ternary-formats.md §1) or unpacked from the HF packed
// format (§13); embeddings, norms and the LM head are never ternarized. Only one tensor's floats
// are in memory at a time; the output appears only when complete (GgufWriter's tmp + rename).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "conversion/hf_config.h"
#include "formats/gguf.h"
#include "tensor/ggml_type.h"
#include "tokenizer/tokenizer.h"

namespace bitnet {

struct ConvertOptions {
  GgmlType type = GgmlType::I2_S;         // the seven projections per layer
  std::optional<GgmlType> embedding_type;  // token_embd / output; default: default_embedding_type
  // True when `type` is only the default (no --outtype): a plain float qwen3/gemma3 checkpoint
  // (no BitNet per-projection norms) is then written as F16 instead of being ternarized; an
  // explicitly requested ternary type for such a checkpoint is an error.
  bool type_defaulted = false;
};

struct ConvertResult {
  uint64_t input_bytes = 0;   // tensor data read from the checkpoint
  uint64_t output_bytes = 0;  // size of the GGUF
  std::vector<std::string> notes;
};

// Throws Error/FormatError with a specific message; on failure nothing is left at `out`.
ConvertResult convert_hf_checkpoint(const std::string& dir, const std::string& out,
                                    const ConvertOptions& options,
                                    const GgufWriter::Progress& progress = {});

// ---- helpers shared with `bitnet quantize` and the tests -------------------------------------
// Types a converter may write for projections / embeddings (UsageError-level checks).
bool is_projection_output_type(GgmlType t);  // i2_s tq1_0 tq2_0 tl1 tl2 f32 f16 bf16
bool is_embedding_output_type(GgmlType t);   // f32 f16 bf16 q8_0 q6_k
// f32 → f32, bf16 → bf16, everything else → f16 (what bitnet.cpp keeps embeddings in).
GgmlType default_embedding_type(GgmlType projection_type);
// general.file_type in bitnet.cpp's numbering (gguf.md §8.1).
uint32_t gguf_file_type(GgmlType projection_type);
// The type a rows × cols matrix is written in when `wanted` is asked for. Block types need rows
// of whole blocks; where `wanted` has none (bitnet_b1_58-3B's widths 3200 and 8640 are not
// multiples of 256), the nearest type that can store it, as llama-quantize falls back:
// TQ1_0/TQ2_0 → I2_S (the same trits with one α per tensor: lossless for ternary weights),
// Q6_K → Q8_0, then F16; each fallback adds a line to `notes` naming the tensor. TL1/TL2 without
// a tile layout for the shape throw an Error naming the tensor (they have no lossless fallback).
GgmlType storage_type(GgmlType wanted, const std::string& tensor, int64_t cols, int64_t rows,
                      std::vector<std::string>* notes);
// sentence-transformers pooling of a checkpoint directory (modules.json + its Pooling module's
// config.json) in GGUF {arch}.pooling_type numbering: 1 mean, 2 cls, 3 last; nullopt without
// modules.json. Modules that would change the vectors and cannot be represented (Dense, max /
// weighted pooling, several pooling modes at once) are an Error naming them.
std::optional<uint32_t> read_sentence_transformers_pooling(const std::string& dir, std::vector<std::string>* notes);

// The {arch}.* hyper-parameters, pooling type (when given), file type and vocabulary of a model of
// configuration `c` (shared by convert and gen-model's embedding presets).
void write_model_metadata(GgufWriter& w, const HfConfig& c, GgmlType type, const VocabData& vocab,
                          std::optional<uint32_t> pooling);
// An embedding model's tokenizer settings: EOS appended (Qwen3 <|endoftext|>, Gemma 3 <eos>; its
// hidden state is what last-token pooling reads), Gemma 3 also BOS. FormatError if the token is missing.
void set_embedding_special_tokens(VocabData& vocab, const std::string& arch);

// True for blk.N.{attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down}.weight.
bool is_projection_name(const std::string& gguf_name);

// LLaMA q/k rows from HF's rotate_half order to adjacent-pair (NORM) order, per head:
// HF row h·hd + l·hd/2 + i → GGUF row h·hd + 2i + l (architectures.md §1).
void permute_qk_rows(float* w, int64_t rows, int64_t cols, int64_t n_heads);

}  // namespace bitnet
