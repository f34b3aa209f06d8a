// Tokenizer: vocabulary validation, special-token partition (tokenizers.md §1), BOS/EOS,
// end-of-generation set (§2.7) and decoding (§2.8, §4).
#include <algorithm>
#include <climits>
#include <cstdlib>

#include "base/untrusted_text.h"
#include "errors.h"
#include "tokenizer/flat_map.h"
#include "tokenizer/impl.h"

namespace bitnet {
namespace tok {

int parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(t[3]), lo = hex(t[4]);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

bool split_merge(std::string_view m, std::string_view& left, std::string_view& right) {
  const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
  if (sp == std::string_view::npos) return false;
  left = m.substr(0, sp);
  right = m.substr(sp + 1);
  return true;
}

void validate_vocab(const VocabData& v) {
  if (v.tokens.empty()) throw FormatError("tokenizer.ggml.tokens is empty");
  if (v.tokens.size() >= static_cast<size_t>(INT32_MAX))
    throw FormatError("tokenizer.ggml.tokens has " + std::to_string(v.tokens.size()) +
                      " entries, more than token ids (int32) can address");
  const size_t n = v.tokens.size();
  if (!v.scores.empty() && v.scores.size() != n)
    throw FormatError("tokenizer.ggml.scores has " + std::to_string(v.scores.size()) +
                      " entries but tokenizer.ggml.tokens has " + std::to_string(n));
  if (!v.types.empty() && v.types.size() != n)
    throw FormatError("tokenizer.ggml.token_type has " + std::to_string(v.types.size()) +
                      " entries but tokenizer.ggml.tokens has " + std::to_string(n));
  for (size_t i = 0; i < v.types.size(); ++i) {
    const auto t = static_cast<int32_t>(v.types[i]);
    if (t < 0 || t > static_cast<int32_t>(TokenType::BYTE))
      throw FormatError("tokenizer.ggml.token_type[" + std::to_string(i) + "] = " + std::to_string(t) +
                        " is not a valid token type (0..6)");
    if (v.types[i] == TokenType::BYTE && parse_byte_token(v.tokens[i]) < 0)
      throw FormatError("byte token " + std::to_string(i) + " has malformed text '" + v.tokens[i] +
                        "' (expected <0xHH>)");
  }
  const std::pair<const char*, int32_t> ids[] = {{"bos_token_id", v.bos}, {"eos_token_id", v.eos},
                                                 {"eot_token_id", v.eot}, {"unknown_token_id", v.unk},
                                                 {"padding_token_id", v.pad}};
  for (const auto& [name, id] : ids)
    if (id < -1 || id >= static_cast<int64_t>(n))
      throw FormatError(std::string("tokenizer.ggml.") + name + " = " + std::to_string(id) +
                        " is out of range (vocabulary has " + std::to_string(n) + " tokens)");
}

void check_merges(const VocabData& v) {
  TextIdMap known;
  known.reserve(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i) known.insert(v.tokens[i], static_cast<int32_t>(i));
  for (size_t i = 0; i < v.merges.size(); ++i) {
    std::string_view l, r;
    if (!split_merge(v.merges[i], l, r))
      throw FormatError("tokenizer.ggml.merges[" + std::to_string(i) + "] ('" + v.merges[i] +
                        "') has no separator");
    for (std::string_view part : {l, r})
      if (known.find(part) < 0)
        throw FormatError("tokenizer.ggml.merges[" + std::to_string(i) + "] ('" + v.merges[i] +
                          "') names unknown token '" + std::string(part) + "'");
  }
}

}  // namespace tok

namespace {

bool is_llama3_vocab(const VocabData& v) {
  return v.tokens.size() == 128256 && v.merges.size() == 280147 &&
         v.tokens[128000] == "<|begin_of_text|>";
}

const char* const kEogTexts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                 "<|endoftext|>", "<|eom_id|>", "<EOT>"};

}  // namespace

