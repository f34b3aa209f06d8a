#pragma once
// Grammar-constrained sampling: which tokens of a vocabulary may come next.
//
// GrammarVocab (built once per tokenizer, shared) holds each token's bytes and a trie of them in
// depth-first order, so that a mask walks the trie against the matcher's state: a shared prefix
// is matched once, and a prefix the grammar refuses skips its whole subtree. GrammarConstraint
// (one per sequence) keeps the matcher and caches the masks of recent states (a JSON string's
// characters, for instance, lead back to the same state again and again).
//
// The generate loop (runtime/generate.cpp) draws from the unconstrained distribution first and
// asks allows() about the chosen token only; just when it is refused does it apply() the full
// mask and draw again (llama.cpp does the same). Without truncation (top-k/top-p/min-p) this is
// exactly sampling from the distribution restricted to the allowed tokens.
//
// End-of-generation tokens are allowed only where the grammar can end; other control, unknown
// and unused tokens and tokens without bytes never are.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "grammar/matcher.h"

namespace bitnet {

class Tokenizer;

class GrammarVocab {
 public:
  explicit GrammarVocab(const Tokenizer& tokenizer);
  int32_t n_tokens() const { return int32_t(bytes_.size()); }
  const std::string& bytes(int32_t id) const { return bytes_[size_t(id)]; }
  bool is_eog(int32_t id) const { return kind_[size_t(id)] == kEog; }
  bool is_text(int32_t id) const { return kind_[size_t(id)] == kText; }
  const std::vector<int32_t>& eog_ids() const { return eog_; }

  struct Node {
    uint32_t subtree_end;  // index of the first node after this node's subtree
    uint32_t tokens_begin, tokens_end;  // into token_ids(): the tokens whose bytes end here
    uint16_t depth;  // 1 for a first byte
    uint8_t byte;
  };
  const std::vector<Node>& trie() const { return nodes_; }
  const std::vector<int32_t>& token_ids() const { return node_tokens_; }
  size_t max_depth() const { return max_depth_; }

 private:
  enum Kind : uint8_t { kText, kEog, kNever };
  std::vector<std::string> bytes_;
  std::vector<Kind> kind_;
  std::vector<int32_t> eog_;
  std::vector<Node> nodes_;
  std::vector<int32_t> node_tokens_;
  size_t max_depth_ = 0;
};

class GrammarConstraint {
 public:
  static constexpr size_t kCacheEntries = 128;

  GrammarConstraint(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const GrammarVocab> vocab);

  // Whether `token` may come next.
  bool allows(int32_t token);
  // Bit i set: token i may come next.
  const std::vector<uint64_t>& mask();
  // Sets the logits of the tokens that may not come next to −∞; throws GrammarError if none may.
  void apply(std::span<float> logits);
  // Advances past `token`; throws GrammarError if it is not allowed. After an end-of-generation
  // token nothing more is allowed.
  void accept(int32_t token);
  bool can_end() const { return !ended_ && matcher_.can_end(); }
  bool ended() const { return ended_; }
  const GrammarMatcher& matcher() const { return matcher_; }
  const GrammarVocab& vocab() const { return *vocab_; }

  struct Stats {
    int64_t masks = 0;   // mask() calls (apply() included)
    int64_t cached = 0;  // ... answered from the cache
  };
  const Stats& stats() const { return stats_; }

 private:
  void compute(std::vector<uint64_t>& bits);
  std::string state_key() const;

  std::shared_ptr<const GrammarVocab> vocab_;
  GrammarMatcher matcher_;
  bool ended_ = false;
  const std::vector<uint64_t>* current_ = nullptr;  // the mask of the current state, once known
  std::unordered_map<std::string, std::vector<uint64_t>> cache_;
  std::vector<uint64_t> uncached_;
  // The walk's memory: the distinct stack sets met (interned: equal sets share an id) and the
  // transitions between them, (set, code point) → set and (set, partial UTF-8) → possible, so a
  // transition met again (inside a JSON string almost every character leads back to the same
  // set) costs one hash look-up instead of an advance. Rebuilt for each mask.
  struct Level {
    int32_t state;
    Utf8Partial partial;
  };
  int32_t intern(const StackSet& s);
  int32_t* memo_slot(uint64_t key);
  std::vector<Level> levels_;
  std::vector<StackSet> states_;
  std::vector<uint64_t> state_hash_;
  std::vector<int32_t> state_table_;  // open addressing over state_hash_ (−1: free)
  std::vector<uint64_t> memo_keys_;
  std::vector<int32_t> memo_values_;
  size_t memo_used_ = 0;
  StackSet scratch_;
  Stats stats_;
};

}  // namespace bitnet
