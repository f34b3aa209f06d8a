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

}  // namespace
}  // namespace bitnet
