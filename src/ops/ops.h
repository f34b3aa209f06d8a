#pragma once
// Model-agnostic operations of the transformer, each a plain scalar reference. Matrix products go
// through ops::matmul, the single entry point where faster kernels plug in.
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/thread_pool.h"
#include "tensor/quants.h"
#include "tensor/tensor_view.h"

namespace bitnet::ops {

// out_i = g_i · x_i / sqrt(mean(x²) + eps); sum of squares in double, scale in f32 (as llama.cpp).
void rms_norm(const float* x, const float* gain, int64_t n, float eps, float* out);

enum class RopeStyle { Neox, Norm };  // half-split pairs (x_j, x_{j+n/2}) vs adjacent (x_2j, x_2j+1)

// Rotates the first n_rot dims of one head vector in place for position `pos`.
// θ_j = pos·freq_scale·base^(-2j/n_rot), formed by repeated f32 multiplication like ggml.
void rope(float* head, int n_rot, int64_t pos, float base, float freq_scale, RopeStyle style);
// The same in two steps, so that every head of a token shares one table: cos_sin[2j], cos_sin[2j+1]
// = cos θ_j, sin θ_j (n_rot floats), then the rotation of one head. rope() is exactly these two.
void rope_angles(int n_rot, int64_t pos, float base, float freq_scale, float* cos_sin);
void rope_rotate(float* head, int n_rot, const float* cos_sin, RopeStyle style);

inline float silu(float z);
inline float relu_squared(float z);

// e^x in f32 without a libm call, so that loops over it vectorize: x = k·ln2 + r with |r| ≤ ln2/2,
// e^r from Cephes' degree-7 expf polynomial, times 2^k. Within 2 ulp of std::exp for finite
// x ∈ [−87, 88] (tested); below that (and for NaN) it returns e^−87 ≈ 0, above e^88 (finite).
float exp_vectorizable(float x);
// g[i] = silu(g[i]) · u[i] (the gated FFN of SiLU models) through exp_vectorizable; a NaN g stays NaN.
void silu_mul(float* __restrict g, const float* __restrict u, int64_t n);
// The same as a plain loop the compiler vectorizes (silu_mul's reference: equal bit for bit).
void silu_mul_loop(float* __restrict g, const float* __restrict u, int64_t n);
// g[i] = relu_squared(g[i]) · u[i] (the ReLU² FFN of bitnet-b1.58), branch-free so it vectorizes:
// the same values as the scalar expression, NaN g included (→ 0).
void relu_squared_mul(float* __restrict g, const float* __restrict u, int64_t n);
// GELU, tanh approximation (Gemma's gelu_pytorch_tanh): 0.5·z·(1 + tanh(√(2/π)·(z + 0.044715·z³))).
float gelu_tanh(float z);
// g[i] = gelu_tanh(g[i]) · u[i] (the gated FFN of Gemma 3).
void gelu_tanh_mul(float* __restrict g, const float* __restrict u, int64_t n);

// The input of one or more matrix products: n_tokens rows of `cols` floats. The int8 quantization
// that ternary weights need (ternary-formats.md §3, per token) is computed on first use and then
// reused by every ternary weight that reads the same input (q/k/v, gate/up). Not thread-safe; x
// must outlive it and stay unchanged.
class MatmulInput {
 public:
  MatmulInput(const float* x, int64_t cols, int64_t n_tokens) : x_(x), cols_(cols), n_tokens_(n_tokens) {}
  const float* x() const { return x_; }
  int64_t cols() const { return cols_; }
  int64_t n_tokens() const { return n_tokens_; }
  // Token t's codes at q() + t·q_stride(), zero from cols to q_stride(), its scale/sum at act()[t].
  // The stride is cols rounded up to a whole I2_S block, so that rows padded by i2s_pad_rows
  // (TensorView::pad_cols) read zeros in their added columns.
  const int8_t* q(ThreadPool& pool) const;
  int64_t q_stride() const { return i2s_padded_cols(cols_); }
  const ActivationQuant* act(ThreadPool& pool) const;
  // Σq per 256-block (kernels::TernaryBatch::block_qsum), for the TQ matrix kernels.
  const int32_t* block_qsum(ThreadPool& pool) const;
  // The per-block int8 quantization that Q8_0 (block 32) and Q6_K (block 256) weights read
  // (quantize_activation_blocks; cols a multiple of block): token t's codes at q + t·cols, scales
  // at d + t·cols/block, sums of 16 at sum16 + t·cols/16.
  struct BlockCodes {
    std::vector<int8_t> q;
    std::vector<float> d;
    std::vector<int16_t> sum16;
  };
  const BlockCodes& block_codes(int64_t block, ThreadPool& pool) const;

