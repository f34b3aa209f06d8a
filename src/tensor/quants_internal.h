#pragma once
// Internal glue between the per-format files of the reference quants (quants_float.cpp,
// quants_ternary.cpp, quants_tl.cpp) and the public dispatch in quants.cpp. Not part of the
// module's contract; other modules use quants.h / tl_tiles.h.
#include <cstdint>
#include <string>

#include "tensor/tensor_view.h"

namespace bitnet::detail {

// The first invalid 2-/4-bit code met while decoding ternaries (pos = index into the caller's t
// buffer, -1 if none). Decoders write 0 for such codes so dequantization stays total; only
// unpack_ternary_row* turn it into an error, because there the caller asked for exact ternaries.
struct BadCode {
  int64_t pos = -1;
  int code = 0;
  void note(int64_t p, int c) {
    if (pos < 0) {
      pos = p;
      code = c;
    }
  }
};

// "tensor 'name' (TYPE, MxK)" — the prefix of every error about a tensor.
std::string describe(const TensorView& w);

// ---- float-storage types (F32, F16, BF16, Q8_0, Q6_K) ----
// One row's bytes -> cols floats. cols is a multiple of the type's block size.
void dequantize_float_row(GgmlType type, const uint8_t* src, int64_t cols, float* out);
// n floats (multiple of the block size) -> n / block * block_bytes bytes.
void quantize_float(GgmlType type, const float* x, int64_t n, uint8_t* out);

// ---- I2_S, TQ1_0, TQ2_0 ----
// Ternaries of rows [row0, row0+nrows) into t[nrows*cols]; the view was validated by the caller.
BadCode decode_i2s_rows(const TensorView& w, int64_t row0, int64_t nrows, int8_t* t);
BadCode decode_tq_rows(const TensorView& w, int64_t row0, int64_t nrows, int8_t* t);
// Per-tensor α of I2_S (f32 at byte N/4).
float i2s_scale(const TensorView& w);
// f16-decoded d of each 256-element block of one TQ1_0/TQ2_0 row (cols/256 values).
void tq_row_scales(const TensorView& w, int64_t row, float* d);
// Encoders for already-ternarized input (values α·t); out is zero-filled and sized by the caller.
void encode_i2s(const float* x, int64_t n, uint8_t* out);
void encode_tq(GgmlType type, const float* x, int64_t n, uint8_t* out);

// Shared ternarization of stored-float input for the per-tensor-scale encoders (I2_S, TL1, TL2):
// α = max|x|, and t = sign(x) with |x| < 1e-6 counted as 0 (ternary-formats.md §2.3).
constexpr float kTernaryZeroThreshold = 1e-6f;
inline int8_t ternary_sign(float x) {
  if (x > -kTernaryZeroThreshold && x < kTernaryZeroThreshold) return 0;
  return x > 0 ? 1 : -1;
}

}  // namespace bitnet::detail
