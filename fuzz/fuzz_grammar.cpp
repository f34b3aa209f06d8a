// GBNF text from untrusted clients (the server's `grammar` field, `bitnet run --grammar`): the
// parser either builds a grammar or throws GrammarError (Error: the bounds on repetition, elements
// and ambiguity), never crashes or hangs; a parsed grammar's matcher is then fed the rest of the
// input in pieces, and a piece it refuses must leave its state unchanged.
#include <cstdint>
#include <string>
#include <string_view>

#include "errors.h"
#include "grammar/grammar.h"
#include "grammar/matcher.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Input: grammar text, a 0x00 byte, then the text to match.
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const size_t split = all.find('\0');
  const std::string_view grammar_text = all.substr(0, split);
  const std::string_view text = split == std::string_view::npos ? std::string_view() : all.substr(split + 1);
  std::shared_ptr<const bitnet::Grammar> grammar;
  try {
    grammar = bitnet::Grammar::parse(grammar_text);
  } catch (const bitnet::Error&) {
    return 0;  // GrammarError and the documented limits
  }
  try {
    bitnet::GrammarMatcher m(grammar);
    for (size_t i = 0; i < text.size();) {
      const size_t n = 1 + (uint8_t(text[i]) % 3);  // pieces of 1-3 bytes: splits inside UTF-8
      const std::string_view piece = text.substr(i, n);
      const bool could = m.can_accept(piece);
      const bitnet::GrammarMatcher before = m;
      const bool took = m.accept_bytes(piece);
      if (could != took) __builtin_trap();
      if (!took && (m.can_end() != before.can_end() || m.finished() != before.finished())) __builtin_trap();
      i += n;
    }
    (void)m.can_end();
  } catch (const bitnet::Error&) {
    // "too ambiguous": the bounded refusal of a pathological grammar
  }
  return 0;
}
