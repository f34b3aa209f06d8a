#pragma once
// Causal attention of query vectors over one key/value head of one sequence of the f16 KV cache.
// The positions of a sequence are cut into fixed spans of kAttentionSpan positions; each span gives
// every query a partial result (its largest score, Σ e and Σ e·v), and the spans are merged in
// order (flash-decoding). The spans of one head can run on different threads (a decode step at
// depth) or one after another (attend()): the numbers are the same either way, and many queries of
// the same sequence (prompt processing) share the reading of the cache without changing any of
// them.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kernels/cpu_features.h"

namespace bitnet {

// One kv head of one sequence, in KvCache's layout: dimension d of the key of position p at
// keys[(p / 8)·key_block_stride + d·8 + p % 8], value dimension d at values[p·value_stride + d].
// A q8_0 side (KvCache with -ctk/-ctv q8_0) sets key_codes / value_codes instead (int8 codes in
// the same places, keys/values unused) and its f16 scales, one per 32 dimensions: the key scale of
// dimensions [32j, 32j+32) of position p at key_scales[(p / 8)·(head_dim/32)·8 + j·8 + p % 8], the
// value scale at value_scales[p·(head_dim/32) + j] (value_stride is head_dim then). Such a side is
// converted to f32 chunk by chunk (code·scale, exact) and runs the f32 kernels.
struct KvHead {
  const uint16_t* keys;
  int64_t key_block_stride;
  const uint16_t* values;
  int64_t value_stride;
  int64_t head_dim;
  const int8_t* key_codes = nullptr;
  const uint16_t* key_scales = nullptr;
  const int8_t* value_codes = nullptr;
  const uint16_t* value_scales = nullptr;
};

// One query row: head_dim floats in, head_dim floats out, attending to positions
// [kv_begin, n_kv) (kv_begin > 0: a sliding-window layer).
struct AttentionQuery {
  const float* q;
  float* out;
  int64_t n_kv;
  int64_t kv_begin = 0;
};

// Positions per span: span j holds positions [j·kAttentionSpan, (j+1)·kAttentionSpan). A constant
// (never the thread count), so the arithmetic of an output depends only on its query.
inline constexpr int64_t kAttentionSpan = 256;
// The spans a query of n_kv positions has (some may be empty for it: before a window).
constexpr int64_t attention_spans(int64_t n_kv) { return (n_kv + kAttentionSpan - 1) / kAttentionSpan; }

// One query's result over one span. `acc` is the caller's storage for head_dim floats.
struct SpanPartial {
  float* acc;                // Σ_p e_p·v_p over the span's positions
  float max = -INFINITY;     // largest scaled score of the span; −∞: no position of the query here
  double sum = 0;            // Σ_p e_p
};

// The arithmetic, which depends only on the query itself, its n_kv and kv_begin and the cache — so
// any grouping of queries into calls, any split of spans over threads gives the same bits:
//   score_p = Σ_d q_d·k_p,d, one sequential chain d = 0 .. head_dim-1 (fused multiply-adds on the
//             x86 SIMD levels, multiply then add on Generic), then × scale, in f32;
//   per span: m = max_p score_p (f32); e_p = exp(score_p − m) in f32 (std::exp on Generic, a
//             vectorized polynomial on the SIMD levels); sum = Σ_p e_p in double with partial sums
//             by p mod 4 (Generic) or 8 (x86 SIMD); acc_d = Σ_p e_p·v_p,d, one chain over the
//             span's positions in order (fma per element on the SIMD levels);
//   merge:    the spans in order j = 0, 1, …, skipping empty ones, folded in double: the first
//             gives (M, T, A_d) = (m, sum, acc_d); each next one with c = exp(−|m − M|) (std::exp
//             in double) scales whichever side has the smaller max by c: T = T·c + sum or T + c·sum
//             (A_d likewise), and M = max(M, m); out_d = float(A_d · (1 / T)).
// Positions before kv_begin take part in a span with e_p = 0 exactly; a span wholly before it is
// empty. AVX-512 runs AVX2's arithmetic on wider registers (the same bits); Generic has its own.
void attend(kernels::Isa isa, const KvHead& kv, std::span<const AttentionQuery> queries, float scale);

// Span `span` of each query: partials[i] gets queries[i]'s partial result (max = −∞ where the
// query has no position in the span: span ≥ attention_spans(n_kv), or before kv_begin).
void attend_span(kernels::Isa isa, const KvHead& kv, std::span<const AttentionQuery> queries, float scale,
                 int64_t span, std::span<SpanPartial> partials);

// out = the merge of one query's spans 0 .. attention_spans(n_kv)-1, given in order (attend() is
// attend_span for every span, then this).
void merge_spans(std::span<const SpanPartial> spans, int64_t head_dim, float* out);

// Attention of groups of queries — each group the queries of one kv head of one sequence — cut
// into work items of one (group, span) that any thread may run in any order, at the same time;
// the thread that completes a group's last span merges the group's outputs. Every output equals
// attend() on its group, bit for bit. The storage for the partial results is kept between uses.
class SpanWork {
 public:
  // Forgets the groups.
  void clear(kernels::Isa isa, float scale, int64_t head_dim);
  // A group (its queries are copied); returns its index.
  int64_t add(const KvHead& kv, std::span<const AttentionQuery> queries);
  // After the last add, before the first run: lays out the partial results and arms every group.
  // Returns the number of items: group after group, each group's spans in order.
  int64_t plan();
  int64_t n_items() const { return groups_.empty() ? 0 : groups_.back().first_item + groups_.back().n_spans; }
  // The first item of a group (n_groups: n_items()).
  int64_t first_item(int64_t group) const;
  // Points a planned group at another kv head of the same length (its queries unchanged: the next
  // layer's cache, say) and re-arms it. Not while the group's items run.
  void set_kv(int64_t group, const KvHead& kv);
  // Runs one item; each item of a plan (or of a re-armed group) exactly once.
  void run(int64_t item);

 private:
  struct Group {
    KvHead kv;
    int64_t first_query, n_queries, n_spans = 0, first_item = 0, first_partial = 0;
  };
  kernels::Isa isa_ = kernels::Isa::Generic;
  float scale_ = 1;
  int64_t head_dim_ = 0;
  std::vector<Group> groups_;
  std::vector<AttentionQuery> queries_;
  std::vector<int64_t> item_group_;
  std::vector<float> acc_;
  std::vector<SpanPartial> partials_;  // per group: [span][query]
  std::unique_ptr<std::atomic<int64_t>[]> done_;  // spans completed, per group
  size_t done_size_ = 0;
};

// The level attend() uses in the forward pass: kernels::active_isa(), or Generic when
// BITNET_KERNELS=reference.
kernels::Isa attention_isa();

}  // namespace bitnet
