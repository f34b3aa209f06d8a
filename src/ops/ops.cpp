#include "ops/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "formats/half.h"
#include "kernels/kernels.h"
#include "tensor/quants.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "avx512_intrinsics.h"
#endif

// GCC's function multi-versioning (as in tensor/activation_quant.cpp).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BITNET_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BITNET_SIMD_CLONES
#endif

namespace bitnet::ops {

BITNET_SIMD_CLONES
void rms_norm(const float* x, const float* gain, int64_t n, float eps, float* out) {
  // Eight partial sums (element i into part[i % 8]) instead of one serial chain of double adds,
  // which vectorize; each square is exact in double, so only the last bits of the sum move.
  double part[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) part[l] += double(x[i + l]) * x[i + l];
  for (; i < n; ++i) part[i % 8] += double(x[i]) * x[i];
  const double sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  const float scale = 1.0f / std::sqrt(float(sum / double(n)) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = gain[i] * (x[i] * scale);
}

void rope_angles(int n_rot, int64_t pos, float base, float freq_scale, float* cos_sin) {
  const float theta_scale = std::pow(base, -2.0f / float(n_rot));
  float theta = float(pos) * freq_scale;
  for (int j = 0; j < n_rot / 2; ++j) {
    cos_sin[2 * j] = std::cos(theta);
    cos_sin[2 * j + 1] = std::sin(theta);
    theta *= theta_scale;
  }
}

void rope_rotate(float* head, int n_rot, const float* cos_sin, RopeStyle style) {
  const int half = n_rot / 2;
  for (int j = 0; j < half; ++j) {
    const float c = cos_sin[2 * j], s = cos_sin[2 * j + 1];
    float* u = style == RopeStyle::Neox ? &head[j] : &head[2 * j];
    float* v = style == RopeStyle::Neox ? &head[j + half] : &head[2 * j + 1];
    const float a = *u, b = *v;
    *u = a * c - b * s;
    *v = a * s + b * c;
  }
}

void rope(float* head, int n_rot, int64_t pos, float base, float freq_scale, RopeStyle style) {
  std::vector<float> cos_sin(size_t(n_rot / 2) * 2);
  rope_angles(n_rot, pos, base, freq_scale, cos_sin.data());
  rope_rotate(head, n_rot, cos_sin.data(), style);
}

float exp_vectorizable(float x) {
  // NaN becomes −87 (no undefined int conversion). These selects are why ops.cpp is built with
  // -fno-trapping-math (CMakeLists.txt): with it GCC if-converts them and vectorizes silu_mul.
  x = x > -87.0f ? x : -87.0f;
  x = x < 88.0f ? x : 88.0f;
  const float magic = 12582912.0f;             // 1.5·2^23: adding and subtracting rounds to an integer
  const float kf = (x * 1.44269504088896341f + magic) - magic;
  const float r = (x - kf * 0.693359375f) - kf * -2.12194440e-4f;  // ln2 split in two for exactness
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * (r * r) + r + 1.0f;
  const int32_t bits = (int32_t(kf) + 127) << 23;  // 2^k, k ∈ [−126, 127]
  float scale;
  std::memcpy(&scale, &bits, 4);
  return er * scale;
}

// AVX-512 and AVX2 clones next to the baseline one (chosen at load time by the CPU; same
// operations, so the same results): this loop was 4% of a decode step on `large` at SSE width
// (4096 elements: 12.1 µs for the AVX2 clone, 6.3 µs for the AVX-512 one).
BITNET_SIMD_CLONES
void silu_mul_loop(float* __restrict g, const float* __restrict u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + exp_vectorizable(-g[i])) * u[i];
}

#if defined(__x86_64__)
namespace {
// silu_mul_loop written out in AVX-512: GCC's clone of the loop splits it on exp_vectorizable's
// clamps into two divisions per vector and ran 4.5× slower (2048 values: 2.9 → 0.65 µs). Every
// operation is the loop's, in its order (this file is built without FP contraction), so the floats
// are the same: max(x, −87) sends NaN to −87 as the loop's select does (MAXPS returns its second
// operand for NaN).
BITNET_AVX512_INTRINSICS_BEGIN
__attribute__((target("avx512f"))) void silu_mul_avx512(float* g, const float* u, int64_t n) {
#define c(v) _mm512_set1_ps(v)
  const __m512 magic = c(12582912.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 gv = _mm512_loadu_ps(g + i);
    __m512 x = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(gv), _mm512_set1_epi32(INT32_MIN)));
    x = _mm512_min_ps(_mm512_max_ps(x, c(-87.0f)), c(88.0f));
    const __m512 kf = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(x, c(1.44269504088896341f)), magic), magic);
    const __m512 r =
        _mm512_sub_ps(_mm512_sub_ps(x, _mm512_mul_ps(kf, c(0.693359375f))), _mm512_mul_ps(kf, c(-2.12194440e-4f)));
    __m512 p = c(1.9875691500e-4f);
    for (const float k : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f})
      p = _mm512_add_ps(_mm512_mul_ps(p, r), c(k));
    const __m512 er = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p, _mm512_mul_ps(r, r)), r), c(1.0f));
    const __m512i pow2k = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(kf), _mm512_set1_epi32(127)), 23);
    const __m512 e = _mm512_mul_ps(er, _mm512_castsi512_ps(pow2k));
    _mm512_storeu_ps(g + i, _mm512_mul_ps(_mm512_div_ps(gv, _mm512_add_ps(c(1.0f), e)), _mm512_loadu_ps(u + i)));
  }
