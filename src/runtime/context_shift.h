#pragma once
// llama.cpp's context shift (`--context-shift`): when a sequence fills its context, keep its first
// n_keep tokens, drop half of the rest and go on generating. One implementation for `bitnet run`
// (Session::shift_context) and `bitnet serve` (the engine's slots).
//
// The tokens after the dropped run are evaluated again at their new positions instead of having
// their cached keys re-rotated: the kept prefix stays in the cache as it is (it never attended to
// the dropped tokens), and the rest is recomputed, so the sequence's cache afterwards is exactly
// what a fresh evaluation of the remaining tokens gives — with either cache type (f16, q8_0; bit
// for bit on the CPU, tests/runtime/context_shift_test.cpp), and through the same forward pass with
// -ngl. Re-rotating keys (llama.cpp's way) would be cheaper but approximate: the
// moved positions' keys and values of every layer after the first were computed while attending
// to the dropped tokens, and f16 / q8_0 keys would be rounded again. The cost is a prompt pass over
// at most half the context per shift (docs/server.md, "Context shift").
#include <cstdint>
#include <vector>

#include "model/kv_cache.h"

namespace bitnet {

struct ContextShift {
  int64_t n_keep = 0;     // tokens at the start that stay where they are
  int64_t n_discard = 0;  // tokens dropped right after them (≥ 1)
};

// llama.cpp's n_keep for a sequence that starts with an `n_prompt`-token prompt: -1 keeps the
// whole prompt; n ≥ 0 keeps n tokens after a leading BOS (`leading_bos`: the sequence starts with
// the vocabulary's BOS), which always stays, as llama-server's `n_keep += add_bos` does.
int64_t resolve_n_keep(int64_t n_keep, int64_t n_prompt, bool leading_bos);

// The shift of a sequence holding `n_past` tokens (≥ 1): n_keep clamped so that at least 4
// tokens follow the kept ones (llama-server keeps at most n_ctx − 4), then `n_discard` of those
// dropped — the requested count (llama-server's request field; at most all of them) or, when it
// is 0, half of them (at least one).
ContextShift plan_context_shift(int64_t n_past, int64_t n_keep, int64_t n_discard = 0);

// Applies `shift` to sequence `seq` of `cache`, which holds `tokens` (positions [0, size)):
// `tokens` keeps its first n_keep entries, the cache keeps those positions as they are, and the
// returned tokens — those after the dropped run — must be evaluated again from position n_keep
// (then `tokens` is kept + returned, as a fresh evaluation would have it). Throws Error if the
// cache's length is not tokens.size() or the shift does not fit the tokens.
std::vector<int32_t> apply_context_shift(KvCache& cache, int64_t seq, std::vector<int32_t>& tokens,
                                         const ContextShift& shift);

}  // namespace bitnet
