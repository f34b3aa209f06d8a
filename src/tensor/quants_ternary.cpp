// Reference codecs for the byte-addressable ternary formats: I2_S (ternary-formats.md §2),
// TQ1_0 (§4) and TQ2_0 (§5). Each element's location is computed from its index with the spec's
// closed formulas, so the code reads like the spec tables.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

#include "errors.h"
#include "formats/half.h"
#include "tensor/quants.h"
#include "tensor/quants_internal.h"

namespace bitnet::detail {
namespace {

constexpr int64_t kI2Block = 128;  // elements per I2_S block (32 bytes)
constexpr int kI2InvalidCode = 3;
constexpr int64_t kTqBlock = 256;
constexpr int64_t kTq1Bytes = 54;
constexpr int64_t kTq2Bytes = 66;
constexpr int kTq1D = 52;  // offset of the f16 d inside a TQ1_0 block
constexpr int kTq2D = 64;  // ... inside a TQ2_0 block

// ---- I2_S: element n at byte 32·⌊n/128⌋ + n mod 32, bit shift 6 − 2·⌊(n mod 128)/32⌋ ----

int64_t i2s_byte(int64_t n) { return 32 * (n / kI2Block) + n % 32; }
int i2s_shift(int64_t n) { return 6 - 2 * int((n % kI2Block) / 32); }

// A partial last block would place codes beyond byte N/4, on top of α; the format has no rule for
// it, so such tensors are rejected instead of guessed at.
void require_i2s_full_blocks(const TensorView& w) {
  if (w.elements() % kI2Block != 0)
    throw FormatError(describe(w) + ": I2_S element count is not a multiple of 128");
}

// ---- TQ1_0: 5 base-3 trits per byte, ceil-scaled so decoding is a multiply and a shift ----

constexpr int kPow3[5] = {1, 3, 9, 27, 81};

struct TritSlot {
  int byte;  // 0..51 inside the block (48..51 = qh)
  int trit;  // p: 0 = most significant trit
};

TritSlot tq1_slot(int e) {
  if (e < 160) return {e % 32, e / 32};
  if (e < 240) return {32 + (e - 160) % 16, (e - 160) / 16};
  return {48 + (e - 240) % 4, (e - 240) / 4};
}

// u_p = ((B·3^p mod 256)·3) >> 8, always 0..2 for any byte value.
int tq1_trit(uint8_t byte, int p) {
  const uint8_t bp = uint8_t(unsigned(byte) * unsigned(kPow3[p]));
  return (int(bp) * 3) >> 8;
}

// byte = ceil(v·256/243), v = u0·81 + … + u4 (u0 most significant).
uint8_t tq1_pack(const int u[5]) {
  int v = 0;
  for (int p = 0; p < 5; ++p) v = v * 3 + u[p];
  return uint8_t((v * 256 + 242) / 243);
}

// ---- TQ2_0: element e = 128h + 32p + m in byte 32h + m, bits 2p (p = 0 in the LOW bits) ----

int tq2_byte(int e) { return 32 * (e / 128) + e % 32; }
int tq2_shift(int e) { return 2 * ((e % 128) / 32); }

int64_t tq_block_bytes(GgmlType type) { return type == GgmlType::TQ1_0 ? kTq1Bytes : kTq2Bytes; }

// Block ternaries -> t[256]; returns the first invalid code position (TQ2_0 code 3) via `bad`.
void decode_tq_block(GgmlType type, const uint8_t* blk, int8_t* t, int64_t pos0, BadCode& bad) {
  for (int e = 0; e < kTqBlock; ++e) {
    int u;
    if (type == GgmlType::TQ1_0) {
      const TritSlot s = tq1_slot(e);
      u = tq1_trit(blk[s.byte], s.trit);
    } else {
      u = (blk[tq2_byte(e)] >> tq2_shift(e)) & 3;
      if (u == 3) {
        bad.note(pos0 + e, 3);
        u = 1;
      }
    }
    t[e] = int8_t(u - 1);
  }
}

void encode_tq1_block(const int8_t* t, uint8_t* blk) {
  // u[byte][trit]; qh bytes keep trit 4 at u = 0 (the "unused zero trit" of §4).
  int u[52][5] = {};
  for (int e = 0; e < kTqBlock; ++e) {
    const TritSlot s = tq1_slot(e);
    u[s.byte][s.trit] = t[e] + 1;
  }
  for (int b = 0; b < 52; ++b) blk[b] = tq1_pack(u[b]);
}

void encode_tq2_block(const int8_t* t, uint8_t* blk) {
  for (int e = 0; e < kTqBlock; ++e) blk[tq2_byte(e)] |= uint8_t((t[e] + 1) << tq2_shift(e));
}

}  // namespace

// ---- I2_S ----

float i2s_scale(const TensorView& w) { return load_f32(w.data + w.elements() / 4); }

BadCode decode_i2s_rows(const TensorView& w, int64_t row0, int64_t nrows, int8_t* t) {
  require_i2s_full_blocks(w);
  BadCode bad;
  const int64_t first = row0 * w.cols();
  const int64_t count = nrows * w.cols();
  for (int64_t i = 0; i < count; ++i) {
    const int64_t n = first + i;
    const int code = (w.data[i2s_byte(n)] >> i2s_shift(n)) & 3;
    if (code == kI2InvalidCode) {
      bad.note(i, code);
      t[i] = 0;  // the scalar dequantizer's reading of code 3
    } else {
      t[i] = int8_t(code - 1);
    }
  }
  return bad;
}

void encode_i2s(const float* x, int64_t n, uint8_t* out) {
  if (n % kI2Block != 0) throw Error("I2_S encoding: element count is not a multiple of 128");
  float alpha = 0;
  for (int64_t i = 0; i < n; ++i) alpha = std::max(alpha, std::fabs(x[i]));
  for (int64_t i = 0; i < n; ++i)
    out[i2s_byte(i)] |= uint8_t((ternary_sign(x[i]) + 1) << i2s_shift(i));
  std::memcpy(out + n / 4, &alpha, 4);  // bytes n/4+4 .. n/4+31 stay zero (caller zero-fills)
}

// ---- TQ1_0 / TQ2_0 ----

void tq_row_scales(const TensorView& w, int64_t row, float* d) {
  const int64_t bb = tq_block_bytes(w.type);
  const int64_t nblocks = w.cols() / kTqBlock;
  const int d_off = w.type == GgmlType::TQ1_0 ? kTq1D : kTq2D;
  const uint8_t* rowp = w.data + row * nblocks * bb;
  for (int64_t b = 0; b < nblocks; ++b) d[b] = fp16_to_fp32(load_u16(rowp + b * bb + d_off));
}

BadCode decode_tq_rows(const TensorView& w, int64_t row0, int64_t nrows, int8_t* t) {
  BadCode bad;
  const int64_t bb = tq_block_bytes(w.type);
  const int64_t nblocks = nrows * w.cols() / kTqBlock;  // rows are whole blocks
  const uint8_t* src = w.data + row0 * (w.cols() / kTqBlock) * bb;
  for (int64_t b = 0; b < nblocks; ++b)
    decode_tq_block(w.type, src + b * bb, t + b * kTqBlock, b * kTqBlock, bad);
  return bad;
}

// ggml's reference choice: d = block amax (stored as f16), t = round(x/d) half away from zero
// using the unrounded f32 amax, clamped to ±1 (a no-op except for NaN-free rounding slop).
void encode_tq(GgmlType type, const float* x, int64_t n, uint8_t* out) {
  const int64_t bb = tq_block_bytes(type);
  int8_t t[kTqBlock];
  for (int64_t b = 0; b < n / kTqBlock; ++b) {
    const float* xb = x + b * kTqBlock;
    uint8_t* blk = out + b * bb;
    float amax = 0;
    for (int e = 0; e < kTqBlock; ++e) amax = std::max(amax, std::fabs(xb[e]));
    for (int e = 0; e < kTqBlock; ++e)
      t[e] = amax != 0 ? int8_t(std::clamp(std::lround(xb[e] / amax), -1L, 1L)) : 0;
    if (type == GgmlType::TQ1_0)
      encode_tq1_block(t, blk);
    else
      encode_tq2_block(t, blk);
    const uint16_t d16 = fp32_to_fp16(amax);
    std::memcpy(blk + (type == GgmlType::TQ1_0 ? kTq1D : kTq2D), &d16, 2);
  }
}

}  // namespace bitnet::detail

