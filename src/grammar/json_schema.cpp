// JSON Schema → GBNF. The grammar accepts a subset of the JSON texts valid under the schema, chosen
// so that a model constrained by it always ends: bounded whitespace, bounded number lengths, and
// properties in declaration order. docs/structured-output.md ("JSON Schema") lists what is covered.
#include "grammar/json_schema.h"
#include "grammar/json_schema_ordered.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

namespace bitnet {
namespace {

// Ordered: properties are produced in the order the schema declares them.
using json = nlohmann::ordered_json;

constexpr int kMaxDepth = 64;
// Longest integer part of a number without bounds (and of an unbounded integer range).
constexpr int kMaxIntDigits = 18;
constexpr double kMaxBound = 1e18;

const std::set<std::string>& annotation_keywords() {
  static const std::set<std::string> k = {"$schema", "$id", "$comment", "title", "description", "examples",
                                          "default", "deprecated", "readOnly", "writeOnly", "$defs", "definitions"};
  return k;
}

const std::set<std::string>& known_keywords() {
  static const std::set<std::string> k = {
      "type", "enum", "const", "properties", "required", "additionalProperties", "items", "prefixItems",
      "additionalItems", "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern", "format",
      "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "anyOf", "oneOf", "allOf", "$ref"};
  return k;
}

// ---------------------------------------------------------------------------------------------
// GBNF text helpers

// A GBNF string literal holding `text` (UTF-8 passes through unchanged).
std::string literal(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          static const char* hex = "0123456789ABCDEF";
          out += "\\x";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string hex_escape(uint32_t cp) {
  char buf[16];
  if (cp < 0x80) snprintf(buf, sizeof buf, "\\x%02X", cp);
  else if (cp <= 0xFFFF) snprintf(buf, sizeof buf, "\\u%04X", cp);
  else snprintf(buf, sizeof buf, "\\U%08X", cp);
  return buf;
}

// One code point inside a GBNF character class.
std::string class_char(uint32_t cp) {
  if ((cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == ' ' || cp == '_' ||
      cp == '.' || cp == ',' || cp == ':' || cp == '@' || cp == '+')
    return std::string(1, static_cast<char>(cp));
  return hex_escape(cp);
}

std::string repeat(const std::string& item, uint64_t min, std::optional<uint64_t> max) {
  if (max && *max == 0) return "";
  std::string atom = item;
  if (min == 0 && !max) return atom + "*";
  if (min == 1 && !max) return atom + "+";
  if (min == 0 && max && *max == 1) return atom + "?";
  if (max && *max == min) return min == 1 ? atom : atom + "{" + std::to_string(min) + "}";
  if (!max) return atom + "{" + std::to_string(min) + ",}";
  return atom + "{" + std::to_string(min) + "," + std::to_string(*max) + "}";
}

std::string alternation(const std::vector<std::string>& alts) {
  if (alts.size() == 1) return alts[0];
  std::string out = "(";
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : " ") + alts[i];
  return out + " )";
}

std::string sanitize(const std::string& name) {
  std::string out;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    out += ok ? c : '-';
  }
  if (out.empty()) out = "x";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Code point sets (for regex classes)

struct CharSet {
  std::vector<std::pair<uint32_t, uint32_t>> ranges;  // inclusive, sorted and merged by normalize()

  void add(uint32_t a, uint32_t b) { ranges.emplace_back(a, b); }
  void add(const CharSet& o) { ranges.insert(ranges.end(), o.ranges.begin(), o.ranges.end()); }
  void normalize() {
    std::sort(ranges.begin(), ranges.end());
    std::vector<std::pair<uint32_t, uint32_t>> out;
    for (const auto& r : ranges) {
      if (!out.empty() && r.first <= out.back().second + 1) out.back().second = std::max(out.back().second, r.second);
      else out.push_back(r);
    }
    ranges = std::move(out);
  }
  bool contains(uint32_t cp) const {
    for (const auto& r : ranges)
      if (cp >= r.first && cp <= r.second) return true;
    return false;
  }
  // Every Unicode scalar value not in the set (surrogates are never in a set).
  CharSet complement() const {
    CharSet all;
    all.add(0, 0xD7FF);
    all.add(0xE000, 0x10FFFF);
    CharSet me = *this;
    me.add(0xD800, 0xDFFF);
    me.normalize();
    CharSet out;
    for (const auto& a : all.ranges) {
      uint32_t start = a.first;
      for (const auto& r : me.ranges) {
        if (r.second < start || r.first > a.second) continue;
        if (r.first > start) out.add(start, r.first - 1);
        start = r.second + 1;
        if (r.second >= a.second) break;
      }
      if (start <= a.second && start != 0) out.add(start, a.second);
      else if (start == 0 && !me.contains(0)) out.add(start, a.second);
    }
    out.normalize();
    return out;
  }
  CharSet minus(const CharSet& o) const { CharSet c = o.complement(); return intersect(c); }
  CharSet intersect(const CharSet& o) const {
    CharSet out;
    for (const auto& a : ranges)
      for (const auto& b : o.ranges) {
        const uint32_t lo = std::max(a.first, b.first), hi = std::min(a.second, b.second);
        if (lo <= hi) out.add(lo, hi);
      }
    out.normalize();
    return out;
  }
};

CharSet set_of(std::initializer_list<std::pair<uint32_t, uint32_t>> rs) {
  CharSet s;
  for (const auto& r : rs) s.add(r.first, r.second);
  s.normalize();
  return s;
}

// The GBNF for one JSON-string character whose decoded value lies in `set`: printable characters
// other than '"' and '\\' appear raw; '"', '\\', \n, \t, \r, \b, \f as their JSON escapes; other
// control characters are left out (a subset of what the schema allows).
std::string json_char_of(const CharSet& set) {
  CharSet raw = set.minus(set_of({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}}));
  std::vector<std::string> alts;
  if (!raw.ranges.empty()) {
    std::string cls = "[";
    for (const auto& r : raw.ranges) {
      cls += class_char(r.first);
      if (r.second != r.first) cls += (r.second == r.first + 1 ? "" : "-") + class_char(r.second);
    }
    alts.push_back(cls + "]");
  }
  const std::pair<uint32_t, const char*> escapes[] = {{'"', "\\\""}, {'\\', "\\\\"}, {'\n', "\\n"},
                                                      {'\t', "\\t"}, {'\r', "\\r"}, {'\b', "\\b"}, {'\f', "\\f"}};
  for (const auto& [cp, esc] : escapes)
    if (set.contains(cp)) alts.push_back(literal(esc));
  if (alts.empty()) return "";
  return alternation(alts);
}

std::string encode_utf8(uint32_t cp);

std::string json_char_literal(uint32_t cp) {
  if (cp >= 0x20 && cp != '"' && cp != '\\') return literal(encode_utf8(cp));
  CharSet s;
  s.add(cp, cp);
  s.normalize();
  return json_char_of(s);
}

// ---------------------------------------------------------------------------------------------
// Regex subset → GBNF (the expression matches the JSON string's contents, without the quotes)

std::vector<uint32_t> decode_utf8(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) throw SchemaError("pattern is not valid UTF-8");
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(cp);
    i += n;
  }
  return out;
}

std::string encode_utf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) out += static_cast<char>(cp);
  else if (cp < 0x800) { out += static_cast<char>(0xC0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3F)); }
  else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12)); out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18)); out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)); out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

