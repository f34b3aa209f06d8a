// read_vocab / write_vocab: the `tokenizer.*` keys of gguf.md §8.3, validated against malicious
// vocabularies (gguf.md §10 classes 11 and 12).
#include <climits>

#include "errors.h"
#include "formats/gguf.h"
#include "tokenizer/internal.h"

namespace bitnet {
namespace {

bool llama_bpe_family(std::string_view pre) {
  return pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3" || pre == "falcon3" ||
         pre == "falcon_e";
}

}  // namespace

VocabData read_vocab(const GgufFile& file) {
  VocabData v;
  auto model = file.get_string("tokenizer.ggml.model");
  if (!model) throw FormatError("missing tokenizer.ggml.model");
  v.model = std::move(*model);
  v.pre = file.get_string("tokenizer.ggml.pre").value_or("");
  auto tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (!tokens) throw FormatError("missing tokenizer.ggml.tokens");
  v.tokens = std::move(*tokens);
  const size_t n = v.tokens.size();
  if (n >= static_cast<size_t>(INT32_MAX))
    throw FormatError("tokenizer.ggml.tokens has " + std::to_string(n) +
                      " entries, more than token ids (int32) can address");

  if (auto scores = file.get_float_array("tokenizer.ggml.scores")) {
    if (scores->size() != n)
      throw FormatError("tokenizer.ggml.scores has " + std::to_string(scores->size()) +
                        " entries but tokenizer.ggml.tokens has " + std::to_string(n));
    v.scores.reserve(n);
    for (double s : *scores) v.scores.push_back(static_cast<float>(s));
  }
  if (auto types = file.get_int_array("tokenizer.ggml.token_type")) {
    if (types->size() != n)
      throw FormatError("tokenizer.ggml.token_type has " + std::to_string(types->size()) +
                        " entries but tokenizer.ggml.tokens has " + std::to_string(n));
    v.types.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const int64_t t = (*types)[i];
      if (t < 0 || t > static_cast<int64_t>(TokenType::BYTE))
        throw FormatError("tokenizer.ggml.token_type[" + std::to_string(i) + "] = " + std::to_string(t) +
                          " is not a valid token type (0..6)");
      v.types.push_back(static_cast<TokenType>(t));
    }
  }
  if (auto merges = file.get_string_array("tokenizer.ggml.merges")) v.merges = std::move(*merges);

  const bool spm = v.model == "llama";
  auto read_id = [&](const char* key, int32_t def) -> int32_t {
    const std::string k = std::string("tokenizer.ggml.") + key;
    const auto val = file.get_int(k);
    if (!val) return (def >= 0 && static_cast<size_t>(def) < n) ? def : -1;
    if (*val == -1) return -1;  // some converters write -1 for "none"
    if (*val < 0 || *val >= static_cast<int64_t>(n))
      throw FormatError(k + " = " + std::to_string(*val) + " is out of range (vocabulary has " +
                        std::to_string(n) + " tokens)");
    return static_cast<int32_t>(*val);
  };
  v.bos = read_id("bos_token_id", spm ? 1 : -1);
  v.eos = read_id("eos_token_id", spm ? 2 : -1);
  v.eot = read_id("eot_token_id", -1);
  v.unk = read_id("unknown_token_id", spm ? 0 : -1);
  v.pad = read_id("padding_token_id", -1);

  const bool llama3_vocab = n == 128256 && v.tokens[128000] == "<|begin_of_text|>";
  const bool bos_default = spm || llama_bpe_family(v.pre) || (v.pre.empty() && llama3_vocab);
  v.add_bos = file.get_bool("tokenizer.ggml.add_bos_token").value_or(bos_default);
  v.add_eos = file.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  v.add_space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix");
  v.chat_template = file.get_string("tokenizer.chat_template").value_or("");

  tok::validate_vocab(v);
  if (!v.merges.empty()) tok::check_merges(v);
  return v;
}

void write_vocab(GgufWriter& w, const VocabData& v) {
  tok::validate_vocab(v);
  w.add_string("tokenizer.ggml.model", v.model);
  if (!v.pre.empty()) w.add_string("tokenizer.ggml.pre", v.pre);
  w.add_string_array("tokenizer.ggml.tokens", v.tokens);
  w.add_f32_array("tokenizer.ggml.scores",
                  v.scores.empty() ? std::vector<float>(v.tokens.size(), 0.0f) : v.scores);
  std::vector<int32_t> types(v.tokens.size(), static_cast<int32_t>(TokenType::NORMAL));
  for (size_t i = 0; i < v.types.size(); ++i) types[i] = static_cast<int32_t>(v.types[i]);
  w.add_i32_array("tokenizer.ggml.token_type", types);
  if (!v.merges.empty()) w.add_string_array("tokenizer.ggml.merges", v.merges);
  const std::pair<const char*, int32_t> ids[] = {{"bos_token_id", v.bos}, {"eos_token_id", v.eos},
                                                 {"eot_token_id", v.eot}, {"unknown_token_id", v.unk},
                                                 {"padding_token_id", v.pad}};
  for (const auto& [key, id] : ids)
    if (id >= 0) w.add_u32(std::string("tokenizer.ggml.") + key, static_cast<uint32_t>(id));
  w.add_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  w.add_bool("tokenizer.ggml.add_eos_token", v.add_eos);
  if (v.add_space_prefix) w.add_bool("tokenizer.ggml.add_space_prefix", *v.add_space_prefix);
  if (!v.chat_template.empty()) w.add_string("tokenizer.chat_template", v.chat_template);
}

}  // namespace bitnet
