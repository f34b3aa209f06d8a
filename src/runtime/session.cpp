#include "runtime/session.h"

#include <algorithm>
#include <cmath>

#include "backends/cuda/offload.h"
#include "errors.h"

namespace bitnet {

double elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
}

Session::Session(const Model& model, int64_t n_ctx, int n_threads, int64_t n_batch, KvType type_k, KvType type_v)
    : model_(model),
      pool_(n_threads),
      cache_(model.hp.n_layer, 1, n_ctx, model.hp.n_head_kv, model.hp.head_dim, type_k, type_v),
      n_batch_(std::max<int64_t>(1, n_batch)) {
  // -ngl: the GPU layers' cache and scratch now, not inside the first timed forward pass.
  if (model.gpu) cuda::prepare_cache(*model.gpu, cache_, std::min(n_batch_, n_ctx));
}

std::vector<float> Session::run(std::span<const int32_t> tokens, int64_t first_pos, bool all_logits) {
  std::vector<float> out;
  for (size_t begin = 0; begin < tokens.size(); begin += size_t(n_batch_)) {
    const size_t end = std::min(tokens.size(), begin + size_t(n_batch_));
    Batch b;
    for (size_t i = begin; i < end; ++i)
      b.add(tokens[i], int32_t(first_pos + int64_t(i)), 0, all_logits || i + 1 == tokens.size());
    std::vector<float> logits = forward(model_, cache_, b, pool_);
    out.insert(out.end(), logits.begin(), logits.end());
  }
  return out;
}

std::span<const float> Session::set_tokens(std::span<const int32_t> tokens) {
  if (tokens.empty()) throw Error("empty prompt: nothing to evaluate");
  if (int64_t(tokens.size()) > cache_.n_ctx())
    throw Error("prompt is too long: " + std::to_string(tokens.size()) +
                " tokens do not fit in a context of " + std::to_string(cache_.n_ctx()) +
                " (raise -c / --ctx-size)");
  size_t common = 0;
  while (common < tokens_.size() && common < tokens.size() && tokens_[common] == tokens[common])
    ++common;
  // Re-evaluate at least the last token so its logits are fresh.
  if (common == tokens.size()) --common;
  const auto start = std::chrono::steady_clock::now();
  tokens_.assign(tokens.begin(), tokens.begin() + ptrdiff_t(common));
  cache_.set_length(0, int64_t(common));
  last_logits_ = run(tokens.subspan(common), int64_t(common), false);
  tokens_.assign(tokens.begin(), tokens.end());
  timings.prompt_ms += elapsed_ms(start);
  timings.prompt_tokens += int64_t(tokens.size() - common);
  return last_logits_;
}

std::span<const float> Session::append(int32_t token) {
  if (int64_t(tokens_.size()) >= cache_.n_ctx())
    throw Error("context is full (" + std::to_string(cache_.n_ctx()) +
                " tokens); raise -c / --ctx-size");
  const auto start = std::chrono::steady_clock::now();
  const int32_t one[1] = {token};
  last_logits_ = run(one, int64_t(tokens_.size()), false);
  tokens_.push_back(token);
  timings.eval_ms += elapsed_ms(start);
  timings.eval_tokens += 1;
  return last_logits_;
}

ContextShift Session::shift_context(int64_t n_keep, int64_t n_discard) {
  const auto start = std::chrono::steady_clock::now();
  const ContextShift shift = plan_context_shift(int64_t(tokens_.size()), n_keep, n_discard);
  const std::vector<int32_t> tail = apply_context_shift(cache_, 0, tokens_, shift);
  if (!tail.empty()) run(tail, shift.n_keep, false);
  tokens_.insert(tokens_.end(), tail.begin(), tail.end());
  timings.shifts += 1;
  timings.shift_tokens += int64_t(tail.size());
  timings.shift_ms += elapsed_ms(start);
  return shift;
}

std::vector<float> Session::evaluate_all(std::span<const int32_t> tokens) {
  if (int64_t(tokens.size()) > cache_.n_ctx()) throw Error("chunk longer than the context");
  const auto start = std::chrono::steady_clock::now();
  cache_.clear(0);
  tokens_.clear();
  std::vector<float> logits = run(tokens, 0, true);
  tokens_.assign(tokens.begin(), tokens.end());
  timings.prompt_ms += elapsed_ms(start);
  timings.prompt_tokens += int64_t(tokens.size());
  return logits;
}

std::vector<double> chunk_nll(Session& session, std::span<const int32_t> chunk) {
  const int64_t n = int64_t(chunk.size()), n_vocab = session.model().hp.n_vocab;
  const std::vector<float> logits = session.evaluate_all(chunk);
  std::vector<double> nll;
  for (int64_t j = n / 2; j < n - 1; ++j) {
    const float* row = &logits[size_t(j * n_vocab)];
    double max = row[0];
    for (int64_t v = 1; v < n_vocab; ++v) max = std::max(max, double(row[v]));
    double sum = 0;
    for (int64_t v = 0; v < n_vocab; ++v) sum += std::exp(double(row[v]) - max);
    nll.push_back(-(double(row[chunk[size_t(j + 1)]]) - max - std::log(sum)));
  }
  return nll;
}

}  // namespace bitnet
