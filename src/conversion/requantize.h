#pragma once
// GGUF → GGUF re-encoding (`bitnet quantize`): the seven projections per layer to another ternary
// or float type, token_embd / output to the embedding type, everything else copied; metadata copied
// with general.file_type updated. Streams tensor by tensor like the HF converter.
#include <optional>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "tensor/ggml_type.h"

namespace bitnet {

struct RequantizeOptions {
  GgmlType type = GgmlType::I2_S;
  std::optional<GgmlType> embedding_type;  // token_embd and output; default: default_embedding_type(type)
  // llama-quantize's --token-embedding-type / --output-tensor-type: one of the two only (over
  // embedding_type). A model without output.weight reads its head from token_embd, so there
  // output_type applies to token_embd, as in llama-quantize.
  std::optional<GgmlType> token_embedding_type, output_type;
};

// Throws Error/FormatError (e.g. a float projection that is not ternary, a TL tensor of unknown
// shape); nothing is left at `out` on failure. A tensor the type cannot hold is written in the
// fallback type of storage_type (hf_convert.h), with a line in `notes`.
void requantize_gguf(const std::string& in, const std::string& out, const RequantizeOptions& options,
                     const GgufWriter::Progress& progress = {}, std::vector<std::string>* notes = nullptr);

}  // namespace bitnet