class RegexToGbnf {
 public:
  explicit RegexToGbnf(const std::string& pattern) : src_(pattern), p_(decode_utf8(pattern)) {}

  std::string convert() {
    if (pos_ < p_.size() && p_[pos_] == '^') ++pos_;
    std::string e = alternatives(0);
    if (top_alternatives_ > 1) e = "( " + e + " )";
    if (pos_ < p_.size()) {
      if (p_[pos_] == ')') fail("unbalanced ')'");
      fail("unexpected '" + encode_utf8(p_[pos_]) + "'");
    }
    return e;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw SchemaError("pattern \"" + src_ + "\": " + what + " is not supported");
  }
  bool at(uint32_t c) const { return pos_ < p_.size() && p_[pos_] == c; }

  std::string alternatives(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than 64 groups");
    std::vector<std::string> alts{sequence(depth)};
    bool nullable = nullable_;
    while (at('|')) {
      ++pos_;
      alts.push_back(sequence(depth));
      nullable = nullable || nullable_;
    }
    nullable_ = nullable;
    top_alternatives_ = alts.size();
    for (auto& a : alts)
      if (a.empty()) a = "\"\"";
    return join_alts(alts);
  }

  static std::string join_alts(const std::vector<std::string>& alts) {
    std::string out;
    for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
    return out;
  }

  std::string sequence(int depth) {
    std::vector<std::pair<std::string, bool>> items;  // expression, is a plain literal character
    bool all_nullable = true;
    while (pos_ < p_.size() && !at('|') && !at(')')) {
      if (at('$')) {
        ++pos_;
        if (pos_ != p_.size() && !at(')') && !at('|')) fail("'$' before the end");
        continue;
      }
      if (at('^')) fail("'^' after the start");
      bool is_literal = false, grouped = false;
      std::string atom_expr = atom(depth, is_literal, grouped);
      const bool atom_nullable = grouped && nullable_;  // a group that can match nothing
      std::string q = quantifier();
      // The grammar would repeat a part that consumes nothing: left recursion.
      if (!q.empty() && atom_nullable && q_unbounded_) fail("a repeated group that can match the empty string");
      all_nullable = all_nullable && (atom_nullable || (!q.empty() && q_min_ == 0));
      if (!q.empty()) {
        if (is_literal || grouped || atom_expr.find(' ') == std::string::npos) items.emplace_back(atom_expr + q, false);
        else items.emplace_back("(" + atom_expr + ")" + q, false);
      } else {
        items.emplace_back(atom_expr, is_literal);
      }
    }
    // Merge runs of literal characters into one GBNF literal.
    std::string out;
    std::string run;
    auto emit = [&](const std::string& s) { out += (out.empty() ? "" : " ") + s; };
    for (const auto& [e, lit] : items) {
      if (lit) {
        run += e.substr(1, e.size() - 2);
      } else {
        if (!run.empty()) emit("\"" + run + "\"");
        run.clear();
        emit(e);
      }
    }
    if (!run.empty()) emit("\"" + run + "\"");
    nullable_ = all_nullable;
    return out;
  }

  // {m}, {m,}, {m,n}, *, +, ? (a trailing '?' — lazy — matches the same strings).
  std::string quantifier() {
    if (pos_ >= p_.size()) return "";
    std::string q;
    const uint32_t c = p_[pos_];
    if (c == '*' || c == '+' || c == '?') {
      ++pos_;
      q = std::string(1, static_cast<char>(c));
      q_min_ = c == '+' ? 1 : 0;
      q_unbounded_ = c != '?';
    } else if (c == '{') {
      size_t i = pos_ + 1;
      auto number = [&](std::optional<uint64_t>& v) {
        uint64_t n = 0;
        size_t start = i;
        while (i < p_.size() && p_[i] >= '0' && p_[i] <= '9' && i - start < 6) n = n * 10 + (p_[i++] - '0');
        if (i > start) v = n;
      };
      std::optional<uint64_t> lo, hi;
      number(lo);
      bool comma = false;
      if (i < p_.size() && p_[i] == ',') { comma = true; ++i; number(hi); }
      if (!lo || i >= p_.size() || p_[i] != '}') return "";  // a literal '{' (as JavaScript reads it)
      pos_ = i + 1;
      if (!comma) hi = lo;
      if (hi && *hi < *lo) fail("quantifier {" + std::to_string(*lo) + "," + std::to_string(*hi) + "}");
      q = repeat("", *lo, hi);
      q_min_ = *lo;
      q_unbounded_ = !hi;
      if (hi && *hi == 0) q = "{0}";
    } else {
      return "";
    }
    if (at('?')) ++pos_;
    if (at('+')) fail("possessive quantifier");
    if (at('*') || at('+') || at('{')) fail("a quantifier after a quantifier");
    return q;
  }