#undef c
  silu_mul_loop(g + i, u + i, n - i);
}
BITNET_AVX512_INTRINSICS_END
}  // namespace
#endif

void silu_mul(float* __restrict g, const float* __restrict u, int64_t n) {
#if defined(__x86_64__)
  if (kernels::cpu_features().avx512f) return silu_mul_avx512(g, u, n);
#endif
  silu_mul_loop(g, u, n);
}

// Written inline in forward.cpp this compiled to a scalar compare and branch per element (7% of
// pp512 on 2B-4T in perf).
BITNET_SIMD_CLONES
void relu_squared_mul(float* __restrict g, const float* __restrict u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float z = g[i];
    g[i] = (z > 0 ? z * z : 0.0f) * u[i];
  }
}

float gelu_tanh(float z) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * z * (1.0f + std::tanh(kSqrt2OverPi * (z + 0.044715f * z * z * z)));
}

void gelu_tanh_mul(float* __restrict g, const float* __restrict u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = gelu_tanh(g[i]) * u[i];
}

void matmul_reference(const TensorView& w, const float* x, int64_t n_tokens, float* y,
                      ThreadPool& pool) {
  const int64_t rows = w.rows(), cols = w.cols(), in_cols = w.input_cols();
  if (ggml_type_is_ternary(w.type)) {
    std::vector<int8_t> q(static_cast<size_t>(n_tokens * cols));  // zero in the padded columns
    std::vector<ActivationQuant> act(static_cast<size_t>(n_tokens));
    for (int64_t t = 0; t < n_tokens; ++t) act[t] = quantize_activations(x + t * in_cols, in_cols, &q[t * cols]);
    pool.parallel_for(rows, 16, [&](int64_t r0, int64_t r1, int) {
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = r0; r < r1; ++r) y[t * rows + r] = dot_ternary_ref(w, r, &q[t * cols], act[t]);
    });
    return;
  }
  if (const int64_t block = q8_activation_block(w.type)) {
    const MatmulInput in(x, cols, n_tokens);
    const MatmulInput::BlockCodes& c = in.block_codes(block, pool);
    pool.parallel_for(rows, 16, [&](int64_t r0, int64_t r1, int) {
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = r0; r < r1; ++r)
          y[t * rows + r] = dot_q8_ref(w, r, &c.q[size_t(t * cols)], &c.d[size_t(t * (cols / block))]);
    });
    return;
  }
  pool.parallel_for(rows, 16, [&](int64_t r0, int64_t r1, int) {
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t r = r0; r < r1; ++r) y[t * rows + r] = dot_float_ref(w, r, x + t * cols);
  });
}

