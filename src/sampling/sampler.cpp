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
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  if (params_.temperature <= 0) {
    return std::min_element(candidates_.begin(), candidates_.end(), by_logit)->second;
  }
  size_t keep = candidates_.size();
  if (params_.top_k > 0) keep = std::min(keep, size_t(params_.top_k));
  std::partial_sort(candidates_.begin(), candidates_.begin() + ptrdiff_t(keep), candidates_.end(),
                    by_logit);
  candidates_.resize(keep);
  // −∞ (a banned token: logit bias, grammar mask) is never drawn, even through rounding below.
  while (candidates_.size() > 1 && std::isinf(candidates_.back().first) && candidates_.back().first < 0)
    candidates_.pop_back();

  // Probabilities at temperature 1 for the truncation rules (llama.cpp order: top-k, top-p,
  // min-p, then temperature).
  auto softmax = [&](float temp) {
    std::vector<double> p(candidates_.size());
    double sum = 0;
    for (size_t i = 0; i < p.size(); ++i)
      sum += p[i] = std::exp(double(candidates_[i].first - candidates_[0].first) / temp);
    for (double& x : p) x /= sum;
    return p;
  };
  std::vector<double> p = softmax(1.0f);
  if (params_.top_p < 1.0f) {
    double cum = 0;
    size_t n = 0;
    while (n < p.size()) {
      cum += p[n++];
      if (cum >= params_.top_p) break;
    }
    candidates_.resize(n);
    p.resize(n);
  }
  if (params_.min_p > 0) {
    const double threshold = p[0] * params_.min_p;
    size_t n = 1;
    while (n < p.size() && p[n] >= threshold) ++n;
    candidates_.resize(n);
  }
  p = softmax(params_.temperature);
  double r = uniform();
  for (size_t i = 0; i < p.size(); ++i) {
    if (r < p[i]) return candidates_[i].second;
    r -= p[i];
  }
  return candidates_.back().second;
}

}  // namespace bitnet
