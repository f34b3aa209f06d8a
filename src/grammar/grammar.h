#pragma once
// GBNF, llama.cpp's grammar language (docs/structured-output.md): parsed once into an immutable
// Grammar that any number of sequences share (each with its own GrammarMatcher).
//
// The parsed form is a flat array of elements: every alternative of every rule is a run of
// elements (a character class or a reference to a rule) closed by an End element. Groups and
// repetitions become generated rules: S* → R ::= S R | ε, S? → R ::= S | ε, S{m,n} → m copies
// of S then n − m nested optional rules, S+ → S S*. A matcher's parse stack is a list of element
// positions (the next element to match in each open alternative).
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "errors.h"

namespace bitnet {

// A grammar that does not parse ("grammar:LINE:COLUMN: message"), names an undefined rule, lacks
// its root, is left-recursive, or would need more than the matcher's bounds.
struct GrammarError : Error {
  using Error::Error;
};

// A set of code points: sorted, disjoint, inclusive ranges (negation already applied), with a
// bitmap for ASCII.
struct CharClass {
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  std::array<uint64_t, 2> ascii{};
  bool matches(uint32_t cp) const {
    if (cp < 128) return (ascii[cp >> 6] >> (cp & 63)) & 1;
    return matches_slow(cp);
  }
  bool matches_slow(uint32_t cp) const;
  bool intersects(uint32_t lo, uint32_t hi) const;  // any code point in [lo, hi]
};

class Grammar {
 public:
  enum class Kind : uint8_t { End, Char, Rule };
  struct Element {
    Kind kind;
    uint32_t value;  // Char: index of the class; Rule: index of the rule
  };

  // Limits that keep a grammar from text of bounded size bounded in memory and time.
  static constexpr uint32_t kMaxRepetition = 10000;      // m and n of {m,n}
  static constexpr size_t kMaxElements = size_t(1) << 22;  // after expanding repetitions

  // Parses GBNF; the start rule is `root`. Throws GrammarError: syntax errors as
  // "grammar:LINE:COLUMN: message" (columns count code points from 1), an undefined rule at its
  // first use, a missing root, a rule that can reach itself without consuming input (left
  // recursion, which would expand forever), empty text.
  static std::shared_ptr<const Grammar> parse(std::string_view text, std::string_view root = "root");

  const std::vector<Element>& elements() const { return elements_; }
  // Start positions (into elements()) of the rule's alternatives; an empty alternative starts at
  // an End element.
  std::span<const uint32_t> alternatives(uint32_t rule) const {
    return {alt_starts_.data() + rule_alts_[rule], alt_starts_.data() + rule_alts_[rule + 1]};
  }
  const CharClass& char_class(uint32_t index) const { return classes_[index]; }
  uint32_t root() const { return root_; }
  size_t rule_count() const { return names_.size(); }
  // User rules by their name; generated ones as "parent/N".
  const std::string& rule_name(uint32_t rule) const { return names_[rule]; }

 private:
  friend class GrammarParser;
  std::vector<Element> elements_;
  std::vector<uint32_t> alt_starts_;
  std::vector<uint32_t> rule_alts_;  // rule r's alternatives: alt_starts_[rule_alts_[r] .. rule_alts_[r+1])
  std::vector<CharClass> classes_;
  std::vector<std::string> names_;
  uint32_t root_ = 0;
};

}  // namespace bitnet
