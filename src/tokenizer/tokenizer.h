#pragma once
// Tokenizers read from GGUF metadata: byte-level BPE (`gpt2`, Llama-3 / Falcon3) and
// SentencePiece-style BPE (`llama`), special tokens, and the chat templates of the supported
// models. Facts: shared/spec/tokenizers.md.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet {

class GgufFile;
class GgufWriter;

enum class TokenType : int32_t {
  UNDEFINED = 0,
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
};

// Plain vocabulary data as stored in GGUF `tokenizer.*` keys.
struct VocabData {
  std::string model;  // "gpt2" or "llama"
  std::string pre;    // pre-tokenizer for gpt2 ("llama-bpe", "default", ...); empty if absent
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<TokenType> types;
  std::vector<std::string> merges;  // gpt2 only
  int32_t bos = -1, eos = -1, eot = -1, unk = -1, pad = -1;
  bool add_bos = true, add_eos = false;
  std::optional<bool> add_space_prefix;
  std::string chat_template;  // may be empty
};

// Reads and validates the vocabulary keys (token ids in range, byte tokens well-formed, merges
// naming known tokens, array lengths consistent). Throws FormatError with a specific message.
VocabData read_vocab(const GgufFile& file);
// Writes the `tokenizer.*` keys (types exactly as llama.cpp expects).
void write_vocab(GgufWriter& writer, const VocabData& vocab);
// Builds the Llama-3 vocabulary from a tiktoken ranks file (tokenizers.md §3.2): 128000 ranks
// + 256 specials, 280147 merges, pre = "llama-bpe", BOS 128000, EOS 128001 (or as given).
VocabData vocab_from_tiktoken(const std::string& path);
// The vocabulary of a Hugging Face tokenizer directory: `dir`/tokenizer.json (required) and
// `dir`/tokenizer_config.json (optional: chat template, add_bos_token/add_eos_token, bos/eos/pad/
// unk tokens; without it no BOS/EOS is added). Byte-level BPE → `gpt2` (pre "llama-bpe", "qwen2"
// or "falcon3" from the split regex), SentencePiece-style BPE with byte fallback (Gemma 3) →
// `llama` with merge-rank scores; added tokens: special → CONTROL, others → USER_DEFINED; every
// token id of the file is kept (no padding to a model's row count; see read_hf_tokenizer in
// conversion/hf_tokenizer.h for that). Details: tokenizer/hf_json.h. Encoding with
// Tokenizer(vocab).encode(text, add_special, /*parse_special=*/true) gives the ids of HF
// `encode(text, add_special_tokens=add_special)` (data/hf-tokenizer-vectors.*.json).
// Throws Error (missing/unreadable file) or FormatError (malformed or unsupported content).
VocabData vocab_from_hf_tokenizer(const std::string& dir);

class Tokenizer {
 public:
  explicit Tokenizer(VocabData vocab);  // throws FormatError on an unsupported model/pre

  // add_special: BOS (and EOS) per the vocab flags; parse_special: CONTROL tokens in the text
  // become single ids (USER_DEFINED tokens are always matched). Invalid UTF-8 in `text` is
  // replaced first: every byte that does not start a complete, well-formed sequence becomes one
  // U+FFFD (so decode(encode(s)) == s exactly for valid UTF-8 only).
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;
  // Raw bytes of one token (may be an incomplete UTF-8 sequence). CONTROL/UNKNOWN tokens give
  // "" unless render_special. Throws Error for an id outside [0, n_tokens()).
  std::string token_to_piece(int32_t id, bool render_special = false) const;
  // Concatenation of pieces; for SPM drops the leading space the prefix added (one space of the
  // first piece that produces text). No clean-up of spaces around punctuation.
  std::string decode(std::span<const int32_t> ids, bool render_special = false) const;

  int32_t n_tokens() const;
  int32_t bos() const;
  int32_t eos() const;
  bool add_bos() const;
  bool is_end_of_generation(int32_t id) const;  // EOS, EOT and the llama.cpp EOG texts
  // Added: end-of-turn id (eot_token_id, else found by text; -1 if none), the sorted
  // end-of-generation set, and the pre-tokenizer in effect ("llama-bpe", "default", "qwen2",
  // ... after resolving a missing key and BITNET_TOKENIZER_PRE; "spm" for `llama` vocabs).
  int32_t eot() const;
  const std::vector<int32_t>& end_of_generation_ids() const;
  const std::string& pre_tokenizer() const;
  const VocabData& data() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

enum class ChatFormat { BitNet, Llama3, Falcon3, ChatML, Plain };
// Detection per tokenizers.md §5 (the official GGUF's BITNETAssistant template maps to BitNet).
ChatFormat detect_chat_format(std::string_view chat_template, std::string_view architecture);
// Renders the conversation as text (no BOS; the tokenizer adds it), optionally ending with the
// assistant generation prompt. Tokenize the result with parse_special = true.
std::string apply_chat_template(ChatFormat format, std::span<const ChatMessage> messages,
                                bool add_generation_prompt);
// The Jinja template text the model generator writes for each format.
std::string chat_template_text(ChatFormat format);
// llama.cpp's --chat-template: a built-in name ("bitnet", "llama3", "falcon3", "chatml", "plain")
// or a template's text, recognized as detect_chat_format does; nullopt for text it does not
// recognize (this engine renders its built-in formats; it does not execute Jinja).
std::optional<ChatFormat> chat_format_by_name_or_template(std::string_view name_or_template);
// The names chat_format_by_name_or_template accepts, for messages.
std::string chat_format_names();

}  // namespace bitnet
