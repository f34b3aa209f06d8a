#include "grammar/constraint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "tokenizer/tokenizer.h"

namespace bitnet {

GrammarVocab::GrammarVocab(const Tokenizer& tok) {
  const int32_t n = tok.n_tokens();
  const VocabData& data = tok.data();
  bytes_.resize(size_t(n));
  kind_.assign(size_t(n), kNever);
  std::vector<int32_t> text_ids;
  for (int32_t id = 0; id < n; ++id) {
    if (tok.is_end_of_generation(id)) {
      kind_[size_t(id)] = kEog;
      eog_.push_back(id);
      continue;
    }
    const TokenType type = size_t(id) < data.types.size() ? data.types[size_t(id)] : TokenType::NORMAL;
    if (type == TokenType::CONTROL || type == TokenType::UNKNOWN || type == TokenType::UNUSED) continue;
    bytes_[size_t(id)] = tok.token_to_piece(id);
    if (bytes_[size_t(id)].empty()) continue;
    kind_[size_t(id)] = kText;
    text_ids.push_back(id);
  }
  // Tokens in byte order give the trie in depth-first order.
  std::sort(text_ids.begin(), text_ids.end(), [&](int32_t a, int32_t b) {
    return bytes_[size_t(a)] != bytes_[size_t(b)] ? bytes_[size_t(a)] < bytes_[size_t(b)] : a < b;
  });
  std::vector<uint32_t> path;  // node index per depth - 1
  const std::string* prev = nullptr;
  for (int32_t id : text_ids) {
    const std::string& s = bytes_[size_t(id)];
    size_t common = 0;
    if (prev) {
      const size_t limit = std::min(prev->size(), s.size());
      while (common < limit && (*prev)[common] == s[common]) ++common;
    }
    while (path.size() > common) {
      nodes_[path.back()].subtree_end = uint32_t(nodes_.size());
      path.pop_back();
    }
    for (size_t d = common; d < s.size(); ++d) {
      path.push_back(uint32_t(nodes_.size()));
      const uint32_t at = uint32_t(node_tokens_.size());
      nodes_.push_back({0, at, at, uint16_t(std::min<size_t>(d + 1, UINT16_MAX)), uint8_t(s[d])});
    }
    // Tokens ending at the deepest node are added while it is the last node, so they stay
    // contiguous (identical byte strings sort next to each other).
    Node& last = nodes_[path.back()];
    if (last.tokens_end != node_tokens_.size()) throw Error("grammar vocabulary: inconsistent trie");
    node_tokens_.push_back(id);
    last.tokens_end = uint32_t(node_tokens_.size());
    max_depth_ = std::max(max_depth_, s.size());
    prev = &s;
  }
  while (!path.empty()) {
    nodes_[path.back()].subtree_end = uint32_t(nodes_.size());
    path.pop_back();
  }
  if (max_depth_ >= UINT16_MAX) throw Error("grammar vocabulary: a token longer than 65535 bytes");
}

GrammarConstraint::GrammarConstraint(std::shared_ptr<const Grammar> grammar,
                                     std::shared_ptr<const GrammarVocab> vocab)
    : vocab_(std::move(vocab)), matcher_(std::move(grammar)) {
  levels_.resize(vocab_->max_depth() + 1);
}

bool GrammarConstraint::allows(int32_t token) {
  if (token < 0 || token >= vocab_->n_tokens() || ended_) return false;
  if (vocab_->is_eog(token)) return matcher_.can_end();
  if (!vocab_->is_text(token)) return false;
  if (current_) return ((*current_)[size_t(token) >> 6] >> (token & 63)) & 1;
  return matcher_.can_accept(vocab_->bytes(token));
}

std::string GrammarConstraint::state_key() const {
  const StackSet& s = matcher_.stacks();
  const Utf8Partial& u = matcher_.partial();
  std::string key;
  key.resize(sizeof(uint32_t) * (3 + s.data.size() + s.ends.size()));
  uint32_t head[3] = {u.value, uint32_t(u.remaining) | uint32_t(u.length) << 8, uint32_t(s.ends.size())};
  char* p = key.data();
  std::memcpy(p, head, sizeof head);
  p += sizeof head;
  std::memcpy(p, s.ends.data(), s.ends.size() * sizeof(uint32_t));
  p += s.ends.size() * sizeof(uint32_t);
  std::memcpy(p, s.data.data(), s.data.size() * sizeof(uint32_t));
  return key;
}

const std::vector<uint64_t>& GrammarConstraint::mask() {
  ++stats_.masks;
  if (current_) {
    ++stats_.cached;
    return *current_;
  }
  if (ended_) {
    uncached_.assign((size_t(vocab_->n_tokens()) + 63) / 64, 0);
    current_ = &uncached_;
    return uncached_;
  }
  std::string key = state_key();
  if (auto it = cache_.find(key); it != cache_.end()) {
    ++stats_.cached;
    current_ = &it->second;
    return it->second;
  }
  if (cache_.size() >= kCacheEntries) cache_.clear();
  std::vector<uint64_t>& bits = cache_[std::move(key)];
  try {
    compute(bits);
  } catch (...) {
    cache_.clear();
    throw;
  }
  current_ = &bits;
  return bits;
}

int32_t GrammarConstraint::intern(const StackSet& s) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ s.size();
  for (uint64_t x : s.hashes) h = (h ^ x) * 0xff51afd7ed558ccdull;
  h ^= h >> 31;
  if (state_table_.size() < 2 * (states_.size() + 1)) {
    size_t cap = 64;
    while (cap < 4 * (states_.size() + 1)) cap *= 2;
    state_table_.assign(cap, -1);
    for (size_t i = 0; i < states_.size(); ++i) {
      size_t slot = state_hash_[i] & (cap - 1);
      while (state_table_[slot] >= 0) slot = (slot + 1) & (cap - 1);
      state_table_[slot] = int32_t(i);
    }
  }
  const size_t m = state_table_.size() - 1;
  size_t slot = h & m;
  for (; state_table_[slot] >= 0; slot = (slot + 1) & m) {
    const int32_t i = state_table_[slot];
    if (state_hash_[size_t(i)] == h && states_[size_t(i)] == s) return i;
  }
  state_table_[slot] = int32_t(states_.size());
  states_.push_back(s);
  state_hash_.push_back(h);
  return int32_t(states_.size() - 1);
}