  std::string atom(int depth, bool& is_literal, bool& grouped) {
    const uint32_t c = p_[pos_];
    if (c == '(') {
      ++pos_;
      if (at('?')) {
        if (pos_ + 1 < p_.size() && p_[pos_ + 1] == ':') pos_ += 2;
        else if (pos_ + 1 < p_.size() && (p_[pos_ + 1] == '=' || p_[pos_ + 1] == '!')) fail("lookahead '(?" + encode_utf8(p_[pos_ + 1]) + "'");
        else if (pos_ + 1 < p_.size() && p_[pos_ + 1] == '<' && pos_ + 2 < p_.size() && (p_[pos_ + 2] == '=' || p_[pos_ + 2] == '!'))
          fail("lookbehind '(?<" + encode_utf8(p_[pos_ + 2]) + "'");
        else fail("group syntax '(?'");
      }
      std::string inner = alternatives(depth + 1);
      if (!at(')')) fail("unbalanced '('");
      ++pos_;
      grouped = true;
      return "( " + (inner.empty() ? std::string("\"\"") : inner) + " )";
    }
    if (c == '[') return char_class();
    if (c == '.') {
      ++pos_;
      return json_char_of(set_of({{'\n', '\n'}, {'\r', '\r'}}).complement());
    }
    if (c == '*' || c == '+' || c == '?') fail("quantifier '" + encode_utf8(c) + "' without an operand");
    if (c == '\\') {
      CharSet s;
      bool single = escape(false, s);
      if (single) {
        is_literal = s.ranges[0].first >= 0x20 && s.ranges[0].first != '"' && s.ranges[0].first != '\\';
        return is_literal ? literal(encode_utf8(s.ranges[0].first)) : json_char_of(s);
      }
      return json_char_of(s);
    }
    ++pos_;
    is_literal = c >= 0x20 && c != '"' && c != '\\';
    return is_literal ? literal(encode_utf8(c)) : json_char_literal(c);
  }

  // After a backslash; fills `s`, returns true when it is a single character.
  bool escape(bool in_class, CharSet& s) {
    ++pos_;  // the backslash
    if (pos_ >= p_.size()) fail("a trailing '\\'");
    const uint32_t c = p_[pos_++];
    auto hex_digits = [&](int n) {
      uint32_t v = 0;
      for (int k = 0; k < n; ++k) {
        if (pos_ >= p_.size()) fail("a short hex escape");
        const uint32_t h = p_[pos_++];
        int d = h >= '0' && h <= '9' ? int(h - '0') : h >= 'a' && h <= 'f' ? int(h - 'a' + 10) : h >= 'A' && h <= 'F' ? int(h - 'A' + 10) : -1;
        if (d < 0) fail("a bad hex escape");
        v = v * 16 + uint32_t(d);
      }
      return v;
    };
    const CharSet digit = set_of({{'0', '9'}});
    const CharSet word = set_of({{'0', '9'}, {'A', 'Z'}, {'a', 'z'}, {'_', '_'}});
    const CharSet space = set_of({{' ', ' '}, {'\t', '\r'}});
    switch (c) {
      case 'd': s = digit; return false;
      case 'D': s = digit.complement(); return false;
      case 'w': s = word; return false;
      case 'W': s = word.complement(); return false;
      case 's': s = space; return false;
      case 'S': s = space.complement(); return false;
      case 'n': s.add('\n', '\n'); return true;
      case 't': s.add('\t', '\t'); return true;
      case 'r': s.add('\r', '\r'); return true;
      case 'f': s.add('\f', '\f'); return true;
      case 'v': s.add('\v', '\v'); return true;
      case '0': s.add(0, 0); return true;
      case 'x': { uint32_t v = hex_digits(2); s.add(v, v); return true; }
      case 'u': {
        uint32_t v = hex_digits(4);
        if (v >= 0xD800 && v <= 0xDFFF) fail("a surrogate escape");
        s.add(v, v);
        return true;
      }
      default: break;
    }
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '1' && c <= '9')) {
      if (c >= '1' && c <= '9') fail("backreference '\\" + encode_utf8(c) + "'");
      (void)in_class;
      fail("escape '\\" + encode_utf8(c) + "'");
    }
    s.add(c, c);  // an escaped punctuation character stands for itself
    return true;
  }

  std::string char_class() {
    ++pos_;  // '['
    bool negate = false;
    if (at('^')) { negate = true; ++pos_; }
    CharSet set;
    bool first = true;
    while (true) {
      if (pos_ >= p_.size()) fail("unbalanced '['");
      if (at(']') && !first) { ++pos_; break; }
      if (at(']') && first) { ++pos_; set.add(']', ']'); first = false; continue; }
      first = false;
      CharSet item;
      bool single = true;
      if (at('\\')) single = escape(true, item);
      else if (at('[') && pos_ + 1 < p_.size() && p_[pos_ + 1] == ':') fail("POSIX class '[:'");
      else { item.add(p_[pos_], p_[pos_]); ++pos_; }
      if (single && at('-') && pos_ + 1 < p_.size() && p_[pos_ + 1] != ']') {
        ++pos_;
        CharSet hi;
        if (at('\\')) { if (!escape(true, hi)) fail("a class escape as a range end"); }
        else { hi.add(p_[pos_], p_[pos_]); ++pos_; }
        const uint32_t a = item.ranges[0].first, b = hi.ranges[0].first;
        if (b < a) fail("range out of order in '[...]'");
        set.add(a, b);
      } else {
        set.add(item);
      }
    }
    set.normalize();
    if (negate) set = set.complement();
    std::string e = json_char_of(set);
    if (e.empty()) fail("a class that admits no character of a JSON string");
    return e;
  }

  std::string src_;
  std::vector<uint32_t> p_;
  size_t pos_ = 0;
  size_t top_alternatives_ = 0;  // of the last alternatives() to return (the outermost, last)
  bool nullable_ = false;        // the last sequence()/alternatives() can match the empty string
  uint64_t q_min_ = 0;           // the last quantifier(): its minimum, and whether it has no maximum
  bool q_unbounded_ = false;
};

// ---------------------------------------------------------------------------------------------
// Integer ranges as digit patterns

