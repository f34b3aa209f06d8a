// The q8_0 KV cache (-ctk/-ctv q8_0; model/kv_cache.h): ggml's q8_0 per 32 dimensions of one
// position's head vector, read back exactly as code·scale; forward passes with it are deterministic
// across threads and batch compositions and stay close to the f16 cache.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "formats/half.h"
#include "kernels/cpu_features.h"
#include "model/forward.h"
#include "model/kv_convert.h"
#include "runtime/diagnostics.h"
#include "test_data.h"

namespace bitnet {
namespace {

// The test's own q8_0 of one block (ggml's quantize_row_q8_0 on x86: d = max|x|/127 stored as f16,
// codes nearbyint(x·(127/max|x|)) in f32): the value each element must read back as.
std::vector<float> q8_reference(const float* x) {
  float m = 0;
  for (int i = 0; i < 32; ++i) m = std::max(m, std::fabs(x[i]));
  const float id = m > 0 ? 127.0f / m : 0.0f, d = fp16_to_fp32(fp32_to_fp16(m / 127.0f));
  std::vector<float> out(32);
  for (int i = 0; i < 32; ++i) out[size_t(i)] = std::nearbyint(x[i] * id) * d;
  return out;
}

// Random head vectors with a different magnitude per 32-dimension block (never all zero).
std::vector<float> random_rows(std::mt19937& rng, int64_t rows, int64_t dim) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> mag(-3.0f, 3.0f);
  std::vector<float> x(size_t(rows * dim));
  for (int64_t b = 0; b < rows * dim / 32; ++b) {
    const float scale = std::pow(10.0f, mag(rng));
    for (int64_t i = 0; i < 32; ++i) x[size_t(b * 32 + i)] = normal(rng) * scale;
  }
  return x;
}

TEST(KvCacheQ8, StoreReadsBackAsGgmlQ8_0WithinTheRoundingBound) {
  const int64_t n_layer = 2, n_seq = 2, n_ctx = 19, n_head_kv = 3, hd = 64, kv_dim = n_head_kv * hd;
  KvCache cache(n_layer, n_seq, n_ctx, n_head_kv, hd, KvType::Q8_0, KvType::Q8_0);
  std::mt19937 rng(7);
  const std::vector<float> keys = random_rows(rng, n_layer * n_seq * n_ctx, kv_dim);
  const std::vector<float> values = random_rows(rng, n_layer * n_seq * n_ctx, kv_dim);
  auto at = [&](int64_t l, int64_t s, int64_t p) { return size_t(((l * n_seq + s) * n_ctx + p) * kv_dim); };
  for (int64_t l = 0; l < n_layer; ++l)
    for (int64_t s = 0; s < n_seq; ++s)
      for (int64_t p = n_ctx - 1; p >= 0; --p)  // any order: cells are independent
        if (p % 2 == 0)
          cache.store(l, s, p, &keys[at(l, s, p)], &values[at(l, s, p)]);
        else
          for (int64_t h = 0; h < n_head_kv; ++h)
            cache.store_head(l, s, p, h, &keys[at(l, s, p) + size_t(h * hd)], &values[at(l, s, p) + size_t(h * hd)]);
  int64_t nonzero = 0;
  for (int64_t l = 0; l < n_layer; ++l)
    for (int64_t s = 0; s < n_seq; ++s)
      for (int64_t p = 0; p < n_ctx; ++p)
        for (int64_t b = 0; b < kv_dim / 32; ++b)
          for (int side = 0; side < 2; ++side) {
            const float* x = (side ? &values[at(l, s, p)] : &keys[at(l, s, p)]) + b * 32;
            const std::vector<float> want = q8_reference(x);
            float m = 0;
            for (int i = 0; i < 32; ++i) m = std::max(m, std::fabs(x[i]));
            const float d = m / 127.0f;
            for (int64_t i = 0; i < 32; ++i) {
              const int64_t dim = b * 32 + i;
              const float got = side ? cache.value_f32(l, s, p, dim) : cache.key_f32(l, s, p, dim);
              ASSERT_EQ(got, want[size_t(i)]) << "layer " << l << " seq " << s << " pos " << p << " dim " << dim;
              // Half a step of rounding, plus the f16 rounding of the scale (half an ulp: 2^-11
              // relative, or 2^-25 among f16's subnormals below 2^-14) times the code (≤ 127).
              ASSERT_LE(std::fabs(got - x[i]), (0.5f * d + 127.0f * std::max(d / 2048.0f, 0x1p-25f)) * 1.0001f);
              nonzero += got != 0;
            }
          }
  EXPECT_GT(nonzero, n_layer * n_seq * n_ctx * kv_dim);  // most of both sides
}

TEST(KvCacheQ8, MixedTypesZeroBlocksAndCopyPrefix) {
  const int64_t hd = 32;
  for (auto [tk, tv] : {std::pair{KvType::F16, KvType::Q8_0}, std::pair{KvType::Q8_0, KvType::F16}}) {
    KvCache cache(1, 2, 20, 2, hd, tk, tv);
    EXPECT_EQ(cache.type_k(), tk);
    EXPECT_EQ(cache.type_v(), tv);
    std::mt19937 rng(3);
    const std::vector<float> rows = random_rows(rng, 20, 2 * hd);
    std::vector<float> zeros(size_t(2 * hd), 0.0f);
    for (int64_t p = 0; p < 20; ++p) cache.store(0, 0, p, p == 5 ? zeros.data() : &rows[size_t(p * 2 * hd)],
                                                  p == 5 ? zeros.data() : &rows[size_t(p * 2 * hd)]);
    for (int64_t d = 0; d < 2 * hd; ++d) {
      EXPECT_EQ(cache.key_f32(0, 0, 5, d), 0.0f);
      EXPECT_EQ(cache.value_f32(0, 0, 5, d), 0.0f);
      const float x = rows[size_t(7 * 2 * hd + d)];
      const float want_q8 = q8_reference(&rows[size_t(7 * 2 * hd + d / 32 * 32)])[size_t(d % 32)];
      const float want_f16 = fp16_to_fp32(fp32_to_fp16(x));
      EXPECT_EQ(cache.key_f32(0, 0, 7, d), tk == KvType::Q8_0 ? want_q8 : want_f16);
      EXPECT_EQ(cache.value_f32(0, 0, 7, d), tv == KvType::Q8_0 ? want_q8 : want_f16);
    }
    // The f16 accessors serve the f16 side only.
    if (tk == KvType::Q8_0) {
      EXPECT_THROW(cache.key(0, 0, 0, 0), Error);
    }
    if (tv == KvType::Q8_0) {
      EXPECT_THROW(cache.value(0, 0, 0, 0), Error);
    }
    cache.copy_prefix(0, 1, 11);
    for (int64_t p = 0; p < 11; ++p)
      for (int64_t d = 0; d < 2 * hd; ++d) {
        ASSERT_EQ(cache.key_f32(0, 1, p, d), cache.key_f32(0, 0, p, d));
        ASSERT_EQ(cache.value_f32(0, 1, p, d), cache.value_f32(0, 0, p, d));
      }
    EXPECT_EQ(cache.value_f32(0, 1, 12, 0), 0.0f);  // values past the prefix are not copied
  }
}

TEST(KvCacheQ8, SizeAndHeadSizeCheck) {
  try {
    KvCache bad(1, 1, 8, 1, 100, KvType::Q8_0, KvType::F16);
    FAIL() << "a head size of 100 must be refused";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "q8_0 K/V cache needs a head size that is a multiple of 32; this model's is 100");
  }
  EXPECT_NO_THROW(KvCache(1, 1, 8, 1, 100));  // f16 takes any head size
  // Codes (1 byte) and one f16 scale per 32: 34/32 bytes per cell against f16's 2.
  const KvCache f16(2, 3, 13, 2, 64), q8(2, 3, 13, 2, 64, KvType::Q8_0, KvType::Q8_0),
      mixed(2, 3, 13, 2, 64, KvType::F16, KvType::Q8_0);
  const uint64_t cells = 2 * 3 * 16 * 2 * 64;  // 13 positions padded to 16
  EXPECT_EQ(f16.bytes(), 2 * cells * 2);
  EXPECT_EQ(q8.bytes(), 2 * (cells + cells / 16));
  EXPECT_EQ(mixed.bytes(), cells * 2 + cells + cells / 16);
  EXPECT_EQ(KvCache::bytes_for(2, 3, 13, 2, 64, KvType::F16, KvType::Q8_0), mixed.bytes());
  HParams hp;
  hp.n_layer = 2, hp.n_head_kv = 2, hp.head_dim = 64;
  EXPECT_EQ(kv_cache_bytes(hp, 13, 3, KvType::Q8_0, KvType::Q8_0), q8.bytes());
  EXPECT_EQ(parse_kv_type("q8_0"), KvType::Q8_0);
  EXPECT_EQ(parse_kv_type("f16"), KvType::F16);
  EXPECT_FALSE(parse_kv_type("q4_0").has_value());
}

