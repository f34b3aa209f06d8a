#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "sampling/sampler.h"

namespace bitnet {
namespace {

std::vector<float> logits_of(std::initializer_list<float> l) { return l; }

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p);
  EXPECT_EQ(s.sample(logits_of({0.1f, 3.0f, -1.0f, 3.0f}), {}), 1);
  EXPECT_EQ(argmax(logits_of({-5.0f, -4.0f, -4.0f})), 1);
}

TEST(Sampler, TopKOneIsGreedyForAnyTemperature) {
  SamplingParams p;
  p.temperature = 5.0f;
  p.top_k = 1;
  Sampler s(p);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s.sample(logits_of({0.0f, 0.5f, 0.4f}), {}), 1);
}

TEST(Sampler, FrequenciesFollowTheSoftmax) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 123;
  Sampler s(p);
  const auto l = logits_of({0.0f, std::log(3.0f)});  // probabilities 1/4, 3/4
  int ones = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ones += s.sample(l, {}) == 1;
  EXPECT_NEAR(double(ones) / n, 0.75, 0.015);
}

TEST(Sampler, TopPAndMinPTruncate) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.min_p = 0.0f;
  p.top_p = 0.5f;  // the first token alone has p ≈ 0.84 ≥ 0.5
  Sampler s(p);
  const auto l = logits_of({3.0f, 1.0f, 0.0f, -1.0f});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(s.sample(l, {}), 0);
  p.top_p = 1.0f;
  p.min_p = 0.1f;  // p ∝ (20.1, 2.72, 1, 0.37): keeps p ≥ 0.1·p_max, i.e. only ids 0 and 1
  Sampler m(p);
  std::map<int, int> seen;
  for (int i = 0; i < 2000; ++i) seen[m.sample(l, {})]++;
  EXPECT_EQ(seen.count(2) + seen.count(3), 0u);
  EXPECT_GT(seen[1], 0);
}

TEST(Sampler, RepetitionPenaltyDemotesRecentTokens) {
  SamplingParams p;
  p.temperature = 0;
  p.repeat_penalty = 2.0f;
  Sampler s(p);
  const std::vector<int32_t> history = {0};
  EXPECT_EQ(s.sample(logits_of({2.0f, 1.5f}), history), 1);  // 2.0 / 2 = 1.0 < 1.5
  EXPECT_EQ(s.sample(logits_of({-1.0f, -1.5f}), history), 1);  // -1 · 2 = -2 < -1.5
}

TEST(Sampler, LogitBiasComesFirstAndMinusInfinityBans) {
  SamplingParams p;
  p.temperature = 0;
  p.logit_bias = {{0, -1.0f}};
  EXPECT_EQ(Sampler(p).sample(logits_of({2.0f, 1.5f}), {}), 1);  // 2 − 1 < 1.5
  p.logit_bias = {{1, -INFINITY}};
  EXPECT_EQ(Sampler(p).sample(logits_of({-5.0f, 9.0f}), {}), 0);
  p.temperature = 1.0f;
  p.top_k = 0;
  p.min_p = 0;
  p.top_p = 1;
  Sampler s(p);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(s.sample(logits_of({-5.0f, 9.0f, -6.0f}), {}) == 1, false) << "banned token drawn";
}

TEST(Sampler, SameSeedSameSequence) {
  SamplingParams p;
  p.temperature = 1.5f;
  p.seed = 99;
  Sampler a(p), b(p);
  std::vector<float> l(1000);
  for (size_t i = 0; i < l.size(); ++i) l[i] = float(std::sin(double(i)));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.sample(l, {}), b.sample(l, {}));
}

TEST(Sampler, ValidationNamesTheBadValue) {
  SamplingParams p;
  EXPECT_EQ(validate(p), "");
  p.top_p = 0;
  EXPECT_NE(validate(p).find("top-p"), std::string::npos);
  p = {};
  p.temperature = -1;
  EXPECT_NE(validate(p).find("temperature"), std::string::npos);
  p = {};
  p.min_p = 1.5f;
  EXPECT_NE(validate(p).find("min-p"), std::string::npos);
  p = {};
  p.repeat_penalty = 0;
  EXPECT_NE(validate(p).find("repeat-penalty"), std::string::npos);
}