std::string digits(size_t n) { return n == 0 ? "" : n == 1 ? "[0-9]" : "[0-9]{" + std::to_string(n) + "}"; }

std::string digit_class(char a, char b) {
  if (a == b) return std::string("\"") + a + "\"";
  if (a == '0' && b == '9') return "[0-9]";
  return std::string("[") + a + "-" + b + "]";
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts)
    if (!p.empty()) out += (out.empty() ? "" : " ") + p;
  return out;
}

// Digit strings of one length between lo and hi (inclusive, lo <= hi).
std::string same_length_range(const std::string& lo, const std::string& hi) {
  if (lo.empty()) return "";
  if (lo == hi) return "\"" + lo + "\"";
  size_t p = 0;
  while (lo[p] == hi[p]) ++p;
  const std::string prefix = p ? "\"" + lo.substr(0, p) + "\"" : "";
  const std::string l = lo.substr(p), h = hi.substr(p);
  const size_t m = l.size();
  const bool lo_full = l.find_first_not_of('0', 1) == std::string::npos;
  const bool hi_full = h.find_first_not_of('9', 1) == std::string::npos;
  const char mid_lo = lo_full ? l[0] : char(l[0] + 1);
  const char mid_hi = hi_full ? h[0] : char(h[0] - 1);
  std::vector<std::string> alts;
  if (!lo_full) alts.push_back(join({digit_class(l[0], l[0]), same_length_range(l.substr(1), std::string(m - 1, '9'))}));
  if (mid_lo <= mid_hi) alts.push_back(join({digit_class(mid_lo, mid_hi), digits(m - 1)}));
  if (!hi_full) alts.push_back(join({digit_class(h[0], h[0]), same_length_range(std::string(m - 1, '0'), h.substr(1))}));
  return join({prefix, alternation(alts)});
}

// Non-negative integers in [a, b] (b absent: unbounded, up to kMaxIntDigits digits), no leading zeros.
std::string nonneg_range(uint64_t a, std::optional<uint64_t> b) {
  const std::string as = std::to_string(a);
  std::vector<std::string> alts;
  if (b) {
    const std::string bs = std::to_string(*b);
    for (size_t len = as.size(); len <= bs.size(); ++len) {
      const std::string lo = len == as.size() ? as : "1" + std::string(len - 1, '0');
      const std::string hi = len == bs.size() ? bs : std::string(len, '9');
      alts.push_back(same_length_range(lo, hi));
    }
  } else {
    alts.push_back(same_length_range(as, std::string(as.size(), '9')));
    if (as.size() < size_t(kMaxIntDigits))
      alts.push_back(join({"[1-9]", repeat("[0-9]", as.size(), uint64_t(kMaxIntDigits - 1))}));
  }
  return alternation(alts);
}

// Integers in [lo, hi], either bound optional.
std::string integer_range(std::optional<int64_t> lo, std::optional<int64_t> hi) {
  if (lo && hi && *lo > *hi) throw SchemaError("integer bounds admit no value (minimum " + std::to_string(*lo) + " > maximum " + std::to_string(*hi) + ")");
  std::vector<std::string> alts;
  if (!lo || *lo < 0) {
    const uint64_t a = hi && *hi < 0 ? uint64_t(-*hi) : 1;
    std::optional<uint64_t> b;
    if (lo) b = uint64_t(-*lo);
    alts.push_back("\"-\" " + nonneg_range(a, b));
  }
  if (!hi || *hi >= 0) {
    std::optional<uint64_t> b;
    if (hi) b = uint64_t(*hi);
    alts.push_back(nonneg_range(lo && *lo > 0 ? uint64_t(*lo) : 0, b));
  }
  return alternation(alts);
}

// ---------------------------------------------------------------------------------------------

const char* kWs = R"(( " " | "\n" [ \t]{0,20} )?)";

const std::map<std::string, std::string>& primitive_rules() {
  static const std::map<std::string, std::string> r = {
      {"ws", kWs},
      {"char", R"([^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ))"},
      {"string", R"("\"" char* "\"")"},
      {"number", R"("-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?)"},
      {"integer", R"("-"? ( "0" | [1-9] [0-9]{0,17} ))"},
      {"boolean", R"("true" | "false")"},
      {"null", R"("null")"},
      {"value", "object | array | string | number | boolean | null"},
      {"object", R"("{" ws ( string ws ":" ws value ws ( "," ws string ws ":" ws value ws )* )? "}")"},
      {"array", R"("[" ws ( value ws ( "," ws value ws )* )? "]")"},
  };
  return r;
}

const std::map<std::string, std::vector<std::string>>& primitive_deps() {
  static const std::map<std::string, std::vector<std::string>> d = {
      {"char", {}}, {"ws", {}}, {"string", {"char"}}, {"number", {}}, {"integer", {}}, {"boolean", {}},
      {"null", {}}, {"value", {"object", "array", "string", "number", "boolean", "null"}},
      {"object", {"ws", "string", "value"}}, {"array", {"ws", "value"}},
  };
  return d;
}

struct TrieNode {
  std::map<uint32_t, TrieNode> next;
  bool terminal = false;
};

class Converter {
 public:
  Converter(const json& root, std::string prefix) : root_(root), prefix_(std::move(prefix)) {
    for (const auto& [name, body] : primitive_rules()) taken_.insert(name);
    taken_.insert(prefix_ + "root");
    ref_rules_["#"] = prefix_ + "root";
  }

  std::string run() {
    const std::string root = prefix_ + "root";
    order_.push_back(root);
    bodies_[root] = "";
    bodies_[root] = expr(root_, root, 0);
    std::string out;
    for (const auto& name : order_) out += name + " ::= " + bodies_[name] + "\n";
    return out;
  }

