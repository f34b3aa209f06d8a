// The tokenizers on arbitrary text: BPE (Llama-3, from the tiktoken ranks file) and SPM (the
// LLaMA SentencePiece vocabulary), with and without special-token parsing; decode(encode(s)) must
// give s back for valid UTF-8. The first byte picks the tokenizer and the flags.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "errors.h"
#include "formats/gguf.h"
#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

namespace {

const bitnet::Tokenizer& bpe() {
  static const bitnet::Tokenizer t(bitnet::vocab_from_tiktoken(bitnet::fuzz::data_dir() + "/llama3-tokenizer.tiktoken"));
  return t;
}
const bitnet::Tokenizer& spm() {
  static const bitnet::Tokenizer t(bitnet::read_vocab(bitnet::GgufFile::open(bitnet::fuzz::data_dir() + "/ggml-vocab-llama-spm.gguf")));
  return t;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + size_t(n) > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int k = 1; k < n; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + size_t(k)]);
      if ((d >> 6) != 2) return false;
      cp = cp << 6 | (d & 0x3F);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += size_t(n);
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const bitnet::Tokenizer& tok = data[0] & 1 ? spm() : bpe();
  const bool parse_special = data[0] & 2;
  const auto ids = tok.encode(text, /*add_special=*/false, parse_special);
  for (int32_t id : ids)
    if (id < 0 || id >= tok.n_tokens()) std::abort();
  const std::string back = tok.decode(ids, /*render_special=*/true);
  // Without special parsing, and for SPM without its added leading space, text round-trips.
  if (!parse_special && valid_utf8(text) && !(data[0] & 1) && back != text) {
    std::fprintf(stderr, "BPE round trip differs\n");
    std::abort();
  }
  return 0;
}
