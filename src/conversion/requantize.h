#pragma once
// GGUF → GGUF re-encoding (`bitnet quantize`): the seven projections per layer to another ternary
// or float type, token_embd / output to the embedding type, everything else copied; metadata copied
// with general.file_type updated. Streams tensor by tensor like the HF converter.
#include <optional>
#include <string>

#include "formats/gguf.h"
#include "tensor/ggml_type.h"

namespace bitnet {

struct RequantizeOptions {
  GgmlType type = GgmlType::I2_S;
  std::optional<GgmlType> embedding_type;  // default: default_embedding_type(type)
};

// Throws Error/FormatError (e.g. a float projection that is not ternary, a shape the type cannot
// hold, a TL tensor of unknown shape); nothing is left at `out` on failure.
void requantize_gguf(const std::string& in, const std::string& out, const RequantizeOptions& options,
                     const GgufWriter::Progress& progress = {});

}  // namespace bitnet
