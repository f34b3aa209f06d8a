#include "conversion/hf_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "conversion/sentencepiece_model.h"
#include "errors.h"
#include "tokenizer/hf_json.h"

namespace bitnet {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(p.string() + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<json> optional_json(const fs::path& p) {
  if (!fs::exists(p)) return std::nullopt;
  try {
    return json::parse(slurp(p));
  } catch (const json::exception& e) {
    throw FormatError(p.string() + ": not valid JSON: " + e.what());
  }
}

// tiktoken ranks files are text lines "<base64> <rank>"; a SentencePiece protobuf starts with a
// binary field key.
bool looks_like_tiktoken(const std::string& s) {
  const size_t eol = std::min(s.find('\n'), s.size());
  const size_t sp = s.find(' ');
  if (sp == std::string::npos || sp == 0 || sp >= eol) return false;
  for (size_t i = 0; i < sp; ++i) {
    const char c = s[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') return false;
  }
  for (size_t i = sp + 1; i < eol; ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i])) && s[i] != '\r') return false;
  return eol > sp + 1;
}

using hf::AddedToken;

VocabData vocab_from_spm(const fs::path& path, const std::string& bytes) {
  const SpmModel spm = parse_sentencepiece_model(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), path.string());
  if (spm.model_type != 2)
    throw FormatError(path.string() + ": SentencePiece model type " + std::to_string(spm.model_type) +
                      (spm.model_type == 1 ? " (unigram)" : "") + " is not supported (only BPE, type 2)");
  VocabData v;
  v.model = "llama";
  for (const SpmPiece& p : spm.pieces) {
    v.tokens.push_back(p.piece);
    v.scores.push_back(p.score);
    v.types.push_back(static_cast<TokenType>(p.type));
  }
  const auto id = [&](int32_t i) { return i >= 0 && size_t(i) < v.tokens.size() ? i : -1; };
  v.unk = id(spm.unk_id);
  v.bos = id(spm.bos_id);
  v.eos = id(spm.eos_id);
  v.pad = id(spm.pad_id);
  v.add_space_prefix = spm.add_dummy_prefix;
  return v;
}

// Added tokens beyond a tokenizer.model's pieces (e.g. the 2 extra ids of the 1bitLLM vocab).
void add_extra_tokens(VocabData& v, const fs::path& dir) {
  std::vector<AddedToken> extra;
  if (auto tj = optional_json(dir / "tokenizer.json")) {
    extra = hf::added_tokens(*tj, (dir / "tokenizer.json").string());
  } else if (auto at = optional_json(dir / "added_tokens.json")) {
    if (!at->is_object()) throw FormatError((dir / "added_tokens.json").string() + ": not an object");
    for (const auto& [text, id] : at->items()) {
      if (!id.is_number_unsigned()) throw FormatError((dir / "added_tokens.json").string() + ": id of '" + text + "' is not an integer");
      extra.push_back({id.get<int64_t>(), text, false});
    }
  }
  std::sort(extra.begin(), extra.end(), [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
  for (const AddedToken& a : extra)
    if (a.id >= int64_t(v.tokens.size()) || v.model == "llama") hf::place_added(v, a, (dir / "tokenizer.json").string());
}

}  // namespace

VocabData read_hf_tokenizer(const std::string& dir_s, const HfConfig& cfg) {
  const fs::path dir(dir_s);
  VocabData v;
  size_t base = 0;  // tokens of the tokenizer model itself; added tokens follow
  if (fs::exists(dir / "tokenizer.model")) {
    const std::string bytes = slurp(dir / "tokenizer.model");
    if (looks_like_tiktoken(bytes)) {
      v = vocab_from_tiktoken((dir / "tokenizer.model").string());
      base = v.tokens.size();
    } else {
      v = vocab_from_spm(dir / "tokenizer.model", bytes);
      base = v.tokens.size();
      add_extra_tokens(v, dir);
    }
  } else if (fs::exists(dir / "tokenizer.json")) {
    const json tj = *optional_json(dir / "tokenizer.json");
    v = hf::vocab_from_tokenizer_json(tj, (dir / "tokenizer.json").string());
    base = tj["model"]["vocab"].size();
  } else {
    throw Error(dir_s + ": no tokenizer (tokenizer.json or tokenizer.model)");
  }
  hf::apply_tokenizer_config(v, dir_s);
  // generation_config.json, then config.json fill the ids tokenizer_config.json did not name.
  auto fill = [&](int32_t& target, const std::optional<int64_t>& id) {
    if (target < 0 && id && *id < int64_t(v.tokens.size())) target = int32_t(*id);
  };
  if (auto gc = optional_json(dir / "generation_config.json"); gc && gc->is_object()) {
    for (const auto& [key, target] : {std::pair{"bos_token_id", &v.bos}, std::pair{"eos_token_id", &v.eos}})
      if (gc->contains(key)) {
        const json& val = (*gc)[key].is_array() && !(*gc)[key].empty() ? (*gc)[key][0] : (*gc)[key];
        if (val.is_number_unsigned()) fill(*target, val.get<int64_t>());
      }
  }
  fill(v.bos, cfg.bos_id);
  fill(v.eos, cfg.eos_id);
  fill(v.pad, cfg.pad_id);

  // Added tokens appended past both the tokenizer model's vocabulary and the embedding rows
  // (Gemma 3's <image_soft_token>, id 262144 of a 262144-row model) cannot be model inputs:
  // dropped, as Microsoft's converter does, unless one of them is a BOS/EOS/PAD/UNK token.
  const auto referenced = [&](int32_t id) { return id == v.bos || id == v.eos || id == v.pad || id == v.unk; };
  while (int64_t(v.tokens.size()) > cfg.n_vocab && int64_t(base) <= cfg.n_vocab &&
         !referenced(int32_t(v.tokens.size() - 1))) {
    v.tokens.pop_back();
    v.types.pop_back();
    v.scores.pop_back();
  }
  if (int64_t(v.tokens.size()) > cfg.n_vocab)
    throw FormatError(dir_s + ": the tokenizer has " + std::to_string(v.tokens.size()) +
                      " tokens but config.json vocab_size is " + std::to_string(cfg.n_vocab));
  // Embedding rows beyond the tokenizer (HF pads vocab_size) get placeholder tokens, as
  // llama.cpp's converter writes them, so every row has a token.
  for (int64_t i = int64_t(v.tokens.size()); i < cfg.n_vocab; ++i) {
    v.tokens.push_back("[PAD" + std::to_string(i) + "]");
    v.types.push_back(TokenType::UNUSED);
    v.scores.push_back(v.model == "llama" ? -1000.0f : 0.0f);
  }
  Tokenizer check(v);  // validates types, ids, merges, pre-tokenizer
  return v;
}

}  // namespace bitnet
