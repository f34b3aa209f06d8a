#include "model/forward.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>

#include "backends/cuda/offload.h"
#include "errors.h"
#include "model/attention.h"
#include "model/decode_step.h"
#include "ops/ops.h"

namespace bitnet {
namespace {

// Per-batch activations, named like the spec (architectures.md §2.3).
// Every buffer is written before it is read in each forward pass. They are kept per thread and
// only grow: fresh buffers for a 512-token batch of 2B-4T are ~50 MB to fault in again in every
// call (page clearing was 7.5% of a pp512 profile before, part of it these buffers).
struct Activations {
  int64_t n = 0;
  std::vector<float> x, h, q, k, v, attn_out, proj, gate, up;
  std::vector<float> normed_in;  // a projection's own input norm (BitNet-embedding models)
  void resize(const HParams& hp, int64_t n_tokens) {
    n = n_tokens;
    normed_in.resize(size_t(n * std::max({hp.n_embd, hp.q_dim(), hp.n_ff})));
    x.resize(size_t(n * hp.n_embd));
    h.resize(size_t(n * hp.n_embd));
    q.resize(size_t(n * hp.q_dim()));
    k.resize(size_t(n * hp.kv_dim()));
    v.resize(size_t(n * hp.kv_dim()));
    attn_out.resize(size_t(n * hp.q_dim()));
    proj.resize(size_t(n * hp.n_embd));
    gate.resize(size_t(n * hp.n_ff));
    up.resize(size_t(n * hp.n_ff));
  }
};

void validate(const Model& m, const KvCache& cache, const Batch& b) {
  if (m.gpu && (cache.type_k() != KvType::F16 || cache.type_v() != KvType::F16))
    throw Error("-ctk/-ctv q8_0 run on the CPU only: the GPU layers (-ngl) keep an f16 cache");
  // A token may only follow positions that are already filled, so attention never reads an
  // unwritten cache cell.
  std::vector<int64_t> next(size_t(cache.n_seq()));
  for (int64_t s = 0; s < cache.n_seq(); ++s) next[size_t(s)] = cache.length(s);
  for (int64_t i = 0; i < b.size(); ++i) {
    if (b.tokens[i] < 0 || b.tokens[i] >= m.hp.n_vocab)
      throw Error("token id " + std::to_string(b.tokens[i]) + " is outside the vocabulary [0, " +
                  std::to_string(m.hp.n_vocab) + ")");
    if (b.seq_ids[i] < 0 || b.seq_ids[i] >= cache.n_seq())
      throw Error("sequence id " + std::to_string(b.seq_ids[i]) + " is out of range");
    if (b.positions[i] < 0) throw Error("negative position in batch");
    if (b.positions[i] >= cache.n_ctx())
      throw Error("context is full: position " + std::to_string(b.positions[i]) +
                  " does not fit in a context of " + std::to_string(cache.n_ctx()) +
                  " tokens (raise -c / --ctx-size)");
    int64_t& nx = next[size_t(b.seq_ids[i])];
    if (b.positions[i] > nx)
      throw Error("position " + std::to_string(b.positions[i]) + " of sequence " +
                  std::to_string(b.seq_ids[i]) + " leaves a gap after position " +
                  std::to_string(nx - 1));
    nx = std::max<int64_t>(nx, b.positions[i] + 1);
  }
}

// fn(t) for every token of a batch, tokens split over the pool. Each token's values are computed
// by one thread in a fixed order, so results do not depend on the thread count; one token (decode)
// runs inline on the caller.
template <class Fn>
void for_each_token(ThreadPool& pool, int64_t n, const Fn& fn) {
  pool.parallel_for(n, 1, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) fn(t);
  });
}

void norm_rows(const float* in, const std::vector<float>& gain, int64_t n_rows, float eps,
               float* out, ThreadPool& pool) {
  const int64_t width = int64_t(gain.size());
  for_each_token(pool, n_rows, [&](int64_t t) {
    ops::rms_norm(in + t * width, gain.data(), width, eps, out + t * width);
  });
}

