// Public entry points of the reference quants: validation and per-type dispatch to
// quants_float.cpp, quants_ternary.cpp and quants_tl.cpp, plus the reference dot products.
#include "tensor/quants.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "errors.h"
#include "formats/half.h"
#include "tensor/quants_internal.h"
#include "tensor/tl_tiles.h"

namespace bitnet {
namespace detail {

std::string describe(const TensorView& w) {
  return "tensor '" + w.name + "' (" + std::string(ggml_type_name(w.type)) + ", " +
         std::to_string(w.rows()) + "x" + std::to_string(w.cols()) + ")";
}

}  // namespace detail

namespace {

bool is_per_tensor_scale(GgmlType t) {
  return t == GgmlType::I2_S || t == GgmlType::TL1 || t == GgmlType::TL2;
}
constexpr int64_t kTqBlock = 256;

// Everything below reads w.data freely, so the view must be a computable type whose bytes are all
// there; a short buffer would otherwise become an out-of-bounds read.
void check_view(const TensorView& w) {
  const GgmlTypeInfo* info = ggml_type_info(uint32_t(w.type));
  if (!info || !info->computable)
    throw FormatError(detail::describe(w) + ": type is not supported for computation");
  const std::optional<uint64_t> need = ggml_tensor_nbytes(w.type, w.ne);
  if (!need) throw FormatError(detail::describe(w) + ": shape is invalid for this type");
  if (!w.data || w.nbytes < *need)
    throw FormatError(detail::describe(w) + ": data has " + std::to_string(w.nbytes) +
                      " bytes, needs " + std::to_string(*need));
}

void check_rows(const TensorView& w, int64_t row0, int64_t nrows) {
  if (row0 < 0 || nrows < 0 || row0 > w.rows() - nrows)
    throw Error(detail::describe(w) + ": row range [" + std::to_string(row0) + ", " +
                std::to_string(row0 + nrows) + ") out of bounds");
}

detail::BadCode decode_ternary(const TensorView& w, int64_t row0, int64_t nrows, int8_t* t) {
  switch (w.type) {
    case GgmlType::I2_S:
      return detail::decode_i2s_rows(w, row0, nrows, t);
    case GgmlType::TQ1_0:
    case GgmlType::TQ2_0:
      return detail::decode_tq_rows(w, row0, nrows, t);
    case GgmlType::TL1:
    case GgmlType::TL2:
      return detail::decode_tl_rows(w, row0, nrows, t);
    default:
      throw Error(detail::describe(w) + ": not a ternary type");
  }
}

float per_tensor_scale(const TensorView& w) {
  return w.type == GgmlType::I2_S ? detail::i2s_scale(w) : detail::tl_scale(w);
}

[[noreturn]] void throw_bad_code(const TensorView& w, int64_t row0, detail::BadCode bad) {
  const char* what = w.type == GgmlType::TL2   ? "magnitude"
                     : w.type == GgmlType::TL1 ? "index"
                                               : "code";
  throw FormatError(detail::describe(w) + ": invalid " + std::string(ggml_type_name(w.type)) + " " +
                    what + " " + std::to_string(bad.code) + " at row " +
                    std::to_string(row0 + bad.pos / w.cols()) + ", column " +
                    std::to_string(bad.pos % w.cols()));
}

void dequantize_ternary(const TensorView& w, int64_t row0, int64_t nrows, float* out) {
  const int64_t cols = w.cols();
  std::vector<int8_t> t(size_t(nrows * cols));
  decode_ternary(w, row0, nrows, t.data());  // invalid codes read as 0, like ggml's dequantizer
  if (is_per_tensor_scale(w.type)) {
    const float alpha = per_tensor_scale(w);
    for (size_t i = 0; i < t.size(); ++i) out[i] = alpha * float(t[i]);
    return;
  }
  std::vector<float> d(size_t(cols / kTqBlock));
  for (int64_t i = 0; i < nrows; ++i) {
    detail::tq_row_scales(w, row0 + i, d.data());
    for (int64_t c = 0; c < cols; ++c)
      out[i * cols + c] = d[size_t(c / kTqBlock)] * float(t[size_t(i * cols + c)]);
  }
}

// Ternaries for the encoders with a per-tensor scale: α = max|x|, t = sign with a zero band.
float ternarize_stored(const float* x, int64_t n, std::vector<int8_t>& t) {
  float alpha = 0;
  t.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    alpha = std::max(alpha, std::fabs(x[i]));
    t[size_t(i)] = detail::ternary_sign(x[i]);
  }
  return alpha;
}

}  // namespace

void dequantize_rows(const TensorView& w, int64_t row0, int64_t nrows, float* out) {
  check_view(w);
  check_rows(w, row0, nrows);
  if (ggml_type_is_ternary(w.type)) return dequantize_ternary(w, row0, nrows, out);
  const GgmlTypeInfo& info = ggml_type_info(w.type);
  const int64_t row_bytes = w.cols() / info.block_size * info.block_bytes;
  for (int64_t i = 0; i < nrows; ++i)
    detail::dequantize_float_row(w.type, w.data + (row0 + i) * row_bytes, w.cols(),
                                 out + i * w.cols());
}