TEST(KvCacheQ8, VectorConversionsEqualThePortableOne) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> code(-127, 127);
  const int64_t hd = 128, n = 13;
  std::vector<int8_t> codes(size_t(8 * hd));
  for (auto& c : codes) c = int8_t(code(rng));
  const std::vector<float> sc = random_rows(rng, 1, 32);
  std::vector<uint16_t> scales(32);
  for (size_t i = 0; i < 32; ++i) scales[i] = fp32_to_fp16(std::fabs(sc[i]) / 127.0f);
  std::vector<int8_t> vcodes(size_t(n * hd));
  for (auto& c : vcodes) c = int8_t(code(rng));
  std::vector<uint16_t> vscales(size_t(n * hd / 32));
  for (size_t i = 0; i < vscales.size(); ++i) vscales[i] = scales[i % 32];
  std::vector<float> key_ref(size_t(8 * hd)), val_ref(size_t(n * hd));
  q8_key_block_to_f32(kernels::Isa::Generic, codes.data(), scales.data(), hd, key_ref.data());
  q8_values_to_f32(kernels::Isa::Generic, vcodes.data(), vscales.data(), hd, n, val_ref.data());
  for (int64_t d = 0; d < hd; ++d)
    for (int64_t l = 0; l < 8; ++l)
      ASSERT_EQ(key_ref[size_t(d * 8 + l)], float(codes[size_t(d * 8 + l)]) * fp16_to_fp32(scales[size_t(d / 32 * 8 + l)]));
  for (int64_t i = 0; i < n * hd; ++i)
    ASSERT_EQ(val_ref[size_t(i)], float(vcodes[size_t(i)]) * fp16_to_fp32(vscales[size_t(i / 32)]));
  for (kernels::Isa isa : kernels::kAllIsas) {
    if (!kernels::isa_supported(isa)) continue;
    SCOPED_TRACE(kernels::isa_name(isa));
    std::vector<float> k(key_ref.size()), v(val_ref.size());
    q8_key_block_to_f32(isa, codes.data(), scales.data(), hd, k.data());
    q8_values_to_f32(isa, vcodes.data(), vscales.data(), hd, n, v.data());
    EXPECT_EQ(0, std::memcmp(k.data(), key_ref.data(), k.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(v.data(), val_ref.data(), v.size() * sizeof(float)));
  }
}

