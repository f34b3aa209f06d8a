// Hugging Face tokenizer.json / tokenizer_config.json → VocabData (hf_json.h).
#include "tokenizer/hf_json.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "errors.h"
#include "tokenizer/flat_map.h"
#include "tokenizer/internal.h"

namespace bitnet {
namespace hf {

const char* const kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* const kMetaspace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

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
    throw FormatError(where + ": not a byte-level BPE tokenizer (no ByteLevel pre-tokenizer or decoder) "
                      "and not SentencePiece-style (byte_fallback)");
  const auto has = [&](const char* t) { return std::find(v.tokens.begin(), v.tokens.end(), t) != v.tokens.end(); };
  if (has(">>TITLE<<") && has(">>ABSTRACT<<")) return "falcon3";
  if (regexes.size() == 1 && regexes[0] == kLlama3Regex) return "llama-bpe";
  if (regexes.size() == 1 && regexes[0] == kQwen2Regex) return "qwen2";
  const std::string shown = tj.contains("pre_tokenizer") ? tj["pre_tokenizer"].dump() : "null";
  throw FormatError(where + ": unsupported pre-tokenizer " + shown.substr(0, 300) +
                    " (supported: the Llama-3 split regex → llama-bpe, its one-digit Qwen2 form → qwen2, "
                    "Falcon3 vocabularies → falcon3)");
}

// "a b" or ["a", "b"] → the pair.
std::pair<std::string, std::string> merge_pair(const json& mg, const std::string& where) {
  if (mg.is_string()) {
    const std::string s = mg.get<std::string>();
    const size_t sp = s.size() > 1 ? s.find(' ', 1) : std::string::npos;
    if (sp != std::string::npos) return {s.substr(0, sp), s.substr(sp + 1)};
  } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
    return {mg[0].get<std::string>(), mg[1].get<std::string>()};
  }
  throw FormatError(where + ": merge " + mg.dump() + " is neither \"a b\" nor [\"a\", \"b\"]");
}

// model.vocab → tokens by id (ids must be 0..n-1, each once).
std::vector<std::string> vocab_tokens(const json& vocab, const std::string& where) {
  std::vector<std::string> tokens(vocab.size());
  std::vector<uint8_t> filled(vocab.size(), 0);
  for (const auto& [text, id] : vocab.items()) {
    if (!id.is_number_unsigned() || id.get<uint64_t>() >= vocab.size())
      throw FormatError(where + ": vocab id of '" + text + "' is " + id.dump() + ", outside 0.." +
                        std::to_string(vocab.size() - 1));
    const size_t i = id.get<size_t>();
    if (filled[i]) throw FormatError(where + ": vocab id " + std::to_string(i) + " is used twice");
    filled[i] = 1;
    tokens[i] = text;
  }
  return tokens;
}

// Whether the normalizer is SentencePiece's space handling: Replace(" " → "▁"), optionally after
// Prepend("▁") (then `prepend` is set). Anything else is rejected: the engine implements no
// other normalization for `llama` vocabularies.
void check_spm_normalizer(const json& n, bool& prepend, const std::string& where) {
  const auto is_replace = [](const json& x) {
    return x.is_object() && x.value("type", "") == "Replace" && x.contains("pattern") && x["pattern"].is_object() &&
           x["pattern"].value("String", "") == " " && x.value("content", "") == kMetaspace;
  };
  const auto is_prepend = [](const json& x) {
    return x.is_object() && x.value("type", "") == "Prepend" && x.value("prepend", "") == kMetaspace;
  };
  prepend = false;
  if (is_replace(n)) return;
  if (n.is_object() && n.value("type", "") == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
    const json& s = n["normalizers"];
    if (s.size() == 1 && is_replace(s[0])) return;
    if (s.size() == 2 && is_prepend(s[0]) && is_replace(s[1])) {
      prepend = true;
      return;
    }
  }
  throw FormatError(where + ": unsupported normalizer " + n.dump().substr(0, 300) +
                    " for a SentencePiece-style BPE (supported: Replace \" \" → \"▁\", optionally after Prepend \"▁\")");
}

