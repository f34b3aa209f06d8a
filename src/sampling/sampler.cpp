#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace bitnet {

std::string validate(const SamplingParams& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0)
    return "temperature must be a finite value ≥ 0";
  if (!(p.top_p > 0 && p.top_p <= 1)) return "top-p must be in (0, 1]";
  if (!(p.min_p >= 0 && p.min_p < 1)) return "min-p must be in [0, 1)";
  if (!std::isfinite(p.repeat_penalty) || p.repeat_penalty <= 0)
    return "repeat-penalty must be a finite value > 0";
  if (p.repeat_last_n < 0) return "repeat-last-n must be ≥ 0";
  return "";
}

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[size_t(best)]) best = int32_t(i);
  return best;
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

double Sampler::uniform() { return double(rng_() >> 11) * 0x1.0p-53; }

namespace {

// Ranking of the chain: higher logit first, ties by lower id.
bool by_logit(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

}  // namespace

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  candidates_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) candidates_[i] = {logits[i], int32_t(i)};
  for (const auto& [id, bias] : params_.logit_bias)
    if (id >= 0 && size_t(id) < candidates_.size()) candidates_[size_t(id)].first += bias;

  // Repetition penalty (CTRL-style, as llama.cpp): divide positive logits, multiply negative ones.
  if (params_.repeat_penalty != 1.0f && params_.repeat_last_n > 0) {
    const size_t n = std::min(history.size(), size_t(params_.repeat_last_n));
    std::unordered_set<int32_t> seen(history.end() - ptrdiff_t(n), history.end());
    for (int32_t id : seen) {
      if (id < 0 || size_t(id) >= candidates_.size()) continue;
      float& l = candidates_[size_t(id)].first;
      l = l > 0 ? l / params_.repeat_penalty : l * params_.repeat_penalty;
    }
  }
  if (params_.temperature <= 0) {
    greedy_choice_ = std::min_element(candidates_.begin(), candidates_.end(), by_logit)->second;
    sorted_ = 0;
    survivors_ = 1;
    probs_.clear();
    return greedy_choice_;
  }
  greedy_choice_ = -1;
  size_t keep = candidates_.size();
  if (params_.top_k > 0) keep = std::min(keep, size_t(params_.top_k));
  std::partial_sort(candidates_.begin(), candidates_.begin() + ptrdiff_t(keep), candidates_.end(), by_logit);
  sorted_ = keep;
  // The survivors are always the first n of the ranking; the rest stay (ranked) for distribution().
  size_t n = keep;
  // −∞ (a banned token: logit bias, grammar mask) is never drawn, even through rounding below.
  while (n > 1 && std::isinf(candidates_[n - 1].first) && candidates_[n - 1].first < 0) --n;

  // Probabilities at temperature 1 for the truncation rules (llama.cpp order: top-k, top-p,
  // min-p, then temperature).
  auto softmax = [&](float temp) {
    std::vector<double> p(n);
    double sum = 0;
    for (size_t i = 0; i < p.size(); ++i)
      sum += p[i] = std::exp(double(candidates_[i].first - candidates_[0].first) / temp);
    for (double& x : p) x /= sum;
    return p;
  };
  std::vector<double> p = softmax(1.0f);
  if (params_.top_p < 1.0f) {
    double cum = 0;
    size_t k = 0;
    while (k < p.size()) {
      cum += p[k++];
      if (cum >= params_.top_p) break;
    }
    n = k;
    p.resize(n);
  }
  if (params_.min_p > 0) {
    const double threshold = p[0] * params_.min_p;
    size_t k = 1;
    while (k < p.size() && p[k] >= threshold) ++k;
    n = k;
  }
  survivors_ = n;
  probs_ = softmax(params_.temperature);
  double r = uniform();
  for (size_t i = 0; i < probs_.size(); ++i) {
    if (r < probs_[i]) return candidates_[i].second;
    r -= probs_[i];
  }
  return candidates_[n - 1].second;
}

std::vector<TokenProbability> Sampler::distribution(size_t n) {
  n = std::min(n, candidates_.size());
  if (n > sorted_) {  // rank just enough more of the tokens the chain removed (or, greedy, all of them)
    std::partial_sort(candidates_.begin() + ptrdiff_t(sorted_), candidates_.begin() + ptrdiff_t(n), candidates_.end(),
                      by_logit);
    sorted_ = n;
  }
  std::vector<TokenProbability> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = candidates_[i].second;
    const double p = greedy_choice_ >= 0 ? (id == greedy_choice_ ? 1.0 : 0.0) : i < survivors_ ? probs_[i] : 0.0;
    out.push_back({id, p});
  }
  return out;
}

double Sampler::probability(int32_t id) const {
  if (greedy_choice_ >= 0) return id == greedy_choice_ ? 1.0 : 0.0;
  for (size_t i = 0; i < survivors_ && i < candidates_.size(); ++i)
    if (candidates_[i].second == id) return probs_[i];
  return 0.0;
}

}  // namespace bitnet
