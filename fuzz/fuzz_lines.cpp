// Input that arrives line by line (the chat's turns: base/line_reader.h) and the rendering of
// untrusted bytes for a terminal (base/untrusted_text.h): every line within its bound, nothing
// lost or invented, and no rendering that lets a raw control byte through.
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include "base/line_reader.h"
#include "base/untrusted_text.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t limit = 1 + data[0] % 64;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::istringstream in(text);
  std::string line;
  size_t consumed = 0;
  for (;;) {
    const bitnet::LineStatus s = bitnet::read_bounded_line(in, limit, line);
    if (line.size() > limit) __builtin_trap();
    if (s == bitnet::LineStatus::End) break;
    if (text.compare(consumed, line.size(), line) != 0) __builtin_trap();  // the bytes as they came
    consumed += line.size();
    if (s == bitnet::LineStatus::TooLong) {
      if (line.size() != limit) __builtin_trap();
      continue;  // the rest of the line comes as the next one
    }
    // the newline (and a CR before it) that ended the line, if any
    if (consumed < text.size() && text[consumed] == '\r' && consumed + 1 < text.size() && text[consumed + 1] == '\n') ++consumed;
    if (consumed < text.size() && text[consumed] == '\n') ++consumed;
    bitnet::fuzz::require_terminal_inert(bitnet::printable(line));
    bitnet::fuzz::require_terminal_inert(bitnet::quote_untrusted(line, limit));
  }
  bitnet::fuzz::require_terminal_inert(bitnet::printable(text, 4096));
  bitnet::fuzz::require_terminal_inert(bitnet::printable(text, 4096, bitnet::kKeepNewlines | bitnet::kKeepBackslashes),
                                       /*allow_newline=*/true);
  return 0;
}