void Tokenizer::Impl::build() {
  tok::validate_vocab(v);
  const size_t n = v.tokens.size();
  if (v.types.empty()) v.types.assign(n, TokenType::NORMAL);
  if (v.scores.empty()) v.scores.assign(n, 0.0f);

  if (v.model == "gpt2") {
    algo = Algo::BPE;
    const char* env = std::getenv("BITNET_TOKENIZER_PRE");
    pre_name = (env && *env) ? std::string(env) : v.pre;
    if (pre_name.empty()) pre_name = is_llama3_vocab(v) ? "llama-bpe" : "default";
    if (pre_name == "llama-bpe" || pre_name == "llama3" || pre_name == "llama-v3" ||
        pre_name == "falcon3" || pre_name == "falcon_e") {
      pre = tok::PreKind::Llama3;
      ignore_merges = true;
    } else if (pre_name == "qwen2") {
      pre = tok::PreKind::Qwen2;
    } else if (pre_name == "default") {
      pre = tok::PreKind::Default;
    } else {
      throw FormatError("unsupported pre-tokenizer " + quote_untrusted(pre_name) + " (tokenizer.ggml.pre)");
    }
  } else if (v.model == "llama") {
    algo = Algo::SPM;
    pre_name = "spm";
    add_space_prefix = v.add_space_prefix.value_or(true);
  } else {
    throw FormatError("unsupported tokenizer model " + quote_untrusted(v.model) + " (tokenizer.ggml.model)");
  }

  text_to_id.reserve(n);
  for (size_t i = 0; i < n; ++i) text_to_id.insert(v.tokens[i], static_cast<int32_t>(i));
  if (algo == Algo::BPE)
    build_bpe();
  else
    build_spm();

  pieces.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& t = v.tokens[i];
    switch (v.types[i]) {
      case TokenType::CONTROL: case TokenType::UNKNOWN:
        pieces[i] = t;
        break;
      case TokenType::UNUSED:
        break;
      case TokenType::USER_DEFINED:
        // Literal text, except that an SPM vocabulary's "▁" means a space here too (Gemma 3's
        // added "▁▁" … tokens are what runs of spaces encode to).
        if (algo == Algo::BPE) {
          pieces[i] = t;
          break;
        }
        [[fallthrough]];
      case TokenType::BYTE:
        if (algo == Algo::SPM && v.types[i] == TokenType::BYTE) {
          pieces[i] = std::string(1, static_cast<char>(tok::parse_byte_token(t)));
          break;
        }
        [[fallthrough]];
      default:
        if (algo == Algo::BPE) {
          pieces[i] = tok::bpe_text_to_bytes(t);
        } else {
          std::string& p = pieces[i];
          for (size_t k = 0; k < t.size(); ++k) {
            if (t.compare(k, 3, "\xE2\x96\x81") == 0) {
              p.push_back(' ');
              k += 2;
            } else {
              p.push_back(t[k]);
            }
          }
        }
    }
    const TokenType ty = v.types[i];
    if ((ty == TokenType::CONTROL || ty == TokenType::USER_DEFINED || ty == TokenType::UNKNOWN) &&
        !t.empty())
      specials.push_back(static_cast<int32_t>(i));
  }
  std::stable_sort(specials.begin(), specials.end(), [&](int32_t a, int32_t b) {
    return v.tokens[static_cast<size_t>(a)].size() > v.tokens[static_cast<size_t>(b)].size();
  });

  eot = v.eot;
  for (const char* t : kEogTexts) {
    const int32_t id = find(t);
    if (id < 0) continue;
    if (eot < 0) eot = id;
    eog.push_back(id);
  }
  if (v.eos >= 0) eog.push_back(v.eos);
  if (eot >= 0) eog.push_back(eot);
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
}

Tokenizer::Tokenizer(VocabData vocab) {
  auto impl = std::make_shared<Impl>();
  impl->v = std::move(vocab);
  impl->build();
  impl_ = std::move(impl);
}

std::vector<int32_t> Tokenizer::encode(std::string_view raw, bool add_special, bool parse_special) const {
  const Impl& m = *impl_;
  const std::string text = tok::sanitize_utf8(raw);
  struct Frag {
    int32_t id;  // -1: text
    size_t off, len;
  };
  std::vector<Frag> frags;
  if (!text.empty()) frags.push_back(Frag{-1, 0, text.size()});
  std::vector<Frag> next;
  for (int32_t sid : m.specials) {
    if (!parse_special && m.type(sid) != TokenType::USER_DEFINED) continue;
    const std::string& st = m.v.tokens[static_cast<size_t>(sid)];
    if (text.find(st) == std::string::npos) continue;
    next.clear();
    for (const Frag& f : frags) {
      if (f.id >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.off;
      const size_t end = f.off + f.len;
      while (pos < end) {
        const size_t hit = text.find(st, pos);
        if (hit == std::string::npos || hit + st.size() > end) break;
        if (hit > pos) next.push_back(Frag{-1, pos, hit - pos});
        next.push_back(Frag{sid, hit, st.size()});
        pos = hit + st.size();
      }
      if (pos < end) next.push_back(Frag{-1, pos, end - pos});
    }
    frags.swap(next);
  }

  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && m.v.add_bos && m.v.bos >= 0) out.push_back(m.v.bos);
  bool prev_special = true;  // SPM: the first fragment and fragments after a special get a space
  for (const Frag& f : frags) {
    if (f.id >= 0) {
      out.push_back(f.id);
      prev_special = true;
      continue;
    }
    const std::string_view piece(text.data() + f.off, f.len);
    if (m.algo == Impl::Algo::BPE)
      m.encode_bpe(piece, out);
    else
      m.encode_spm(piece, m.add_space_prefix && prev_special, out);
    prev_special = false;
  }
  if (add_special && m.v.add_eos && m.v.eos >= 0) out.push_back(m.v.eos);
  return out;
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
  const Impl& m = *impl_;
  if (id < 0 || id >= n_tokens()) throw Error("token id " + std::to_string(id) + " is out of range");
  const TokenType t = m.type(id);
  if ((t == TokenType::CONTROL || t == TokenType::UNKNOWN) && !render_special) return {};
  return m.pieces[static_cast<size_t>(id)];
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  const Impl& m = *impl_;
  std::string out;
  bool strip = m.algo == Impl::Algo::SPM && m.add_space_prefix;
  for (int32_t id : ids) {
    std::string p = token_to_piece(id, render_special);
    if (p.empty()) continue;
    if (strip && p[0] == ' ') p.erase(0, 1);
    strip = false;
    out += p;
  }
  return out;
}

int32_t Tokenizer::n_tokens() const { return static_cast<int32_t>(impl_->v.tokens.size()); }
int32_t Tokenizer::bos() const { return impl_->v.bos; }
int32_t Tokenizer::eos() const { return impl_->v.eos; }
int32_t Tokenizer::eot() const { return impl_->eot; }
bool Tokenizer::add_bos() const { return impl_->v.add_bos; }
bool Tokenizer::is_end_of_generation(int32_t id) const {
  return std::binary_search(impl_->eog.begin(), impl_->eog.end(), id);
}
const std::vector<int32_t>& Tokenizer::end_of_generation_ids() const { return impl_->eog; }
const std::string& Tokenizer::pre_tokenizer() const { return impl_->pre_name; }
const VocabData& Tokenizer::data() const { return impl_->v; }

}  // namespace bitnet
