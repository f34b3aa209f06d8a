#include "conversion/hf_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "conversion/sentencepiece_model.h"
#include "errors.h"

namespace bitnet {

const char* const kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

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

struct AddedToken {
  int64_t id;
  std::string content;
  bool special;
};

std::vector<AddedToken> added_tokens_of(const json& tj, const std::string& where) {
  std::vector<AddedToken> out;
  if (!tj.contains("added_tokens") || tj["added_tokens"].is_null()) return out;
  if (!tj["added_tokens"].is_array()) throw FormatError(where + ": 'added_tokens' must be an array");
  for (const json& a : tj["added_tokens"]) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_unsigned() || !a.contains("content") ||
        !a["content"].is_string())
      throw FormatError(where + ": added token " + a.dump() + " needs an integer 'id' and a string 'content'");
    out.push_back({a["id"].get<int64_t>(), a["content"].get<std::string>(), a.value("special", false)});
  }
  return out;
}

// Puts an added token at its id: appended when id == size, else it must repeat the text there.
void place_added(VocabData& v, const AddedToken& a, const std::string& where) {
  const TokenType type = a.special ? TokenType::CONTROL : TokenType::USER_DEFINED;
  if (a.id < int64_t(v.tokens.size())) {
    if (v.tokens[size_t(a.id)] != a.content)
      throw FormatError(where + ": added token '" + a.content + "' has id " + std::to_string(a.id) +
                        ", which the vocabulary already gives to '" + v.tokens[size_t(a.id)] + "'");
    // Keep SentencePiece's own classification (<unk> UNKNOWN, byte tokens); refine only NORMAL.
    if (v.types[size_t(a.id)] == TokenType::NORMAL) v.types[size_t(a.id)] = type;
    return;
  }
  if (a.id != int64_t(v.tokens.size()))
    throw FormatError(where + ": added token '" + a.content + "' has id " + std::to_string(a.id) +
                      " but the vocabulary ends at " + std::to_string(v.tokens.size()) + " (ids must be contiguous)");
  v.tokens.push_back(a.content);
  v.types.push_back(type);
  v.scores.push_back(0.0f);
}

void collect_split_regexes(const json& pre, std::vector<std::string>& out, bool& byte_level) {
  if (!pre.is_object()) return;
  const std::string type = pre.value("type", "");
  if (type == "Sequence" && pre.contains("pretokenizers") && pre["pretokenizers"].is_array())
    for (const json& p : pre["pretokenizers"]) collect_split_regexes(p, out, byte_level);
  if (type == "ByteLevel") byte_level = true;
  if (type == "Split" && pre.contains("pattern") && pre["pattern"].is_object()) {
    const json& pat = pre["pattern"];
    out.push_back(pat.contains("Regex") && pat["Regex"].is_string() ? pat["Regex"].get<std::string>()
                  : pat.contains("String") && pat["String"].is_string() ? "literal:" + pat["String"].get<std::string>()
                                                                         : pat.dump());
  }
}

// tokenizer.json pre_tokenizer → tokenizer.ggml.pre (tokenizers.md §2.3–2.4). Falcon3 vocabularies
// are recognised by the Falcon special tokens, since llama.cpp runs `falcon3` with the Llama-3 rules.
std::string detect_pre(const json& tj, const VocabData& v, const std::string& where) {
  std::vector<std::string> regexes;
  bool byte_level = false;
  if (tj.contains("pre_tokenizer")) collect_split_regexes(tj["pre_tokenizer"], regexes, byte_level);
  if (tj.contains("decoder") && tj["decoder"].is_object() && tj["decoder"].value("type", "") == "ByteLevel")
    byte_level = true;
  if (!byte_level)
    throw FormatError(where + ": not a byte-level BPE tokenizer (no ByteLevel pre-tokenizer or decoder); "
                      "SentencePiece vocabularies need tokenizer.model");
  const auto has = [&](const char* t) { return std::find(v.tokens.begin(), v.tokens.end(), t) != v.tokens.end(); };
  if (has(">>TITLE<<") && has(">>ABSTRACT<<")) return "falcon3";
  if (regexes.size() == 1 && regexes[0] == kLlama3Regex) return "llama-bpe";
  const std::string shown = tj.contains("pre_tokenizer") ? tj["pre_tokenizer"].dump() : "null";
  throw FormatError(where + ": unsupported pre-tokenizer " + shown.substr(0, 300) +
                    " (supported: the Llama-3 split regex → llama-bpe, Falcon3 vocabularies → falcon3)");
}