// y = scale · (w x) for each (w, scale, y) of a group sharing the input `in` (q/k/v, gate/up): the
// input is quantized once and the products run as one parallel job.
struct Projection {
  const TensorView& w;
  float scale;
  float* y;
};
void linear(std::initializer_list<Projection> group, const ops::MatmulInput& in, ThreadPool& pool) {
  std::vector<const TensorView*> ws;
  std::vector<float*> ys;
  for (const Projection& p : group) ws.push_back(&p.w), ys.push_back(p.y);
  ops::matmul_group(ws, in, ys, pool);
  for (const Projection& p : group)
    if (p.scale != 1.0f)
      for (int64_t i = 0; i < in.n_tokens() * p.w.rows(); ++i) p.y[i] *= p.scale;
}

// y = scale · (w · RMSNorm(in; norm_in)) for a projection with its own input norm (BitNet-
// embedding models: each projection is a BitLinear with its norm), else the plain product.
void project(const TensorView& w, float scale, const std::vector<float>& norm_in, const float* in,
             int64_t n, float* y, float eps, std::vector<float>& scratch, ThreadPool& pool) {
  if (norm_in.empty()) {
    linear({{w, scale, y}}, ops::MatmulInput(in, w.input_cols(), n), pool);
    return;
  }
  norm_rows(in, norm_in, n, eps, scratch.data(), pool);
  linear({{w, scale, y}}, ops::MatmulInput(scratch.data(), w.input_cols(), n), pool);
}

void add_into(std::vector<float>& x, const std::vector<float>& delta, int64_t n_rows, ThreadPool& pool) {
  const int64_t width = int64_t(x.size()) / n_rows;
  for_each_token(pool, n_rows, [&](int64_t t) {
    for (int64_t i = t * width; i < (t + 1) * width; ++i) x[size_t(i)] += delta[size_t(i)];
  });
}

// Causal grouped-query attention of every batch token over its own sequence's cache. Tokens of
// one sequence are cut into tiles of up to kAttentionTile consecutive positions that share the
// reading (and f16 → f32 conversion) of the cache; each (tile, kv head) is one work item, or — when
// the partial results of the whole batch are small (decode-shaped batches: one token of each of a
// few sequences, deep in their contexts) — one item per (tile, kv head, span) (SpanWork), so that
// a few long sequences still keep every thread busy. attend() makes every output independent of
// the tiling and of the split, so batching and thread count never change the numbers.
constexpr int64_t kAttentionTile = 64;
// Partial results (head_dim floats per query and span) of at most this many floats: split.
constexpr int64_t kSplitPartialFloats = int64_t(1) << 20;

