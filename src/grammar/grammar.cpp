#include "grammar/grammar.h"

#include <algorithm>
#include <map>
#include <unordered_map>

namespace bitnet {

bool CharClass::matches_slow(uint32_t cp) const {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), cp,
                             [](uint32_t c, const std::pair<uint32_t, uint32_t>& r) { return c < r.first; });
  return it != ranges.begin() && cp <= std::prev(it)->second;
}

bool CharClass::intersects(uint32_t lo, uint32_t hi) const {
  for (const auto& [a, b] : ranges)
    if (a <= hi && lo <= b) return true;
  return false;
}

namespace {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

// Sorts and merges ranges; with `negate`, the complement within [0, U+10FFFF].
Ranges normalize(Ranges r, bool negate) {
  std::sort(r.begin(), r.end());
  Ranges merged;
  for (const auto& x : r) {
    if (!merged.empty() && x.first <= merged.back().second + 1)
      merged.back().second = std::max(merged.back().second, x.second);
    else
      merged.push_back(x);
  }
  if (!negate) return merged;
  Ranges out;
  uint32_t next = 0;
  for (const auto& [a, b] : merged) {
    if (a > next) out.push_back({next, a - 1});
    next = b + 1;
  }
  if (next <= kMaxCodePoint) out.push_back({next, kMaxCodePoint});
  return out;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

}  // namespace

class GrammarParser {
 public:
  explicit GrammarParser(std::string_view text) : s_(text) {}

  std::shared_ptr<const Grammar> parse(std::string_view root_name) {
    skip_space(true);
    if (at_end()) throw GrammarError("grammar: empty grammar (no rules)");
    while (!at_end()) {
      parse_rule();
      skip_space(true);
    }
    for (const Rule& r : rules_)
      if (!r.defined) fail(r.first_use, "undefined rule '" + r.name + "'");
    auto root = by_name_.find(std::string(root_name));
    if (root == by_name_.end() || !rules_[root->second].defined)
      throw GrammarError("grammar: no rule named '" + std::string(root_name) + "' (the start rule)");
    check_left_recursion();
    return build(root->second);
  }

 private:
  using Alt = std::vector<Grammar::Element>;
  struct Rule {
    std::string name;
    bool defined = false;
    size_t first_use = 0, defined_at = 0;
    std::vector<Alt> alts;
  };

  // ---- positions and errors
  bool at_end() const { return pos_ >= s_.size(); }
  char peek(size_t ahead = 0) const { return pos_ + ahead < s_.size() ? s_[pos_ + ahead] : '\0'; }