VocabData vocab_from_tokenizer_json(const json& tj, const std::string& where) {
  if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object())
    throw FormatError(where + ": missing object 'model'");
  const json& m = tj["model"];
  const std::string type = m.value("type", "BPE");
  if (type != "BPE") throw FormatError(where + ": tokenizer model type '" + type + "' is not supported (only BPE)");
  if (m.value("byte_fallback", false))
    throw FormatError(where + ": SentencePiece-style BPE (byte_fallback) needs tokenizer.model");
  if (!m.contains("vocab") || !m["vocab"].is_object()) throw FormatError(where + ": missing object 'model.vocab'");
  const json& vocab = m["vocab"];
  VocabData v;
  v.model = "gpt2";
  std::vector<uint8_t> filled;
  for (const auto& [text, id] : vocab.items()) {
    if (!id.is_number_unsigned() || id.get<uint64_t>() >= vocab.size())
      throw FormatError(where + ": vocab id of '" + text + "' is " + id.dump() + ", outside 0.." +
                        std::to_string(vocab.size() - 1));
    const size_t i = id.get<size_t>();
    if (v.tokens.size() <= i) v.tokens.resize(vocab.size()), filled.resize(vocab.size(), 0);
    if (filled[i]) throw FormatError(where + ": vocab id " + std::to_string(i) + " is used twice");
    filled[i] = 1;
    v.tokens[i] = text;
  }
  v.types.assign(v.tokens.size(), TokenType::NORMAL);
  v.scores.assign(v.tokens.size(), 0.0f);
  for (const AddedToken& a : added_tokens_of(tj, where)) place_added(v, a, where);

  if (!m.contains("merges") || !m["merges"].is_array()) throw FormatError(where + ": missing array 'model.merges'");
  v.merges.reserve(m["merges"].size());
  for (const json& mg : m["merges"]) {
    if (mg.is_string() && mg.get<std::string>().find(' ', 1) != std::string::npos) {
      v.merges.push_back(mg.get<std::string>());
    } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
      v.merges.push_back(mg[0].get<std::string>() + " " + mg[1].get<std::string>());
    } else {
      throw FormatError(where + ": merge " + mg.dump() + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  v.pre = detect_pre(tj, v, where);
  return v;
}

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
    extra = added_tokens_of(*tj, (dir / "tokenizer.json").string());
  } else if (auto at = optional_json(dir / "added_tokens.json")) {
    if (!at->is_object()) throw FormatError((dir / "added_tokens.json").string() + ": not an object");
    for (const auto& [text, id] : at->items()) {
      if (!id.is_number_unsigned()) throw FormatError((dir / "added_tokens.json").string() + ": id of '" + text + "' is not an integer");
      extra.push_back({id.get<int64_t>(), text, false});
    }
  }
  std::sort(extra.begin(), extra.end(), [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
  for (const AddedToken& a : extra)
    if (a.id >= int64_t(v.tokens.size()) || v.model == "llama") place_added(v, a, (dir / "tokenizer.json").string());
}

std::string token_text(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return "";
}

void apply_tokenizer_config(VocabData& v, const fs::path& dir) {
  const fs::path p = dir / "tokenizer_config.json";
  const auto tc = optional_json(p);
  if (!tc) return;
  if (!tc->is_object()) throw FormatError(p.string() + ": not a JSON object");
  if (tc->contains("chat_template")) {
    const json& t = (*tc)["chat_template"];
    if (t.is_string()) v.chat_template = t.get<std::string>();
    else if (t.is_array())  // named templates: the "default" one
      for (const json& e : t)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
          v.chat_template = e["template"].get<std::string>();
  }
  if (tc->contains("add_bos_token") && (*tc)["add_bos_token"].is_boolean()) v.add_bos = (*tc)["add_bos_token"].get<bool>();
  if (tc->contains("add_eos_token") && (*tc)["add_eos_token"].is_boolean()) v.add_eos = (*tc)["add_eos_token"].get<bool>();
  const std::pair<const char*, int32_t*> specials[] = {
      {"bos_token", &v.bos}, {"eos_token", &v.eos}, {"pad_token", &v.pad}, {"unk_token", &v.unk}};
  for (const auto& [key, target] : specials) {
    if (!tc->contains(key) || (*tc)[key].is_null()) continue;
    const std::string text = token_text((*tc)[key]);
    const auto it = std::find(v.tokens.begin(), v.tokens.end(), text);
    if (it == v.tokens.end())
      throw FormatError(p.string() + ": " + key + " '" + text + "' is not in the vocabulary");
    *target = int32_t(it - v.tokens.begin());
  }
}

}  // namespace

VocabData read_hf_tokenizer(const std::string& dir_s, const HfConfig& cfg) {
  const fs::path dir(dir_s);
  VocabData v;
  if (fs::exists(dir / "tokenizer.model")) {
    const std::string bytes = slurp(dir / "tokenizer.model");
    if (looks_like_tiktoken(bytes)) {
      v = vocab_from_tiktoken((dir / "tokenizer.model").string());
    } else {
      v = vocab_from_spm(dir / "tokenizer.model", bytes);
      add_extra_tokens(v, dir);
    }
  } else if (fs::exists(dir / "tokenizer.json")) {
    v = vocab_from_tokenizer_json(*optional_json(dir / "tokenizer.json"), (dir / "tokenizer.json").string());
    v.bos = v.eos = -1;
  } else {
    throw Error(dir_s + ": no tokenizer (tokenizer.json or tokenizer.model)");
  }
  apply_tokenizer_config(v, dir);
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
