// Embedder: pooling, normalization, and independence from how inputs are grouped into passes.
#include <gtest/gtest.h>

#include <cmath>

#include "errors.h"
#include "runtime/embed.h"
#include "synthetic_embedding_model.h"

namespace bitnet {
namespace {

struct Fixture {
  std::vector<uint8_t> file;
  std::unique_ptr<Model> model;
  explicit Fixture(testing::Spec s) : file(testing::synthetic_model(s)), model(load_model(GgufFile::parse(file))) {}
};

const Fixture& qwen3() {
  static const Fixture f([] {
    testing::Spec s;
    s.pooling = 3;
    return s;
  }());
  return f;
}

std::vector<std::vector<int32_t>> inputs() {
  std::vector<std::vector<int32_t>> v;
  for (int len : {5, 17, 1, 40, 9, 23, 3})
    v.push_back([&] {
      std::vector<int32_t> ids;
      for (int i = 0; i < len; ++i) ids.push_back(int32_t((len * 31 + i * 7 + 3) % 900));
      return ids;
    }());
  return v;
}

double l2(std::span<const float> v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return std::sqrt(s);
}

TEST(Embed, GroupingNeverChangesABit) {
  const Model& m = *qwen3().model;
  ThreadPool pool(2);
  const auto in = inputs();
  for (Pooling p : {Pooling::None, Pooling::Mean, Pooling::Cls, Pooling::Last}) {
    EmbedOptions o;
    o.pooling = p;
    // One input at a time in a one-sequence cache: the plainest way.
    std::vector<Embedding> alone;
    {
      Embedder e(m, 64, 1, 512, pool);
      for (const auto& x : in) alone.push_back(e.embed(std::span(&x, 1), o)[0]);
    }
    // Many at once, with batches that cut inputs in the middle (n_batch 7) or hold all of them.
    for (auto [n_seq, n_batch] : {std::pair<int64_t, int64_t>{3, 7}, {8, 512}, {2, 1}, {7, 64}}) {
      Embedder e(m, 64, n_seq, n_batch, pool);
      const auto together = e.embed(in, o);
      ASSERT_EQ(together.size(), in.size());
      for (size_t i = 0; i < in.size(); ++i) {
        EXPECT_EQ(together[i].n_tokens, int64_t(in[i].size()));
        EXPECT_EQ(together[i].values, alone[i].values)
            << "pooling " << pooling_name(p) << ", input " << i << ", n_seq " << n_seq << ", n_batch " << n_batch;
      }
    }
  }
}

TEST(Embed, PoolingTakesTheRightRows) {
  const Model& m = *qwen3().model;
  ThreadPool pool(2);
  Embedder e(m, 64, 4, 512, pool);
  const auto in = inputs();
  EmbedOptions raw;
  raw.pooling = Pooling::None;
  raw.normalize = -1;
  const auto rows = e.embed(in, raw);
  const size_t d = size_t(m.hp.n_embd);
  for (Pooling p : {Pooling::Mean, Pooling::Cls, Pooling::Last}) {
    EmbedOptions o;
    o.pooling = p;
    o.normalize = -1;
    const auto pooled = e.embed(in, o);
    for (size_t i = 0; i < in.size(); ++i) {
      const auto& r = rows[i].values;
      ASSERT_EQ(r.size(), in[i].size() * d);
      ASSERT_EQ(pooled[i].values.size(), d);
      for (size_t k = 0; k < d; ++k) {
        double want = 0;
        if (p == Pooling::Cls) want = r[k];
        if (p == Pooling::Last) want = r[r.size() - d + k];
        if (p == Pooling::Mean) {
          for (size_t t = 0; t < in[i].size(); ++t) want += r[t * d + k];
          want /= double(in[i].size());
        }
        ASSERT_NEAR(pooled[i].values[k], want, 1e-5 * (1 + std::fabs(want))) << pooling_name(p) << " input " << i;
      }
    }
  }
  // The model's own pooling (last) is the default; the default normalization is L2.
  const auto dflt = e.embed(in, EmbedOptions{});
  EXPECT_EQ(e.resolve(EmbedOptions{}), Pooling::Last);
  for (const auto& x : dflt) EXPECT_NEAR(l2(x.values), 1.0, 1e-6);
}

TEST(Embed, NormalizationsAsLlamaEmbedding) {
  std::vector<float> v = {3, -4, 0, 12};
  auto norm = [&](int n) {
    std::vector<float> c = v;
    normalize_embedding(c, n);
    return c;
  };
  EXPECT_EQ(norm(-1), v);
  const auto e = norm(2);  // |v| = 13
  EXPECT_FLOAT_EQ(e[0], 3.0f / 13) ;
  EXPECT_FLOAT_EQ(e[3], 12.0f / 13);
  const auto t = norm(1);  // taxicab 19
  EXPECT_FLOAT_EQ(t[1], -4.0f / 19);
  const auto mx = norm(0);  // max-abs 12 → ±32760
  EXPECT_FLOAT_EQ(mx[3], 32760.0f);
  EXPECT_FLOAT_EQ(mx[0], 3.0f * 32760 / 12);
  const auto p3 = norm(3);  // (27 + 64 + 1728)^(1/3)
  EXPECT_NEAR(p3[3], 12.0 / std::cbrt(1819.0), 1e-6);
  std::vector<float> zero(4, 0.0f);
  normalize_embedding(zero, 2);
  for (float x : zero) EXPECT_EQ(x, 0.0f) << "a zero vector stays zero, never NaN";
}

TEST(Embed, BadInputsAreRefusedBeforeAnyWork) {
  const Model& m = *qwen3().model;
  ThreadPool pool(1);
  Embedder e(m, 16, 2, 64, pool);
  auto message = [&](std::vector<std::vector<int32_t>> in) {
    try {
      e.embed(in, EmbedOptions{});
    } catch (const Error& err) {
      return std::string(err.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{1, 2}, {}}).find("input 1 is empty"), std::string::npos);
  const std::string too_long = message({{1, 2}, std::vector<int32_t>(17, 5)});
  EXPECT_NE(too_long.find("17 tokens"), std::string::npos) << too_long;
  EXPECT_NE(too_long.find("context of 16"), std::string::npos) << too_long;
  EXPECT_NE(message({{1, int32_t(m.hp.n_vocab)}}).find("outside the vocabulary"), std::string::npos);
  // The embedder still works after refusals.
  std::vector<std::vector<int32_t>> ok = {{1, 2, 3}};
  EXPECT_EQ(e.embed(ok, EmbedOptions{})[0].values.size(), size_t(m.hp.n_embd));
}

TEST(Embed, PoolingNamesRoundTrip) {
  for (Pooling p : {Pooling::None, Pooling::Mean, Pooling::Cls, Pooling::Last})
    EXPECT_EQ(parse_pooling(pooling_name(p)), p);
  EXPECT_FALSE(parse_pooling("rank"));
  EXPECT_FALSE(parse_pooling("MEAN"));
}

}  // namespace
}  // namespace bitnet
