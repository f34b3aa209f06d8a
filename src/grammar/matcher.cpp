#include "grammar/matcher.h"

#include <algorithm>
#include <cstring>

namespace bitnet {

int64_t utf8_feed(Utf8Partial& u, uint8_t b) {
  if (u.remaining == 0) {
    if (b < 0x80) return b;
    if (b >= 0xC2 && b <= 0xDF) u = {uint32_t(b & 0x1F), 1, 2};
    else if (b >= 0xE0 && b <= 0xEF) u = {uint32_t(b & 0x0F), 2, 3};
    else if (b >= 0xF0 && b <= 0xF4) u = {uint32_t(b & 0x07), 3, 4};
    else return kUtf8Invalid;
    return kUtf8Pending;
  }
  if ((b & 0xC0) != 0x80) return kUtf8Invalid;
  u.value = u.value << 6 | (b & 0x3F);
  if (--u.remaining) return kUtf8Pending;
  const uint32_t cp = u.value;
  const uint8_t len = u.length;
  u = {};
  const bool ok = (len == 2 && cp >= 0x80) || (len == 3 && cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) ||
                  (len == 4 && cp >= 0x10000 && cp <= 0x10FFFF);
  return ok ? int64_t(cp) : kUtf8Invalid;
}

StackEngine::StackEngine(std::shared_ptr<const Grammar> grammar) : grammar_(std::move(grammar)) {}

bool StackEngine::has_empty_stack(const StackSet& s) {
  for (size_t i = 0; i < s.size(); ++i)
    if (s.ends[i] == s.begin_of(i)) return true;
  return false;
}

void StackEngine::add(StackSet& out, const uint32_t* stack, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull ^ n;
  for (size_t i = 0; i < n; ++i) h = (h ^ stack[i]) * 0x100000001b3ull;
  h ^= h >> 29;
  if (out.table.size() < 2 * (out.size() + 1)) {
    size_t cap = 16;
    while (cap < 4 * (out.size() + 1)) cap *= 2;
    out.table.assign(cap, -1);
    const size_t m = out.table.size() - 1;
    for (size_t i = 0; i < out.size(); ++i) {
      size_t slot = out.hashes[i] & m;
      while (out.table[slot] >= 0) slot = (slot + 1) & m;
      out.table[slot] = int32_t(i);
    }
  }
  const size_t m = out.table.size() - 1;
  size_t slot = h & m;
  for (; out.table[slot] >= 0; slot = (slot + 1) & m) {
    const size_t i = size_t(out.table[slot]);
    if (out.hashes[i] != h) continue;
    const size_t b = out.begin_of(i);
    if (out.ends[i] - b == n && std::equal(stack, stack + n, out.data.begin() + ptrdiff_t(b))) return;
  }
  if (out.size() >= kMaxStacks)
    throw GrammarError("grammar: more than " + std::to_string(kMaxStacks) +
                       " simultaneous parses; the grammar is too ambiguous (write x{0,n} rather than x? x? ... x?)");
  out.table[slot] = int32_t(out.size());
  out.data.insert(out.data.end(), stack, stack + n);
  out.ends.push_back(uint32_t(out.data.size()));
  out.hashes.push_back(h);
}

void StackEngine::expand(StackSet& out) {
  const auto& el = grammar_->elements();
  while (!work_ends_.empty()) {
    const size_t e = work_ends_.back();
    work_ends_.pop_back();
    const size_t b = work_ends_.empty() ? 0 : work_ends_.back();
    cur_.assign(work_data_.begin() + ptrdiff_t(b), work_data_.begin() + ptrdiff_t(e));
    work_data_.resize(b);
    if (++steps_ > kMaxExpansionSteps)
      throw GrammarError("grammar: one character needs more than " + std::to_string(kMaxExpansionSteps) +
                         " expansion steps; the grammar is too ambiguous");
    if (cur_.empty() || el[cur_.back()].kind == Grammar::Kind::Char) {
      add(out, cur_.data(), cur_.size());
      continue;
    }
    // A rule reference: continue after it once the rule is done, and enter each alternative.
    const uint32_t pos = cur_.back();
    cur_.pop_back();
    if (el[pos + 1].kind != Grammar::Kind::End) cur_.push_back(pos + 1);
    const auto alts = grammar_->alternatives(el[pos].value);
    for (size_t k = alts.size(); k-- > 0;) {
      work_data_.insert(work_data_.end(), cur_.begin(), cur_.end());
      if (el[alts[k]].kind != Grammar::Kind::End) work_data_.push_back(alts[k]);
      work_ends_.push_back(uint32_t(work_data_.size()));
    }
  }
}

void StackEngine::initial(StackSet& out) {
  out.clear();
  steps_ = 0;
  work_data_.clear();
  work_ends_.clear();
  const auto& el = grammar_->elements();
  const auto alts = grammar_->alternatives(grammar_->root());
  for (size_t k = alts.size(); k-- > 0;) {
    if (el[alts[k]].kind != Grammar::Kind::End) work_data_.push_back(alts[k]);
    work_ends_.push_back(uint32_t(work_data_.size()));
  }
  expand(out);
}

bool StackEngine::advance(const StackSet& in, uint32_t cp, StackSet& out) {
  out.clear();
  steps_ = 0;
  work_data_.clear();
  work_ends_.clear();
  const auto& el = grammar_->elements();
  // Queued in reverse so that the stacks come out in the order of `in`.
  for (size_t i = in.size(); i-- > 0;) {
    const size_t b = in.begin_of(i), e = in.ends[i];
    if (b == e) continue;
    const uint32_t top = in.data[e - 1];
    if (!grammar_->char_class(el[top].value).matches(cp)) continue;
    work_data_.insert(work_data_.end(), in.data.begin() + ptrdiff_t(b), in.data.begin() + ptrdiff_t(e - 1));
    if (el[top + 1].kind != Grammar::Kind::End) work_data_.push_back(top + 1);
    work_ends_.push_back(uint32_t(work_data_.size()));
  }
  expand(out);
  return !out.empty();
}

bool StackEngine::partial_possible(const StackSet& in, const Utf8Partial& u) const {
  const uint32_t shift = 6u * u.remaining;
  uint32_t lo = u.value << shift, hi = lo | ((1u << shift) - 1);
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  static constexpr uint32_t kMax[5] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
  lo = std::max(lo, kMin[u.length]);
  hi = std::min(hi, kMax[u.length]);
  if (lo > hi) return false;
  const auto& el = grammar_->elements();
  for (size_t i = 0; i < in.size(); ++i) {
    const size_t b = in.begin_of(i), e = in.ends[i];
    if (b != e && grammar_->char_class(el[in.data[e - 1]].value).intersects(lo, hi)) return true;
  }
  return false;
}

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar)
    : engine_(std::make_shared<StackEngine>(std::move(grammar))) {
  engine_->initial(stacks_);
}