void unpack_ternary_rows(const TensorView& w, int64_t row0, int64_t nrows, int8_t* t) {
  check_view(w);
  check_rows(w, row0, nrows);
  const detail::BadCode bad = decode_ternary(w, row0, nrows, t);
  if (bad.pos >= 0) throw_bad_code(w, row0, bad);
}

TernaryRow unpack_ternary_row(const TensorView& w, int64_t row) {
  TernaryRow tr;
  tr.t.resize(size_t(w.cols()));
  unpack_ternary_rows(w, row, 1, tr.t.data());
  if (is_per_tensor_scale(w.type)) {
    tr.block = w.cols();
    tr.block_scales = {per_tensor_scale(w)};
  } else {
    tr.block = kTqBlock;
    tr.block_scales.resize(size_t(w.cols() / kTqBlock));
    detail::tq_row_scales(w, row, tr.block_scales.data());
  }
  return tr;
}

void quantize_tensor(GgmlType type, const float* x, int64_t cols, int64_t rows,
                     std::span<uint8_t> out) {
  const GgmlTypeInfo* info = ggml_type_info(uint32_t(type));
  if (!info || !info->computable)
    throw Error("quantize_tensor: cannot encode type " + std::string(ggml_type_name(type)));
  const std::optional<uint64_t> need = ggml_tensor_nbytes(type, {cols, rows, 1, 1});
  if (!need)
    throw Error("quantize_tensor: shape " + std::to_string(rows) + "x" + std::to_string(cols) +
                " is invalid for " + std::string(ggml_type_name(type)));
  if (out.size() != *need)
    throw Error("quantize_tensor: output has " + std::to_string(out.size()) + " bytes, needs " +
                std::to_string(*need));
  std::fill(out.begin(), out.end(), uint8_t(0));  // encoders OR bits in; pads must be zero
  const int64_t n = cols * rows;
  switch (type) {
    case GgmlType::I2_S:
      return detail::encode_i2s(x, n, out.data());
    case GgmlType::TQ1_0:
    case GgmlType::TQ2_0:
      return detail::encode_tq(type, x, n, out.data());
    case GgmlType::TL1:
    case GgmlType::TL2: {
      std::vector<int8_t> t;
      const float alpha = ternarize_stored(x, n, t);
      return tl_encode(type, t.data(), rows, cols, alpha, out);
    }
    default:
      return detail::quantize_float(type, x, n, out.data());
  }
}

std::vector<uint8_t> quantize_tensor(GgmlType type, const float* x, int64_t cols, int64_t rows) {
  const std::optional<uint64_t> need = ggml_tensor_nbytes(type, {cols, rows, 1, 1});
  if (!need)
    throw Error("quantize_tensor: shape " + std::to_string(rows) + "x" + std::to_string(cols) +
                " is invalid for " + std::string(ggml_type_name(type)));
  std::vector<uint8_t> out(static_cast<size_t>(*need));
  quantize_tensor(type, x, cols, rows, out);
  return out;
}

float dot_ternary_ref(const TensorView& w, int64_t row, const int8_t* q, ActivationQuant act) {
  const TernaryRow tr = unpack_ternary_row(w, row);
  const int64_t cols = w.cols();
  if (is_per_tensor_scale(w.type)) {
    // S = Σ code·q with code = t + 1 (what the kernels accumulate); exact in int64.
    int64_t S = 0;
    for (int64_t i = 0; i < cols; ++i) S += int64_t(tr.t[size_t(i)] + 1) * q[i];
    return (float(S) - float(act.sum)) / act.scale * tr.block_scales[0];
  }
  float acc = 0;
  for (int64_t b = 0; b < cols / kTqBlock; ++b) {
    int64_t isum = 0;
    for (int64_t i = b * kTqBlock; i < (b + 1) * kTqBlock; ++i)
      isum += int64_t(tr.t[size_t(i)]) * q[i];
    acc += tr.block_scales[size_t(b)] * float(isum);
  }
  return acc / act.scale;
}

float dot_float_ref(const TensorView& w, int64_t row, const float* x) {
  std::vector<float> wr(static_cast<size_t>(w.cols()));
  dequantize_rows(w, row, 1, wr.data());
  double acc = 0;
  for (int64_t i = 0; i < w.cols(); ++i) acc += double(wr[size_t(i)]) * double(x[i]);
  return float(acc);
}

float dot_q8_ref(const TensorView& w, int64_t row, const int8_t* q, const float* d) {
  const int64_t block = q8_activation_block(w.type);
  if (block == 0) throw Error("dot_q8_ref: " + detail::describe(w) + " is not Q8_0 or Q6_K");
  const int64_t nb = w.cols() / block, block_bytes = w.type == GgmlType::Q8_0 ? 34 : 210;
  const uint8_t* r = w.data + row * nb * block_bytes;
  double acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = r + b * block_bytes;
    const bool q8 = w.type == GgmlType::Q8_0;
    const int32_t isum = q8 ? q8_0_block_isum(blk, q + b * block) : q6_k_block_isum(blk, q + b * block);
    const float dw = fp16_to_fp32(load_u16(q8 ? blk : blk + 208));
    acc += double(dw) * double(d[b]) * double(isum);
  }
  return float(acc);
}

}  // namespace bitnet
