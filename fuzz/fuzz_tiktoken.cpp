// The tiktoken ranks-file import (base64 token, space, rank per line) from arbitrary text.
#include <cstdint>

#include "errors.h"
#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const bitnet::VocabData v = bitnet::vocab_from_tiktoken(bitnet::fuzz::input_file(data, size, ".tiktoken"));
    bitnet::Tokenizer tok(v);
    (void)tok.encode("fuzz", true, true);
  } catch (const bitnet::Error&) {
  }
  return 0;
}