 private:
  std::string reserve(const std::string& hint) {
    std::string base = sanitize(hint), name = base;
    for (int i = 2; taken_.count(name); ++i) name = base + "-" + std::to_string(i);
    taken_.insert(name);
    order_.push_back(name);
    bodies_[name] = "";
    return name;
  }
  std::string define(const std::string& hint, const std::string& body) {
    const std::string name = reserve(hint);
    bodies_[name] = body;
    return name;
  }
  std::string prim(const std::string& name) {
    if (!bodies_.count(name)) {
      order_.push_back(name);
      bodies_[name] = primitive_rules().at(name);
      for (const auto& d : primitive_deps().at(name)) prim(d);
    }
    return name;
  }
  bool is_rule_name(const std::string& e) const {
    return !e.empty() && e.find_first_of(" \"[(|") == std::string::npos && bodies_.count(e);
  }
  // A rule for the schema, named after `hint` (or an existing rule when the schema is one).
  std::string rule(const json& s, const std::string& hint, int depth) {
    if (s.is_object() && s.size() == 1 && s.contains("$ref")) return ref(s["$ref"], depth);
    const std::string name = reserve(hint);
    std::string body = expr(s, name, depth);
    if (is_rule_name(body) && body != name) {  // an alias: use the rule itself
      order_.erase(std::find(order_.begin(), order_.end(), name));
      bodies_.erase(name);
      return body;
    }
    bodies_[name] = body;
    return name;
  }

  std::string ref(const json& r, int depth) {
    if (!r.is_string()) throw SchemaError("'$ref' must be a string");
    const std::string target = r.get<std::string>();
    const json& s = resolve(target);
    // A chain of references that comes back without any schema in between admits nothing.
    std::set<std::string> seen{target};
    for (const json* t = &s; t->is_object() && t->contains("$ref") && (*t)["$ref"].is_string();) {
      bool pure = true;
      for (const auto& [k, v] : t->items())
        if (k != "$ref" && !annotation_keywords().count(k)) pure = false;
      if (!pure) break;
      const std::string next = (*t)["$ref"].get<std::string>();
      if (!seen.insert(next).second) throw SchemaError("'$ref' \"" + target + "\" is a cycle of references");
      t = &resolve(next);
    }
    if (auto it = ref_rules_.find(target); it != ref_rules_.end()) return it->second;
    const std::string name = reserve(prefix_ + target.substr(target.find_last_of('/') + 1));
    ref_rules_[target] = name;
    bodies_[name] = expr(s, name, depth + 1);
    return name;
  }

  const json& resolve(const std::string& target) {
    if (target.empty() || target[0] != '#')
      throw SchemaError("'$ref' \"" + target + "\": only references inside the schema (#/$defs/…, #/definitions/…) are supported");
    if (target == "#") return root_;
    if (target.size() < 2 || target[1] != '/') throw SchemaError("'$ref' \"" + target + "\" is not a JSON pointer");
    try {
      const json::json_pointer ptr(target.substr(1));
      if (!root_.contains(ptr)) throw SchemaError("'$ref' \"" + target + "\" names nothing in the schema");
      return root_.at(ptr);
    } catch (const json::exception&) {
      throw SchemaError("'$ref' \"" + target + "\" is not a valid JSON pointer");
    }
  }

  // A copy of `s` with a top-level $ref replaced by its target (merged with the siblings).
  json deref(const json& s, int depth) {
    if (depth > kMaxDepth) throw SchemaError("schema nesting (or $ref chain) deeper than 64");
    if (!s.is_object() || !s.contains("$ref")) return s;
    json siblings = s;
    siblings.erase("$ref");
    if (!s["$ref"].is_string()) throw SchemaError("'$ref' must be a string");
    json target = deref(resolve(s["$ref"].get<std::string>()), depth + 1);
    return merge(target, siblings, depth);
  }

  // allOf of two schemas as one schema, where expressible.
  json merge(const json& a0, const json& b0, int depth) {
    json a = deref(a0, depth + 1), b = deref(b0, depth + 1);
    if (a.is_boolean() || b.is_boolean()) {
      if ((a.is_boolean() && !a.get<bool>()) || (b.is_boolean() && !b.get<bool>())) throw SchemaError("'allOf' with a false schema admits nothing");
      return a.is_boolean() ? b : a;
    }
    if (!a.is_object() || !b.is_object()) throw SchemaError("a schema must be an object or a boolean");
    if (a.contains("allOf") || b.contains("allOf") || a.contains("anyOf") || b.contains("anyOf") || a.contains("oneOf") || b.contains("oneOf")) {
      a = flatten(a, depth + 1);
      b = flatten(b, depth + 1);
    }
    json out = a;
    for (const auto& [k, v] : b.items()) {
      if (annotation_keywords().count(k)) continue;
      if (!out.contains(k)) { out[k] = v; continue; }
      if (k == "properties") {
        if (!v.is_object() || !out[k].is_object()) throw SchemaError("'properties' must be an object");
        for (const auto& [pk, pv] : v.items())
          out[k][pk] = out[k].contains(pk) && out[k][pk] != pv ? merge(out[k][pk], pv, depth + 1) : pv;
      } else if (k == "required") {
        if (!v.is_array() || !out[k].is_array()) throw SchemaError("'required' must be an array");
        for (const auto& r : v)
          if (std::find(out[k].begin(), out[k].end(), r) == out[k].end()) out[k].push_back(r);
      } else if (k == "additionalProperties" && (v == false || out[k] == false)) {
        out[k] = false;
      } else if (out[k] != v) {
        throw SchemaError("'allOf': the schemas disagree on '" + k + "' (only objects' properties/required merge)");
      }
    }
    return out;
  }

  json flatten(const json& s, int depth) {
    if (!s.is_object()) return s;
    if (s.contains("anyOf") || s.contains("oneOf")) throw SchemaError("'allOf' over 'anyOf'/'oneOf' is not supported");
    if (!s.contains("allOf")) return s;
    return merge_all(s, depth);
  }

  json merge_all(const json& s, int depth) {
    const json& parts = s["allOf"];
    if (!parts.is_array() || parts.empty()) throw SchemaError("'allOf' must be a non-empty array");
    json acc = s;
    acc.erase("allOf");
    for (const auto& p : parts) acc = merge(acc, p, depth + 1);
    return acc;
  }

  void check_keywords(const json& s) {
    for (const auto& [k, v] : s.items()) {
      if (annotation_keywords().count(k) || known_keywords().count(k)) continue;
      throw SchemaError("unsupported JSON Schema keyword '" + k + "'");
    }
    if (s.contains("uniqueItems") && s["uniqueItems"] != false) throw SchemaError("unsupported JSON Schema keyword 'uniqueItems' (true)");
  }