// The value slot for `key` (INT32_MIN: not yet known).
int32_t* GrammarConstraint::memo_slot(uint64_t key) {
  constexpr uint64_t kFree = ~uint64_t(0);
  if (memo_keys_.size() < 2 * (memo_used_ + 1)) {
    std::vector<uint64_t> old_keys = std::move(memo_keys_);
    std::vector<int32_t> old_values = std::move(memo_values_);
    const size_t cap = std::max<size_t>(4096, old_keys.size() * 2);
    memo_keys_.assign(cap, kFree);
    memo_values_.assign(cap, INT32_MIN);
    for (size_t i = 0; i < old_keys.size(); ++i) {
      if (old_keys[i] == kFree) continue;
      size_t slot = (old_keys[i] * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1);
      while (memo_keys_[slot] != kFree) slot = (slot + 1) & (cap - 1);
      memo_keys_[slot] = old_keys[i];
      memo_values_[slot] = old_values[i];
    }
  }
  const size_t m = memo_keys_.size() - 1;
  size_t slot = (key * 0x9e3779b97f4a7c15ull >> 20) & m;
  while (memo_keys_[slot] != kFree && memo_keys_[slot] != key) slot = (slot + 1) & m;
  if (memo_keys_[slot] == kFree) {
    memo_keys_[slot] = key;
    ++memo_used_;
  }
  return &memo_values_[slot];
}

void GrammarConstraint::compute(std::vector<uint64_t>& bits) {
  bits.assign((size_t(vocab_->n_tokens()) + 63) / 64, 0);
  auto set = [&](int32_t id) { bits[size_t(id) >> 6] |= uint64_t(1) << (id & 63); };
  if (matcher_.can_end())
    for (int32_t id : vocab_->eog_ids()) set(id);
  StackEngine& engine = const_cast<GrammarMatcher&>(matcher_).engine();
  states_.clear();
  state_hash_.clear();
  state_table_.clear();
  memo_keys_.clear();
  memo_values_.clear();
  memo_used_ = 0;
  levels_[0] = {intern(matcher_.stacks()), matcher_.partial()};
  const auto& nodes = vocab_->trie();
  const auto& ids = vocab_->token_ids();
  for (size_t i = 0; i < nodes.size();) {
    const GrammarVocab::Node& node = nodes[i];
    const Level parent = levels_[node.depth - 1];
    Level& level = levels_[node.depth];
    level.partial = parent.partial;
    const int64_t r = utf8_feed(level.partial, node.byte);
    bool alive;
    if (r == kUtf8Invalid) {
      alive = false;
    } else if (r == kUtf8Pending) {
      const Utf8Partial& u = level.partial;
      const uint64_t key = uint64_t(1) << 63 | uint64_t(parent.state) << 32 |
                           uint64_t(u.value) << 5 | uint64_t(u.remaining) << 3 | u.length;
      int32_t* known = memo_slot(key);
      if (*known == INT32_MIN) *known = engine.partial_possible(states_[size_t(parent.state)], u) ? 1 : 0;
      alive = *known == 1;
      level.state = parent.state;
    } else {
      int32_t* known = memo_slot(uint64_t(parent.state) << 32 | uint64_t(r));
      if (*known == INT32_MIN) {
        const int32_t next = engine.advance(states_[size_t(parent.state)], uint32_t(r), scratch_) ? intern(scratch_) : -1;
        *known = next;
      }
      alive = *known >= 0;
      level.state = *known;
    }
    if (!alive) {
      i = node.subtree_end;
      continue;
    }
    for (uint32_t t = node.tokens_begin; t < node.tokens_end; ++t) set(ids[t]);
    ++i;
  }
}

void GrammarConstraint::apply(std::span<float> logits) {
  const std::vector<uint64_t>& bits = mask();
  const size_t n = std::min(logits.size(), size_t(vocab_->n_tokens()));
  bool any = false;
  for (size_t i = 0; i < n; ++i) {
    if ((bits[i >> 6] >> (i & 63)) & 1) any = true;
    else logits[i] = -std::numeric_limits<float>::infinity();
  }
  for (size_t i = n; i < logits.size(); ++i) logits[i] = -std::numeric_limits<float>::infinity();
  if (!any)
    throw GrammarError(ended_ ? "grammar: generation already ended"
                              : "grammar: no token of the vocabulary can continue the text here");
}

void GrammarConstraint::accept(int32_t token) {
  if (!allows(token))
    throw GrammarError("grammar: token " + std::to_string(token) + " is not allowed here");
  current_ = nullptr;
  if (vocab_->is_eog(token)) {
    ended_ = true;
    return;
  }
  matcher_.accept_bytes(vocab_->bytes(token));
}

}  // namespace bitnet