namespace bitnet {
namespace {

// Any byte with a 2-bit field equal to 3 leaves a bit of 0x55 set in b & (b >> 1); OR-ing whole
// 64-bit words keeps the loop simple enough for the compiler to vectorize.
uint64_t invalid_code_bits(const uint8_t* p, int64_t n) {
  uint64_t acc = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    std::memcpy(&x, p + i, 8);
    acc |= x & (x >> 1);
  }
  for (; i < n; ++i) acc |= unsigned(p[i] & (p[i] >> 1));
  return acc & 0x5555555555555555ull;
}

}  // namespace

bool ternary_codes_valid(const TensorView& w) {
  using namespace detail;
  if (w.type == GgmlType::I2_S) {
    if (w.cols() % kI2Block != 0) return true;  // flat layout: only the reference reads it, and checks
    return invalid_code_bits(w.data, w.elements() / 4) == 0;
  }
  if (w.type == GgmlType::TQ2_0) {
    const int64_t blocks = w.elements() / kTqBlock;
    for (int64_t b = 0; b < blocks; ++b)
      if (invalid_code_bits(w.data + b * kTq2Bytes, kTq2D) != 0) return false;
  }
  return true;
}

std::vector<uint8_t> tq1_to_tq2(const TensorView& tq1) {
  using namespace detail;
  if (tq1.type != GgmlType::TQ1_0 || tq1.elements() % kTqBlock != 0)
    throw Error(describe(tq1) + ": tq1_to_tq2 needs a TQ1_0 tensor of whole 256-blocks");
  const int64_t blocks = tq1.elements() / kTqBlock;
  std::vector<uint8_t> out(size_t(blocks * kTq2Bytes));
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* in = tq1.data + b * kTq1Bytes;
    uint8_t* o = out.data() + b * kTq2Bytes;
    uint8_t u[kTqBlock];  // codes in element order, laid out as tq1_slot() reads them
    for (int p = 0; p < 5; ++p) {
      for (int m = 0; m < 32; ++m) u[32 * p + m] = uint8_t(tq1_trit(in[m], p));
      for (int m = 0; m < 16; ++m) u[160 + 16 * p + m] = uint8_t(tq1_trit(in[32 + m], p));
      if (p < 4)
        for (int m = 0; m < 4; ++m) u[240 + 4 * p + m] = uint8_t(tq1_trit(in[48 + m], p));
    }
    for (int h = 0; h < 2; ++h)
      for (int m = 0; m < 32; ++m) {
        const uint8_t* e = u + 128 * h + m;  // elements 128h + 32p + m, p = 0..3 at bits 2p
        o[32 * h + m] = uint8_t(e[0] | e[32] << 2 | e[64] << 4 | e[96] << 6);
      }
    std::memcpy(o + kTq2D, in + kTq1D, 2);
  }
  return out;
}