void MatmulInput::quantize(ThreadPool& pool) const {
  if (!q_.empty() || n_tokens_ == 0) return;
  q_.resize(size_t(n_tokens_ * q_stride()));  // zero-filled: the padding stays zero
  act_.resize(size_t(n_tokens_));
  pool.parallel_for(n_tokens_, 4, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t)
      act_[size_t(t)] = quantize_activations(x_ + t * cols_, cols_, &q_[size_t(t * q_stride())]);
  });
}
const int8_t* MatmulInput::q(ThreadPool& pool) const {
  quantize(pool);
  return q_.data();
}
const ActivationQuant* MatmulInput::act(ThreadPool& pool) const {
  quantize(pool);
  return act_.data();
}
const MatmulInput::BlockCodes& MatmulInput::block_codes(int64_t block, ThreadPool& pool) const {
  BlockCodes& c = block == 32 ? codes32_ : codes256_;
  if (c.q.empty() && n_tokens_ > 0) {
    c.q.resize(size_t(n_tokens_ * cols_));
    c.d.resize(size_t(n_tokens_ * (cols_ / block)));
    c.sum16.resize(size_t(n_tokens_ * (cols_ / 16)));
    pool.parallel_for(n_tokens_, 4, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t)
        quantize_activation_blocks(x_ + t * cols_, cols_, block, &c.q[size_t(t * cols_)],
                                   &c.d[size_t(t * (cols_ / block))], &c.sum16[size_t(t * (cols_ / 16))]);
    });
  }
  return c;
}
const int32_t* MatmulInput::block_qsum(ThreadPool& pool) const {
  if (qsum_.empty()) {
    // Only TQ weights read these, and their rows are whole 256-blocks: q_stride() == cols_.
    qsum_.resize(size_t(n_tokens_ * (cols_ / 256)));
    kernels::block_qsums(q(pool), q_stride(), n_tokens_, qsum_.data());
  }
  return qsum_.data();
}

