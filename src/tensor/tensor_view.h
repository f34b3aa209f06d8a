#pragma once
// A typed, shaped view of tensor bytes that live elsewhere (normally the memory-mapped GGUF file,
// or a buffer a repacking step owns). Plain data; no ownership.
#include <array>
#include <cstdint>
#include <string>

#include "tensor/ggml_type.h"

namespace bitnet {

struct TensorView {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::array<int64_t, 4> ne = {1, 1, 1, 1};  // innermost first: ne[0] = row length
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;
  // Set once ternary_codes_valid() has accepted this tensor's weight codes (the model loader does
  // it for every ternary tensor); the fast kernels rely on valid codes and do not re-check them.
  bool codes_checked = false;
  // Trailing columns a load-time repack added (i2s_pad_rows: I2_S rows padded to whole blocks).
  // They hold weight 0; a product's input has input_cols() = cols() − pad_cols values.
  int64_t pad_cols = 0;

  int64_t cols() const { return ne[0]; }
  int64_t input_cols() const { return ne[0] - pad_cols; }
  int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
  int64_t elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  bool valid() const { return data != nullptr; }
};

}  // namespace bitnet