std::optional<std::vector<uint8_t>> tq2_to_i2s(const TensorView& tq2) {
  using namespace detail;
  if (tq2.type != GgmlType::TQ2_0 || tq2.elements() % kTqBlock != 0)
    throw Error(describe(tq2) + ": tq2_to_i2s needs a TQ2_0 tensor of whole 256-blocks");
  const int64_t blocks = tq2.elements() / kTqBlock;
  // The one scale: every block with a non-zero trit must carry the same f16 bits. All-zero
  // blocks (every code 1) add nothing whatever their d, so they do not count.
  std::optional<uint16_t> d16;
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = tq2.data + b * kTq2Bytes;
    if (std::all_of(blk, blk + kTq2D, [](uint8_t x) { return x == 0x55; })) continue;
    const uint16_t d = load_u16(blk + kTq2D);
    if (d16 && *d16 != d) return std::nullopt;
    d16 = d;
  }
  // Element 128h + 32p + m of a TQ2_0 block sits in byte 32h + m at bits 2p; in I2_S (128-blocks
  // 2b + h) the same byte position holds it at bits 6 − 2p: reverse the four 2-bit fields.
  uint8_t reversed[256];
  for (int x = 0; x < 256; ++x)
    reversed[x] = uint8_t((x & 3) << 6 | (x >> 2 & 3) << 4 | (x >> 4 & 3) << 2 | (x >> 6 & 3));
  std::vector<uint8_t> out(size_t(tq2.elements() / 4 + 32), 0);
  for (int64_t b = 0; b < blocks; ++b)
    for (int i = 0; i < kTq2D; ++i) out[size_t(64 * b + i)] = reversed[tq2.data[b * kTq2Bytes + i]];
  const float alpha = d16 ? fp16_to_fp32(*d16) : 0.0f;
  std::memcpy(out.data() + tq2.elements() / 4, &alpha, 4);
  return out;
}

std::vector<uint8_t> i2s_pad_rows(const TensorView& i2s) {
  using namespace detail;
  require_i2s_full_blocks(i2s);
  if (i2s.type != GgmlType::I2_S) throw Error(describe(i2s) + ": i2s_pad_rows needs an I2_S tensor");
  const int64_t K = i2s.cols(), Kp = i2s_padded_cols(K), rows = i2s.rows();
  std::vector<uint8_t> out(size_t(rows * Kp / 4 + 32), 0x55);  // every code 1: weight 0
  std::memcpy(out.data() + rows * Kp / 4, i2s.data + i2s.elements() / 4, 32);  // α and its slot
  // The 2-bit field at `shift` of `dst` set to `code`.
  auto put = [](uint8_t& dst, int shift, int code) { dst = uint8_t((dst & ~(3 << shift)) | code << shift); };
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = out.data() + r * Kp / 4;  // element c of the row at i2s_byte(c), i2s_shift(c)
    int64_t c = 0;
    // 32 columns that start at a multiple of 32 in both layouts are one plane of one block in
    // each: 32 consecutive bytes at one shift (the whole row when K % 32 == 0).
    if (K % 32 == 0)
      for (; c < K; c += 32) {
        const uint8_t* src = i2s.data + i2s_byte(r * K + c);
        const int s_in = i2s_shift(r * K + c), s_out = i2s_shift(c);
        for (int j = 0; j < 32; ++j) put(row[i2s_byte(c) + j], s_out, (src[j] >> s_in) & 3);
      }
    for (; c < K; ++c) {
      const int64_t n = r * K + c;
      put(row[i2s_byte(c)], i2s_shift(c), (i2s.data[i2s_byte(n)] >> i2s_shift(n)) & 3);
    }
  }
  return out;
}

void check_ternary_codes(const TensorView& w) {
  if (ternary_codes_valid(w)) return;
  for (int64_t r = 0; r < w.rows(); ++r) unpack_ternary_row(w, r);  // throws, naming the first one
}

}  // namespace bitnet
