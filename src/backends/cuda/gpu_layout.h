#pragma once
// The GPU's ternary weight layout, the repack into it from I2_S / TQ1_0 / TQ2_0 / TL1 / TL2, and
// exact host references of what the CUDA kernels compute with it. Pure C++ (no CUDA), built in
// every configuration so the layout is unit-tested on machines without a GPU. Why this layout:
// gpu/README.md.
//
// Layout of one row (rows are independent; row r starts at word r·words_per_row()):
//   * the row is padded to padded_cols = cols rounded up to 256 (one "GPU block"); the added
//     columns hold code 1 (weight 0) and the activations there are 0;
//   * a block is 64 bytes = 16 uint32 words = 4 lane chunks of 16 bytes (one uint4 load each);
//     lane chunk k (0..3) holds words j = 0..3, word (k, j) holds the 16-weight group g = 4j + k,
//     i.e. block columns 16g … 16g+15. So when the 4 lanes of a block read their word j they need
//     the 64 contiguous activation bytes 64j … 64j+63;
//   * inside a word, column 16g + 4p + i sits at bits 8i + 2p as the unsigned code u = t + 1
//     (0, 1, 2). (word >> 2p) & 0x03030303 is then "plane" p: four int8 codes for the four
//     consecutive columns 16g+4p … 16g+4p+3 — exactly one int32 of activations for __dp4a.
//   * scales: one f32 α per tensor (I2_S, TL1, TL2) or one f16 d per row and block (TQ1_0, TQ2_0,
//     whose 256-blocks coincide with the GPU blocks).
#include <cstdint>
#include <vector>

#include "tensor/tensor_view.h"

namespace bitnet::cuda {

inline constexpr int64_t kGpuBlock = 256;        // columns per block: padding and scale unit
inline constexpr int64_t kGpuWordColumns = 16;   // 2-bit codes per uint32 word
inline constexpr int64_t kGpuBlockWords = kGpuBlock / kGpuWordColumns;  // 16 words = 64 bytes
inline constexpr int64_t kGpuBlockLanes = 4;     // lanes that read one block, 16 bytes each
inline constexpr uint32_t kGpuZeroWord = 0x55555555u;  // sixteen codes 1: weight 0

constexpr int64_t gpu_padded_cols(int64_t cols) { return (cols + kGpuBlock - 1) / kGpuBlock * kGpuBlock; }

// Where column c of a row lives: word index inside the row and the bit shift of its 2-bit code.
struct GpuCodeSlot {
  int64_t word;
  int shift;
};
constexpr GpuCodeSlot gpu_code_slot(int64_t c) {
  const int64_t block = c / kGpuBlock, e = c % kGpuBlock;
  const int64_t group = e / kGpuWordColumns;  // g = 4j + k
  const int64_t lane_chunk = group % kGpuBlockLanes, word_in_chunk = group / kGpuBlockLanes;
  const int in_group = int(e % kGpuWordColumns);
  const int plane = in_group / 4, byte = in_group % 4;
  return {block * kGpuBlockWords + lane_chunk * 4 + word_in_chunk, 8 * byte + 2 * plane};
}

enum class GpuScaleKind : uint8_t {
  PerTensor,  // y = ((float)S − (float)Q) / s · α        (the I2_S formula, ternary-formats.md §3)
  PerBlock,   // y = (Σ_b d_b · (float)isum_b in block order) / s   (TQ1_0 / TQ2_0)
};

struct GpuTernaryMatrix {
  GgmlType source_type = GgmlType::I2_S;
  int64_t rows = 0;
  int64_t cols = 0;         // input columns: the length of the activation vector
  int64_t padded_cols = 0;  // gpu_padded_cols(cols)
  GpuScaleKind scale_kind = GpuScaleKind::PerTensor;
  float tensor_scale = 0;               // α (PerTensor)
  std::vector<uint32_t> codes;          // rows × words_per_row()
  std::vector<uint16_t> block_scales;   // PerBlock: rows × blocks_per_row() f16 bits (the file's d)

  int64_t blocks_per_row() const { return padded_cols / kGpuBlock; }
  int64_t words_per_row() const { return padded_cols / kGpuWordColumns; }
  uint64_t device_bytes() const { return codes.size() * 4 + block_scales.size() * 2; }
};

// Shape and scale kind of `w`'s GPU form, every code set to weight 0 and no scales read yet.
// Throws Error if `w` is not a ternary type.
GpuTernaryMatrix allocate_gpu_ternary(const TensorView& w);
// Fills rows [row0, row0 + nrows) of `m` (from allocate_gpu_ternary(w)) and the tensor scale.
// Independent row ranges may run on different threads. Throws FormatError on an invalid code.
void repack_rows_for_gpu(const TensorView& w, int64_t row0, int64_t nrows, GpuTernaryMatrix& m);
// The whole tensor. `w` may be a padded I2_S view (TensorView::pad_cols): cols = input_cols().
GpuTernaryMatrix repack_for_gpu(const TensorView& w);

// The ternaries t ∈ {−1, 0, 1} of one row: padded_cols values (0 in the padding).
void unpack_gpu_row(const GpuTernaryMatrix& m, int64_t row, int8_t* t);
// d of (row, block) as f32 (PerBlock), α otherwise.
float gpu_block_scale(const GpuTernaryMatrix& m, int64_t row, int64_t block);

// One token's activations as the GPU kernels read them: ternary-formats.md §3 quantization
// (bitnet::quantize_activations), codes padded with zeros to padded_cols, and Σq per 256-block.
struct GpuQuantizedToken {
  std::vector<int8_t> q;            // padded_cols
  float scale = 0;                  // s
  int32_t sum = 0;                  // Q = Σ q
  std::vector<int32_t> block_sums;  // padded_cols / 256
};
GpuQuantizedToken quantize_token_for_gpu(const float* x, int64_t cols, int64_t padded_cols);

// __dp4a(a, b, c) on the host: c + Σ_i int8(a_i)·int8(b_i) over the four bytes.
int32_t dp4a_reference(uint32_t a, uint32_t b, int32_t c);

// The exact Σ t·q of block `block` of `row`, computed the way the device kernel does: the 64
// dp4a products of its four lane chunks (code planes · activation words) minus the block's Σq.
// q points at the token's padded_cols codes.
int32_t gpu_block_isum_reference(const GpuTernaryMatrix& m, int64_t row, int64_t block,
                                 const int8_t* q, int32_t block_qsum);
// Row `row` · the token, with the device kernel's integer sums and float steps (see GpuScaleKind;
// each product rounded on its own, never fused): bit-identical to the CUDA kernels, and to
// bitnet::dot_ternary_ref of the source tensor.
float gpu_ternary_dot_reference(const GpuTernaryMatrix& m, int64_t row, const GpuQuantizedToken& act);
// y[r] for every row.
void gpu_ternary_gemv_reference(const GpuTernaryMatrix& m, const GpuQuantizedToken& act, float* y);

}  // namespace bitnet::cuda