std::vector<int32_t> prompt_tokens(const Model& m, int n) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(int32_t((i * 131 + 17) % m.hp.n_vocab));
  return t;
}

// Logits of every position of `tokens`, fed in chunks of `chunk` tokens.
std::vector<float> run_chunks(const Model& m, const std::vector<int32_t>& tokens, int64_t chunk, int threads,
                              KvType tk, KvType tv) {
  ThreadPool pool(threads);
  KvCache cache(m.hp.n_layer, 1, 96, m.hp.n_head_kv, m.hp.head_dim, tk, tv);
  std::vector<float> out;
  for (size_t b0 = 0; b0 < tokens.size(); b0 += size_t(chunk)) {
    Batch b;
    for (size_t i = b0; i < std::min(tokens.size(), b0 + size_t(chunk)); ++i) b.add(tokens[i], int32_t(i), 0, true);
    const std::vector<float> l = forward(m, cache, b, pool);
    out.insert(out.end(), l.begin(), l.end());
  }
  return out;
}

// Beyond 64 positions (one attention chunk) and with prompt batches of more than 16 queries.
TEST(KvCacheQ8, ForwardIsBitIdenticalAcrossThreadsAndBatching) {
  for (const char* arch : {"bitnet-b1.58", "llama"}) {
    SCOPED_TRACE(arch);
    const auto m = load_model(testing::dummy_model(arch, "tiny", GgmlType::I2_S));
    const std::vector<int32_t> tokens = prompt_tokens(*m, 80);
    const std::vector<float> ref = run_chunks(*m, tokens, 80, 1, KvType::Q8_0, KvType::Q8_0);
    ASSERT_EQ(ref.size(), tokens.size() * size_t(m->hp.n_vocab));
    ASSERT_NE(ref[0], ref[1]);
    for (int threads : {1, 2, 3})
      for (int64_t chunk : {1, 5, 33, 80}) {
        if (threads == 1 && chunk == 80) continue;
        SCOPED_TRACE(std::to_string(threads) + " threads, chunks of " + std::to_string(chunk));
        const std::vector<float> got = run_chunks(*m, tokens, chunk, threads, KvType::Q8_0, KvType::Q8_0);
        ASSERT_EQ(0, std::memcmp(got.data(), ref.data(), ref.size() * sizeof(float)));
      }
  }
}

