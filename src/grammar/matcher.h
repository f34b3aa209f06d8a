#pragma once
// Matching text against a Grammar, one sequence at a time.
//
// The state is a set of parse stacks, as in llama.cpp: each stack lists element positions, the
// top being the character class that the next code point must match (an empty stack: the text
// so far is a complete match). A code point advances every stack whose top class matches it and
// expands what follows (entering referenced rules, leaving finished alternatives). Duplicate
// stacks are merged; the set is capped at kMaxStacks and one expansion at kMaxExpansionSteps,
// with a GrammarError past either (a grammar so ambiguous would otherwise grow without bound).
// Bytes arrive per token and a token may end inside a UTF-8 sequence: the partial sequence is
// part of the state.
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "grammar/grammar.h"

namespace bitnet {

// Stacks stored back to back (bottom first); stack i is data[ends[i-1] .. ends[i]).
struct StackSet {
  std::vector<uint32_t> data;
  std::vector<uint32_t> ends;
  std::vector<uint64_t> hashes;
  std::vector<int32_t> table;  // open addressing over hashes (−1: free), for merging duplicates
  size_t size() const { return ends.size(); }
  bool empty() const { return ends.empty(); }
  size_t begin_of(size_t i) const { return i ? ends[i - 1] : 0; }
  void clear() {
    data.clear();
    ends.clear();
    hashes.clear();
    table.assign(16, -1);
  }
  bool operator==(const StackSet& o) const { return data == o.data && ends == o.ends; }
};

// A UTF-8 sequence begun but not finished: its value so far and the bytes still to come.
struct Utf8Partial {
  uint32_t value = 0;
  uint8_t remaining = 0;
  uint8_t length = 0;
  bool operator==(const Utf8Partial&) const = default;
};
// Feeds one byte: the completed code point, kUtf8Pending, or kUtf8Invalid (ill-formed, overlong,
// surrogate or above U+10FFFF).
constexpr int64_t kUtf8Pending = -1, kUtf8Invalid = -2;
int64_t utf8_feed(Utf8Partial& u, uint8_t byte);

// The stack operations on one grammar, with reusable scratch space (not thread-safe; one per user).
class StackEngine {
 public:
  static constexpr size_t kMaxStacks = 1024;
  static constexpr size_t kMaxExpansionSteps = 200000;

  explicit StackEngine(std::shared_ptr<const Grammar> grammar);
  const Grammar& grammar() const { return *grammar_; }
  // The stacks before any input.
  void initial(StackSet& out);
  // out = stacks of `in` whose top matches cp, advanced and expanded. False if none.
  bool advance(const StackSet& in, uint32_t cp, StackSet& out);
  // Whether some stack's top class holds a code point that the partial sequence can still become.
  bool partial_possible(const StackSet& in, const Utf8Partial& u) const;
  static bool has_empty_stack(const StackSet& s);

 private:
  void add(StackSet& out, const uint32_t* stack, size_t n);
  void expand(StackSet& out);  // expands the stacks queued in work_
  std::shared_ptr<const Grammar> grammar_;
  std::vector<uint32_t> work_data_, work_ends_, cur_;
  size_t steps_ = 0;
};

class GrammarMatcher {
 public:
  explicit GrammarMatcher(std::shared_ptr<const Grammar> grammar);
  // Feeds bytes (any split, including inside a UTF-8 sequence). Returns false and leaves the
  // state unchanged if they cannot continue the text.
  bool accept_bytes(std::string_view bytes);
  // Whether accept_bytes(bytes) would succeed; the state is not changed.
  bool can_accept(std::string_view bytes);
  // The text so far is a complete match (no partial UTF-8 pending).
  bool can_end() const;
  // Nothing more can follow (every parse is complete).
  bool finished() const;
  const StackSet& stacks() const { return stacks_; }
  const Utf8Partial& partial() const { return partial_; }
  StackEngine& engine() { return *engine_; }

 private:
  bool feed(std::string_view bytes, bool commit);
  std::shared_ptr<StackEngine> engine_;
  StackSet stacks_, scratch_a_, scratch_b_;
  Utf8Partial partial_;
};

}  // namespace bitnet
