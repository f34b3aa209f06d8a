#pragma once
// Token sampling: logit bias → repetition penalty → top-k → top-p → min-p → temperature → draw, with a seeded
// RNG (mt19937_64, whose sequence is fixed by the C++ standard) and no std::*_distribution (their
// output differs between standard libraries). Greedy when temperature ≤ 0. Single-threaded, so the
// chosen tokens never depend on the thread count.
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace bitnet {

struct SamplingParams {
  float temperature = 0.8f;
  int32_t top_k = 40;      // ≤ 0: off
  float top_p = 0.95f;     // 1: off
  float min_p = 0.05f;     // 0: off
  float repeat_penalty = 1.0f;  // 1: off
  int32_t repeat_last_n = 64;
  uint64_t seed = 0;
  // Added to a token's logit before everything else (OpenAI's logit_bias); −∞ bans the token.
  std::vector<std::pair<int32_t, float>> logit_bias;
};

// Empty string if valid, else a message naming the bad value.
std::string validate(const SamplingParams& p);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // Chooses the next token from raw logits; `history` = tokens so far (for the penalty).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
  const SamplingParams& params() const { return params_; }

 private:
  double uniform();  // [0, 1)
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

// Index of the largest logit (lowest id on ties).
int32_t argmax(std::span<const float> logits);

}  // namespace bitnet