// Pre-tokenizers that leave SentencePiece-normalized text (no spaces left) as one piece.
void check_spm_pre_tokenizer(const json& p, const std::string& where) {
  if (p.is_null()) return;
  if (p.is_object() && p.value("type", "") == "Split" && p.contains("pattern") && p["pattern"].is_object() &&
      p["pattern"].value("String", "") == " ")
    return;  // splits at " ", of which the normalizer left none
  throw FormatError(where + ": unsupported pre-tokenizer " + p.dump().substr(0, 300) +
                    " for a SentencePiece-style BPE (supported: none, or a Split at \" \")");
}

VocabData spm_vocab(const json& tj, const json& m, const std::string& where) {
  bool prepend = false;
  check_spm_normalizer(tj.contains("normalizer") ? tj["normalizer"] : json(), prepend, where);
  check_spm_pre_tokenizer(tj.contains("pre_tokenizer") ? tj["pre_tokenizer"] : json(), where);
  VocabData v;
  v.model = "llama";
  v.pre = "default";
  v.add_space_prefix = prepend;
  v.tokens = vocab_tokens(m["vocab"], where);
  const size_t n = v.tokens.size();
  tok::TextIdMap ids;
  ids.reserve(n);
  for (size_t i = 0; i < n; ++i) ids.insert(v.tokens[i], int32_t(i));

  // Score of a token: -(rank of the first merge that produces it); 0 when none does.
  std::vector<float> merge_score(n, 0.0f);
  std::vector<uint8_t> merged(n, 0);
  if (!m.contains("merges") || !m["merges"].is_array()) throw FormatError(where + ": missing array 'model.merges'");
  std::string cat;
  int64_t rank = 0;
  for (const json& mg : m["merges"]) {
    const auto [l, r] = merge_pair(mg, where);
    cat = l + r;
    const int32_t id = ids.find(cat);
    if (ids.find(l) < 0 || ids.find(r) < 0 || id < 0)
      throw FormatError(where + ": merge " + mg.dump() + " names a token that is not in the vocabulary");
    if (!merged[size_t(id)]) {
      merged[size_t(id)] = 1;
      merge_score[size_t(id)] = -float(rank);
    }
    ++rank;
  }
  const std::string unk = m.contains("unk_token") && m["unk_token"].is_string() ? m["unk_token"].get<std::string>() : "";
  v.types.assign(n, TokenType::NORMAL);
  v.scores.assign(n, 0.0f);
  for (size_t i = 0; i < n; ++i) {
    if (tok::parse_byte_token(v.tokens[i]) >= 0) {
      v.types[i] = TokenType::BYTE;
    } else if (!unk.empty() && v.tokens[i] == unk) {
      v.types[i] = TokenType::UNKNOWN;
      v.unk = int32_t(i);
    } else {
      v.scores[i] = merge_score[i];
    }
  }
  for (const AddedToken& a : added_tokens(tj, where)) {
    place_added(v, a, where);
    if (a.id < int64_t(n) && v.types[size_t(a.id)] != TokenType::UNKNOWN && v.types[size_t(a.id)] != TokenType::BYTE)
      v.scores[size_t(a.id)] = -1000.0f;
  }
  return v;
}

VocabData byte_level_vocab(const json& tj, const json& m, const std::string& where) {
  VocabData v;
  v.model = "gpt2";
  v.tokens = vocab_tokens(m["vocab"], where);
  v.types.assign(v.tokens.size(), TokenType::NORMAL);
  v.scores.assign(v.tokens.size(), 0.0f);
  for (const AddedToken& a : added_tokens(tj, where)) place_added(v, a, where);
  if (!m.contains("merges") || !m["merges"].is_array()) throw FormatError(where + ": missing array 'model.merges'");
  v.merges.reserve(m["merges"].size());
  for (const json& mg : m["merges"]) {
    const auto [l, r] = merge_pair(mg, where);
    v.merges.push_back(l + " " + r);
  }
  v.pre = detect_pre(tj, v, where);
  return v;
}

