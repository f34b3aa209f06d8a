// Attention over the f16 KV cache (model/attention.h) against a float64 evaluation, and the
// properties the forward pass and the decode step rely on: grouping queries, or computing the
// spans of a query separately (in any order, on any thread) and merging them, never changes a
// single output bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>
#include <tuple>

#include "formats/half.h"
#include "model/attention.h"
#include "model/kv_cache.h"

namespace bitnet {
namespace {

using kernels::Isa;

// 1100 positions: four whole spans and a partial fifth, whose last key block is partial too.
constexpr int64_t kHeadsKv = 2, kGroup = 3, kPositions = 1100;

// Random non-zero cache contents and queries for one head size.
struct Fixture {
  int64_t hd;
  KvCache cache;
  std::vector<float> q;  // per query and head: hd floats
  std::vector<int64_t> n_kv, kv_begin;

  explicit Fixture(int64_t head_dim)
      : hd(head_dim), cache(1, 2, kPositions, kHeadsKv, head_dim) {
    std::mt19937 rng(static_cast<uint32_t>(head_dim));
    std::uniform_real_distribution<float> u(0.05f, 2.0f);
    std::bernoulli_distribution sign;
    auto value = [&] { return sign(rng) ? u(rng) : -u(rng); };
    std::vector<float> k(size_t(cache.kv_dim())), v(size_t(cache.kv_dim()));
    for (int64_t p = 0; p < kPositions; ++p) {
      for (size_t d = 0; d < k.size(); ++d) k[d] = value(), v[d] = value();
      cache.store(0, 1, p, k.data(), v.data());  // sequence 1: sequence 0 stays zero
    }
    // Span edges (256, 512, …), block edges, the whole cache, and a run of lengths in one span.
    n_kv = {1, 7, 96, 300, 8, 9, 64, 65, 255, 256, 257, 511, 512, 513, 769, 1024, 1025, kPositions};
    for (int64_t n = 1080; n < kPositions; n += 3) n_kv.push_back(n);
    kv_begin.assign(n_kv.size(), 0);
    // Sliding windows: starting inside the first span, on a span edge, inside a later span, one
    // position before the end (the query's only position).
    for (const auto& [n, begin] : {std::pair<int64_t, int64_t>{300, 17}, {1025, 512}, {1100, 700}, {513, 512},
                                   {1090, 1089}, {96, 95}}) {
      n_kv.push_back(n);
      kv_begin.push_back(begin);
    }
    q.resize(size_t(int64_t(n_kv.size()) * kHeadsKv * kGroup * hd));
    for (float& x : q) x = value();
  }

  KvHead head(int64_t h) const {
    const int64_t kvh = h / kGroup;
    return {cache.key_blocks(0, 1, kvh), cache.key_block_stride(), cache.values(0, 1, kvh), hd, hd};
  }
  const float* query(size_t i, int64_t h) const { return &q[size_t((int64_t(i) * kHeadsKv * kGroup + h) * hd)]; }

  // softmax(q·k / sqrt(hd)) · v in double, from the f16 cache contents.
  std::vector<double> reference(size_t i, int64_t h) const {
    const int64_t kvh = h / kGroup, n = n_kv[i], begin = kv_begin[i];
    std::vector<double> score(static_cast<size_t>(n), -INFINITY), out(static_cast<size_t>(hd), 0.0);
    double max_score = -INFINITY, sum = 0;
    for (int64_t p = begin; p < n; ++p) {
      double dot = 0;
      for (int64_t d = 0; d < hd; ++d)
        dot += double(query(i, h)[d]) * fp16_to_fp32(cache.key(0, 1, p, kvh * hd + d));
      score[size_t(p)] = dot / std::sqrt(double(hd));
      max_score = std::max(max_score, score[size_t(p)]);
    }
    for (double& s : score) sum += s = std::exp(s - max_score);
    for (int64_t p = begin; p < n; ++p)
      for (int64_t d = 0; d < hd; ++d)
        out[size_t(d)] += score[size_t(p)] / sum * fp16_to_fp32(cache.value(0, 1, p, kvh * hd + d));
    return out;
  }

  std::vector<AttentionQuery> queries(int64_t h, std::vector<float>& out) const {
    out.assign(n_kv.size() * size_t(hd), NAN);
    std::vector<AttentionQuery> qs;
    for (size_t i = 0; i < n_kv.size(); ++i) qs.push_back({query(i, h), &out[i * size_t(hd)], n_kv[i], kv_begin[i]});
    return qs;
  }

