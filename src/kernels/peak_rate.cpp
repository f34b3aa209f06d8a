#include "kernels/peak_rate.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/cpu_features.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace bitnet::kernels {
namespace {

// The best of the repeats: on a shared machine other work only ever slows a repeat down, and a
// reference that is too low would flatter every fraction computed against it.
double best(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Sum of 64-bit words: the compiler vectorizes it into full-width loads; the sum keeps the reads.
uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}

constexpr int64_t kMacIterations = 1 << 22;

#if defined(__x86_64__)
// 12 independent VPDPBUSD chains on 512-bit registers: 64 MACs per instruction.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) int64_t mac_loop_vnni(int seed) {
  __m512i acc[12];
  for (auto& a : acc) a = _mm512_set1_epi32(seed);
  const __m512i x = _mm512_set1_epi8(char(seed + 1)), y = _mm512_set1_epi8(char(seed + 3));
  for (int64_t i = 0; i < kMacIterations; ++i)
    for (auto& a : acc) a = _mm512_dpbusd_epi32(a, x, y);
  __m512i s = acc[0];
  for (int k = 1; k < 12; ++k) s = _mm512_add_epi32(s, acc[k]);
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, s);
  int64_t total = 0;
  for (int32_t l : lanes) total += l;
  return total;
}
constexpr int64_t kMacsVnni = 12 * 64;

// AVX2: VPMADDUBSW (u8×s8 pairs → s16, 32 MACs) accumulated in 16-bit lanes, as the fastest
// ternary kernels do between periodic widenings: the instruction's own throughput is the peak.
// Eight accumulators, each fed its own (x, y) pair. The loop body is written in assembly: with
// intrinsics the compiler hoists the loop-invariant products out of the loop (timing only the
// additions), merges equal chains, or spills accumulators to the stack — each of which made this
// "peak" wrong by a factor of two or more.
__attribute__((target("avx2"))) int64_t mac_loop_avx2(int seed) {
  __m256i a0 = _mm256_set1_epi32(seed), a1 = _mm256_set1_epi32(seed + 1), a2 = _mm256_set1_epi32(seed + 2),
          a3 = _mm256_set1_epi32(seed + 3), a4 = _mm256_set1_epi32(seed + 4), a5 = _mm256_set1_epi32(seed + 5),
          a6 = _mm256_set1_epi32(seed + 6), a7 = _mm256_set1_epi32(seed + 7);
  const __m256i x0 = _mm256_set1_epi8(char(seed + 1)), x1 = _mm256_set1_epi8(char(seed + 2)),
                x2 = _mm256_set1_epi8(char(seed + 5)), x3 = _mm256_set1_epi8(char(seed + 7)),
                y0 = _mm256_set1_epi8(char(seed + 3)), y1 = _mm256_set1_epi8(char(seed + 11));
  for (int64_t i = 0; i < kMacIterations; ++i)
    __asm__(
        "vpmaddubsw %[y0], %[x0], %%ymm15\n\tvpaddw %%ymm15, %[a0], %[a0]\n\t"
        "vpmaddubsw %[y0], %[x1], %%ymm15\n\tvpaddw %%ymm15, %[a1], %[a1]\n\t"
        "vpmaddubsw %[y0], %[x2], %%ymm15\n\tvpaddw %%ymm15, %[a2], %[a2]\n\t"
        "vpmaddubsw %[y0], %[x3], %%ymm15\n\tvpaddw %%ymm15, %[a3], %[a3]\n\t"
        "vpmaddubsw %[y1], %[x0], %%ymm15\n\tvpaddw %%ymm15, %[a4], %[a4]\n\t"
        "vpmaddubsw %[y1], %[x1], %%ymm15\n\tvpaddw %%ymm15, %[a5], %[a5]\n\t"
        "vpmaddubsw %[y1], %[x2], %%ymm15\n\tvpaddw %%ymm15, %[a6], %[a6]\n\t"
        "vpmaddubsw %[y1], %[x3], %%ymm15\n\tvpaddw %%ymm15, %[a7], %[a7]"
        : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4), [a5] "+x"(a5),
          [a6] "+x"(a6), [a7] "+x"(a7)
        : [x0] "x"(x0), [x1] "x"(x1), [x2] "x"(x2), [x3] "x"(x3), [y0] "x"(y0), [y1] "x"(y1)
        : "xmm15");
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i s = _mm256_add_epi32(
      _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(a0, ones), _mm256_madd_epi16(a1, ones)),
                       _mm256_add_epi32(_mm256_madd_epi16(a2, ones), _mm256_madd_epi16(a3, ones))),
      _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(a4, ones), _mm256_madd_epi16(a5, ones)),
                       _mm256_add_epi32(_mm256_madd_epi16(a6, ones), _mm256_madd_epi16(a7, ones))));
  alignas(32) int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  int64_t total = 0;
  for (int32_t l : lanes) total += l;
  return total;
}
constexpr int64_t kMacsAvx2 = 8 * 32;
#endif

int64_t mac_loop_scalar(int seed) {
  int32_t acc[8] = {seed, seed, seed, seed, seed, seed, seed, seed};
  const uint8_t x = uint8_t(seed + 1);
  const int8_t y = int8_t(seed + 3);
  for (int64_t i = 0; i < kMacIterations / 16; ++i)
    for (auto& a : acc) a += int32_t(x) * y;
  int64_t total = 0;
  for (int32_t a : acc) total += a;
  return total;
}

}  // namespace

ReadBandwidthProbe::ReadBandwidthProbe(ThreadPool& pool, size_t bytes)
    : words_(bytes / sizeof(uint64_t)), buffer_(new uint64_t[words_]) {
  pool.parallel_for(int64_t(words_), 4096, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) buffer_[size_t(i)] = uint64_t(i) * 0x9e3779b97f4a7c15ull;
  });
}

double ReadBandwidthProbe::measure(ThreadPool& pool, int repeats) const {
  std::atomic<uint64_t> sink = 0;
  std::vector<double> rates;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(int64_t(words_), 4096, [&](int64_t b, int64_t e, int) {
      sink += sum_words(buffer_.get() + b, size_t(e - b));
    });
    rates.push_back(double(words_ * sizeof(uint64_t)) / seconds_since(t0));
  }
  return best(rates);
}

double measure_read_bandwidth(ThreadPool& pool, size_t bytes, int repeats) {
  return ReadBandwidthProbe(pool, bytes).measure(pool, repeats);
}

double measure_int8_mac_peak(ThreadPool& pool, int repeats) {
  int64_t (*loop)(int) = mac_loop_scalar;
  int64_t macs_per_iteration = 8;  // scalar: 8 MACs per inner iteration, kMacIterations/16 of them
  double scale = 1.0 / 16.0;
#if defined(__x86_64__)
  const CpuFeatures& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vnni) {
    loop = mac_loop_vnni;
    macs_per_iteration = kMacsVnni;
    scale = 1.0;
  } else if (f.avx2) {
    loop = mac_loop_avx2;
    macs_per_iteration = kMacsAvx2;
    scale = 1.0;
  }
#endif
  std::atomic<int64_t> sink = 0;
  std::vector<double> rates;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(pool.size(), 1, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) sink += loop(int(i) + r);
    });
    const double macs = double(pool.size()) * double(kMacIterations) * scale * double(macs_per_iteration);
    rates.push_back(macs / seconds_since(t0));
  }
  return best(rates);
}

}  // namespace bitnet::kernels
