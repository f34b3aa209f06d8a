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

// A token and its probability in the distribution a draw was made from.
struct TokenProbability {
  int32_t id;
  double p;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // Chooses the next token from raw logits; `history` = tokens so far (for the penalty).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
  const SamplingParams& params() const { return params_; }

  // The distribution the last sample() drew from, as the chain left it (llama-server's
  // post_sampling_probs): the n tokens ranked highest by the chain (adjusted logit, ties by id),
  // each with its probability after the chain — softmax at the temperature over the tokens that
  // survived top-k, top-p, min-p and bans, renormalized; 0 for the tokens the chain removed. Greedy:
  // 1 for the chosen token, 0 for every other. Fewer than n only when the vocabulary is smaller.
  std::vector<TokenProbability> distribution(size_t n);
  // The chosen token's probability in that distribution (0 for a token the chain removed).
  double probability(int32_t id) const;

 private:
  double uniform();  // [0, 1)
  SamplingParams params_;
  std::mt19937_64 rng_;
  // The last draw's candidates (adjusted logit, id): the first `sorted_` ranked, of which the first
  // `survivors_` kept by the chain with probabilities `probs_` (greedy: `sorted_` = 0, one survivor).
  std::vector<std::pair<float, int32_t>> candidates_;
  size_t sorted_ = 0, survivors_ = 0;
  std::vector<double> probs_;
  int32_t greedy_choice_ = -1;  // the last draw was greedy: its token
};

// Index of the largest logit (lowest id on ties).
int32_t argmax(std::span<const float> logits);

}  // namespace bitnet