  // Runs attend() over all queries of head h in groups of `group_size`; returns n × hd outputs.
  std::vector<float> run(Isa isa, int64_t h, size_t group_size) const {
    std::vector<float> out;
    const std::vector<AttentionQuery> queries = this->queries(h, out);
    const float scale = 1.0f / std::sqrt(float(hd));
    for (size_t i = 0; i < queries.size(); i += group_size)
      attend(isa, head(h), std::span(queries).subspan(i, std::min(group_size, queries.size() - i)), scale);
    return out;
  }
};

class Attention : public ::testing::TestWithParam<std::tuple<Isa, int64_t>> {
 protected:
  void SetUp() override {
    if (!kernels::isa_supported(std::get<0>(GetParam()))) GTEST_SKIP() << "CPU lacks this level";
  }
};

// f32 scores and sums of ±2 inputs over up to 128 dims and 1100 positions, spans merged in double:
// errors stay near 1e-6 of the output scale (≤ 2); 2e-5 leaves room without hiding a wrong
// index, weight or span.
constexpr double kTolerance = 2e-5;

TEST_P(Attention, MatchesDoubleReference) {
  const auto [isa, hd] = GetParam();
  const Fixture f(hd);
  for (int64_t h = 0; h < kHeadsKv * kGroup; ++h) {
    const std::vector<float> out = f.run(isa, h, f.n_kv.size());
    for (size_t i = 0; i < f.n_kv.size(); ++i) {
      const std::vector<double> want = f.reference(i, h);
      for (int64_t d = 0; d < hd; ++d)
        ASSERT_NEAR(out[i * size_t(hd) + size_t(d)], want[size_t(d)], kTolerance)
            << "head " << h << " n_kv " << f.n_kv[i] << " dim " << d;
    }
  }
}

TEST_P(Attention, GroupingNeverChangesABit) {
  const auto [isa, hd] = GetParam();
  const Fixture f(hd);
  for (int64_t h = 0; h < kHeadsKv * kGroup; ++h) {
    const std::vector<float> alone = f.run(isa, h, 1);
    for (size_t group : {size_t(2), size_t(3), size_t(4), size_t(5), size_t(32), f.n_kv.size()}) {
      const std::vector<float> grouped = f.run(isa, h, group);
      for (size_t j = 0; j < alone.size(); ++j)
        ASSERT_EQ(std::bit_cast<uint32_t>(grouped[j]), std::bit_cast<uint32_t>(alone[j]))
            << "head " << h << " group of " << group << " query " << j / size_t(hd) << " dim " << j % size_t(hd);
    }
  }
}

// What a decode step does: each span computed on its own (here in reverse order, one query at a
// time or all together), then merged per query — the same bits as attend().
TEST_P(Attention, SpansComputedSeparatelyAndMergedEqualAttend) {
  const auto [isa, hd] = GetParam();
  const Fixture f(hd);
  const float scale = 1.0f / std::sqrt(float(hd));
  for (int64_t h = 0; h < kHeadsKv * kGroup; h += kGroup + 1) {
    const std::vector<float> whole = f.run(isa, h, f.n_kv.size());
    for (size_t group_size : {size_t(1), f.n_kv.size()}) {
      std::vector<float> out;
      const std::vector<AttentionQuery> queries = f.queries(h, out);
      const int64_t n_spans = attention_spans(kPositions);
      std::vector<float> acc(size_t(n_spans) * queries.size() * size_t(hd), NAN);
      std::vector<SpanPartial> partials(size_t(n_spans) * queries.size());  // [query][span]
      for (size_t i = 0; i < partials.size(); ++i) partials[i].acc = &acc[i * size_t(hd)];
      for (int64_t j = n_spans - 1; j >= 0; --j)
        for (size_t i0 = 0; i0 < queries.size(); i0 += group_size) {
          const size_t n = std::min(group_size, queries.size() - i0);
          std::vector<SpanPartial> mine(n);
          for (size_t i = 0; i < n; ++i) mine[i] = partials[(i0 + i) * size_t(n_spans) + size_t(j)];
          attend_span(isa, f.head(h), std::span(queries).subspan(i0, n), scale, j, mine);
          for (size_t i = 0; i < n; ++i) {
            partials[(i0 + i) * size_t(n_spans) + size_t(j)] = mine[i];
            if (j >= attention_spans(queries[i0 + i].n_kv)) {
              ASSERT_EQ(mine[i].max, -INFINITY);
            }
          }
        }
      for (size_t i = 0; i < queries.size(); ++i)
        merge_spans(std::span(partials).subspan(i * size_t(n_spans), size_t(attention_spans(queries[i].n_kv))), hd,
                    queries[i].out);
      ASSERT_EQ(0, std::memcmp(out.data(), whole.data(), out.size() * sizeof(float)))
          << "head " << h << " groups of " << group_size;
    }
  }
}

// SpanWork: the groups of every head (queries in groups of 5), their items run by three threads in
// a shuffled order, then re-armed (set_kv) and run again: each output equals attend() on its group.
TEST_P(Attention, SpanWorkOnThreadsInAnyOrderEqualsAttend) {
  const auto [isa, hd] = GetParam();
  const Fixture f(hd);
  const float scale = 1.0f / std::sqrt(float(hd));
  std::vector<std::vector<float>> want, got(size_t(kHeadsKv * kGroup));
  std::vector<std::vector<AttentionQuery>> queries;
  SpanWork work;
  work.clear(isa, scale, hd);
  for (int64_t h = 0; h < kHeadsKv * kGroup; ++h) {
    want.push_back(f.run(isa, h, 5));
    queries.push_back(f.queries(h, got[size_t(h)]));
    for (size_t i = 0; i < queries.back().size(); i += 5)
      work.add(f.head(h), std::span(queries.back()).subspan(i, std::min<size_t>(5, queries.back().size() - i)));
  }
  const int64_t n_items = work.plan();
  ASSERT_EQ(n_items, work.first_item(int64_t(kHeadsKv * kGroup * ((f.n_kv.size() + 4) / 5))));
  std::vector<int64_t> order(static_cast<size_t>(n_items));
  for (int64_t i = 0; i < n_items; ++i) order[size_t(i)] = i;
  std::mt19937 rng(5);
  for (int round = 0; round < 2; ++round) {
    for (auto& g : got) std::fill(g.begin(), g.end(), NAN);
    if (round == 1)  // re-arm every group on the same heads
      for (int64_t h = 0, g = 0; h < kHeadsKv * kGroup; ++h)
        for (size_t i = 0; i < f.n_kv.size(); i += 5) work.set_kv(g++, f.head(h));
    std::shuffle(order.begin(), order.end(), rng);
    std::atomic<size_t> next = 0;
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t)
      threads.emplace_back([&] {
        for (size_t i; (i = next.fetch_add(1)) < order.size();) work.run(order[i]);
      });
    for (std::thread& t : threads) t.join();
    for (int64_t h = 0; h < kHeadsKv * kGroup; ++h)
      ASSERT_EQ(0, std::memcmp(got[size_t(h)].data(), want[size_t(h)].data(), want[size_t(h)].size() * sizeof(float)))
          << "head " << h << " round " << round;
  }
}

// AVX-512 runs AVX2's arithmetic on wider registers: the same bits.
TEST_P(Attention, Avx512EqualsAvx2) {
  const auto [isa, hd] = GetParam();
  if (isa != Isa::Avx512Vnni) GTEST_SKIP() << "compares the AVX-512 level";
  const Fixture f(hd);
  for (int64_t h = 0; h < kHeadsKv * kGroup; ++h)
    for (size_t group : {size_t(1), size_t(4), f.n_kv.size()}) {  // f16 read directly; f32 copies (> 16)
      const std::vector<float> wide = f.run(Isa::Avx512Vnni, h, group), narrow = f.run(Isa::Avx2, h, group);
      ASSERT_EQ(0, std::memcmp(wide.data(), narrow.data(), wide.size() * sizeof(float))) << "head " << h;
    }
}

std::string name(const ::testing::TestParamInfo<std::tuple<Isa, int64_t>>& info) {
  std::string isa(kernels::isa_name(std::get<0>(info.param)));
  for (char& c : isa) c = c == '-' ? '_' : c;
  return isa + "_hd" + std::to_string(std::get<1>(info.param));
}

// 20, 22 and 100 (bitnet_b1_58-3B): not multiples of 8, so the vector levels finish the last
// dimensions of each head in a 4-lane register (20, 100) and then one at a time (22).
INSTANTIATE_TEST_SUITE_P(AllIsas, Attention,
                         ::testing::Combine(::testing::ValuesIn(kernels::kAllIsas),
                                            ::testing::Values(int64_t(20), int64_t(22), int64_t(64), int64_t(96), int64_t(100),
                                                              int64_t(128))),
                         name);

TEST(KvCache, EachHeadHoldsKeyBlocksThenValuesAndPrefixesCopy) {
  KvCache cache(2, 2, 13, 2, 3);  // 13 positions: two key blocks, the second partial; 2 heads of 3
  for (int64_t l = 0; l < 2; ++l)
    for (int64_t p = 0; p < 13; ++p) {
      const float k[6] = {float(l * 100 + p), float(p) + 0.5f, -float(p), 1000.0f + float(p), 2.0f, float(l)};
      const float v[6] = {float(p), float(l), 1.0f, -float(p), 3.0f, float(l * 10 + p)};
      cache.store(l, 0, p, k, v);
    }
  EXPECT_EQ(cache.kv_dim(), 6);
  EXPECT_EQ(fp16_to_fp32(cache.key(1, 0, 9, 0)), 109.0f);
  EXPECT_EQ(fp16_to_fp32(cache.key(1, 0, 9, 3)), 1009.0f);
  // Head 0, block 1 (positions 8..15), dimension 1, position 9 (8 + 1).
  EXPECT_EQ(fp16_to_fp32(cache.key_blocks(1, 0, 0)[cache.key_block_stride() + 1 * 8 + 1]), 9.5f);
  // Head 1's key blocks: dimension 0 of position 12 = 1012; its values: position 12, dimension 2.
  EXPECT_EQ(fp16_to_fp32(cache.key_blocks(1, 0, 1)[cache.key_block_stride() + 0 * 8 + 4]), 1012.0f);
  EXPECT_EQ(fp16_to_fp32(cache.values(1, 0, 1)[12 * 3 + 2]), 22.0f);
  EXPECT_EQ(fp16_to_fp32(cache.value(1, 0, 12, 1)), 1.0f);
  EXPECT_EQ(cache.key_block_stride(), 3 * KvCache::kKeyBlock);
  // Regions are contiguous per head: head 1 starts right after head 0's 16 padded positions.
  EXPECT_EQ(cache.values(0, 0, 1) - cache.values(0, 0, 0), 16 * 3);
  EXPECT_EQ(cache.bytes(), 2u * 2 * 2 * 16 * 6 * sizeof(uint16_t));  // positions padded to 16

  cache.copy_prefix(0, 1, 10);
  for (int64_t l = 0; l < 2; ++l)
    for (int64_t p = 0; p < 10; ++p)
      for (int64_t d = 0; d < 6; ++d) {
        EXPECT_EQ(cache.key(l, 1, p, d), cache.key(l, 0, p, d));
        EXPECT_EQ(cache.value(l, 1, p, d), cache.value(l, 0, p, d));
      }
  EXPECT_EQ(cache.value(0, 1, 10, 0), 0);  // values past the prefix are not copied
  EXPECT_EQ(cache.value(0, 1, 10, 5), 0);
}

TEST(KvCache, StoreRoundsLikeFp32ToFp16) {
  // Normal, subnormal, tie, overflow and zero cases; the SIMD conversion must match the scalar one.
  std::vector<float> x = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 65520.0f, 1e6f, -1e6f, 6.1e-5f, 3e-8f,
                          -5.96e-8f, 1e-9f, 1.00048828125f, 1.00146484375f, 0.333333f, -7.77e-6f};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> exponent(-30.0f, 17.0f);
  while (x.size() < 64) x.push_back(std::exp2(exponent(rng)) * (x.size() % 2 ? -1.0f : 1.0f));
  KvCache cache(1, 1, 1, 4, int64_t(x.size()) / 4);
  cache.store(0, 0, 0, x.data(), x.data());
  for (size_t d = 0; d < x.size(); ++d) {
    EXPECT_EQ(cache.key(0, 0, 0, int64_t(d)), fp32_to_fp16(x[d])) << x[d];
    EXPECT_EQ(cache.value(0, 0, 0, int64_t(d)), fp32_to_fp16(x[d])) << x[d];
  }
}

}  // namespace
}  // namespace bitnet
