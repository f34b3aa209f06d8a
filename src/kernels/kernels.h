#pragma once
// Row-range matrix-vector kernels, one set per instruction-set level (cpu_features.h).
// ops::matmul picks the set once and calls it per row chunk; every kernel computes each output row
// with a fixed per-row operation order, so results do not depend on how rows are chunked (thread
// count) — and the ternary kernels are bit-identical to dot_ternary_ref on every ISA.
#include <cstdint>

#include "formats/half.h"
#include "kernels/cpu_features.h"
#include "tensor/quants.h"

namespace bitnet::kernels {

// One token's int8 activations against a ternary matrix with K columns stored at `w`.
struct TernaryJob {
  const uint8_t* w = nullptr;
  int64_t K = 0;
  const int8_t* q = nullptr;  // K activations from quantize_activations
  ActivationQuant act;
  float alpha = 0;  // I2_S per-tensor scale (unused by TQ1_0/TQ2_0)
  // TQ only: Σq of this token's 256-block b at block_qsum[b · qsum_stride] (see block_qsums).
  const int32_t* block_qsum = nullptr;
  int64_t qsum_stride = 1;
};
// Writes y[r] for r in [r0, r1). The weight codes must be valid (no I2_S/TQ2_0 code 3): the
// kernels do not check them per product — ternary_codes_valid() does, once per tensor (at model
// load, or in ops::matmul for views not marked TensorView::codes_checked).
//   I2_S  (K % 128 == 0): rows are K/4 contiguous bytes; y = ((float)S − (float)Q) / s · α
//   TQ2_0, TQ1_0 (K % 256 == 0): y = (Σ_b d_b·(float)isum_b, f32 in block order) / s
using TernaryRowsFn = void (*)(const TernaryJob& job, int64_t r0, int64_t r1, float* y);

// Several tokens' int8 activations against a ternary matrix (prompt processing): each weight block is
// loaded once and applied to a register tile of tokens.
struct TernaryBatch {
  const uint8_t* w = nullptr;
  int64_t K = 0;
  int64_t n_tokens = 0;
  const int8_t* q = nullptr;              // token t at q + t·K
  const ActivationQuant* act = nullptr;   // n_tokens entries
  const int32_t* block_qsum = nullptr;    // TQ only: Σq of 256-block b of token t at [b·n_tokens + t]
  float alpha = 0;                        // I2_S per-tensor scale
};
// Writes y[t·ld + r] for every token t and r in [r0, r1), each value bit-identical to the
// TernaryRowsFn result for that token (and so to dot_ternary_ref). Same valid-code precondition.
using TernaryMatFn = void (*)(const TernaryBatch& job, int64_t r0, int64_t r1, float* y, int64_t ld);

// Float-storage weights (row-major, K columns) times f32 activations x[K]: y[r] for r in [r0, r1).
// Accumulated in f32 lanes (the reference uses double); see docs/kernels.md for the tolerance.
using FloatRowsFn = void (*)(const uint8_t* w, int64_t K, const float* x, int64_t r0, int64_t r1,
                             float* y);

// The same products for n_tokens activation vectors (token t at x + t·K) at once: y[t·ld + r] for
// r in [r0, r1), each value bit-identical to the FloatRowsFn result (each weight vector is loaded
// and converted once per group of tokens). Optional: null where an ISA has none.
using FloatMatFn = void (*)(const uint8_t* w, int64_t K, const float* x, int64_t n_tokens, int64_t r0,
                            int64_t r1, float* y, int64_t ld);

// One token's block-quantized int8 activations (quantize_activation_blocks, block = the weight
// type's: 32 for Q8_0, 256 for Q6_K) against a Q8_0 / Q6_K matrix with K columns: y[r] for r in
// [r0, r1) = Σ_b d_b·d_x,b·isum_b, each block's integer sum exact and the float sum in f32 lanes
// (within the float tolerance of dot_q8_ref, docs/kernels.md). As llama.cpp does for these types:
// the integer dot products read the 6-/8-bit codes at half the instructions of an f32 product.
struct Q8Input {
  const int8_t* q = nullptr;       // K codes
  const float* d = nullptr;        // K / block scales
  const int16_t* sum16 = nullptr;  // K / 16 sums of 16 codes
};
using QuantRowsFn = void (*)(const uint8_t* w, int64_t K, const Q8Input& x, int64_t r0, int64_t r1, float* y);
// The same for n_tokens inputs xs[t]: y[t·ld + r] for r in [r0, r1), each value bit-identical to the
// QuantRowsFn result for that token; each weight block is decoded once for all of them (several
// streams decoding together). Optional: null where an ISA has none.
using QuantMatFn = void (*)(const uint8_t* w, int64_t K, const Q8Input* xs, int64_t n_tokens, int64_t r0,
                            int64_t r1, float* y, int64_t ld);

struct KernelSet {
  Isa isa = Isa::Generic;
  TernaryRowsFn i2s = nullptr, tq1 = nullptr, tq2 = nullptr;
  TernaryMatFn i2s_mm = nullptr, tq1_mm = nullptr, tq2_mm = nullptr;
  FloatRowsFn f32 = nullptr, f16 = nullptr, bf16 = nullptr;
  QuantRowsFn q8_0 = nullptr, q6_k = nullptr;
  QuantMatFn q8_0_mm = nullptr, q6_k_mm = nullptr;
  FloatMatFn f32_mm = nullptr, f16_mm = nullptr, bf16_mm = nullptr;
};

// The kernels of one ISA level (the caller checks isa_supported first; an x86 set requested on
// another architecture returns the generic set).
const KernelSet& kernel_set(Isa isa);

// Σq of each 256-element block of each token, laid out for TernaryBatch::block_qsum.
void block_qsums(const int8_t* q, int64_t K, int64_t n_tokens, int32_t* out);

// Per-ISA tables, defined in kernels_<isa>.cpp.
const KernelSet& generic_kernels();
#if defined(__x86_64__)
const KernelSet& avx2_kernels();
const KernelSet& avxvnni_kernels();
const KernelSet& avx512_kernels();
#endif
#if defined(__aarch64__)
const KernelSet& neon_kernels();
const KernelSet& neon_dotprod_kernels();
// The generic set with the NEON ternary kernels of one level swapped in.
KernelSet neon_set_with(Isa isa, TernaryRowsFn i2s, TernaryRowsFn tq2, TernaryMatFn i2s_mm);
#endif

}  // namespace bitnet::kernels