  std::string where(size_t at) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else if ((uint8_t(s_[i]) & 0xC0) != 0x80) {
        ++col;
      }
    }
    return std::to_string(line) + ":" + std::to_string(col);
  }
  [[noreturn]] void fail(size_t at, const std::string& msg) const {
    throw GrammarError("grammar:" + where(at) + ": " + msg);
  }
  std::string describe_here() const {
    if (at_end()) return "end of input";
    const uint8_t c = uint8_t(peek());
    if (c >= 0x20 && c < 0x7F) return std::string("'") + char(c) + "'";
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02X", c);
    return buf;
  }

  // Spaces, tabs, comments; newlines only when `newlines` (inside groups, after '|' and '::=').
  void skip_space(bool newlines) {
    while (!at_end()) {
      const char c = peek();
      if (c == ' ' || c == '\t' || c == '\r') {
        ++pos_;
      } else if (c == '\n' && newlines) {
        ++pos_;
      } else if (c == '#') {
        while (!at_end() && peek() != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  // One code point of the grammar text (well-formed UTF-8 required).
  uint32_t read_utf8() {
    const size_t start = pos_;
    const uint8_t b = uint8_t(s_[pos_++]);
    if (b < 0x80) return b;
    int more = 0;
    uint32_t cp = 0, min = 0;
    if (b >= 0xC2 && b <= 0xDF) more = 1, cp = b & 0x1F, min = 0x80;
    else if (b >= 0xE0 && b <= 0xEF) more = 2, cp = b & 0x0F, min = 0x800;
    else if (b >= 0xF0 && b <= 0xF4) more = 3, cp = b & 0x07, min = 0x10000;
    else fail(start, "invalid UTF-8");
    for (int i = 0; i < more; ++i) {
      if (at_end() || (uint8_t(peek()) & 0xC0) != 0x80) fail(start, "invalid UTF-8");
      cp = cp << 6 | (uint8_t(s_[pos_++]) & 0x3F);
    }
    if (cp < min || cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) fail(start, "invalid UTF-8");
    return cp;
  }

  uint32_t read_hex(size_t digits, size_t esc_at) {
    uint32_t v = 0;
    for (size_t i = 0; i < digits; ++i) {
      const char c = peek();
      int d = -1;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      if (d < 0) fail(pos_, "escape needs " + std::to_string(digits) + " hex digits");
      v = v << 4 | uint32_t(d);
      ++pos_;
    }
    if (v > kMaxCodePoint) fail(esc_at, "code point above U+10FFFF");
    return v;
  }

  // A character of a literal or class, escapes decoded.
  uint32_t read_char() {
    if (at_end()) fail(pos_, "unexpected end of input");
    if (peek() != '\\') return read_utf8();
    const size_t esc_at = pos_++;
    if (at_end()) fail(esc_at, "unfinished escape");
    const char c = s_[pos_++];
    switch (c) {
      case 'n': return '\n';
      case 't': return '\t';
      case 'r': return '\r';
      case '\\': case '"': case '[': case ']': case '-': case '^': case '/': case '\'': return uint8_t(c);
      case 'x': return read_hex(2, esc_at);
      case 'u': return read_hex(4, esc_at);
      case 'U': return read_hex(8, esc_at);
      default: break;
    }
    fail(esc_at, std::string("unknown escape '\\") + (uint8_t(c) >= 0x20 && uint8_t(c) < 0x7F ? std::string(1, c) : "?") + "'");
  }

  // ---- rules and classes
  uint32_t rule_id(const std::string& name, size_t at) {
    auto [it, added] = by_name_.try_emplace(name, uint32_t(rules_.size()));
    if (added) {
      rules_.push_back({});
      rules_.back().name = name;
      rules_.back().first_use = at;
    }
    return it->second;
  }
  uint32_t new_generated_rule(size_t at, std::vector<Alt> alts) {
    const uint32_t id = uint32_t(rules_.size());
    rules_.push_back({});
    Rule& r = rules_.back();
    r.name = current_name_ + "/" + std::to_string(++generated_);
    r.defined = true;
    r.first_use = r.defined_at = at;
    r.alts = std::move(alts);
    return id;
  }
  Grammar::Element class_element(Ranges r, bool negate) {
    r = normalize(std::move(r), negate);
    auto [it, added] = class_ids_.try_emplace(r, uint32_t(classes_.size()));
    if (added) {
      CharClass c;
      c.ranges = r;
      for (const auto& [a, b] : r)
        for (uint32_t cp = a; cp <= b && cp < 128; ++cp) c.ascii[cp >> 6] |= uint64_t(1) << (cp & 63);
      classes_.push_back(std::move(c));
    }
    return {Grammar::Kind::Char, it->second};
  }
  void count(size_t n, size_t at) {
    total_ += n;
    if (total_ > Grammar::kMaxElements) fail(at, "grammar too large after expanding repetitions");
  }

  void parse_rule() {
    const size_t name_at = pos_;
    std::string name = parse_name();
    if (name.empty()) fail(pos_, "expected a rule name, found " + describe_here());
    skip_space(false);
    if (s_.substr(pos_, 3) != "::=") fail(pos_, "expected '::=' after the rule name '" + name + "'");
    pos_ += 3;
    skip_space(true);
    const uint32_t id = rule_id(name, name_at);
    if (rules_[id].defined) fail(name_at, "rule '" + name + "' is defined twice (first at " + where(rules_[id].defined_at) + ")");
    current_name_ = name;
    generated_ = 0;
    std::vector<Alt> alts = parse_alternates(false);
    if (!at_end() && peek() != '\n') fail(pos_, "unexpected " + describe_here());
    Rule& r = rules_[id];
    r.defined = true;
    r.defined_at = name_at;
    r.alts = std::move(alts);
  }

  std::string parse_name() {
    const size_t start = pos_;
    while (!at_end() && is_name_char(peek())) ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }

  std::vector<Alt> parse_alternates(bool nested) {
    std::vector<Alt> alts;
    alts.push_back(parse_sequence(nested));
    for (;;) {
      if (!nested && peek() == '\n') {
        // A line that starts with '|' continues the rule.
        const size_t save = pos_;
        skip_space(true);
        if (peek() != '|') {
          pos_ = save;
          break;
        }
      }
      if (peek() != '|') break;
      ++pos_;
      skip_space(true);
      alts.push_back(parse_sequence(nested));
    }
    return alts;
  }

  Alt parse_sequence(bool nested) {
    Alt seq;
    size_t last_start = SIZE_MAX;  // where the last symbol's elements begin
    while (!at_end()) {
      const size_t at = pos_;
      const char c = peek();
      if (c == '"') {
        ++pos_;
        last_start = seq.size();
        while (peek() != '"') {
          if (at_end()) fail(at, "unterminated string literal");
          const uint32_t cp = read_char();
          seq.push_back(class_element({{cp, cp}}, false));
        }
        ++pos_;
        count(seq.size() - last_start, at);
      } else if (c == '[') {
        ++pos_;
        bool negate = false;
        if (peek() == '^') negate = true, ++pos_;
        Ranges ranges;
        while (peek() != ']') {
          if (at_end()) fail(at, "unterminated character class");
          const size_t char_at = pos_;
          const uint32_t lo = read_char();
          uint32_t hi = lo;
          if (peek() == '-' && peek(1) != ']' && pos_ + 1 < s_.size()) {
            ++pos_;
            hi = read_char();
            if (hi < lo) fail(char_at, "character range is backwards");
          }
          ranges.push_back({lo, hi});
        }
        ++pos_;
        if (ranges.empty()) fail(at, negate ? "empty negated class [^] (use '.' for any character)" : "empty character class");
        last_start = seq.size();
        seq.push_back(class_element(std::move(ranges), negate));
        count(1, at);
      } else if (c == '.') {
        ++pos_;
        last_start = seq.size();
        seq.push_back(class_element({{0, kMaxCodePoint}}, false));
        count(1, at);
      } else if (c == '(') {
        ++pos_;
        skip_space(true);
        std::vector<Alt> alts = parse_alternates(true);
        if (peek() != ')') fail(pos_, "expected ')' to close the group opened at " + where(at) + ", found " + describe_here());
        ++pos_;
        last_start = seq.size();
        seq.push_back({Grammar::Kind::Rule, new_generated_rule(at, std::move(alts))});
        count(1, at);
      } else if (is_name_char(c)) {
        const std::string name = parse_name();
        last_start = seq.size();
        seq.push_back({Grammar::Kind::Rule, rule_id(name, at)});
        count(1, at);
      } else if (c == '*' || c == '+' || c == '?' || c == '{') {
        if (last_start == SIZE_MAX) fail(at, std::string("'") + c + "' with nothing before it to repeat");
        ++pos_;
        uint32_t min = 0, max = UINT32_MAX;  // UINT32_MAX: unbounded
        if (c == '+') min = 1;
        if (c == '?') max = 1;
        if (c == '{') parse_braces(at, min, max);
        repeat(seq, last_start, min, max, at);
      } else if (c == '<') {
        fail(at, "token references (<...>) are not supported");
      } else {
        break;
      }
      skip_space(nested);
    }
    return seq;
  }

  uint32_t parse_int(size_t brace_at) {
    skip_space(true);
    if (!(peek() >= '0' && peek() <= '9')) fail(pos_, "expected a number in the repetition at " + where(brace_at));
    uint64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      v = v * 10 + uint64_t(peek() - '0');
      if (v > Grammar::kMaxRepetition) fail(pos_, "repetition count above " + std::to_string(Grammar::kMaxRepetition));
      ++pos_;
    }
    skip_space(true);
    return uint32_t(v);
  }

  void parse_braces(size_t at, uint32_t& min, uint32_t& max) {
    min = parse_int(at);
    if (peek() == '}') {
      max = min;
    } else if (peek() == ',') {
      ++pos_;
      skip_space(true);
      if (peek() != '}') {
        max = parse_int(at);
        if (max < min) fail(at, "repetition {m,n} with n < m");
      }
    } else {
      fail(pos_, "expected ',' or '}' in the repetition at " + where(at));
    }
    if (peek() != '}') fail(pos_, "expected '}' to close the repetition at " + where(at));
    ++pos_;
  }

  // Replaces seq[from..] (one symbol) by its repetition {min,max}.
  void repeat(Alt& seq, size_t from, uint32_t min, uint32_t max, size_t at) {
    if (seq.size() - from != 1) {  // a literal of several characters: make it one rule
      Alt body(seq.begin() + ptrdiff_t(from), seq.end());
      seq.resize(from);
      seq.push_back({Grammar::Kind::Rule, new_generated_rule(at, {std::move(body)})});
    }
    const Grammar::Element s = seq.back();
    seq.pop_back();
    count(size_t(min) + (max == UINT32_MAX ? 2 : size_t(max - min) * 2), at);
    for (uint32_t i = 0; i < min; ++i) seq.push_back(s);
    if (max == UINT32_MAX) {
      // R ::= S R | ε
      const uint32_t r = new_generated_rule(at, {});
      rules_[r].alts = {{s, {Grammar::Kind::Rule, r}}, {}};
      seq.push_back({Grammar::Kind::Rule, r});
    } else if (max > min) {
      // Innermost first: R1 ::= S | ε, Rk ::= S R(k-1) | ε.
      uint32_t inner = UINT32_MAX;
      for (uint32_t k = 0; k < max - min; ++k) {
        Alt first{s};
        if (inner != UINT32_MAX) first.push_back({Grammar::Kind::Rule, inner});
        inner = new_generated_rule(at, {std::move(first), {}});
      }
      seq.push_back({Grammar::Kind::Rule, inner});
    }
  }

  // ---- left recursion: a rule reaching itself through leading elements that can match nothing.
  void check_left_recursion() {
    const size_t n = rules_.size();
    std::vector<char> nullable(n, 0);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < n; ++r) {
        if (nullable[r]) continue;
        for (const Alt& alt : rules_[r].alts) {
          bool all = true;
          for (const auto& e : alt)
            if (e.kind != Grammar::Kind::Rule || !nullable[e.value]) all = false;
          if (all) {
            nullable[r] = 1;
            changed = true;
            break;
          }
        }
      }
    }
    std::vector<std::vector<uint32_t>> edges(n);
    for (size_t r = 0; r < n; ++r)
      for (const Alt& alt : rules_[r].alts)
        for (const auto& e : alt) {
          if (e.kind != Grammar::Kind::Rule) break;
          edges[r].push_back(e.value);
          if (!nullable[e.value]) break;
        }
    // Iterative depth-first search; colour 1 = on the current path.
    std::vector<char> colour(n, 0);
    std::vector<std::pair<uint32_t, size_t>> path;
    for (uint32_t start = 0; start < n; ++start) {
      if (colour[start]) continue;
      path.push_back({start, 0});
      colour[start] = 1;
      while (!path.empty()) {
        auto& [r, next] = path.back();
        if (next == edges[r].size()) {
          colour[r] = 2;
          path.pop_back();
          continue;
        }
        const uint32_t to = edges[r][next++];
        if (colour[to] == 1) {
          std::string chain;
          size_t i = 0;
          while (path[i].first != to) ++i;
          for (; i < path.size(); ++i) chain += rules_[path[i].first].name + " → ";
          chain += rules_[to].name;
          fail(rules_[to].defined_at, "left recursion: rule '" + rules_[to].name +
                                          "' can reach itself without consuming input (" + chain + ")");
        }
        if (colour[to] == 0) {
          colour[to] = 1;
          path.push_back({to, 0});
        }
      }
    }
  }

  std::shared_ptr<const Grammar> build(uint32_t root) {
    auto g = std::make_shared<Grammar>();
    g->root_ = root;
    g->classes_ = std::move(classes_);
    g->rule_alts_.push_back(0);
    for (Rule& r : rules_) {
      for (const Alt& alt : r.alts) {
        g->alt_starts_.push_back(uint32_t(g->elements_.size()));
        g->elements_.insert(g->elements_.end(), alt.begin(), alt.end());
        g->elements_.push_back({Grammar::Kind::End, 0});
      }
      g->rule_alts_.push_back(uint32_t(g->alt_starts_.size()));
      g->names_.push_back(std::move(r.name));
    }
    return g;
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::vector<Rule> rules_;
  std::unordered_map<std::string, uint32_t> by_name_;
  std::vector<CharClass> classes_;
  std::map<Ranges, uint32_t> class_ids_;
  std::string current_name_;
  size_t generated_ = 0, total_ = 0;
};

std::shared_ptr<const Grammar> Grammar::parse(std::string_view text, std::string_view root) {
  return GrammarParser(text).parse(root);
}

}  // namespace bitnet
