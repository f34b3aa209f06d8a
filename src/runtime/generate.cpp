#include "runtime/generate.h"

#include <chrono>
#include <vector>

namespace bitnet {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::EndOfGeneration: return "stop";
    case StopReason::TokenLimit: return "length";
    case StopReason::ContextFull: return "context_full";
    case StopReason::Cancelled: return "cancelled";
  }
  return "?";
}

StopReason generate(Session& session, std::span<const float> logits, Sampler& sampler,
                    const GenerateOptions& options,
                    const std::function<bool(int32_t token)>& on_token) {
  const Tokenizer* tok = session.model().tokenizer.get();
  std::vector<float> current(logits.begin(), logits.end());
  for (int64_t n = 0; options.n_predict < 0 || n < options.n_predict; ++n) {
    const auto start = std::chrono::steady_clock::now();
    int32_t token = sampler.sample(current, session.tokens());
    session.timings.sample_ms += elapsed_ms(start);
    session.timings.sampled += 1;
    if (GrammarConstraint* g = options.grammar) {
      Timings& t = session.timings;
      t.grammar = true;
      auto g0 = std::chrono::steady_clock::now();
      if (!g->allows(token)) {
        g->apply(current);
        t.grammar_masks += 1;
        t.grammar_ms += elapsed_ms(g0);
        const auto s1 = std::chrono::steady_clock::now();
        token = sampler.sample(current, session.tokens());
        t.sample_ms += elapsed_ms(s1);
        g0 = std::chrono::steady_clock::now();
        if (!g->allows(token))
          throw GrammarError("grammar: the sampler chose token " + std::to_string(token) +
                             ", which the grammar does not allow (a +inf logit bias?)");
      }
      g->accept(token);
      t.grammar_ms += elapsed_ms(g0);
      if (g->ended()) return StopReason::EndOfGeneration;
    }
    const bool eog = tok && tok->is_end_of_generation(token);
    if (eog && !options.ignore_eos) return StopReason::EndOfGeneration;
    if (!on_token(token)) return StopReason::Cancelled;
    // llama.cpp's rule (llama-cli, llama-server): the context is full once the tokens so far and
    // this one fill it — prompt + generated ≤ n_ctx; the last token is never evaluated.
    if (int64_t(session.tokens().size()) + 1 >= session.n_ctx()) {
      if (!options.context_shift) return StopReason::ContextFull;
      session.shift_context(options.n_keep);
    }
    const auto next = session.append(token);
    current.assign(next.begin(), next.end());
  }
  return StopReason::TokenLimit;
}

}  // namespace bitnet
