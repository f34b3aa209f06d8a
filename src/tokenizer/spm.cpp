// SentencePiece-style BPE (`llama`, tokenizers.md §4): score-driven pair merging with byte
// fallback.
#include <limits>
#include <queue>

#include "errors.h"
#include "tokenizer/impl.h"

namespace bitnet {

void Tokenizer::Impl::build_spm() {
  byte_token.fill(-1);
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.types[i] != TokenType::BYTE) continue;
    const int b = tok::parse_byte_token(v.tokens[i]);
    if (b >= 0 && byte_token[static_cast<size_t>(b)] < 0) byte_token[static_cast<size_t>(b)] = static_cast<int32_t>(i);
  }
}

namespace {

struct Sym {
  int32_t prev, next;
  uint32_t off, len;  // bytes in the normalized text; len 0 = merged away
};

struct Cand {
  float score;
  int32_t left, right;
  uint32_t size;
  int32_t id;
  bool operator<(const Cand& o) const {  // highest score first, then leftmost
    return score != o.score ? score < o.score : left > o.left;
  }
};

}  // namespace

void Tokenizer::Impl::encode_spm(std::string_view text, bool prefix, std::vector<int32_t>& out) const {
  std::string s;
  s.reserve(text.size() * 3 + 3);
  if (prefix) s += "\xE2\x96\x81";
  for (char c : text) {
    if (c == ' ')
      s += "\xE2\x96\x81";  // U+2581
    else
      s.push_back(c);
  }
  std::vector<Sym> syms;
  for (uint32_t off = 0; off < s.size();) {
    const auto b = static_cast<uint8_t>(s[off]);
    uint32_t len = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : 4;
    if (off + len > s.size()) len = static_cast<uint32_t>(s.size() - off);  // cannot happen: valid UTF-8
    const auto i = static_cast<int32_t>(syms.size());
    syms.push_back(Sym{i - 1, -1, off, len});
    off += len;
  }
  if (syms.empty()) return;
  for (size_t i = 0; i + 1 < syms.size(); ++i) syms[i].next = static_cast<int32_t>(i + 1);

  std::priority_queue<Cand> queue;
  auto try_pair = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const Sym& a = syms[static_cast<size_t>(l)];
    const Sym& b = syms[static_cast<size_t>(r)];
    const std::string_view t(s.data() + a.off, a.len + b.len);
    const int32_t id = find(t);
    if (id < 0) return;
    float score = v.scores.empty() ? 0.0f : v.scores[static_cast<size_t>(id)];
    if (score != score) score = -std::numeric_limits<float>::infinity();  // NaN: keep the order strict
    queue.push(Cand{score, l, r, a.len + b.len, id});
  };
  for (size_t i = 0; i + 1 < syms.size(); ++i) try_pair(static_cast<int32_t>(i), static_cast<int32_t>(i + 1));
  while (!queue.empty()) {
    const Cand c = queue.top();
    queue.pop();
    Sym& l = syms[static_cast<size_t>(c.left)];
    Sym& r = syms[static_cast<size_t>(c.right)];
    if (l.len == 0 || r.len == 0 || l.len + r.len != c.size) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = c.left;
    try_pair(l.prev, c.left);
    try_pair(c.left, l.next);
  }
  // Every merged symbol is a token by construction; only single characters can be missing, and
  // those fall back to byte tokens.
  for (int32_t i = 0; i >= 0; i = syms[static_cast<size_t>(i)].next) {
    const Sym& sym = syms[static_cast<size_t>(i)];
    const std::string_view t(s.data() + sym.off, sym.len);
    const int32_t id = find(t);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (char ch : t) {
      int32_t bid = byte_token[static_cast<uint8_t>(ch)];
      if (bid < 0) bid = find(std::string_view(&ch, 1));
      if (bid < 0) bid = v.unk;
      if (bid >= 0) out.push_back(bid);
    }
  }
}

}  // namespace bitnet