// post_sampling_probs: the distribution the draw was made from, by hand. Logits (3, 1, 0, -1, 2),
// top-k 3 keeps ids 0, 4, 1; at temperature 2 their probabilities are e^(3/2), e^(2/2), e^(1/2)
// renormalized; ids 2 and 3 were removed by the chain (0).
TEST(Sampler, DistributionIsTheChainsRenormalizedSurvivors) {
  SamplingParams p;
  p.temperature = 2.0f;
  p.top_k = 3;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 5;
  Sampler s(p);
  const auto l = logits_of({3.0f, 1.0f, 0.0f, -1.0f, 2.0f});
  const int32_t chosen = s.sample(l, {});
  const double z = std::exp(1.5) + std::exp(1.0) + std::exp(0.5);
  const std::vector<std::pair<int32_t, double>> want = {
      {0, std::exp(1.5) / z}, {4, std::exp(1.0) / z}, {1, std::exp(0.5) / z}, {2, 0.0}, {3, 0.0}};
  const std::vector<TokenProbability> got = s.distribution(10);  // more than the vocabulary: all 5
  ASSERT_EQ(got.size(), want.size());
  double sum = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].id, want[i].first) << i;
    EXPECT_NEAR(got[i].p, want[i].second, 1e-12) << i;
    sum += got[i].p;
  }
  EXPECT_NEAR(sum, 1.0, 1e-12);
  EXPECT_TRUE(chosen == 0 || chosen == 4 || chosen == 1);
  EXPECT_NEAR(s.probability(chosen), want[chosen == 0 ? 0 : chosen == 4 ? 1 : 2].second, 1e-12);
  EXPECT_EQ(s.probability(3), 0.0);
  // Asking for fewer gives the head of the same ranking.
  const auto two = s.distribution(2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[1].id, 4);
}

TEST(Sampler, DistributionAfterTopPMinPAndBans) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.min_p = 0.0f;
  p.top_p = 0.5f;  // p ≈ (0.64, 0.24, 0.09, 0.03): the first alone reaches 0.5
  p.logit_bias = {{1, -INFINITY}};
  Sampler s(p);
  const auto l = logits_of({3.0f, 9.0f, 2.0f, 1.0f, 0.0f});  // id 1 banned
  EXPECT_EQ(s.sample(l, {}), 0);
  auto d = s.distribution(3);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].id, 0);
  EXPECT_EQ(d[0].p, 1.0);
  EXPECT_EQ(d[1].id, 2);
  EXPECT_EQ(d[1].p, 0.0);
  EXPECT_EQ(s.probability(1), 0.0) << "a banned token";
  p.top_p = 1.0f;
  p.min_p = 0.3f;  // keeps p ≥ 0.3·p(0): ids 0 (e^3) and 2 (e^2 ≈ 0.37·e^3), not 3 (0.14·e^3)
  Sampler m(p);
  m.sample(l, {});
  d = m.distribution(4);
  const double z = std::exp(3.0) + std::exp(2.0);
  EXPECT_EQ(d[0].id, 0);
  EXPECT_NEAR(d[0].p, std::exp(3.0) / z, 1e-12);
  EXPECT_EQ(d[1].id, 2);
  EXPECT_NEAR(d[1].p, std::exp(2.0) / z, 1e-12);
  EXPECT_EQ(d[2].id, 3);
  EXPECT_EQ(d[2].p, 0.0);
  EXPECT_EQ(d[3].id, 4);
  EXPECT_EQ(d[3].p, 0.0) << "the banned id 1 ranks last (−∞)";
}

TEST(Sampler, GreedyDistributionIsOneForTheChoice) {
  SamplingParams p;
  p.temperature = 0;
  p.repeat_penalty = 2.0f;
  Sampler s(p);
  const std::vector<int32_t> history = {1};
  // id 1 (3.0) is halved to 1.5 by the penalty: id 3 (2.0) wins, ties of 1.5 ranked by id.
  EXPECT_EQ(s.sample(logits_of({1.5f, 3.0f, -1.0f, 2.0f}), history), 3);
  const auto d = s.distribution(3);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].id, 3);
  EXPECT_EQ(d[0].p, 1.0);
  EXPECT_EQ(d[1].id, 0);
  EXPECT_EQ(d[1].p, 0.0);
  EXPECT_EQ(d[2].id, 1);
  EXPECT_EQ(d[2].p, 0.0);
  EXPECT_EQ(s.probability(3), 1.0);
  EXPECT_EQ(s.probability(0), 0.0);
}

TEST(Sampler, ReportingTheDistributionDoesNotChangeTheDraws) {
  SamplingParams p;
  p.temperature = 1.2f;
  p.seed = 77;
  Sampler a(p), b(p);
  std::vector<float> l(500);
  for (size_t i = 0; i < l.size(); ++i) l[i] = float(std::cos(double(i) * 0.37)) * 4;
  for (int i = 0; i < 50; ++i) {
    const int32_t ta = a.sample(l, {});
    EXPECT_EQ(ta, b.sample(l, {}));
    (void)a.distribution(100);  // ranks more of the removed tokens: the next draw must not care
    EXPECT_GT(a.probability(ta), 0.0);
  }
}

}  // namespace
}  // namespace bitnet