void attention(const HParams& hp, const KvCache& cache, int64_t layer, const Batch& b,
               const float* q, float* out, ThreadPool& pool) {
  const int64_t hd = hp.head_dim, group = hp.n_head / hp.n_head_kv;
  const float scale = hp.attention_scale();
  const int64_t window = hp.is_swa_layer(layer) ? hp.n_swa : 0;  // a token sees the last `window`

  // A work item holds tile_tokens × group queries: at most kAttentionTile, so that its scores stay
  // in L2 whatever the grouping.
  const int64_t tile_tokens = std::max<int64_t>(1, kAttentionTile / group);
  std::vector<int64_t> order(size_t(b.size()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
    return std::pair(b.seq_ids[x], b.positions[x]) < std::pair(b.seq_ids[y], b.positions[y]);
  });
  struct Tile {
    int64_t begin, end, seq, cost;  // [begin, end) of `order`
  };
  std::vector<Tile> tiles;
  for (int64_t i = 0; i < b.size(); ++i) {
    const int64_t seq = b.seq_ids[order[i]];
    if (tiles.empty() || tiles.back().seq != seq || tiles.back().end - tiles.back().begin == tile_tokens)
      tiles.push_back({i, i, seq, 0});
    Tile& tile = tiles.back();
    tile.end = i + 1;
    tile.cost = (tile.end - tile.begin) * (b.positions[order[i]] + 1);
  }
  // The costliest tiles first, handed out one item at a time: the threads finish together.
  std::stable_sort(tiles.begin(), tiles.end(), [](const Tile& x, const Tile& y) { return x.cost > y.cost; });

  // Split only where the partial results stay small (decode-shaped batches).
  int64_t n_partials = 0;
  for (const Tile& tile : tiles)
    n_partials += (tile.end - tile.begin) * hp.n_head * attention_spans(b.positions[order[size_t(tile.end - 1)]] + 1);
  const bool split = n_partials * hd <= kSplitPartialFloats;

  // One item per (tile, kv head[, span]): the query heads that share a kv head (grouped-query
  // attention) go through it together and read its cache once, not once per query head.
  const kernels::Isa isa = attention_isa();
  auto tile_queries = [&](const Tile& tile, int64_t kvh, std::vector<AttentionQuery>& queries) {
    queries.clear();
    for (int64_t i = tile.begin; i < tile.end; ++i) {
      const int64_t t = order[size_t(i)];
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
        queries.push_back({q + t * hp.q_dim() + h * hd, out + t * hp.q_dim() + h * hd, b.positions[t] + 1,
                           window > 0 ? std::max<int64_t>(0, b.positions[t] + 1 - window) : 0});
    }
  };
  auto kv_head = [&](const Tile& tile, int64_t kvh) {
    return cache.head(layer, tile.seq, kvh);
  };
  if (split) {
    static thread_local SpanWork work_buffer;  // the caller's, reached by the workers through `work`
    static thread_local std::vector<AttentionQuery> queries;
    SpanWork& work = work_buffer;
    work.clear(isa, scale, hd);
    for (const Tile& tile : tiles)
      for (int64_t kvh = 0; kvh < hp.n_head_kv; ++kvh) {
        tile_queries(tile, kvh, queries);
        work.add(kv_head(tile, kvh), queries);
      }
    pool.for_each_claimed(work.plan(), [&](int64_t item, int) { work.run(item); });
    return;
  }
  pool.for_each_claimed(int64_t(tiles.size()) * hp.n_head_kv, [&](int64_t item, int) {
    static thread_local std::vector<AttentionQuery> queries;
    const Tile& tile = tiles[size_t(item / hp.n_head_kv)];
    tile_queries(tile, item % hp.n_head_kv, queries);
    attend(isa, kv_head(tile, item % hp.n_head_kv), queries, scale);
  });
}

