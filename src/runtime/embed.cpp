#include "runtime/embed.h"

#include <algorithm>
#include <cmath>
#include <deque>

#include "errors.h"
#include "model/batch.h"
#include "model/forward.h"

namespace bitnet {

std::optional<Pooling> parse_pooling(std::string_view name) {
  if (name == "none") return Pooling::None;
  if (name == "mean") return Pooling::Mean;
  if (name == "cls") return Pooling::Cls;
  if (name == "last") return Pooling::Last;
  return std::nullopt;
}

std::string_view pooling_name(Pooling p) {
  switch (p) {
    case Pooling::None: return "none";
    case Pooling::Mean: return "mean";
    case Pooling::Cls: return "cls";
    case Pooling::Last: return "last";
  }
  return "none";
}

void normalize_embedding(std::span<float> v, int norm) {
  if (norm < 0) return;
  double sum = 0;
  if (norm == 0) {  // max-abs, scaled to the int16 range (llama-embedding's --embd-normalize 0)
    for (float x : v) sum = std::max(sum, double(std::fabs(x)));
    sum /= 32760.0;
  } else if (norm == 1) {
    for (float x : v) sum += std::fabs(x);
  } else if (norm == 2) {
    for (float x : v) sum += double(x) * x;
    sum = std::sqrt(sum);
  } else {
    for (float x : v) sum += std::pow(std::fabs(double(x)), norm);
    sum = std::pow(sum, 1.0 / norm);
  }
  const float scale = sum > 0 ? float(1.0 / sum) : 0.0f;
  for (float& x : v) x *= scale;
}

std::vector<int32_t> tokenize_for_embedding(const Tokenizer& tok, std::string_view text) {
  return tok.encode(text, /*add_special=*/true, /*parse_special=*/true);
}

std::optional<Pooling> model_pooling(const Model& model) {
  switch (model.hp.pooling_type) {
    case 0: return Pooling::None;
    case 1: return Pooling::Mean;
    case 2: return Pooling::Cls;
    case 3: return Pooling::Last;
    default: return std::nullopt;  // absent, or rank (not supported: resolve() falls back)
  }
}

bool is_embedding_model(const Model& model) { return model.embedding_only(); }

Embedder::Embedder(const Model& model, int64_t n_ctx, int64_t n_seq, int64_t n_batch, ThreadPool& pool,
                   KvType type_k, KvType type_v)
    : model_(model),
      pool_(pool),
      cache_(model.hp.n_layer, std::max<int64_t>(1, n_seq), std::max<int64_t>(1, n_ctx), model.hp.n_head_kv,
             model.hp.head_dim, type_k, type_v),
      n_batch_(std::max<int64_t>(1, n_batch)) {}

Pooling Embedder::resolve(const EmbedOptions& options) const {
  if (options.pooling) return *options.pooling;
  return model_pooling(model_).value_or(Pooling::Last);
}

void Embedder::validate(std::span<const std::vector<int32_t>> inputs) const {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const int64_t n = int64_t(inputs[i].size());
    if (n == 0) throw Error("input " + std::to_string(i) + " is empty (no tokens to embed)");
    if (n > cache_.n_ctx())
      throw Error("input " + std::to_string(i) + " has " + std::to_string(n) +
                  " tokens, more than the context of " + std::to_string(cache_.n_ctx()) +
                  " tokens (raise -c / --ctx-size or shorten the input)");
    for (int32_t id : inputs[i])
      if (id < 0 || id >= model_.hp.n_vocab)
        throw Error("input " + std::to_string(i) + ": token id " + std::to_string(id) +
                    " is outside the vocabulary [0, " + std::to_string(model_.hp.n_vocab) + ")");
  }
}

std::vector<Embedding> Embedder::embed(std::span<const std::vector<int32_t>> inputs, const EmbedOptions& options) {
  validate(inputs);
  const Pooling pooling = resolve(options);
  const int64_t n_embd = model_.hp.n_embd;

  std::vector<Embedding> out(inputs.size());
  std::vector<std::vector<double>> mean_sums(inputs.size());
  // A sequence slot of the cache holds one input at a time; `next` is its next position.
  struct Active {
    size_t input;
    int64_t next;
  };
  std::vector<std::optional<Active>> slots(size_t(cache_.n_seq()));
  size_t next_input = 0;
  auto wants = [&](const std::vector<int32_t>& in, int64_t pos) {
    switch (pooling) {
      case Pooling::None:
      case Pooling::Mean: return true;
      case Pooling::Cls: return pos == 0;
      case Pooling::Last: return pos == int64_t(in.size()) - 1;
    }
    return false;
  };

  Batch batch;
  std::vector<std::pair<size_t, int64_t>> rows;  // (input, position) of each wanted row
  for (;;) {
    for (int64_t s = 0; s < cache_.n_seq(); ++s)
      if (!slots[size_t(s)] && next_input < inputs.size()) {
        slots[size_t(s)] = Active{next_input++, 0};
        cache_.clear(s);
      }
    batch.clear();
    rows.clear();
    // Tokens of the active inputs, slot after slot, up to n_batch.
    for (int64_t s = 0; s < cache_.n_seq() && batch.size() < n_batch_; ++s) {
      if (!slots[size_t(s)]) continue;
      Active& act = *slots[size_t(s)];
      const std::vector<int32_t>& in = inputs[act.input];
      while (act.next < int64_t(in.size()) && batch.size() < n_batch_) {
        const bool want = wants(in, act.next);
        batch.add(in[size_t(act.next)], int32_t(act.next), int32_t(s), want);
        if (want) rows.emplace_back(act.input, act.next);
        ++act.next;
      }
    }
    if (batch.size() == 0) break;
    const std::vector<float> hidden = forward_hidden(model_, cache_, batch, pool_);
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto [input, pos] = rows[r];
      const float* h = &hidden[r * size_t(n_embd)];
      Embedding& e = out[input];
      if (pooling == Pooling::Mean) {
        auto& sum = mean_sums[input];
        sum.resize(size_t(n_embd), 0.0);
        for (int64_t i = 0; i < n_embd; ++i) sum[size_t(i)] += h[i];
      } else {
        e.values.insert(e.values.end(), h, h + n_embd);
      }
    }
    // Inputs whose last token went through are done: free their slots.
    for (auto& slot : slots)
      if (slot && slot->next == int64_t(inputs[slot->input].size())) slot.reset();
  }

  for (size_t i = 0; i < inputs.size(); ++i) {
    Embedding& e = out[i];
    e.n_tokens = int64_t(inputs[i].size());
    if (pooling == Pooling::Mean) {
      e.values.resize(size_t(n_embd));
      for (int64_t k = 0; k < n_embd; ++k)
        e.values[size_t(k)] = float(mean_sums[i][size_t(k)] / double(e.n_tokens));
    }
    for (size_t row = 0; row < e.values.size(); row += size_t(n_embd))
      normalize_embedding(std::span<float>(e.values.data() + row, size_t(n_embd)), options.normalize);
  }
  return out;
}

}  // namespace bitnet