// Against the f16 cache: the relative RMS difference of the logits over 80 positions. With F32
// weights (f32 activations) it measures the q8_0 rounding alone: 0.6–1.1% measured, bound 3%. With
// ternary weights, the int8 activation quantization of each projection carries any small change on
// (a value that crosses a rounding boundary; docs/numerics.md): 2.5–3.1% measured, bound 6% — as
// much as K alone or V alone gives. A layout or scale defect gives tens of percent.
TEST(KvCacheQ8, LogitsStayCloseToTheF16Cache) {
  for (auto [type, bound] : {std::pair{GgmlType::F32, 0.03}, std::pair{GgmlType::I2_S, 0.06}})
    for (const char* arch : {"bitnet-b1.58", "llama"}) {
      SCOPED_TRACE(std::string(arch) + " " + std::string(ggml_type_name(type)));
      const auto m = load_model(testing::dummy_model(arch, "tiny", type));
      const std::vector<int32_t> tokens = prompt_tokens(*m, 80);
      const std::vector<float> f16 = run_chunks(*m, tokens, 80, 2, KvType::F16, KvType::F16);
      for (auto [tk, tv] : {std::pair{KvType::Q8_0, KvType::Q8_0}, std::pair{KvType::Q8_0, KvType::F16},
                            std::pair{KvType::F16, KvType::Q8_0}}) {
        const std::vector<float> q8 = run_chunks(*m, tokens, 80, 2, tk, tv);
        double diff = 0, norm = 0;
        for (size_t i = 0; i < f16.size(); ++i) {
          diff += double(q8[i] - f16[i]) * double(q8[i] - f16[i]);
          norm += double(f16[i]) * double(f16[i]);
        }
        const double rel = std::sqrt(diff / norm);
        std::printf("%s %s, K %s V %s: relative RMS logit difference %.3f%%\n", arch,
                    std::string(ggml_type_name(type)).c_str(), kv_type_name(tk), kv_type_name(tv), 100 * rel);
        EXPECT_GT(rel, 0.0);  // the q8_0 cache is really used
        EXPECT_LT(rel, bound);
      }
    }
}

}  // namespace
}  // namespace bitnet