std::string token_text(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return "";
}

}  // namespace

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    throw FormatError(path + ": not valid JSON: " + e.what());
  }
}

std::vector<AddedToken> added_tokens(const json& tj, const std::string& where) {
  std::vector<AddedToken> out;
  if (!tj.contains("added_tokens") || tj["added_tokens"].is_null()) return out;
  if (!tj["added_tokens"].is_array()) throw FormatError(where + ": 'added_tokens' must be an array");
  for (const json& a : tj["added_tokens"]) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_unsigned() || !a.contains("content") ||
        !a["content"].is_string())
      throw FormatError(where + ": added token " + a.dump() + " needs an integer 'id' and a string 'content'");
    const json& sp = a.contains("special") ? a["special"] : json(false);
    out.push_back({a["id"].get<int64_t>(), a["content"].get<std::string>(), sp.is_boolean() && sp.get<bool>()});
  }
  std::sort(out.begin(), out.end(), [](const AddedToken& x, const AddedToken& y) { return x.id < y.id; });
  return out;
}

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
  v.scores.push_back(v.model == "llama" ? -1000.0f : 0.0f);
}

VocabData vocab_from_tokenizer_json(const json& tj, const std::string& where) {
  if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object())
    throw FormatError(where + ": missing object 'model'");
  const json& m = tj["model"];
  const std::string type = m.value("type", "BPE");
  if (type != "BPE") throw FormatError(where + ": tokenizer model type '" + type + "' is not supported (only BPE)");
  if (!m.contains("vocab") || !m["vocab"].is_object()) throw FormatError(where + ": missing object 'model.vocab'");
  const json& fallback = m.contains("byte_fallback") ? m["byte_fallback"] : json(false);
  return fallback.is_boolean() && fallback.get<bool>() ? spm_vocab(tj, m, where) : byte_level_vocab(tj, m, where);
}

void apply_tokenizer_config(VocabData& v, const std::string& dir) {
  const fs::path p = fs::path(dir) / "tokenizer_config.json";
  if (!fs::exists(p)) return;
  const json tc = read_json(p.string());
  if (!tc.is_object()) throw FormatError(p.string() + ": not a JSON object");
  if (tc.contains("chat_template")) {
    const json& t = tc["chat_template"];
    if (t.is_string()) v.chat_template = t.get<std::string>();
    else if (t.is_array())  // named templates: the "default" one
      for (const json& e : t)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
          v.chat_template = e["template"].get<std::string>();
  }
  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) v.add_bos = tc["add_bos_token"].get<bool>();
  if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean()) v.add_eos = tc["add_eos_token"].get<bool>();
  const std::pair<const char*, int32_t*> specials[] = {
      {"bos_token", &v.bos}, {"eos_token", &v.eos}, {"pad_token", &v.pad}, {"unk_token", &v.unk}};
  for (const auto& [key, target] : specials) {
    if (!tc.contains(key) || tc[key].is_null()) continue;
    const std::string text = token_text(tc[key]);
    const auto it = std::find(v.tokens.begin(), v.tokens.end(), text);
    if (it == v.tokens.end())
      throw FormatError(p.string() + ": " + key + " '" + text + "' is not in the vocabulary");
    *target = int32_t(it - v.tokens.begin());
  }
}

}  // namespace hf

VocabData vocab_from_hf_tokenizer(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "tokenizer.json").string();
  if (!std::filesystem::exists(path)) throw Error(dir + ": no tokenizer.json");
  VocabData v = hf::vocab_from_tokenizer_json(hf::read_json(path), path);
  // Without tokenizer_config.json: no BOS/EOS are added (the HF default for these tokenizers
  // is in the config file).
  v.add_bos = false;
  v.add_eos = false;
  hf::apply_tokenizer_config(v, dir);
  tok::validate_vocab(v);
  if (!v.merges.empty()) tok::check_merges(v);
  return v;
}

}  // namespace bitnet
