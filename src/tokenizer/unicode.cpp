// Unicode helpers: category lookup from the generated table, whitespace set, UTF-8 coding.
#include <algorithm>

#include "tokenizer/internal.h"

namespace bitnet::tok {
namespace {

struct URange {
  uint32_t first, last;
  char cls;
};

constexpr URange kTable[] = {
#include "tokenizer/unicode_table.inc"
};

UClass class_of_char(char c) {
  switch (c) {
    case 'L': return UClass::L;
    case 'N': return UClass::N;
    case 'P': return UClass::P;
    case 'S': return UClass::S;
    case 'M': return UClass::M;
    case 'Z': return UClass::Z;
    case 'C': return UClass::C;
    default: return UClass::U;
  }
}

UClass lookup(uint32_t cp) {
  if (cp > 0x10FFFF) return UClass::U;
  auto it = std::upper_bound(std::begin(kTable), std::end(kTable), cp,
                             [](uint32_t v, const URange& r) { return v < r.first; });
  if (it == std::begin(kTable)) return UClass::U;
  --it;
  return cp <= it->last ? class_of_char(it->cls) : UClass::U;
}

struct AsciiTable {
  UClass cls[128];
  AsciiTable() {
    for (uint32_t i = 0; i < 128; ++i) cls[i] = lookup(i);
  }
};

}  // namespace

UClass uclass(uint32_t cp) {
  static const AsciiTable ascii;
  if (cp < 128) return ascii.cls[cp];
  return lookup(cp);
}

bool is_space(uint32_t cp) {
  if (cp >= 0x09 && cp <= 0x0D) return true;
  if (cp < 0x80) return cp == 0x20;
  switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {
// Decodes one well-formed sequence at s[i]; returns its length (0 if invalid).
size_t decode_one(std::string_view s, size_t i, uint32_t& cp) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  size_t len;
  uint32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}
}  // namespace

std::vector<uint32_t> decode_utf8(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    const size_t n = decode_one(s, i, cp);
    if (n == 0) {
      out.push_back(0xFFFD);
      ++i;
    } else {
      out.push_back(cp);
      i += n;
    }
  }
  return out;
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    const size_t n = decode_one(s, i, cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string sanitize_utf8(std::string_view s) {
  if (is_valid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  for (uint32_t cp : decode_utf8(s)) append_utf8(out, cp);
  return out;
}

}  // namespace bitnet::tok