// One transformer layer, written like the paper: norm → attention → (sub-norm) → residual,
// norm → gated FFN → (sub-norm) → residual.
void transformer_layer(const Model& m, int64_t il, KvCache& cache, const Batch& b, Activations& a,
                       ThreadPool& pool) {
  const HParams& hp = m.hp;
  const LayerWeights& w = m.layers[size_t(il)];
  const int64_t n = a.n;

  const float eps = hp.norm_eps;
  norm_rows(a.x.data(), w.attn_norm, n, eps, a.h.data(), pool);
  if (w.has_norm_in()) {  // each projection normalizes (and quantizes) its own input
    project(w.wq, w.scale_q, w.q_norm_in, a.h.data(), n, a.q.data(), eps, a.normed_in, pool);
    project(w.wk, w.scale_k, w.k_norm_in, a.h.data(), n, a.k.data(), eps, a.normed_in, pool);
    project(w.wv, w.scale_v, w.v_norm_in, a.h.data(), n, a.v.data(), eps, a.normed_in, pool);
  } else {
    const ops::MatmulInput attn_in(a.h.data(), hp.n_embd, n);
    linear({{w.wq, w.scale_q, a.q.data()}, {w.wk, w.scale_k, a.k.data()}, {w.wv, w.scale_v, a.v.data()}},
           attn_in, pool);
  }
  const float rope_base = hp.is_swa_layer(il) ? hp.rope_base_swa : hp.rope_base;
  for_each_token(pool, n, [&](int64_t t) {  // each token writes its own cache position
    static thread_local std::vector<float> cos_sin;
    cos_sin.resize(size_t(hp.n_rot));
    ops::rope_angles(int(hp.n_rot), b.positions[t], rope_base, hp.rope_freq_scale, cos_sin.data());
    for (int64_t h = 0; h < hp.n_head; ++h) {
      float* head = &a.q[t * hp.q_dim() + h * hp.head_dim];
      if (!w.attn_q_norm.empty()) ops::rms_norm(head, w.attn_q_norm.data(), hp.head_dim, eps, head);
      ops::rope_rotate(head, int(hp.n_rot), cos_sin.data(), hp.arch.rope_style);
    }
    for (int64_t h = 0; h < hp.n_head_kv; ++h) {
      float* head = &a.k[t * hp.kv_dim() + h * hp.head_dim];
      if (!w.attn_k_norm.empty()) ops::rms_norm(head, w.attn_k_norm.data(), hp.head_dim, eps, head);
      ops::rope_rotate(head, int(hp.n_rot), cos_sin.data(), hp.arch.rope_style);
    }
    cache.store(il, b.seq_ids[t], b.positions[t], &a.k[t * hp.kv_dim()], &a.v[t * hp.kv_dim()]);
  });
  attention(hp, cache, il, b, a.q.data(), a.attn_out.data(), pool);
  if (!w.attn_sub_norm.empty())  // attn_sub_norm
    norm_rows(a.attn_out.data(), w.attn_sub_norm, n, eps, a.attn_out.data(), pool);
  project(w.wo, w.scale_o, w.o_norm_in, a.attn_out.data(), n, a.proj.data(), eps, a.normed_in, pool);
  if (!w.post_attn_norm.empty())  // Gemma 3
    norm_rows(a.proj.data(), w.post_attn_norm, n, eps, a.proj.data(), pool);
  add_into(a.x, a.proj, n, pool);

  norm_rows(a.x.data(), w.ffn_norm, n, eps, a.h.data(), pool);
  if (w.has_norm_in()) {
    project(w.w_gate, w.scale_gate, w.gate_norm_in, a.h.data(), n, a.gate.data(), eps, a.normed_in, pool);
    project(w.w_up, w.scale_up, w.up_norm_in, a.h.data(), n, a.up.data(), eps, a.normed_in, pool);
  } else {
    const ops::MatmulInput ffn_in(a.h.data(), hp.n_embd, n);
    linear({{w.w_gate, w.scale_gate, a.gate.data()}, {w.w_up, w.scale_up, a.up.data()}}, ffn_in, pool);
  }
  // Element-wise over all tokens' [n_ff] rows at once, split over the pool even for one token
  // (the SiLU gate is ~4% of a decode step on one thread); no split changes a value.
  pool.parallel_for(n * hp.n_ff, 1024, [&](int64_t i0, int64_t i1, int) {
    float* g = a.gate.data();
    const float* u = a.up.data();
    switch (hp.activation) {
      case FfnActivation::ReluSquared: ops::relu_squared_mul(g + i0, u + i0, i1 - i0); break;
      case FfnActivation::GeluTanh: ops::gelu_tanh_mul(g + i0, u + i0, i1 - i0); break;
      case FfnActivation::Silu: ops::silu_mul(g + i0, u + i0, i1 - i0); break;
    }
  });
  if (!w.ffn_sub_norm.empty())  // ffn_sub_norm
    norm_rows(a.gate.data(), w.ffn_sub_norm, n, eps, a.gate.data(), pool);
  project(w.w_down, w.scale_down, w.down_norm_in, a.gate.data(), n, a.proj.data(), eps, a.normed_in, pool);
  if (!w.post_ffw_norm.empty())  // Gemma 3
    norm_rows(a.proj.data(), w.post_ffw_norm, n, eps, a.proj.data(), pool);
  add_into(a.x, a.proj, n, pool);
}

}  // namespace

