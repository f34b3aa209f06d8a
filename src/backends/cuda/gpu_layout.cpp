// Host side of the GPU ternary layout (gpu_layout.h): repack from the file formats through the CPU
// reference decoder (unpack_ternary_rows), and the exact references of the device arithmetic.
#include "backends/cuda/gpu_layout.h"

#include <algorithm>
#include <string>

#include "errors.h"
#include "formats/half.h"
#include "tensor/quants.h"

namespace bitnet::cuda {
namespace {

bool has_block_scales(GgmlType type) { return type == GgmlType::TQ1_0 || type == GgmlType::TQ2_0; }

// Byte size of one TQ block and the offset of its f16 d (ternary-formats.md §4, §5).
constexpr int64_t kTq1BlockBytes = 54, kTq2BlockBytes = 66;
constexpr int64_t kTq1DOffset = 52, kTq2DOffset = 64;

// Rows decoded per unpack_ternary_rows call: bounds the scratch buffer (~1 MiB for 4K columns).
constexpr int64_t kRepackRowChunk = 256;

// Packs one row of ternaries (src_cols values; the padding keeps weight 0) into its words.
void pack_row(const int8_t* t, int64_t src_cols, uint32_t* words, int64_t words_per_row) {
  std::fill(words, words + words_per_row, kGpuZeroWord);
  const int64_t full_groups = src_cols / kGpuWordColumns;
  for (int64_t group = 0; group < full_groups; ++group) {
    const GpuCodeSlot first = gpu_code_slot(group * kGpuWordColumns);  // shift 0: the group's word
    uint32_t word = 0;
    for (int i = 0; i < kGpuWordColumns; ++i) {
      const int plane = i / 4, byte = i % 4;
      word |= uint32_t(t[group * kGpuWordColumns + i] + 1) << (8 * byte + 2 * plane);
    }
    words[first.word] = word;
  }
  for (int64_t c = full_groups * kGpuWordColumns; c < src_cols; ++c) {  // a partial last group
    const GpuCodeSlot slot = gpu_code_slot(c);
    words[slot.word] = (words[slot.word] & ~(3u << slot.shift)) | uint32_t(t[c] + 1) << slot.shift;
  }
}

}  // namespace

GpuTernaryMatrix allocate_gpu_ternary(const TensorView& w) {
  if (!ggml_type_is_ternary(w.type))
    throw Error("repack_for_gpu: tensor '" + w.name + "' has type " + std::string(ggml_type_name(w.type)) +
                ", not a ternary type");
  GpuTernaryMatrix m;
  m.source_type = w.type;
  m.rows = w.rows();
  m.cols = w.input_cols();
  m.padded_cols = gpu_padded_cols(w.cols());  // ≥ every column the view stores
  m.scale_kind = has_block_scales(w.type) ? GpuScaleKind::PerBlock : GpuScaleKind::PerTensor;
  m.codes.assign(size_t(m.rows * m.words_per_row()), kGpuZeroWord);
  if (m.scale_kind == GpuScaleKind::PerBlock) m.block_scales.assign(size_t(m.rows * m.blocks_per_row()), 0);
  return m;
}

void repack_rows_for_gpu(const TensorView& w, int64_t row0, int64_t nrows, GpuTernaryMatrix& m) {
  if (m.rows != w.rows() || m.padded_cols != gpu_padded_cols(w.cols()) || m.source_type != w.type)
    throw Error("repack_rows_for_gpu: the matrix was not allocated for tensor '" + w.name + "'");
  if (row0 < 0 || nrows < 0 || row0 + nrows > m.rows)
    throw Error("repack_rows_for_gpu: rows out of range for tensor '" + w.name + "'");
  const int64_t src_cols = w.cols();
  std::vector<int8_t> t(size_t(std::min(nrows, kRepackRowChunk) * src_cols));
  for (int64_t r0 = row0; r0 < row0 + nrows; r0 += kRepackRowChunk) {
    const int64_t n = std::min(kRepackRowChunk, row0 + nrows - r0);
    unpack_ternary_rows(w, r0, n, t.data());  // the CPU decoder is the source of truth
    for (int64_t i = 0; i < n; ++i)
      pack_row(t.data() + i * src_cols, src_cols, m.codes.data() + (r0 + i) * m.words_per_row(), m.words_per_row());
  }
  if (m.scale_kind == GpuScaleKind::PerTensor) {
    if (m.rows > 0) m.tensor_scale = unpack_ternary_row(w, 0).block_scales[0];
    return;
  }
  // TQ: the f16 d of every block, copied as stored (the padded GPU block count equals the file's).
  const bool tq1 = w.type == GgmlType::TQ1_0;
  const int64_t block_bytes = tq1 ? kTq1BlockBytes : kTq2BlockBytes, d_offset = tq1 ? kTq1DOffset : kTq2DOffset;
  const int64_t nb = m.blocks_per_row();
  for (int64_t r = row0; r < row0 + nrows; ++r)
    for (int64_t b = 0; b < nb; ++b)
      m.block_scales[size_t(r * nb + b)] = load_u16(w.data + (r * nb + b) * block_bytes + d_offset);
}

GpuTernaryMatrix repack_for_gpu(const TensorView& w) {
  GpuTernaryMatrix m = allocate_gpu_ternary(w);
  repack_rows_for_gpu(w, 0, m.rows, m);
  return m;
}

void unpack_gpu_row(const GpuTernaryMatrix& m, int64_t row, int8_t* t) {
  const uint32_t* words = m.codes.data() + row * m.words_per_row();
  for (int64_t c = 0; c < m.padded_cols; ++c) {
    const GpuCodeSlot slot = gpu_code_slot(c);
    t[c] = int8_t(int((words[slot.word] >> slot.shift) & 3) - 1);
  }
}

float gpu_block_scale(const GpuTernaryMatrix& m, int64_t row, int64_t block) {
  if (m.scale_kind == GpuScaleKind::PerTensor) return m.tensor_scale;
  return fp16_to_fp32(m.block_scales[size_t(row * m.blocks_per_row() + block)]);
}

GpuQuantizedToken quantize_token_for_gpu(const float* x, int64_t cols, int64_t padded_cols) {
  GpuQuantizedToken act;
  act.q.assign(size_t(padded_cols), 0);
  const ActivationQuant aq = bitnet::quantize_activations(x, cols, act.q.data());
  act.scale = aq.scale;
  act.sum = aq.sum;
  act.block_sums.assign(size_t(padded_cols / kGpuBlock), 0);
  for (int64_t c = 0; c < cols; ++c) act.block_sums[size_t(c / kGpuBlock)] += act.q[size_t(c)];
  return act;
}

int32_t dp4a_reference(uint32_t a, uint32_t b, int32_t c) {
  for (int i = 0; i < 4; ++i) c += int32_t(int8_t(a >> (8 * i))) * int32_t(int8_t(b >> (8 * i)));
  return c;
}

int32_t gpu_block_isum_reference(const GpuTernaryMatrix& m, int64_t row, int64_t block,
                                 const int8_t* q, int32_t block_qsum) {
  const uint32_t* words = m.codes.data() + row * m.words_per_row() + block * kGpuBlockWords;
  const int8_t* qb = q + block * kGpuBlock;
  int32_t code_sum = 0;  // Σ u·q over the block
  for (int lane_chunk = 0; lane_chunk < kGpuBlockLanes; ++lane_chunk) {
    for (int j = 0; j < 4; ++j) {
      const uint32_t word = words[lane_chunk * 4 + j];
      const int8_t* qg = qb + kGpuWordColumns * (4 * j + lane_chunk);  // group g = 4j + k
      for (int plane = 0; plane < 4; ++plane) {
        uint32_t act_word = 0;
        for (int i = 0; i < 4; ++i) act_word |= uint32_t(uint8_t(qg[4 * plane + i])) << (8 * i);
        code_sum = dp4a_reference((word >> (2 * plane)) & 0x03030303u, act_word, code_sum);
      }
    }
  }
  return code_sum - block_qsum;  // u = t + 1, so Σ u·q − Σ q = Σ t·q
}

float gpu_ternary_dot_reference(const GpuTernaryMatrix& m, int64_t row, const GpuQuantizedToken& act) {
  const int64_t nb = m.blocks_per_row();
  if (m.scale_kind == GpuScaleKind::PerTensor) {
    // S = Σ u·q over the row, as the kernel's single int32 accumulator (|S| ≤ 256·padded_cols).
    int32_t code_sum = 0;
    for (int64_t b = 0; b < nb; ++b)
      code_sum += gpu_block_isum_reference(m, row, b, act.q.data(), 0);
    return (float(code_sum) - float(act.sum)) / act.scale * m.tensor_scale;
  }
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const int32_t isum = gpu_block_isum_reference(m, row, b, act.q.data(), act.block_sums[size_t(b)]);
    const float product = gpu_block_scale(m, row, b) * float(isum);
    acc += product;
  }
  return acc / act.scale;
}

void gpu_ternary_gemv_reference(const GpuTernaryMatrix& m, const GpuQuantizedToken& act, float* y) {
  for (int64_t r = 0; r < m.rows; ++r) y[r] = gpu_ternary_dot_reference(m, r, act);
}

}  // namespace bitnet::cuda
