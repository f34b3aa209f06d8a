#pragma once
// Reference (scalar, obviously right) encoders, decoders and dot products for every tensor type
// the engine computes with: F32, F16, BF16, Q8_0, Q6_K, I2_S, TQ1_0, TQ2_0, TL1, TL2.
// Block layouts: shared/spec/ternary-formats.md. These are the oracle for the SIMD kernels.
#include <cstdint>
#include <span>
#include <optional>
#include <vector>

#include "tensor/tensor_view.h"

namespace bitnet {

// ---- decoding ------------------------------------------------------------------------------
// Dequantizes rows [row0, row0 + nrows) of `w` into out[nrows * w.cols()].
// I2_S uses the flat 128-block layout (also valid when cols % 128 != 0). TL1/TL2 are decoded
// with the tile configuration bitnet.cpp uses for that matrix shape (tl_tiles.h); an unknown
// shape throws FormatError naming the shape and the command that converts the file to I2_S.
void dequantize_rows(const TensorView& w, int64_t row0, int64_t nrows, float* out);

// Ternary types only: the ternary values t ∈ {-1,0,1} of one row, and the per-block scales.
// For I2_S/TL1/TL2 there is one per-tensor scale (block_scales has 1 entry, block = cols);
// for TQ1_0/TQ2_0 one f16-decoded scale per 256-element block.
struct TernaryRow {
  std::vector<int8_t> t;
  std::vector<float> block_scales;
  int64_t block = 0;
};
TernaryRow unpack_ternary_row(const TensorView& w, int64_t row);
// Bulk form for load-time repacking: the ternaries of rows [row0, row0 + nrows) into
// t[nrows * w.cols()]. Like unpack_ternary_row, throws FormatError on an invalid code.
void unpack_ternary_rows(const TensorView& w, int64_t row0, int64_t nrows, int8_t* t);
// False if some I2_S (K % 128 == 0) or TQ2_0 weight code is 3, the one invalid 2-bit code; true
// for every other type. A single pass over the code bytes: call it once per tensor.
bool ternary_codes_valid(const TensorView& w);
// Throws FormatError naming the tensor, row and element of the first invalid code, if any.
void check_ternary_codes(const TensorView& w);
// TQ1_0 blocks (54 bytes) -> TQ2_0 blocks (66 bytes) with the same trits and the same f16 d, so
// every product is unchanged (isum_b and d_b are equal). Any byte value decodes, as in the reference.
std::vector<uint8_t> tq1_to_tq2(const TensorView& tq1);
// TQ2_0 whose blocks share one scale (every block with a non-zero trit has the same f16 d, as
// converted BitNet checkpoints do: one α per tensor) -> I2_S bytes with α = d and the same trits,
// so every product Σ_b d·isum_b equals α·Σ t·q; nullopt when the scales differ.
std::optional<std::vector<uint8_t>> tq2_to_i2s(const TensorView& tq2);
// I2_S whose rows do not fill whole 128-blocks (cols % 128 != 0, e.g. the 8640-wide ffn_down of
// bitnet_b1_58-3B: in the flat layout a row then starts inside a block) -> I2_S with rows of
// padded_cols(cols) elements, each row starting a block; the added columns hold code 1 (weight 0)
// and α is unchanged. Against activations that are zero in the added columns every product
// Σ code·q and Σq is the same integer, so the results are bit-identical; the kernels need rows of
// whole blocks. Codes are copied as they are (an invalid code 3 stays invalid for the check).
std::vector<uint8_t> i2s_pad_rows(const TensorView& i2s);
// The row length i2s_pad_rows gives a matrix of `cols` columns: cols rounded up to 128.
constexpr int64_t i2s_padded_cols(int64_t cols) { return (cols + 127) / 128 * 128; }

// ---- encoding ------------------------------------------------------------------------------
// Encodes a rows x cols row-major float matrix into the exact file bytes of `type` (including the
// I2_S/TL scale tail) into `out`, which must be ggml_tensor_nbytes(type, {cols, rows}) bytes.
// Ternary types expect already-ternarized input (values α·t): I2_S/TL store α = max|x| and codes
// sign(x) with |x| < 1e-6 → 0; TQ1_0/TQ2_0 store per-block d = f16(max|x|) and t = round(x/d).
// Q8_0 and Q6_K use llama.cpp's reference scale choice (amax-based).
void quantize_tensor(GgmlType type, const float* x, int64_t cols, int64_t rows,
                     std::span<uint8_t> out);
std::vector<uint8_t> quantize_tensor(GgmlType type, const float* x, int64_t cols, int64_t rows);

// BitNet absmean ternarization of a master weight tensor (ternary-formats.md §1), in place:
// α = max(mean|W|, 1e-5); W ← α·clamp(round_half_even(W/α), -1, 1). Returns α.
float ternarize_absmean(float* w, int64_t n);

// ---- activation quantization (ternary-formats.md §3) ----------------------------------------
struct ActivationQuant {
  float scale = 0;  // s = 127 / max(max|x|, 1e-5), computed in double then rounded to f32
  int32_t sum = 0;  // Σ q_i
};
// q_i = clamp(round_half_even(x_i * s), -128, 127).
ActivationQuant quantize_activations(const float* x, int64_t k, int8_t* q);
// The same as plain loops the compiler vectorizes (the reference of quantize_activations' AVX-512
// body: equal bit for bit).
ActivationQuant quantize_activations_loop(const float* x, int64_t k, int8_t* q);

// ---- int8 activations of Q8_0 / Q6_K products (llama.cpp's Q8_0 / Q8_K idea) -----------------
// The block of the activation quantization that a Q8_0 / Q6_K weight row is multiplied with: the
// weight type's own block (32 / 256); 0 for every other type.
int64_t q8_activation_block(GgmlType weight_type);
// Per block of `block` values (k a multiple of it): d = max|x|/127 and q = clamp(round_half_even(
// x·(127/max|x|)), −127, 127), so x ≈ d·q (a block of zeros: d = 0, q = 0); sum16[j] = Σq of codes
// 16j … 16j+15 (the Q6_K kernels' offset term).
void quantize_activation_blocks(const float* x, int64_t k, int64_t block, int8_t* q, float* d,
                                int16_t* sum16);
// The exact integer sum of one weight block against its 32 / 256 activation codes:
//   Q8_0: Σ w_i·q_i;   Q6_K: Σ_j sc_j · Σ_{i in sub-block j} (u_i − 32)·q_i   (|isum| < 2^27)
int32_t q8_0_block_isum(const uint8_t* blk, const int8_t* q);
int32_t q6_k_block_isum(const uint8_t* blk, const int8_t* q);

// ---- reference dot products ------------------------------------------------------------------
// Ternary weight row · int8 activations. Exact integer sum per block, then:
//   I2_S/TL1/TL2: ((float)S - (float)Q) / s * α  with S = Σ code·q, i.e. α/s·Σ t·q (spec §3 order)
//   TQ1_0/TQ2_0:  (Σ_blocks d_b · (float)isum_b, f32 in block order) / s
float dot_ternary_ref(const TensorView& w, int64_t row, const int8_t* q, ActivationQuant act);
// Float-storage weight row (F32/F16/BF16/Q8_0/Q6_K) · f32 activations, accumulated in double and
// rounded once.
float dot_float_ref(const TensorView& w, int64_t row, const float* x);
// Q8_0 / Q6_K weight row · block-quantized activations (q, d from quantize_activation_blocks):
// Σ_b d_b·d_x,b·isum_b with exact integer block sums, accumulated in double and rounded once.
float dot_q8_ref(const TensorView& w, int64_t row, const int8_t* q, const float* d);

}  // namespace bitnet