bool GrammarMatcher::accept_bytes(std::string_view bytes) { return feed(bytes, true); }
bool GrammarMatcher::can_accept(std::string_view bytes) { return feed(bytes, false); }

bool GrammarMatcher::feed(std::string_view bytes, bool commit) {
  const StackSet* cur = &stacks_;
  Utf8Partial u = partial_;
  for (char c : bytes) {
    const int64_t r = utf8_feed(u, uint8_t(c));
    if (r == kUtf8Invalid) return false;
    if (r == kUtf8Pending) {
      if (!engine_->partial_possible(*cur, u)) return false;
      continue;
    }
    StackSet* next = cur == &scratch_a_ ? &scratch_b_ : &scratch_a_;
    if (!engine_->advance(*cur, uint32_t(r), *next)) return false;
    cur = next;
  }
  if (!commit) return true;
  if (cur != &stacks_) std::swap(stacks_, *const_cast<StackSet*>(cur));
  partial_ = u;
  return true;
}

bool GrammarMatcher::can_end() const { return partial_.remaining == 0 && StackEngine::has_empty_stack(stacks_); }

bool GrammarMatcher::finished() const {
  for (size_t i = 0; i < stacks_.size(); ++i)
    if (stacks_.ends[i] != stacks_.begin_of(i)) return false;
  return partial_.remaining == 0;
}

}  // namespace bitnet
