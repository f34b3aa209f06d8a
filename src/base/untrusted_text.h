#pragma once
// Bytes that came from outside (a model file's metadata, an HTTP header, a metrics line, a config
// value) must never reach a terminal or a log as they are: ESC, CSI (0x9B), BEL, CR and backspace
// can retitle or clear the terminal, hide text or forge log lines. Every message that quotes such
// bytes goes through printable() or quote_untrusted().
#include <cstddef>
#include <string>
#include <string_view>

namespace bitnet {

enum PrintableFlags : unsigned {
  kKeepNewlines = 1,     // multi-line text: '\n' passes
  kKeepBackslashes = 2,  // text that may already hold escapes (a message built with quote_untrusted())
};

// `bytes` made safe to print: valid UTF-8 text passes unchanged; C0 controls, DEL, C1 controls
// (U+0080–U+009F), the bidirectional overrides (U+202A–U+202E, U+2066–U+2069), invalid UTF-8 and
// backslashes are written as \xNN per byte (unless flags keep them). Input longer than max_bytes is
// cut there (at a character boundary) and marked "...".
std::string printable(std::string_view bytes, size_t max_bytes = 256, unsigned flags = 0);

// printable() between single quotes, with the quote character escaped as well.
std::string quote_untrusted(std::string_view bytes, size_t max_bytes = 80);

}  // namespace bitnet
