// Byte-level BPE (`gpt2`): byte <-> code point table (tokenizers.md §2.1) and merge-rank BPE over
// pre-tokenized words (§2.2), using a priority queue over adjacent symbol pairs.
#include <queue>

#include "errors.h"
#include "tokenizer/impl.h"

namespace bitnet {
namespace tok {
namespace {

struct ByteTable {
  std::array<uint32_t, 256> to_cp{};
  std::array<std::array<char, 2>, 256> utf8{};  // all mapped code points are < U+0800
  std::array<uint8_t, 256> utf8_len{};
  std::array<int16_t, 0x144> from_cp{};  // code points used are all < U+0144
  ByteTable() {
    from_cp.fill(-1);
    uint32_t next = 0x100;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      to_cp[b] = printable ? b : next++;
      from_cp[to_cp[b]] = static_cast<int16_t>(b);
      std::string u;
      append_utf8(u, to_cp[b]);
      utf8_len[b] = static_cast<uint8_t>(u.size());
      for (size_t k = 0; k < u.size(); ++k) utf8[b][k] = u[k];
    }
  }
};

const ByteTable& table() {
  static const ByteTable t;
  return t;
}

}  // namespace

uint32_t byte_to_cp(uint8_t b) { return table().to_cp[b]; }

int cp_to_byte(uint32_t cp) { return cp < 0x144 ? table().from_cp[cp] : -1; }

std::string bytes_to_bpe_text(std::string_view bytes) {
  const ByteTable& t = table();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto b = static_cast<uint8_t>(c);
    out.append(t.utf8[b].data(), t.utf8_len[b]);
  }
  return out;
}

std::string bpe_text_to_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  // Fast path: ASCII and 2-byte sequences cover every mapped code point.
  size_t i = 0;
  for (; i < text.size(); ++i) {
    const auto c = static_cast<uint8_t>(text[i]);
    if (c < 0x80) {
      const int b = cp_to_byte(c);
      if (b < 0) break;
      out.push_back(static_cast<char>(b));
    } else if ((c & 0xE0) == 0xC0 && i + 1 < text.size() &&
               (static_cast<uint8_t>(text[i + 1]) & 0xC0) == 0x80) {
      const uint32_t cp = ((c & 0x1Fu) << 6) | (static_cast<uint8_t>(text[i + 1]) & 0x3Fu);
      const int b = cp >= 0x80 ? cp_to_byte(cp) : -1;
      if (b < 0) break;
      out.push_back(static_cast<char>(b));
      ++i;
    } else {
      break;
    }
  }
  if (i == text.size()) return out;
  for (uint32_t cp : decode_utf8(text.substr(i))) {
    const int b = cp_to_byte(cp);
    if (b >= 0)
      out.push_back(static_cast<char>(b));
    else
      append_utf8(out, cp);  // corrupt vocab: keep the character
  }
  return out;
}

}  // namespace tok

void Tokenizer::Impl::build_bpe() {
  for (int b = 0; b < 256; ++b) {
    std::string t;
    tok::append_utf8(t, tok::byte_to_cp(static_cast<uint8_t>(b)));
    byte_token[static_cast<size_t>(b)] = find(t);
  }
  merges.reserve(v.merges.size());
  std::string cat;
  for (size_t i = 0; i < v.merges.size(); ++i) {
    std::string_view l, r;
    if (!tok::split_merge(v.merges[i], l, r))
      throw FormatError("tokenizer.ggml.merges[" + std::to_string(i) + "] ('" + v.merges[i] +
                        "') has no separator");
    const int32_t li = find(l), ri = find(r);
    if (li < 0 || ri < 0)
      throw FormatError("tokenizer.ggml.merges[" + std::to_string(i) + "] ('" + v.merges[i] +
                        "') names unknown token '" + std::string(li < 0 ? l : r) + "'");
    cat.assign(l);
    cat.append(r);
    merges.insert(li, ri, {static_cast<int32_t>(i), find(cat)});  // first rank wins
  }
}

namespace {

struct Sym {
  int32_t id;
  int32_t prev, next;
  uint32_t len;  // bytes covered, starting at this symbol's index
};

struct Cand {
  int32_t rank, left, right, lid, rid, result;
  bool operator<(const Cand& o) const {  // priority_queue pops the "largest": smallest rank, leftmost
    return rank != o.rank ? rank > o.rank : left > o.left;
  }
};

}  // namespace

void Tokenizer::Impl::encode_bpe(std::string_view text, std::vector<int32_t>& out) const {
  const std::vector<uint32_t> cps = tok::decode_utf8(text);  // text is valid UTF-8 here
  std::vector<size_t> offs(cps.size() + 1, 0);
  for (size_t i = 0, o = 0; i < cps.size(); ++i) {
    offs[i] = o;
    o += cps[i] < 0x80 ? 1 : cps[i] < 0x800 ? 2 : cps[i] < 0x10000 ? 3 : 4;
    offs[i + 1] = o;
  }
  std::vector<Sym> syms;
  std::priority_queue<Cand> queue;
  auto push_pair = [&](int32_t l) {
    const int32_t r = syms[static_cast<size_t>(l)].next;
    if (r < 0) return;
    const int32_t lid = syms[static_cast<size_t>(l)].id, rid = syms[static_cast<size_t>(r)].id;
    if (lid < 0 || rid < 0) return;
    if (const auto* m = merges.find(lid, rid)) queue.push(Cand{m->rank, l, r, lid, rid, m->result});
  };

  for (const auto& [wb, we] : tok::pretokenize(pre, cps)) {
    const std::string_view word = text.substr(offs[wb], offs[we] - offs[wb]);
    if (ignore_merges || word.size() == 1) {
      const int32_t id = find(tok::bytes_to_bpe_text(word));
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
    }
    const auto n = static_cast<int32_t>(word.size());
    syms.clear();
    for (int32_t i = 0; i < n; ++i)
      syms.push_back(Sym{byte_token[static_cast<uint8_t>(word[static_cast<size_t>(i)])], i - 1,
                         i + 1 < n ? i + 1 : -1, 1});
    for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
    while (!queue.empty()) {
      const Cand c = queue.top();
      queue.pop();
      Sym& l = syms[static_cast<size_t>(c.left)];
      if (l.len == 0 || l.next != c.right || l.id != c.lid) continue;
      Sym& r = syms[static_cast<size_t>(c.right)];
      if (r.len == 0 || r.id != c.rid) continue;
      l.id = c.result;
      l.len += r.len;
      l.next = r.next;
      if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = c.left;
      r.len = 0;
      if (l.prev >= 0) push_pair(l.prev);
      push_pair(c.left);
    }
    for (int32_t i = 0; i >= 0 && i < n; i = syms[static_cast<size_t>(i)].next) {
      const Sym& s = syms[static_cast<size_t>(i)];
      if (s.id >= 0) {
        out.push_back(s.id);
        continue;
      }
      for (uint32_t k = 0; k < s.len; ++k) {  // not a token: its single-byte tokens that exist
        const int32_t b = byte_token[static_cast<uint8_t>(word[static_cast<size_t>(i) + k])];
        if (b >= 0) out.push_back(b);
      }
    }
  }
}

}  // namespace bitnet
