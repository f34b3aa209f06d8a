// Reference codec for TL1 (ternary-formats.md §6) and TL2 (§7).
//
// The ENCODER is the spec's nested emission loops written out literally (easy to compare line by
// line with the spec). The DECODER locates each element directly: every byte index the loops
// produce is a mixed-radix number whose digits split into row digits and column digits, so
// offset(r, c) = row_offset(r) + col_offset(c). Column offsets are tabulated once per call. The two
// directions are derived independently, which is what makes the round-trip tests meaningful.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "errors.h"
#include "formats/half.h"
#include "tensor/quants_internal.h"
#include "tensor/tl_tiles.h"

namespace bitnet {
namespace {

constexpr std::array<TlKnownShape, 10> kKnownShapes = {{
    // M, K, TL1 default {BM, BK, bm}, TL2 default {BM, BK, bm}  (§9)
    {1536, 4096, {256, 128, 32}, {256, 96, 32}},
    {1536, 1536, {128, 64, 64}, {128, 192, 32}},
    {4096, 1536, {256, 128, 32}, {256, 96, 32}},
    {3200, 8640, {160, 64, 32}, {160, 96, 32}},
    {3200, 3200, {320, 128, 64}, {320, 96, 32}},
    {8640, 3200, {320, 64, 32}, {320, 96, 32}},
    {14336, 4096, {256, 128, 32}, {256, 96, 32}},
    {4096, 14336, {128, 64, 64}, {128, 96, 32}},
    {1024, 4096, {256, 128, 32}, {256, 96, 32}},
    {4096, 4096, {128, 64, 64}, {128, 96, 32}},
}};

// Rows inside a 32-row TL2 sub-tile are emitted in chunks of 8 with chunks 1 and 2 swapped. The
// permutation is its own inverse, so it maps "byte position" to "row" and back.
constexpr int64_t kPerm[4] = {0, 2, 1, 3};
int64_t perm_row(int64_t p) { return kPerm[p / 8] * 8 + p % 8; }

constexpr int64_t kTl2By = 6;      // columns per TL2 sub-tile (2 triples), bm = 32
constexpr int64_t kTl2TwoBK = 32;  // fixed tile width of the TL2 two part
constexpr int kTl1MaxIdx = 8;      // idx = 3a + b + 4
constexpr int kTl2MaxMag = 13;     // |9a + 3b + c|

// ---- ternary <-> code helpers ----

int tl_pair_idx(int a, int b) { return 3 * a + b + 4; }

// TL2 triple: v = 9a + 3b + c stored as magnitude nibble + sign bit.
int tl2_value(int a, int b, int c) { return 9 * a + 3 * b + c; }

// Balanced-ternary digits of mag (0..13), most significant first, as in §7.2.
void tl2_digits(int mag, int8_t out[3]) {
  const int c = (mag + 1) % 3 - 1;
  const int m1 = (mag - c) / 3;
  const int b = (m1 + 1) % 3 - 1;
  const int a = (m1 - b) / 3;
  out[0] = int8_t(a);
  out[1] = int8_t(b);
  out[2] = int8_t(c);
}

// tl2_digits for every valid magnitude, so the per-triple decode is a table lookup.
struct Tl2DigitTable {
  int8_t d[kTl2MaxMag + 1][3];
  Tl2DigitTable() {
    for (int m = 0; m <= kTl2MaxMag; ++m) tl2_digits(m, d[m]);
  }
};
const Tl2DigitTable kTl2Digits;

struct Tl2Split {
  int64_t K3;  // columns encoded as triples
  int64_t K2;  // remaining columns encoded as pairs
};
Tl2Split tl2_split(int64_t K, const TlTiles& tiles) { return {K - K % tiles.BK, K % tiles.BK}; }

// The shapes in the table satisfy every divisibility rule; this guards against table typos.
void check_tiles(GgmlType type, int64_t M, int64_t K, const TlTiles& t) {
  bool ok = M % t.BM == 0 && t.BM % t.bm == 0;
  if (type == GgmlType::TL1) {
    ok = ok && K % t.BK == 0 && t.BK % (256 / t.bm) == 0 && t.bm % 16 == 0;
  } else {
    const Tl2Split s = tl2_split(K, t);
    ok = ok && t.bm == 32 && t.BK % 24 == 0 && s.K2 % kTl2TwoBK == 0;
  }
  if (!ok) throw Error("TL tile table entry is inconsistent");
}

[[noreturn]] void throw_unknown_shape(const TensorView& w) {
  throw FormatError(detail::describe(w) +
                    ": tile layout unknown for this shape; convert the model to I2_S with: "
                    "bitnet quantize IN.gguf OUT.gguf i2_s");
}

// ---- encoder: the spec's loops ----

void encode_tl1(const int8_t* t, int64_t M, int64_t K, const TlTiles& tl, uint8_t* out) {
  const int64_t by = 256 / tl.bm;
  auto idx = [&](int64_t r, int64_t p) {
    return tl_pair_idx(t[r * K + 2 * p], t[r * K + 2 * p + 1]);
  };
  int64_t pos = 0;
  for (int64_t A = 0; A < M / tl.BM; ++A)
    for (int64_t B = 0; B < K / tl.BK; ++B)
      for (int64_t C = 0; C < tl.BM / tl.bm; ++C)
        for (int64_t D = 0; D < tl.BK / by; ++D)
          for (int64_t E = 0; E < tl.bm / 16; ++E)
            for (int64_t F = 0; F < by / 4; ++F)
              for (int64_t G = 0; G < 16; ++G) {
                const int64_t r = A * tl.BM + C * tl.bm + E * 16 + G;
                const int64_t p0 = B * (tl.BK / 2) + D * (by / 2) + 2 * F;
                out[pos++] = uint8_t(idx(r, p0) << 4 | idx(r, p0 + 1));
              }
}

// Returns the number of bytes written (magnitudes, then signs, then the two part).
int64_t encode_tl2(const int8_t* t, int64_t M, int64_t K, const TlTiles& tl, uint8_t* out) {
  const Tl2Split s = tl2_split(K, tl);
  const int64_t bm = tl.bm;
  auto value = [&](int64_t r, int64_t T) {
    const int8_t* p = t + r * K + 3 * T;
    return tl2_value(p[0], p[1], p[2]);
  };
  int64_t pos = 0;
  for (int64_t A = 0; A < M / tl.BM; ++A)  // magnitude bytes
    for (int64_t B = 0; B < s.K3 / tl.BK; ++B)
      for (int64_t C = 0; C < tl.BM / bm; ++C)
        for (int64_t D = 0; D < tl.BK / kTl2By; ++D)
          for (int64_t P = 0; P < bm; ++P) {
            const int64_t r = A * tl.BM + C * bm + perm_row(P);
            const int64_t T0 = B * (tl.BK / 3) + D * (kTl2By / 3);
            out[pos++] = uint8_t(std::abs(value(r, T0)) << 4 | std::abs(value(r, T0 + 1)));
          }
  for (int64_t A = 0; A < M / tl.BM; ++A)  // sign words
    for (int64_t B = 0; B < s.K3 / tl.BK; ++B)
      for (int64_t C = 0; C < tl.BM / bm; ++C)
        for (int64_t Eg = 0; Eg < tl.BK / (4 * kTl2By); ++Eg)
          for (int64_t c = 0; c < bm / 2; ++c) {
            uint16_t word = 0;
            for (int i = 0; i < 16; ++i) {
              const int64_t j = i / 2, h = i % 2;
              const int64_t r = A * tl.BM + C * bm + h * (bm / 2) + c;
              const int64_t T = B * (tl.BK / 3) + Eg * 8 + j;
              if (value(r, T) < 0) word |= uint16_t(1u << (15 - i));
            }
            out[pos++] = uint8_t(word & 0xFF);  // little-endian u16
            out[pos++] = uint8_t(word >> 8);
          }
  auto idx2 = [&](int64_t r, int64_t q) {
    const int8_t* p = t + r * K + s.K3 + 2 * q;
    return tl_pair_idx(p[0], p[1]);
  };
  for (int64_t A = 0; A < M / tl.BM; ++A)  // two part
    for (int64_t B = 0; B < s.K2 / kTl2TwoBK; ++B)
      for (int64_t C = 0; C < tl.BM / 32; ++C)
        for (int64_t D = 0; D < 8; ++D)
          for (int64_t P = 0; P < 32; ++P) {
            const int64_t r = A * tl.BM + C * 32 + perm_row(P);
            const int64_t q0 = B * 16 + 2 * D;
            out[pos++] = uint8_t(idx2(r, q0) << 4 | idx2(r, q0 + 1));
          }
  return pos;
}

// ---- decoder: direct location, offset = row part + column part ----

struct Slot {
  int64_t off;  // byte offset (column part)
  int shift;    // 4 = high nibble, 0 = low nibble; for sign words the bit number 15 - i
};

detail::BadCode decode_tl1(const TensorView& w, const TlTiles& tl, int64_t row0, int64_t nrows,
                           int8_t* t) {
  const int64_t K = w.cols(), by = 256 / tl.bm;
  const int64_t nB = K / tl.BK, nC = tl.BM / tl.bm, nD = tl.BK / by;
  const int64_t sub = tl.bm * by / 4;  // bytes per (A,B,C,D) sub-tile: E,F,G digits
  std::vector<Slot> col(size_t(K / 2));
  for (int64_t p = 0; p < K / 2; ++p) {
    const int64_t B = p / (tl.BK / 2), pp = p % (tl.BK / 2);
    const int64_t D = pp / (by / 2), F = (pp % (by / 2)) / 2;
    col[size_t(p)] = {(B * nC * nD + D) * sub + F * 16, p % 2 == 0 ? 4 : 0};
  }
  detail::BadCode bad;
  for (int64_t i = 0; i < nrows; ++i) {
    const int64_t r = row0 + i;
    const int64_t A = r / tl.BM, C = (r % tl.BM) / tl.bm, E = (r % tl.bm) / 16, G = r % 16;
    const int64_t row_off = (A * nB * nC + C) * nD * sub + E * (by / 4) * 16 + G;
    int8_t* tr = t + i * K;
    for (int64_t p = 0; p < K / 2; ++p) {
      const Slot s = col[size_t(p)];
      const int idx = (w.data[row_off + s.off] >> s.shift) & 0x0F;
      if (idx > kTl1MaxIdx) bad.note(i * K + 2 * p, idx);
      tr[2 * p] = idx > kTl1MaxIdx ? 0 : int8_t(idx / 3 - 1);
      tr[2 * p + 1] = idx > kTl1MaxIdx ? 0 : int8_t(idx % 3 - 1);
    }
  }
  return bad;
}

struct Tl2Layout {
  TlTiles tl;
  Tl2Split s;
  int64_t nB, nC, nD, nEg;  // digit ranges of the three part
  int64_t sign_base, two_base;
  int64_t nB2, nC2;  // digit ranges of the two part
};

Tl2Layout tl2_layout(int64_t M, const TlTiles& tl, int64_t K) {
  Tl2Layout L{tl, tl2_split(K, tl), 0, 0, 0, 0, 0, 0, 0, 0};
  L.nB = L.s.K3 / tl.BK;
  L.nC = tl.BM / tl.bm;
  L.nD = tl.BK / kTl2By;
  L.nEg = tl.BK / (4 * kTl2By);
  L.sign_base = M * L.s.K3 / 6;
  L.two_base = L.sign_base + M * L.s.K3 / 24;
  L.nB2 = L.s.K2 / kTl2TwoBK;
  L.nC2 = tl.BM / 32;
  return L;
}

void decode_tl2_row(const TensorView& w, const Tl2Layout& L, const std::vector<Slot>& mag,
                    const std::vector<Slot>& sign, const std::vector<Slot>& two, int64_t r,
                    int8_t* tr, int64_t pos0, detail::BadCode& bad) {
  const TlTiles& tl = L.tl;
  const int64_t A = r / tl.BM, C = (r % tl.BM) / tl.bm, rr = r % tl.bm;
  const int64_t mag_row = (A * L.nB * L.nC + C) * L.nD * tl.bm + perm_row(rr);
  const int64_t half = tl.bm / 2, h = rr / half;
  const int64_t sign_row = (A * L.nB * L.nC + C) * L.nEg * half + rr % half;
  for (int64_t T = 0; T < L.s.K3 / 3; ++T) {
    int m = (w.data[mag_row + mag[size_t(T)].off] >> mag[size_t(T)].shift) & 0x0F;
    const int64_t word_at = L.sign_base + 2 * (sign_row + sign[size_t(T)].off);
    const int bit = sign[size_t(T)].shift - int(h);
    const unsigned word = unsigned(w.data[word_at]) | unsigned(w.data[word_at + 1]) << 8;  // LE u16
    const bool negative = (word >> bit) & 1;
    if (m > kTl2MaxMag) {
      bad.note(pos0 + 3 * T, m);
      m = 0;
    }
    const int8_t* d = kTl2Digits.d[m];
    for (int k = 0; k < 3; ++k) tr[3 * T + k] = negative ? int8_t(-d[k]) : d[k];
  }
  const int64_t C2 = (r % tl.BM) / 32;
  const int64_t two_row = L.two_base + (A * L.nB2 * L.nC2 + C2) * 8 * 32 + perm_row(r % 32);
  for (int64_t q = 0; q < L.s.K2 / 2; ++q) {
    const int idx = (w.data[two_row + two[size_t(q)].off] >> two[size_t(q)].shift) & 0x0F;
    const int64_t c = L.s.K3 + 2 * q;
    if (idx > kTl1MaxIdx) bad.note(pos0 + c, idx);
    tr[c] = idx > kTl1MaxIdx ? 0 : int8_t(idx / 3 - 1);
    tr[c + 1] = idx > kTl1MaxIdx ? 0 : int8_t(idx % 3 - 1);
  }
}

detail::BadCode decode_tl2(const TensorView& w, const TlTiles& tl, int64_t row0, int64_t nrows,
                           int8_t* t) {
  const int64_t K = w.cols();
  const Tl2Layout L = tl2_layout(w.rows(), tl, K);
  const int64_t per_tile = tl.BK / 3;  // triples per column tile
  std::vector<Slot> mag(size_t(L.s.K3 / 3)), sign(size_t(L.s.K3 / 3)), two(size_t(L.s.K2 / 2));
  for (int64_t T = 0; T < L.s.K3 / 3; ++T) {
    const int64_t B = T / per_tile, tt = T % per_tile;
    mag[size_t(T)] = {(B * L.nC * L.nD + tt / 2) * tl.bm, tt % 2 == 0 ? 4 : 0};
    // The row digit h adds to the bit number (bit 15 − (2j + h)); decode_tl2_row subtracts it.
    sign[size_t(T)] = {(B * L.nC * L.nEg + tt / 8) * (tl.bm / 2), 15 - 2 * int(tt % 8)};
  }
  for (int64_t q = 0; q < L.s.K2 / 2; ++q) {
    const int64_t B = q / 16, qq = q % 16;
    two[size_t(q)] = {(B * L.nC2 * 8 + qq / 2) * 32, qq % 2 == 0 ? 4 : 0};
  }
  detail::BadCode bad;
  for (int64_t i = 0; i < nrows; ++i)
    decode_tl2_row(w, L, mag, sign, two, row0 + i, t + i * K, i * K, bad);
  return bad;
}

}  // namespace

std::span<const TlKnownShape> tl_known_shapes() { return kKnownShapes; }

std::optional<TlTiles> tl_tiles(GgmlType type, int64_t M, int64_t K) {
  if (type != GgmlType::TL1 && type != GgmlType::TL2) return std::nullopt;
  for (const TlKnownShape& s : kKnownShapes)
    if (s.M == M && s.K == K) return type == GgmlType::TL1 ? s.tl1 : s.tl2;
  return std::nullopt;
}

int64_t tl_scale_offset(GgmlType type, int64_t M, int64_t K) {
  if (type == GgmlType::TL1) return M * K / 4;
  // gguf.md §7.3, integer arithmetic left to right.
  const int64_t P = (K - 256) * M / 3 * 5 / 8 + 256 * M / 2 * 4 / 8;
  return (P + 31) / 32 * 32;
}

void tl_encode(GgmlType type, const int8_t* t, int64_t M, int64_t K, float alpha,
               std::span<uint8_t> out) {
  const std::optional<TlTiles> tl = tl_tiles(type, M, K);
  if (!tl)
    throw Error(std::string(ggml_type_name(type)) + " encoding: tile layout unknown for shape " +
                std::to_string(M) + "x" + std::to_string(K));
  check_tiles(type, M, K, *tl);
  const int64_t scale_at = tl_scale_offset(type, M, K);
  if (out.size() < size_t(scale_at) + 32) throw Error("tl_encode: output buffer too small");
  std::fill(out.begin(), out.end(), uint8_t(0));
  if (type == GgmlType::TL1) {
    encode_tl1(t, M, K, *tl, out.data());
  } else if (encode_tl2(t, M, K, *tl, out.data()) > scale_at) {
    throw Error("tl_encode: TL2 content overruns the scale slot");  // impossible for known shapes
  }
  std::memcpy(out.data() + scale_at, &alpha, 4);
}

namespace detail {

float tl_scale(const TensorView& w) {
  return load_f32(w.data + tl_scale_offset(w.type, w.rows(), w.cols()));
}

BadCode decode_tl_rows(const TensorView& w, int64_t row0, int64_t nrows, int8_t* t) {
  const std::optional<TlTiles> tl = tl_tiles(w.type, w.rows(), w.cols());
  if (!tl) throw_unknown_shape(w);
  check_tiles(w.type, w.rows(), w.cols(), *tl);
  return w.type == GgmlType::TL1 ? decode_tl1(w, *tl, row0, nrows, t)
                                 : decode_tl2(w, *tl, row0, nrows, t);
}

}  // namespace detail
}  // namespace bitnet
