// GGUF: the whole load path up to a bound model — header, metadata, tensor table, type/shape
// checks, hyper-parameters, the tokenizer built from the vocabulary — from arbitrary bytes.
#include <cstdint>
#include <span>

#include "errors.h"
#include "formats/gguf.h"
#include "model/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    bitnet::GgufFile file = bitnet::GgufFile::parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
    auto model = bitnet::load_model(std::move(file));
    // A model that loads must also tokenize and detokenize.
    if (model && model->tokenizer) {
      const auto ids = model->tokenizer->encode("Hello world", true, false);
      (void)model->tokenizer->decode(ids);
    }
  } catch (const bitnet::Error&) {
  }
  return 0;
}