namespace {

// Rows per tile when several tokens go through the one-token kernels (the tile's weights stay in
// cache across the tokens).
constexpr int64_t kTile = 64;

kernels::TernaryRowsFn ternary_kernel(const kernels::KernelSet& ks, const TensorView& w) {
  switch (w.type) {
    case GgmlType::I2_S:
      return w.cols() % 128 == 0 ? ks.i2s : nullptr;  // other widths: reference (flat layout)
    case GgmlType::TQ1_0:
      return ks.tq1;
    case GgmlType::TQ2_0:
      return ks.tq2;
    default:
      return nullptr;  // TL1/TL2 (repacked to I2_S at load) go through the reference
  }
}

kernels::TernaryMatFn ternary_matrix_kernel(const kernels::KernelSet& ks, const TensorView& w) {
  switch (w.type) {
    case GgmlType::I2_S:
      return w.cols() % 128 == 0 ? ks.i2s_mm : nullptr;
    case GgmlType::TQ1_0:
      return ks.tq1_mm;
    case GgmlType::TQ2_0:
      return ks.tq2_mm;
    default:
      return nullptr;
  }
}

kernels::FloatRowsFn float_kernel(const kernels::KernelSet& ks, GgmlType type) {
  switch (type) {
    case GgmlType::F32:
      return ks.f32;
    case GgmlType::F16:
      return ks.f16;
    case GgmlType::BF16:
      return ks.bf16;
    default:
      return nullptr;
  }
}

kernels::QuantRowsFn quant_kernel(const kernels::KernelSet& ks, GgmlType type) {
  return type == GgmlType::Q8_0 ? ks.q8_0 : type == GgmlType::Q6_K ? ks.q6_k : nullptr;
}

// The token-tiled kernel of a block-quantized type, if this ISA has one.
kernels::QuantMatFn quant_matrix_kernel(const kernels::KernelSet& ks, GgmlType type) {
  return type == GgmlType::Q8_0 ? ks.q8_0_mm : type == GgmlType::Q6_K ? ks.q6_k_mm : nullptr;
}

// The token-tiled kernel of a float type, if this ISA has one.
kernels::FloatMatFn float_matrix_kernel(const kernels::KernelSet& ks, GgmlType type) {
  switch (type) {
    case GgmlType::F32:
      return ks.f32_mm;
    case GgmlType::F16:
      return ks.f16_mm;
    case GgmlType::BF16:
      return ks.bf16_mm;
    default:
      return nullptr;
  }
}

// Guided self-scheduling: each chunk is 1/threads of the rows still unplanned, so the chunks
// claimed first are long (long contiguous streams: the first thread reads half of a two-thread
// product front to back) and the last ones short (the threads finish together). Against equal
// chunks (4 per thread) it made `large` decode 10% faster (ab: 172.7 → 190.1 t/s, avx512, 2
// threads; 3B +6%, 2B-4T +2%) and left pp512 unchanged.
constexpr int64_t kMinChunkRows = 64;

// Runs every product's rows in chunks that the threads claim one after another (for_each_claimed).
// Each row is computed by exactly one call with a fixed per-row order, so chunking never changes a
// result.
void run_row_works(ThreadPool& pool, std::span<const RowWork> works) {
  std::vector<RowChunk> chunks;
  plan_row_chunks(works, pool.size(), chunks);
  pool.for_each_claimed(int64_t(chunks.size()), [&](int64_t c, int) {
    const RowChunk& ch = chunks[size_t(c)];
    works[size_t(ch.work)].run(ch.r0, ch.r1);
  });
}

// fn(tile_begin, tile_end, token) over 64-row tiles of [r0, r1): the one-token kernels, each tile's
// weights staying in cache across the tokens.
template <class Fn>
void for_row_tiles(int64_t r0, int64_t r1, int64_t n_tokens, const Fn& fn) {
  for (int64_t a = r0; a < r1; a += kTile) {
    const int64_t b = std::min(r1, a + kTile);
    for (int64_t t = 0; t < n_tokens; ++t) fn(a, b, t);
  }
}

// The ternary products (the weight codes are valid: row_work_on checked). The job keeps pointers
// into `in`, which must outlive it.
RowWork ternary_job(const kernels::KernelSet& ks, const TensorView& w, const MatmulInput& in, float* y,
                   ThreadPool& pool, bool matrix_kernels) {
  const int64_t rows = w.rows(), cols = w.cols(), n = in.n_tokens();
  const int8_t* q = in.q(pool);  // stride cols: row_work_on checked in.q_stride() == cols
  const ActivationQuant* act = in.act(pool);
  const float alpha = w.type == GgmlType::I2_S ? load_f32(w.data + w.elements() / 4) : 0.0f;
  const int32_t* qsum = w.type == GgmlType::I2_S ? nullptr : in.block_qsum(pool);
  const kernels::TernaryMatFn mm = matrix_kernels && n > 1 ? ternary_matrix_kernel(ks, w) : nullptr;
  if (mm) {
    const kernels::TernaryBatch j{w.data, cols, n, q, act, qsum, alpha};
    return {rows, 64, [=](int64_t r0, int64_t r1) { mm(j, r0, r1, y, rows); }};
  }
  const kernels::TernaryRowsFn fn = ternary_kernel(ks, w);
  auto jobs = std::make_shared<std::vector<kernels::TernaryJob>>(size_t(n));
  for (int64_t t = 0; t < n; ++t)
    (*jobs)[size_t(t)] = {w.data, cols, q + t * cols, act[t], alpha, qsum ? qsum + t : nullptr, n};
  return {rows, 16, [=](int64_t r0, int64_t r1) {
            for_row_tiles(r0, r1, n, [&](int64_t a, int64_t b, int64_t t) { fn((*jobs)[size_t(t)], a, b, y + t * rows); });
          }};
}

// Whether the kernels `ks` cover w with an input of in_cols values.
bool has_kernel(const kernels::KernelSet& ks, const TensorView& w, int64_t in_cols) {
  // The kernels read the bytes freely: leave short/odd views to the reference, which reports them.
  const std::optional<uint64_t> need = ggml_tensor_nbytes(w.type, w.ne);
  if (!w.data || !need || w.nbytes < *need || in_cols != w.input_cols()) return false;
  if (!ggml_type_is_ternary(w.type))  // only I2_S rows are padded
    return w.pad_cols == 0 && (quant_kernel(ks, w.type) || float_kernel(ks, w.type));
  return ternary_kernel(ks, w) && i2s_padded_cols(in_cols) == w.cols();
}

// The job of one product on the kernels of `isa`, or nullopt when that type/shape has none.
std::optional<RowWork> row_work_on(kernels::Isa isa, const TensorView& w, const MatmulInput& in, float* y,
                                   ThreadPool& pool, bool matrix_kernels) {
  const kernels::KernelSet& ks = kernels::kernel_set(isa);
  if (!has_kernel(ks, w, in.cols())) return std::nullopt;
  const int64_t rows = w.rows(), cols = w.cols(), n = in.n_tokens();
  if (const kernels::QuantRowsFn fn = quant_kernel(ks, w.type)) {
    const int64_t block = q8_activation_block(w.type);
    const MatmulInput::BlockCodes& c = in.block_codes(block, pool);
    std::vector<kernels::Q8Input> xs(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t)
      xs[size_t(t)] = {&c.q[size_t(t * cols)], &c.d[size_t(t * (cols / block))], &c.sum16[size_t(t * (cols / 16))]};
    const uint8_t* data = w.data;
    const kernels::QuantMatFn mm = quant_matrix_kernel(ks, w.type);
    if (mm && matrix_kernels && n > 1)
      return RowWork{rows, 16, [=](int64_t r0, int64_t r1) { mm(data, cols, xs.data(), n, r0, r1, y, rows); }};
    return RowWork{rows, 16, [=](int64_t r0, int64_t r1) {
                    for_row_tiles(r0, r1, n, [&](int64_t a, int64_t b, int64_t t) { fn(data, cols, xs[size_t(t)], a, b, y + t * rows); });
                  }};
  }
  if (!ggml_type_is_ternary(w.type)) {
    const kernels::FloatRowsFn fn = float_kernel(ks, w.type);
    const uint8_t* data = w.data;
    const float* x = in.x();
    if (const kernels::FloatMatFn mm = matrix_kernels && n > 1 ? float_matrix_kernel(ks, w.type) : nullptr)
      return RowWork{rows, 16, [=](int64_t r0, int64_t r1) { mm(data, cols, x, n, r0, r1, y, rows); }};
    return RowWork{rows, 16, [=](int64_t r0, int64_t r1) {
                    for_row_tiles(r0, r1, n, [&](int64_t a, int64_t b, int64_t t) { fn(data, cols, x + t * cols, a, b, y + t * rows); });
                  }};
  }
  // Views the model loader has not checked (tests, tools) are checked here, on every call.
  if (!w.codes_checked) check_ternary_codes(w);
  return ternary_job(ks, w, in, y, pool, matrix_kernels);
}

}  // namespace