namespace {

// The token embeddings of a batch (× sqrt(n_embd) for Gemma 3) into a.x.
void embed_tokens(const Model& m, const Batch& b, Activations& a) {
  const HParams& hp = m.hp;
  const float embd_scale = hp.arch.gemma ? std::sqrt(float(hp.n_embd)) : 1.0f;
  for (int64_t t = 0; t < b.size(); ++t) {
    float* row = &a.x[t * hp.n_embd];
    ops::embedding_row(m.tok_embd, b.tokens[t], row);
    if (embd_scale != 1.0f)
      for (int64_t i = 0; i < hp.n_embd; ++i) row[i] *= embd_scale;
  }
}

// Output-normed hidden states of the tokens with want_logits set, in batch order.
std::vector<float> final_norm(const Model& m, const Batch& b, const Activations& a) {
  const HParams& hp = m.hp;
  std::vector<float> normed(static_cast<size_t>(b.n_logits() * hp.n_embd));
  for (int64_t t = 0, o = 0; t < b.size(); ++t)
    if (b.want_logits[t])
      ops::rms_norm(&a.x[t * hp.n_embd], m.output_norm.data(), hp.n_embd, hp.norm_eps,
                    &normed[o++ * hp.n_embd]);
  return normed;
}

}  // namespace

std::vector<float> forward(const Model& m, KvCache& cache, const Batch& b, ThreadPool& pool) {
  validate(m, cache, b);
  const HParams& hp = m.hp;
  static thread_local Activations a;
  a.resize(hp, b.size());
  embed_tokens(m, b, a);
  if (b.size() >= 1 && b.size() <= kMaxStepTokens && decode_step_applies(m)) {  // decode: the whole step as one pool job
    std::vector<float> logits = decode_step(m, cache, b, a.x.data(), pool);
    for (int64_t t = 0; t < b.size(); ++t) cache.set_length(b.seq_ids[t], b.positions[t] + 1);
    return logits;
  }
  // -ngl: layers [first_gpu_layer, n_layer) run on the GPU (backends/cuda/offload.h).
  const int64_t n_cpu_layers = m.gpu ? cuda::layer_split(*m.gpu).first_gpu_layer : hp.n_layer;
  for (int64_t il = 0; il < n_cpu_layers; ++il) transformer_layer(m, il, cache, b, a, pool);
  std::vector<float> gpu_logits;
  if (m.gpu) gpu_logits = cuda::forward_layers(*m.gpu, cache, b, a.x.data());
  for (int64_t t = 0; t < b.size(); ++t) cache.set_length(b.seq_ids[t], b.positions[t] + 1);
  if (m.gpu && cuda::head_on_gpu(*m.gpu)) return gpu_logits;

  // Final norm and LM head only for the tokens whose logits are wanted.
  const std::vector<float> normed = final_norm(m, b, a);
  std::vector<float> logits(static_cast<size_t>(b.n_logits() * hp.n_vocab));
  ops::matmul(m.output, normed.data(), b.n_logits(), logits.data(), pool);
  return logits;
}

std::vector<float> forward_hidden(const Model& m, KvCache& cache, const Batch& b, ThreadPool& pool) {
  if (m.gpu) throw Error("embeddings are computed on the CPU: load the model without -ngl");
  validate(m, cache, b);
  static thread_local Activations a;
  a.resize(m.hp, b.size());
  embed_tokens(m, b, a);
  for (int64_t il = 0; il < m.hp.n_layer; ++il) transformer_layer(m, il, cache, b, a, pool);
  for (int64_t t = 0; t < b.size(); ++t) cache.set_length(b.seq_ids[t], b.positions[t] + 1);
  return final_norm(m, b, a);
}

}  // namespace bitnet
