#pragma once
// The tokenizer of a Hugging Face checkpoint directory → GGUF vocabulary (VocabData):
//   * `tokenizer.model` as SentencePiece protobuf (→ `llama`) or as tiktoken ranks text
//     (→ `gpt2`, Llama-3 specials), plus added tokens from tokenizer.json / added_tokens.json;
//   * otherwise `tokenizer.json` byte-level BPE (→ `gpt2`): vocab, merges ("a b" or ["a","b"]),
//     added_tokens (special → CONTROL, else USER_DEFINED), pre-tokenizer → tokenizer.ggml.pre.
// Then chat template, add_bos/add_eos and bos/eos/pad/unk from tokenizer_config.json,
// generation_config.json and config.json (in that order of precedence).
#include <string>

#include "conversion/hf_config.h"
#include "tokenizer/tokenizer.h"


namespace bitnet {

// The vocabulary is padded with UNUSED "[PAD<i>]" tokens up to cfg.n_vocab (the embedding rows,
// which HF often rounds up); more tokens than rows is an error. Validated by building a Tokenizer.
VocabData read_hf_tokenizer(const std::string& dir, const HfConfig& cfg);

// The Llama-3 split regex (tokenizers.md §2.3) as it appears in tokenizer.json.
extern const char* const kLlama3Regex;

}  // namespace bitnet
