#include "base/untrusted_text.h"

#include <algorithm>
#include <cstdint>

namespace bitnet {

namespace {

// Length of the well-formed UTF-8 sequence at s[i] (1–4), or 0 when it is not one (overlong
// forms, surrogates and code points past U+10FFFF included).
size_t utf8_length(std::string_view s, size_t i, uint32_t& cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  size_t n;
  if (c < 0x80) {
    cp = c;
    return 1;
  } else if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(k) & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

bool is_control(uint32_t cp) {
  return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

void append_hex(std::string& out, unsigned char c) {
  static const char kHex[] = "0123456789abcdef";
  out += "\\x";
  out += kHex[c >> 4];
  out += kHex[c & 15];
}

std::string render(std::string_view s, size_t max_bytes, unsigned flags, char quote) {
  std::string out;
  out.reserve(std::min(s.size(), max_bytes) + 8);
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp = 0;
    const size_t n = utf8_length(s, i, cp);
    if (i + (n ? n : 1) > max_bytes) break;
    if (n == 0) {
      append_hex(out, static_cast<unsigned char>(s[i]));
      i += 1;
    } else if ((is_control(cp) && !((flags & kKeepNewlines) && cp == '\n')) ||
               (cp == '\\' && !(flags & kKeepBackslashes)) || (quote && cp == uint32_t(quote))) {
      for (size_t k = 0; k < n; ++k) append_hex(out, static_cast<unsigned char>(s[i + k]));
      i += n;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  if (i < s.size()) out += "...";
  return out;
}

}  // namespace

std::string printable(std::string_view bytes, size_t max_bytes, unsigned flags) {
  return render(bytes, max_bytes, flags, 0);
}

std::string quote_untrusted(std::string_view bytes, size_t max_bytes) {
  return "'" + render(bytes, max_bytes, 0, '\'') + "'";
}

}  // namespace bitnet