void plan_row_chunks(std::span<const RowWork> works, int n_threads, std::vector<RowChunk>& chunks) {
  int64_t remaining = 0, align = 1;
  for (const RowWork& w : works) remaining += w.rows, align = std::max(align, w.align);
  const int64_t threads = std::max(1, n_threads);
  chunks.clear();
  for (size_t i = 0; i < works.size(); ++i)
    for (int64_t r = 0; r < works[i].rows;) {
      const int64_t want = std::max(kMinChunkRows, (remaining + threads - 1) / threads);
      const int64_t end = std::min(works[i].rows, r + (want + align - 1) / align * align);
      chunks.push_back({int(i), r, end});
      remaining -= end - r;
      r = end;
    }
}

void prefetch_row_work(const TensorView& w) {
  if (w.type == GgmlType::I2_S && w.data) __builtin_prefetch(w.data + w.elements() / 4);
}

bool row_work_ready(const TensorView& w) {
  return !kernels::reference_kernels() && has_kernel(kernels::kernel_set(kernels::active_isa()), w, w.input_cols()) &&
         (!ggml_type_is_ternary(w.type) || w.codes_checked);
}

std::optional<RowWork> row_work(const TensorView& w, const MatmulInput& in, float* y) {
  if (kernels::reference_kernels()) return std::nullopt;
  // One token quantizes inline: a one-thread pool has no workers and runs every job on the caller.
  static thread_local ThreadPool inline_pool(1);
  return row_work_on(kernels::active_isa(), w, in, y, inline_pool, true);
}

bool matmul_kernels(kernels::Isa isa, const TensorView& w, const MatmulInput& in, float* y,
                    ThreadPool& pool, bool matrix_kernels) {
  std::optional<RowWork> work = row_work_on(isa, w, in, y, pool, matrix_kernels);
  if (!work) return false;
  run_row_works(pool, std::span(&*work, 1));
  return true;
}

bool matmul_kernels(kernels::Isa isa, const TensorView& w, const float* x, int64_t n_tokens,
                    float* y, ThreadPool& pool) {
  return matmul_kernels(isa, w, MatmulInput(x, w.input_cols(), n_tokens), y, pool);
}

void matmul(const TensorView& w, const MatmulInput& in, float* y, ThreadPool& pool) {
  if (!kernels::reference_kernels() && matmul_kernels(kernels::active_isa(), w, in, y, pool)) return;
  matmul_reference(w, in.x(), in.n_tokens(), y, pool);
}

void matmul_group(std::span<const TensorView* const> ws, const MatmulInput& in, std::span<float* const> ys,
                  ThreadPool& pool) {
  std::vector<RowWork> works;
  if (!kernels::reference_kernels())
    for (size_t i = 0; i < ws.size(); ++i) {
      std::optional<RowWork> work = row_work_on(kernels::active_isa(), *ws[i], in, ys[i], pool, true);
      if (!work) break;
      works.push_back(std::move(*work));
    }
  if (works.size() == ws.size()) return run_row_works(pool, works);
  for (size_t i = 0; i < ws.size(); ++i) matmul(*ws[i], in, ys[i], pool);
}

void matmul(const TensorView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  matmul(w, MatmulInput(x, w.input_cols(), n_tokens), y, pool);
}

void embedding_row(const TensorView& table, int64_t index, float* out) {
  dequantize_rows(table, index, 1, out);
}

}  // namespace bitnet::ops
