#pragma once
// Hugging Face tokenizer files (tokenizer.json, tokenizer_config.json) → VocabData, the pieces that
// both vocab_from_hf_tokenizer (tokenizer.h, the public entry point) and the checkpoint converter
// (conversion/hf_tokenizer.h) use. Rules: shared/spec/tokenizers.md §2.4 and the tokenizer import
// section of docs/conversion.md.
//
// tokenizer.json `model` must be BPE and takes one of two forms:
//   * byte-level (ByteLevel pre-tokenizer/decoder)  → `gpt2`: vocab, merges ("a b" or ["a", "b"]),
//     pre-tokenizer from the Split regex: the Llama-3 regex → "llama-bpe", its one-digit variant
//     (Qwen2/Qwen3) → "qwen2", Falcon special tokens → "falcon3";
//   * SentencePiece-style (byte_fallback, "▁" for spaces; Gemma 3) → `llama`, written the way
//     Microsoft's BitNet embedding converter writes it: score of a token = −(rank of the first
//     merge that produces it), 0 for single characters and <0xHH> byte tokens (BYTE) and <unk>
//     (UNKNOWN), −1000 for added tokens; add_space_prefix only when the normalizer prepends "▁".
//     Merging by these scores (tokenizers.md §4) reproduces the merge-rank BPE of the source.
// Added tokens: special → CONTROL, others → USER_DEFINED (matched in any text, as HF does).
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace bitnet::hf {

// The Llama-3 split regex (tokenizers.md §2.3) and the Qwen2 one (single digits) as they appear
// in tokenizer.json.
extern const char* const kLlama3Regex;
extern const char* const kQwen2Regex;

struct AddedToken {
  int64_t id;
  std::string content;
  bool special;
};

// Parses a JSON file; FormatError naming the file when it is not valid JSON, Error when it
// cannot be read.
nlohmann::json read_json(const std::string& path);
// tokenizer.json `added_tokens` (missing or null: none). `where` names the file in errors.
std::vector<AddedToken> added_tokens(const nlohmann::json& tokenizer_json, const std::string& where);
// Puts an added token at its id: appended when id == size, else it must repeat the text there
// (a NORMAL token there becomes CONTROL/USER_DEFINED; other types are kept).
void place_added(VocabData& v, const AddedToken& a, const std::string& where);
// tokenizer.json → tokens, types, scores, merges, pre, unk (bos/eos stay -1).
VocabData vocab_from_tokenizer_json(const nlohmann::json& tokenizer_json, const std::string& where);
// tokenizer_config.json in `dir`, if present: chat template, add_bos_token / add_eos_token and
// the bos/eos/pad/unk tokens (by text; null leaves the id as it is).
void apply_tokenizer_config(VocabData& v, const std::string& dir);

}  // namespace bitnet::hf
