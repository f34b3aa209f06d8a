#pragma once
// The tokenizer of a Hugging Face checkpoint directory → GGUF vocabulary (VocabData):
//   * `tokenizer.model` as SentencePiece protobuf (→ `llama`) or as tiktoken ranks text
//     (→ `gpt2`, Llama-3 specials), plus added tokens from tokenizer.json / added_tokens.json;
//   * otherwise `tokenizer.json` (tokenizer/hf_json.h): byte-level BPE → `gpt2` (pre llama-bpe,
//     qwen2 or falcon3), SentencePiece-style BPE with byte fallback (Gemma 3) → `llama` with
//     merge-rank scores; added tokens: special → CONTROL, else USER_DEFINED.
// Then chat template, add_bos/add_eos and bos/eos/pad/unk from tokenizer_config.json,
// generation_config.json and config.json (in that order of precedence).
// A tokenizer directory without a checkpoint: vocab_from_hf_tokenizer (tokenizer/tokenizer.h).
#include <string>

#include "conversion/hf_config.h"
#include "tokenizer/tokenizer.h"


namespace bitnet {

// The vocabulary is padded with UNUSED "[PAD<i>]" tokens up to cfg.n_vocab (the embedding rows,
// which HF often rounds up); added tokens past the last row are dropped when the tokenizer's own
// vocabulary fits the rows (unless BOS/EOS/PAD/UNK); otherwise more tokens than rows is an error. Validated by building a Tokenizer.
VocabData read_hf_tokenizer(const std::string& dir, const HfConfig& cfg);

}  // namespace bitnet