  std::string any_value() { return prim("value"); }

  // The GBNF expression for the values the schema admits; sub-rules are named `name-…`.
  std::string expr(const json& s, const std::string& name, int depth) {
    if (depth > kMaxDepth) throw SchemaError("schema nesting deeper than 64");
    if (s.is_boolean()) {
      if (!s.get<bool>()) throw SchemaError("the schema 'false' admits no value");
      return any_value();
    }
    if (!s.is_object()) throw SchemaError("a schema must be an object or a boolean, not " + std::string(s.type_name()));
    check_keywords(s);
    if (s.contains("$ref")) {
      if (s.size() == 1 || std::all_of(s.items().begin(), s.items().end(), [](const auto& kv) {
            return kv.key() == "$ref" || annotation_keywords().count(kv.key()); }))
        return ref(s["$ref"], depth);
      return expr(deref(s, depth), name, depth + 1);
    }
    if (s.contains("allOf")) return expr(merge_all(s, depth), name, depth + 1);
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s.contains(key)) continue;
      const json& branches = s[key];
      if (!branches.is_array() || branches.empty()) throw SchemaError(std::string("'") + key + "' must be a non-empty array");
      json siblings = s;
      siblings.erase(key);
      bool constrained = false;
      for (const auto& [k, v] : siblings.items())
        if (!annotation_keywords().count(k)) constrained = true;
      std::vector<std::string> alts;
      for (size_t i = 0; i < branches.size(); ++i) {
        const json b = constrained ? merge(siblings, branches[i], depth + 1) : branches[i];
        alts.push_back(rule(b, name + "-" + std::to_string(i), depth + 1));
      }
      return join_alts(alts);
    }
    if (s.contains("const")) return literal(s["const"].dump());
    if (s.contains("enum")) {
      const json& e = s["enum"];
      if (!e.is_array() || e.empty()) throw SchemaError("'enum' must be a non-empty array");
      std::vector<std::string> alts;
      for (const auto& v : e) alts.push_back(literal(v.dump()));
      return join_alts(alts);
    }
    std::vector<std::string> types;
    if (s.contains("type")) {
      const json& t = s["type"];
      if (t.is_string()) types.push_back(t.get<std::string>());
      else if (t.is_array() && !t.empty()) {
        for (const auto& x : t) {
          if (!x.is_string()) throw SchemaError("'type' must be a string or an array of strings");
          types.push_back(x.get<std::string>());
        }
      } else {
        throw SchemaError("'type' must be a string or a non-empty array of strings");
      }
    } else {
      auto has = [&](std::initializer_list<const char*> ks) {
        for (const char* k : ks) if (s.contains(k)) return true;
        return false;
      };
      if (has({"properties", "required", "additionalProperties"})) types.push_back("object");
      if (has({"items", "prefixItems", "additionalItems", "minItems", "maxItems"})) types.push_back("array");
      if (has({"minLength", "maxLength", "pattern", "format"})) types.push_back("string");
      if (has({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})) types.push_back("number");
      if (types.empty()) return any_value();
    }
    std::vector<std::string> alts;
    for (const auto& t : types) {
      const std::string sub = types.size() > 1 ? name + "-" + t : name;
      if (t == "object") alts.push_back(object(s, sub, depth));
      else if (t == "array") alts.push_back(array(s, sub, depth));
      else if (t == "string") alts.push_back(string(s));
      else if (t == "number") alts.push_back(number(s, false));
      else if (t == "integer") alts.push_back(number(s, true));
      else if (t == "boolean") alts.push_back(prim("boolean"));
      else if (t == "null") alts.push_back(prim("null"));
      else throw SchemaError("unknown 'type' \"" + t + "\"");
    }
    if (alts.size() == 1) return alts[0];
    std::vector<std::string> wrapped;
    for (auto& a : alts) wrapped.push_back(is_rule_name(a) || a.find(' ') == std::string::npos ? a : "( " + a + " )");
    return join_alts(wrapped);
  }

  static std::string join_alts(const std::vector<std::string>& alts) {
    std::string out;
    for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
    return out;
  }

  static std::optional<uint64_t> count(const json& s, const char* key) {
    if (!s.contains(key)) return std::nullopt;
    const json& v = s[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 100000)
      throw SchemaError(std::string("'") + key + "' must be an integer in 0…100000");
    return v.get<uint64_t>();
  }

  std::string string(const json& s) {
    const auto min_len = count(s, "minLength"), max_len = count(s, "maxLength");
    if (min_len && max_len && *min_len > *max_len) throw SchemaError("'minLength' is greater than 'maxLength'");
    if (s.contains("format")) {
      if (!s["format"].is_string()) throw SchemaError("'format' must be a string");
      if (s.contains("pattern") || min_len || max_len) throw SchemaError("'format' together with 'pattern'/'minLength'/'maxLength' is not supported");
      return "\"\\\"\" " + format(s["format"].get<std::string>()) + " \"\\\"\"";
    }
    if (s.contains("pattern")) {
      if (!s["pattern"].is_string()) throw SchemaError("'pattern' must be a string");
      if (min_len || max_len) throw SchemaError("'pattern' together with 'minLength'/'maxLength' is not supported");
      std::string e = RegexToGbnf(s["pattern"].get<std::string>()).convert();
      return "\"\\\"\" " + (e.empty() ? std::string() : e + " ") + "\"\\\"\"";
    }
    if (!min_len && !max_len) return prim("string");
    prim("char");
    const std::string reps = repeat("char", min_len.value_or(0), max_len);
    return "\"\\\"\" " + (reps.empty() ? std::string() : reps + " ") + "\"\\\"\"";
  }

  std::string format(const std::string& f) {
    const std::string date = R"([0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ))";
    const std::string time =
        R"(( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,9} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))";
    if (f == "date") return define(prefix_ + "date", date);
    if (f == "time") return define(prefix_ + "time", time);
    if (f == "date-time") return define(prefix_ + "date-time", date + " \"T\" " + time);
    if (f == "uuid")
      return define(prefix_ + "uuid", R"([0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12})");
    if (f == "email")
      return define(prefix_ + "email", R"([A-Za-z0-9._%+\-]{1,64} "@" [A-Za-z0-9\-]{1,63} ( "." [A-Za-z0-9\-]{1,63} ){1,4})");
    throw SchemaError("unsupported 'format' \"" + f + "\" (supported: date, time, date-time, uuid, email)");
  }

  struct Bound {
    double v;
    bool exclusive;
  };
  // The lower (upper) bound from minimum/exclusiveMinimum (maximum/exclusiveMaximum), the stronger one.
  static std::optional<Bound> bound(const json& s, bool lower) {
    const char* inc = lower ? "minimum" : "maximum";
    const char* exc = lower ? "exclusiveMinimum" : "exclusiveMaximum";
    std::optional<Bound> b;
    if (s.contains(inc)) {
      if (!s[inc].is_number()) throw SchemaError(std::string("'") + inc + "' must be a number");
      b = Bound{s[inc].get<double>(), false};
    }
    if (s.contains(exc)) {
      const json& e = s[exc];
      if (e.is_boolean()) {  // draft 4: a flag on minimum/maximum
        if (e.get<bool>()) {
          if (!b) throw SchemaError(std::string("'") + exc + "': true needs '" + inc + "'");
          b->exclusive = true;
        }
      } else if (e.is_number()) {
        const double v = e.get<double>();
        if (!b || (lower ? v >= b->v : v <= b->v)) b = Bound{v, true};
      } else {
        throw SchemaError(std::string("'") + exc + "' must be a number");
      }
    }
    if (b && !(std::fabs(b->v) <= kMaxBound)) throw SchemaError(std::string("'") + inc + "': bounds beyond ±1e18 are not supported");
    return b;
  }

  std::string number(const json& s, bool integer) {
    const auto lo = bound(s, true), hi = bound(s, false);
    if (!lo && !hi) return prim(integer ? "integer" : "number");
    if (integer) {
      std::optional<int64_t> l, h;
      if (lo) l = int64_t(lo->exclusive ? std::floor(lo->v) + 1 : std::ceil(lo->v));
      if (hi) h = int64_t(hi->exclusive ? std::ceil(hi->v) - 1 : std::floor(hi->v));
      return integer_range(l, h);
    }
    // A number with bounds: integer bounds only, written without exponent. Integer values in the
    // range, or n.f (f not ending in 0) with n chosen so that the value lies strictly inside.
    for (const auto& b : {lo, hi})
      if (b && b->v != std::floor(b->v))
        throw SchemaError("bounds on 'number' must be integers (got " + json(b->v).dump() + "); use 'integer' or whole bounds");
    std::optional<int64_t> L, H;
    if (lo) L = int64_t(lo->v);
    if (hi) H = int64_t(hi->v);
    std::optional<int64_t> li = L, hi_i = H;
    if (lo && lo->exclusive) li = *L + 1;
    if (hi && hi->exclusive) hi_i = *H - 1;
    std::vector<std::string> alts;
    if (!(li && hi_i && *li > *hi_i)) alts.push_back(integer_range(li, hi_i));
    const std::string frac = R"("." [0-9]{0,15} [1-9])";
    // positive fractions: n in [max(L,0), H-1]
    {
      const int64_t n_lo = L ? std::max<int64_t>(*L, 0) : 0;
      if (!H || *H - 1 >= n_lo) {
        std::optional<uint64_t> n_hi;
        if (H) n_hi = uint64_t(*H - 1);
        alts.push_back(nonneg_range(uint64_t(n_lo), n_hi) + " " + frac);
      }
    }
    // negative fractions: -(n.f) with n in [max(-H,0), -L-1]
    {
      const int64_t n_lo = H ? std::max<int64_t>(-*H, 0) : 0;
      if (!L || -*L - 1 >= n_lo) {
        std::optional<uint64_t> n_hi;
        if (L) n_hi = uint64_t(-*L - 1);
        alts.push_back("\"-\" " + nonneg_range(uint64_t(n_lo), n_hi) + " " + frac);
      }
    }
    if (alts.empty()) throw SchemaError("number bounds admit no value");
    std::vector<std::string> wrapped;
    for (auto& a : alts) wrapped.push_back(a.find(' ') == std::string::npos ? a : "( " + a + " )");
    return join_alts(wrapped);
  }

  // A JSON string that is none of `keys` (as written without escapes).
  std::string key_other_than(const std::vector<std::string>& keys, const std::string& name) {
    TrieNode root;
    for (const auto& k : keys) {
      TrieNode* n = &root;
      for (uint32_t cp : decode_utf8(k)) n = &n->next[cp];
      n->terminal = true;
    }
    prim("char");
    const std::string rest = define(name + "-rest", "char* \"\\\"\"");
    int counter = 0;
    std::function<std::string(const TrieNode&)> node_rule = [&](const TrieNode& n) -> std::string {
      const std::string rname = reserve(name + "-" + std::to_string(counter++));
      std::vector<std::string> alts;
      if (!n.terminal) alts.push_back("\"\\\"\"");
      CharSet used = set_of({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}});
      for (const auto& [cp, child] : n.next) used.add(cp, cp);
      used.normalize();
      const std::string other = json_char_of(used.complement());
      if (!other.empty()) alts.push_back(other + " " + rest);
      alts.push_back(R"("\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )" + rest);
      for (const auto& [cp, child] : n.next) alts.push_back(json_char_literal(cp) + " " + node_rule(child));
      bodies_[rname] = join_alts(alts);
      return rname;
    };
    return "\"\\\"\" " + node_rule(root);
  }

  std::string object(const json& s, const std::string& name, int depth) {
    prim("ws");
    json props = json::object();
    std::vector<std::string> order;
    if (s.contains("properties")) {
      if (!s["properties"].is_object()) throw SchemaError("'properties' must be an object");
      props = s["properties"];
      for (const auto& [k, v] : props.items()) order.push_back(k);
    }
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) throw SchemaError("'required' must be an array of strings");
      for (const auto& r : s["required"]) {
        if (!r.is_string()) throw SchemaError("'required' must be an array of strings");
        required.insert(r.get<std::string>());
        if (!props.contains(r.get<std::string>())) {
          props[r.get<std::string>()] = true;
          order.push_back(r.get<std::string>());
        }
      }
    }
    std::string extra_kv;
    const bool closed = !props.empty() && !s.contains("additionalProperties");
    if (!closed) {
      const json ap = s.value("additionalProperties", json(true));
      if (!(ap.is_boolean() && !ap.get<bool>())) {
        const std::string vrule = rule(ap, name + "-additional-value", depth + 1);
        const std::string key = order.empty() ? prim("string") : key_other_than(order, name + "-additional-key");
        extra_kv = define(name + "-additional-kv", key + " ws \":\" ws " + vrule + " ws");
      }
    }
    std::vector<std::string> kv;
    std::vector<bool> req;
    for (const auto& k : order) {
      const std::string v = rule(props[k], name + "-" + k, depth + 1);
      kv.push_back(define(name + "-" + k + "-kv", literal(json(k).dump()) + " ws \":\" ws " + v + " ws"));
      req.push_back(required.count(k) > 0);
    }
    const size_t n = kv.size();
    // after[i]: the members from i on, when one was written before (each preceded by a comma).
    std::vector<std::string> after(n + 1);
    after[n] = extra_kv.empty() ? "" : "( \",\" ws " + extra_kv + " )*";
    for (size_t i = n; i-- > 0;) {
      const std::string piece = req[i] ? "\",\" ws " + kv[i] : "( \",\" ws " + kv[i] + " )?";
      after[i] = piece + (after[i + 1].empty() ? "" : " " + after[i + 1]);
    }
    std::vector<std::string> alts;
    bool any_required = false;
    for (size_t j = 0; j < n; ++j) {
      alts.push_back(kv[j] + (after[j + 1].empty() ? "" : " " + after[j + 1]));
      if (req[j]) { any_required = true; break; }
    }
    if (!any_required && !extra_kv.empty()) alts.push_back(extra_kv + " " + after[n]);
    std::string members;
    if (!alts.empty()) members = alternation(alts) + (any_required ? "" : "?");
    if (alts.size() == 1 && !any_required) members = "( " + alts[0] + " )?";
    return "\"{\" ws " + (members.empty() ? std::string() : members + " ") + "\"}\"";
  }

  std::string array(const json& s, const std::string& name, int depth) {
    prim("ws");
    const auto min_items = count(s, "minItems"), max_items = count(s, "maxItems");
    if (min_items && max_items && *min_items > *max_items) throw SchemaError("'minItems' is greater than 'maxItems'");
    json prefix = json::array();
    json items = true;
    if (s.contains("prefixItems")) {
      if (!s["prefixItems"].is_array()) throw SchemaError("'prefixItems' must be an array of schemas");
      prefix = s["prefixItems"];
      items = s.contains("items") ? s["items"] : json(false);
    } else if (s.contains("items") && s["items"].is_array()) {  // draft 2019 tuple form
      prefix = s["items"];
      items = s.contains("additionalItems") ? s["additionalItems"] : json(false);
    } else if (s.contains("items")) {
      items = s["items"];
    }
    if (s.contains("additionalItems") && !(s.contains("items") && s["items"].is_array()))
      throw SchemaError("'additionalItems' without a tuple 'items' array");
    const uint64_t k = prefix.size();
    if (max_items && *max_items < k) throw SchemaError("'maxItems' is below the number of 'prefixItems' (all of them are produced)");
    const bool more = !(items.is_boolean() && !items.get<bool>());
    std::vector<std::string> parts;
    for (size_t i = 0; i < k; ++i) parts.push_back(rule(prefix[i], name + "-" + std::to_string(i), depth + 1) + " ws");
    std::string body;
    if (k > 0) {
      for (size_t i = 0; i < k; ++i) body += (i ? " \",\" ws " : "") + parts[i];
      if (more) {
        const std::string item = rule(items, name + "-item", depth + 1);
        const uint64_t lo = min_items && *min_items > k ? *min_items - k : 0;
        std::optional<uint64_t> hi;
        if (max_items) hi = *max_items - k;
        const std::string r = repeat("( \",\" ws " + item + " ws )", lo, hi);
        if (!r.empty()) body += " " + r;
      } else if (min_items && *min_items > k) {
        throw SchemaError("'minItems' exceeds the number of 'prefixItems' and no further items are allowed");
      }
      return "\"[\" ws " + body + " \"]\"";
    }
    if (!more) {
      if (min_items && *min_items > 0) throw SchemaError("'minItems' with 'items': false admits no value");
      return "\"[\" ws \"]\"";
    }
    if (max_items && *max_items == 0) return "\"[\" ws \"]\"";
    const std::string item = rule(items, name + "-item", depth + 1);
    const uint64_t lo = min_items.value_or(0);
    std::optional<uint64_t> tail_hi;
    if (max_items) tail_hi = *max_items - 1;
    const std::string tail = repeat("( \",\" ws " + item + " ws )", lo > 0 ? lo - 1 : 0, tail_hi);
    const std::string seq = item + " ws" + (tail.empty() ? "" : " " + tail);
    return "\"[\" ws " + (lo == 0 ? "( " + seq + " )? " : seq + " ") + "\"]\"";
  }

  const json& root_;
  const std::string prefix_;  // of every rule name but the shared primitives (ws, string, value, …)
  std::set<std::string> taken_;
  std::vector<std::string> order_;
  std::map<std::string, std::string> bodies_;
  std::map<std::string, std::string> ref_rules_;
};

}  // namespace

std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema, const std::string& rule_prefix) {
  if (!rule_prefix.empty() && sanitize(rule_prefix) != rule_prefix)
    throw SchemaError("rule prefix \"" + rule_prefix + "\": only letters, digits and '-'");
  return Converter(schema, rule_prefix).run();
}

// nlohmann::json keeps object keys sorted, so properties come in name order here.
std::string json_schema_to_gbnf(const nlohmann::json& schema) {
  return json_schema_to_gbnf(nlohmann::ordered_json(schema));
}

}  // namespace bitnet
