#pragma once
// bitnet.cpp's TL1/TL2 lookup-table formats (ternary-formats.md §6, §7) and the tile
// configurations they were written with (§9). The byte order depends on per-shape tile parameters
// that the GGUF does not store, so a TL tensor is decodable only for the (M, K) shapes listed here
// (the "TL1 default" / "TL2 default" columns of §9, i.e. what setup_env.py generates).
#include <cstdint>
#include <optional>
#include <span>

#include "tensor/tensor_view.h"

namespace bitnet {

// BM rows × BK columns per tile; bm rows per sub-tile (TL1: by = 256/bm columns per sub-tile;
// TL2: always bm = 32, by = 6 columns = 2 triples).
struct TlTiles {
  int64_t BM = 0;
  int64_t BK = 0;
  int64_t bm = 0;
};

struct TlKnownShape {
  int64_t M = 0;  // rows (output features, ne1)
  int64_t K = 0;  // columns (input features, ne0)
  TlTiles tl1;
  TlTiles tl2;
};

// Every shape of §9 (10 entries).
std::span<const TlKnownShape> tl_known_shapes();

// Tiles for `type` (TL1 or TL2) and shape M×K; nullopt if the shape is unknown.
std::optional<TlTiles> tl_tiles(GgmlType type, int64_t M, int64_t K);

// Byte offset of the f32 scale α in the tensor data: TL1 M·K/4; TL2 align_up(P, 32) with P from
// gguf.md §7.3.
int64_t tl_scale_offset(GgmlType type, int64_t M, int64_t K);

// Writes the file bytes of a TL1/TL2 tensor (ternaries t[M*K] row-major, scale alpha) into out,
// which must be ggml_tensor_nbytes(type, {K, M}) bytes. Throws Error for an unknown shape.
void tl_encode(GgmlType type, const int8_t* t, int64_t M, int64_t K, float alpha,
               std::span<uint8_t> out);

namespace detail {
struct BadCode;
// Ternaries of rows [row0, row0+nrows) of a validated TL1/TL2 view into t[nrows*cols]; invalid
// indices (TL1 idx > 8, TL2 magnitude > 13) decode as 0 and are reported. Unknown shape: throws
// FormatError naming the tensor and the I2_S conversion command.
BadCode decode_tl_rows(const TensorView& w, int64_t row0, int64_t nrows, int8_t* t);
float tl_scale(const TensorView& w);
}  // namespace detail

}  // namespace bitnet