 private:
  void quantize(ThreadPool& pool) const;
  const float* x_;
  int64_t cols_, n_tokens_;
  mutable std::vector<int8_t> q_;
  mutable std::vector<ActivationQuant> act_;
  mutable std::vector<int32_t> qsum_;
  mutable BlockCodes codes32_, codes256_;
};

// y[t·rows + r] = Σ_c W[r, c] · x[t·cols + c] for t < n_tokens, cols = w.input_cols(). Ternary types quantize each token's
// activations to int8 first (ternary-formats.md §3), Q8_0/Q6_K per weight block
// (quantize_activation_blocks); F32/F16/BF16 multiply in f32/f64.
// Uses the SIMD kernels of kernels::active_isa() when the type/shape has one (I2_S with
// cols % 128 == 0 — which every I2_S matrix of a loaded model has, see i2s_pad_rows —, TQ1_0, TQ2_0,
// F32, F16, BF16, Q8_0, Q6_K), else the reference; the environment
// variable BITNET_KERNELS=reference forces the reference everywhere. Ternary results are
// bit-identical on every path; float-storage results agree to f32 rounding (docs/kernels.md).
// With several tokens the ternary types use the matrix-matrix kernels (each weight block loaded
// once per tile of tokens); results equal the one-token kernels'.
void matmul(const TensorView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool);
// The same with a shared input (in.cols() must equal w.input_cols()).
void matmul(const TensorView& w, const MatmulInput& in, float* y, ThreadPool& pool);
// Several products of the same input (q/k/v, gate/up) as one parallel job: one hand-out of row
// chunks over all of them instead of one per matrix, so no thread waits between them. ys[i] gets
// exactly matmul(*ws[i], in, ys[i])'s values.
void matmul_group(std::span<const TensorView* const> ws, const MatmulInput& in, std::span<float* const> ys,
                  ThreadPool& pool);
// The scalar reference path (dot_ternary_ref / dot_float_ref per row).
void matmul_reference(const TensorView& w, const float* x, int64_t n_tokens, float* y,
                      ThreadPool& pool);
// The kernels of one ISA level (which must be supported); returns false without writing y when
// that type/shape has no kernel. Throws FormatError on an invalid weight code like the reference.
// `matrix_kernels` = false runs the one-token kernels per token even for several tokens (tests).
bool matmul_kernels(kernels::Isa isa, const TensorView& w, const float* x, int64_t n_tokens,
                    float* y, ThreadPool& pool);
bool matmul_kernels(kernels::Isa isa, const TensorView& w, const MatmulInput& in, float* y,
                    ThreadPool& pool, bool matrix_kernels = true);

// One product y = W·in prepared as work over row ranges, for callers that hand out the rows
// themselves (matmul_group, and the one-token decode step that runs a whole layer inside one pool
// job): run(r0, r1) writes rows [r0, r1) of y with exactly matmul's values, from any thread, for
// ranges that start at multiples of `align`. It keeps pointers into `in` and `y`.
struct RowWork {
  int64_t rows = 0;
  int64_t align = 16;  // the matrix kernels' 64-row tile, the row kernels' group
  std::function<void(int64_t, int64_t)> run;
};
// The work of one product on the kernels of kernels::active_isa(), or nullopt when that type/shape
// has none (or BITNET_KERNELS=reference). A ternary weight the loader has not checked is checked
// here (FormatError). Quantizes `in` on the calling thread.
std::optional<RowWork> row_work(const TensorView& w, const MatmulInput& in, float* y);
// Starts loading what row_work reads from the weight before any row (the I2_S tensor scale, stored
// after all the codes: a cache and TLB miss that each product otherwise starts with, ~2% of a
// `large` decode step), for a product that runs soon.
void prefetch_row_work(const TensorView& w);
// Whether row_work(w, in, y) returns work, without throwing, for every input of w.input_cols().
bool row_work_ready(const TensorView& w);
// Row chunks of a list of products run together, long ones first (guided self-scheduling): chunk
// i is rows [r0, r1) of product `work`. Depends only on the products' rows and align, so every thread
// of a job computes the same list.
struct RowChunk {
  int work;
  int64_t r0, r1;
};
void plan_row_chunks(std::span<const RowWork> works, int n_threads, std::vector<RowChunk>& chunks);

// Row `index` of an embedding table, dequantized to f32.
void embedding_row(const TensorView& table, int64_t index, float* out);

}  // namespace bitnet::ops

#include <cmath>
namespace bitnet::ops {
inline float silu(float z) { return z / (1.0f + std::exp(-z)); }
inline float relu_squared(float z) { return z > 0 ? z * z : 0.0f; }
}  // namespace bitnet::ops
