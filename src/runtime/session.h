#pragma once
// One generation stream over a loaded model: a single-sequence KV cache, the tokens it holds, and
// llama.cpp-style timings. Used by `run`, `perplexity` and the server's single-slot paths.
#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/thread_pool.h"
#include "model/forward.h"
#include "runtime/context_shift.h"

namespace bitnet {

struct Timings {
  double load_ms = 0;
  double prompt_ms = 0;
  int64_t prompt_tokens = 0;
  double eval_ms = 0;
  int64_t eval_tokens = 0;
  double sample_ms = 0;
  int64_t sampled = 0;
  // Grammar-constrained sampling (GenerateOptions::grammar): time in the constraint (checks, masks,
  // advancing its state) and the number of full masks computed (refused first choices).
  bool grammar = false;
  double grammar_ms = 0;
  int64_t grammar_masks = 0;
  // Context shifts (Session::shift_context): how many, and the tokens evaluated again after them.
  int64_t shifts = 0;
  int64_t shift_tokens = 0;
  double shift_ms = 0;
};

class Session {
 public:
  // type_k / type_v: the KV cache's storage (-ctk / -ctv).
  Session(const Model& model, int64_t n_ctx, int n_threads, int64_t n_batch, KvType type_k = KvType::F16,
          KvType type_v = KvType::F16);

  // Makes the cache hold exactly `tokens`, evaluating only what differs from what it holds
  // (prefix reuse), in chunks of n_batch. Returns the logits after the last token.
  std::span<const float> set_tokens(std::span<const int32_t> tokens);
  // Appends one token and returns its logits. Throws Error when the context is full.
  std::span<const float> append(int32_t token);
  // Context shift (runtime/context_shift.h): keeps the first n_keep tokens (clamped so that
  // something is dropped), drops n_discard of the rest (0: half of them) and evaluates the tokens
  // after the dropped run again, so the cache holds exactly what set_tokens(tokens()) would give
  // from scratch. Returns what was kept and dropped. The last logits are not changed: append the
  // next token to get fresh ones.
  ContextShift shift_context(int64_t n_keep, int64_t n_discard = 0);
  // Evaluates tokens as one sequence from position 0 and returns logits for every position
  // (n × n_vocab), for perplexity.
  std::vector<float> evaluate_all(std::span<const int32_t> tokens);

  const std::vector<int32_t>& tokens() const { return tokens_; }
  int64_t n_ctx() const { return cache_.n_ctx(); }
  const Model& model() const { return model_; }
  ThreadPool& pool() { return pool_; }
  Timings timings;

 private:
  std::vector<float> run(std::span<const int32_t> tokens, int64_t first_pos, bool all_logits);

  const Model& model_;
  ThreadPool pool_;
  KvCache cache_;
  int64_t n_batch_;
  std::vector<int32_t> tokens_;
  std::vector<float> last_logits_;
};

double elapsed_ms(std::chrono::steady_clock::time_point since);

// llama-perplexity's scoring of one chunk (its first token already set to BOS where the vocabulary
// has one): evaluated from position 0, then the negative log-likelihood of each next token for the
// positions in the second half, [n/2, n − 1). Used by `bitnet perplexity` and the default-model test.
std::vector<double> chunk_nll(Session& session, std::span<const int32_t> chunk);

}  // namespace bitnet
