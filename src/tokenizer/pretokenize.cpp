// Pre-tokenizers of byte-level BPE vocabularies (tokenizers.md §2.3-§2.5), written as scanners
// over code points. Each returns the words as [begin, end) code-point ranges covering the input.
#include "tokenizer/internal.h"

namespace bitnet::tok {
namespace {

bool is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }
uint32_t ascii_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }
// [^\s\p{L}\p{N}]
bool is_other(uint32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); }

// Length of a contraction 's 't 're 've 'm 'll 'd at p (0 if none).
size_t contraction(std::span<const uint32_t> c, size_t p, size_t e, bool icase) {
  if (c[p] != '\'' || p + 1 >= e) return 0;
  auto low = [&](size_t i) { return icase ? ascii_lower(c[i]) : c[i]; };
  const uint32_t a = low(p + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (p + 2 < e) {
    const uint32_t b = low(p + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  return 0;
}

template <class Pred>
size_t run(std::span<const uint32_t> c, size_t p, size_t e, Pred pred) {
  size_t q = p;
  while (q < e && pred(c[q])) ++q;
  return q - p;
}

// Llama-3 regex (max_digits = 3) and Qwen2 (max_digits = 1):
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
// \s*[\r\n]+|\s+(?!\S)|\s+
size_t match_llama3(std::span<const uint32_t> c, size_t p, size_t e, size_t max_digits) {
  if (size_t n = contraction(c, p, e, true)) return n;
  const uint32_t c0 = c[p];
  if (is_letter(c0)) return run(c, p, e, is_letter);
  if (!is_crlf(c0) && !is_number(c0) && p + 1 < e && is_letter(c[p + 1]))
    return 1 + run(c, p + 1, e, is_letter);
  if (is_number(c0)) {
    size_t n = 1;
    while (n < max_digits && p + n < e && is_number(c[p + n])) ++n;
    return n;
  }
  {
    const size_t off = (c0 == ' ' && p + 1 < e && is_other(c[p + 1])) ? 1 : 0;
    if (is_other(c[p + off])) {
      size_t n = off + run(c, p + off, e, is_other);
      n += run(c, p + n, e, is_crlf);
      return n;
    }
  }
  // c0 is whitespace here.
  const size_t ws = run(c, p, e, is_space);
  size_t last_nl = 0;  // 1 + index (relative to p) of the last CR/LF in the run
  for (size_t k = 0; k < ws; ++k)
    if (is_crlf(c[p + k])) last_nl = k + 1;
  if (last_nl) return last_nl;
  if (p + ws == e) return ws;
  if (ws >= 2) return ws - 1;
  return ws;
}

// GPT-2 pattern: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t match_gpt2(std::span<const uint32_t> c, size_t p, size_t e) {
  if (size_t n = contraction(c, p, e, false)) return n;
  const uint32_t c0 = c[p];
  const bool sp = c0 == ' ' && p + 1 < e;
  const uint32_t c1 = sp ? c[p + 1] : 0;
  if (is_letter(c0) || (sp && is_letter(c1))) return (sp ? 1 : 0) + run(c, p + (sp ? 1 : 0), e, is_letter);
  if (is_number(c0) || (sp && is_number(c1))) return (sp ? 1 : 0) + run(c, p + (sp ? 1 : 0), e, is_number);
  if (is_other(c0) || (sp && is_other(c1))) return (sp ? 1 : 0) + run(c, p + (sp ? 1 : 0), e, is_other);
  const size_t ws = run(c, p, e, is_space);
  if (p + ws == e) return ws;
  if (ws >= 2) return ws - 1;
  return ws;
}

// [\p{P}\$\+<=>\^~\|]+
size_t match_punct(std::span<const uint32_t> c, size_t p, size_t e) {
  return run(c, p, e, [](uint32_t x) {
    return uclass(x) == UClass::P || x == '$' || x == '+' || x == '<' || x == '=' || x == '>' ||
           x == '^' || x == '~' || x == '|';
  });
}

size_t match_digits(std::span<const uint32_t> c, size_t p, size_t e) { return run(c, p, e, is_number); }

size_t match_three_ascii_digits(std::span<const uint32_t> c, size_t p, size_t e) {
  if (p + 3 > e) return 0;
  for (size_t k = 0; k < 3; ++k)
    if (c[p + k] < '0' || c[p + k] > '9') return 0;
  return 3;
}

// Re-splits every range with a find-all regex, keeping matches and the gaps between them.
template <class Match>
std::vector<Range> resplit(std::span<const uint32_t> c, const std::vector<Range>& in, Match match) {
  std::vector<Range> out;
  out.reserve(in.size() * 2);
  for (const auto& [b, e] : in) {
    size_t gap = b, p = b;
    while (p < e) {
      const size_t n = match(c, p, e);
      if (n == 0) {
        ++p;
        continue;
      }
      if (gap < p) out.emplace_back(gap, p);
      out.emplace_back(p, p + n);
      p += n;
      gap = p;
    }
    if (gap < e) out.emplace_back(gap, e);
  }
  return out;
}

}  // namespace

std::vector<Range> pretokenize(PreKind kind, std::span<const uint32_t> cps) {
  std::vector<Range> words;
  if (cps.empty()) return words;
  if (kind == PreKind::Default) {
    words.emplace_back(0, cps.size());
    words = resplit(cps, words, match_punct);
    words = resplit(cps, words, match_gpt2);
    words = resplit(cps, words, match_digits);
    words = resplit(cps, words, match_three_ascii_digits);
    return words;
  }
  const size_t max_digits = kind == PreKind::Qwen2 ? 1 : 3;
  for (size_t p = 0; p < cps.size();) {
    size_t n = match_llama3(cps, p, cps.size(), max_digits);
    if (n == 0) n = 1;
    words.emplace_back(p, p + n);
    p += n;
  }
  return words;
}

}  // namespace bitnet::tok
