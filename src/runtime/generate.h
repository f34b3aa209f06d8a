#pragma once
// The decode loop shared by `run` and the server: sample, stop on end-of-generation / token limit
// / full context, append, repeat.
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "grammar/constraint.h"
#include "runtime/session.h"
#include "sampling/sampler.h"

namespace bitnet {

enum class StopReason { EndOfGeneration, TokenLimit, ContextFull, Cancelled };
const char* stop_reason_name(StopReason r);

struct GenerateOptions {
  int64_t n_predict = -1;  // < 0: until end of generation or a full context
  bool ignore_eos = false;
  // Optional: only tokens the grammar allows are sampled (the first choice is checked alone; the
  // full mask is applied and the draw repeated only when it is refused: grammar/constraint.h).
  // The grammar allows end-of-generation only where it can end, and it ends generation then,
  // even with ignore_eos.
  GrammarConstraint* grammar = nullptr;
  // A full context: stop with ContextFull (false), or shift it (Session::shift_context, keeping
  // the first n_keep tokens: resolve_n_keep's count) and go on.
  bool context_shift = false;
  int64_t n_keep = 0;
};

// Generates after the tokens already in `session` (whose last logits are `logits`). on_token gets
// each sampled token and returns false to cancel. The end-of-generation token is not appended.
// With options.context_shift a full context is shifted before the next token is appended.
StopReason generate(Session& session, std::span<const float> logits, Sampler& sampler,
                    const GenerateOptions& options,
                    const std::function<bool(int32_t token)>& on_token);

}  // namespace bitnet
