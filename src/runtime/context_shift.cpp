#include "runtime/context_shift.h"

#include <algorithm>
#include <string>

#include "errors.h"

namespace bitnet {

int64_t resolve_n_keep(int64_t n_keep, int64_t n_prompt, bool leading_bos) {
  if (n_keep < 0) return std::max<int64_t>(0, n_prompt);
  return n_keep + (leading_bos ? 1 : 0);
}

ContextShift plan_context_shift(int64_t n_past, int64_t n_keep, int64_t n_discard) {
  if (n_past < 1) throw Error("context shift of an empty sequence");
  ContextShift s;
  s.n_keep = std::clamp<int64_t>(n_keep, 0, std::max<int64_t>(0, n_past - 4));
  const int64_t left = n_past - s.n_keep;  // ≥ 1
  s.n_discard = n_discard > 0 ? std::min(n_discard, left) : std::max<int64_t>(1, left / 2);
  return s;
}

std::vector<int32_t> apply_context_shift(KvCache& cache, int64_t seq, std::vector<int32_t>& tokens,
                                         const ContextShift& shift) {
  const int64_t n = int64_t(tokens.size());
  if (cache.length(seq) != n)
    throw Error("context shift: sequence " + std::to_string(seq) + " holds " + std::to_string(cache.length(seq)) +
                " positions, not the " + std::to_string(n) + " tokens given");
  if (shift.n_keep < 0 || shift.n_discard < 1 || shift.n_keep + shift.n_discard > n)
    throw Error("context shift: keeping " + std::to_string(shift.n_keep) + " and dropping " +
                std::to_string(shift.n_discard) + " does not fit " + std::to_string(n) + " tokens");
  std::vector<int32_t> tail(tokens.begin() + ptrdiff_t(shift.n_keep + shift.n_discard), tokens.end());
  tokens.resize(size_t(shift.n_keep));
  cache.set_length(seq, shift.n_keep);
  return tail;
}

}  // namespace bitnet
