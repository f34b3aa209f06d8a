#pragma once
// Host launchers of the CUDA kernels (CUDA builds only; no CUDA header needed to call them).
// Every pointer argument is device memory unless its name says otherwise; shapes are checked and
// a bad one throws bitnet::Error, as does a failed launch (with the CUDA runtime's message).
// Launches are asynchronous on `stream`. What each kernel computes, and how exactly it matches
// the CPU reference, is said at each declaration and in gpu/README.md.
#include <cstdint>

#include "backends/cuda/device.h"
#include "backends/cuda/gpu_layout.h"

#if defined(BITNET_WITH_CUDA) && BITNET_WITH_CUDA

namespace bitnet::cuda {

// ---- ternary weights on the device ---------------------------------------------------------

// A GpuTernaryMatrix uploaded once: codes (rows × padded_cols/4 bytes) and, for TQ sources, the
// f16 block scales.
struct DeviceTernaryMatrix {
  DeviceBuffer codes;
  DeviceBuffer block_scales;
  int64_t rows = 0, cols = 0, padded_cols = 0;
  GpuScaleKind scale_kind = GpuScaleKind::PerTensor;
  float tensor_scale = 0;
  int64_t blocks_per_row() const { return padded_cols / kGpuBlock; }
};
DeviceTernaryMatrix upload_ternary(const GpuTernaryMatrix& m);

// ---- activation quantization (ternary-formats.md §3) -----------------------------------------

// n_tokens tokens of int8 codes in the layout the ternary kernels read: token t's padded_cols codes
// at q + t·padded_cols (zero past the input's cols), its s / Q at scale[t] / sum[t], and its Σq per
// 256-block at block_sums + t·padded_cols/256. Device pointers.
struct DeviceActivations {
  int8_t* q = nullptr;
  float* scale = nullptr;
  int32_t* sum = nullptr;
  int32_t* block_sums = nullptr;
  int64_t padded_cols = 0;
};
// Owns the buffers of a DeviceActivations for up to max_tokens tokens.
struct DeviceActivationBuffers {
  DeviceBuffer q, scale, sum, block_sums;
  DeviceActivations view;
  DeviceActivationBuffers(int64_t max_tokens, int64_t padded_cols);
};

// Per token of x[n_tokens × cols] (f32): s = f32(127 / max(max|x|, 1e-5)) formed in double,
// q = clamp(round_half_even(x·s), −128, 127) with x·s rounded to f32 first — bit-identical to
// bitnet::quantize_activations — plus Σq and the block sums.
void quantize_activations(const float* x, int64_t n_tokens, int64_t cols, const DeviceActivations& out,
                          Stream stream = nullptr);

// ---- RMSNorm -------------------------------------------------------------------------------

// out = g · (x · r) per token, r = 1 / sqrt(f32(Σx²/n) + eps) with Σx² in double, as
// ops::rms_norm (the double sum's order differs, so r may differ in its last bit).
void rms_norm(const float* x, const float* gain, int64_t n_tokens, int64_t cols, float eps, float* out,
              Stream stream = nullptr);
// RMSNorm, then quantize_activations of the result, in one kernel (the input of a ternary
// projection). `normed` (optional, may be nullptr) also receives the f32 RMSNorm output.
void rms_norm_quantize(const float* x, const float* gain, int64_t n_tokens, int64_t cols, float eps,
                       const DeviceActivations& out, float* normed = nullptr, Stream stream = nullptr);

// ---- ternary × int8 products ------------------------------------------------------------------

// y[t·rows + r] = W[r] · token t, with the exact integer sums of __dp4a and the float steps of
// gpu_ternary_dot_reference (so bit-identical to it and to bitnet::dot_ternary_ref).
// One token (the decode path): each warp computes 4 rows, sharing its activation loads among them.
void ternary_gemv(const DeviceTernaryMatrix& w, const DeviceActivations& act, float* y, Stream stream = nullptr);
// Several tokens: each warp computes 2 rows and reads them once per tile of 8 tokens.
void ternary_gemm(const DeviceTernaryMatrix& w, const DeviceActivations& act, int64_t n_tokens, float* y,
                  Stream stream = nullptr);
// ternary_gemv for one token, ternary_gemm otherwise.
void ternary_matmul(const DeviceTernaryMatrix& w, const DeviceActivations& act, int64_t n_tokens, float* y,
                    Stream stream = nullptr);

// ---- RoPE and the KV cache ------------------------------------------------------------------

enum class RopePairing { Neox, Norm };  // (x_j, x_{j+n_rot/2}) vs (x_2j, x_2j+1): architectures.md §1

// Rotates the first n_rot dims of every head of x[n_tokens × n_heads × head_dim] in place, token t
// at position positions[t] (device int32). θ_j = pos·freq_scale·base^(−2j/n_rot) by repeated f32
// multiplication from a host-computed base^(−2/n_rot), as ops::rope_angles; cos/sin are the device's
// sincosf (within 2 ulp of the host's), every product rounded on its own.
void rope(float* x, int64_t n_tokens, int n_heads, int head_dim, int n_rot, const int32_t* positions,
          float base, float freq_scale, RopePairing pairing, Stream stream = nullptr);

// One layer's f16 KV cache on the device: key dim d of position p of kv head h at
// keys[(h·capacity + p)·head_dim + d], values likewise.
// Several sequences (the server's batches): sequence s's region starts seq_stride halves after
// sequence s−1's, and token t of a launch uses sequence seq_ids[t] (device int32); seq_ids ==
// nullptr means every token uses the region at keys / values.
struct DeviceKvCache {
  uint16_t* keys = nullptr;
  uint16_t* values = nullptr;
  int64_t capacity = 0;  // positions per head
  int n_kv_heads = 0;
  int head_dim = 0;
  const int32_t* seq_ids = nullptr;
  int64_t seq_stride = 0;
};
// Writes k, v [n_tokens × n_kv_heads × head_dim] (f32, rounded to nearest-even f16) at positions[t].
void store_kv(const float* k, const float* v, int64_t n_tokens, const int32_t* positions,
              const DeviceKvCache& cache, Stream stream = nullptr);

// ---- attention --------------------------------------------------------------------------------

// For each token t and query head h (GQA: kv head h / (n_heads / n_kv_heads)):
// out = Σ_{p < n_kv[t]} softmax_p(scale · q·k_p) · v_p over the cache, q[n_tokens × n_heads ×
// head_dim] f32, n_kv device int32 per token (1 ≤ n_kv ≤ capacity; 0 gives zeros). One thread block
// per (head, token), keys in chunks of 1024 positions with an online (rescaled) softmax, f32
// arithmetic: agrees with an exact softmax within f32 rounding (tests: 2e-5 absolute for |v| ≤ 1).
// head_dim must be even and ≤ 256.
void attention_decode(const float* q, int64_t n_tokens, int n_heads, const DeviceKvCache& cache,
                      const int32_t* n_kv, float scale, float* out, Stream stream = nullptr);

// ---- float head -------------------------------------------------------------------------------

// y[t·rows + r] = Σ_c W[r, c]·x[t·cols + c] for W f16 row-major [rows × cols] (the GGUF F16 output
// or tied embedding matrix) and f32 x; f32 accumulation (tests: within 1e-5 · Σ|W·x| of
// bitnet::dot_float_ref). One warp per row, each row read once per tile of 8 tokens.
void f16_matmul(const uint16_t* w, int64_t rows, int64_t cols, const float* x, int64_t n_tokens, float* y,
                Stream stream = nullptr);

// ---- element-wise steps of a layer (layer_ops.cu) ------------------------------------------------

// y[i] = y[i]·s, one rounding (the CPU's `y *= scale` after a projection).
void scale_in_place(float* y, int64_t n, float s, Stream stream = nullptr);
// x[i] = x[i] + y[i]·s, each step rounded on its own: the CPU's `y *= s` (skipped for s = 1, which
// changes nothing) followed by the residual add, bit for bit.
void add_scaled(float* x, const float* y, int64_t n, float s, Stream stream = nullptr);
// The gated FFN activation, g[i] = act(g[i])·u[i]: ReLU² (z > 0 ? z·z : 0, bit-identical to
// ops::relu_squared_mul) or SiLU (g / (1 + e^−g), device expf: within a few ulp of ops::silu_mul).
void relu_squared_mul(float* g, const float* u, int64_t n, Stream stream = nullptr);
void silu_mul(float* g, const float* u, int64_t n, Stream stream = nullptr);
// dst row i = src row rows[i] (device int32), `width` floats per row.
void gather_rows(const float* src, const int32_t* rows, int64_t n_rows, int64_t width, float* dst,
                 Stream stream = nullptr);

}  // namespace bitnet::cuda

#endif  // BITNET_WITH_CUDA
