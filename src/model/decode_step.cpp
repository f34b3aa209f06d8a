#include "model/decode_step.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <initializer_list>
#include <memory>
#include <utility>

#include "model/attention.h"
#include "ops/ops.h"

namespace bitnet {
namespace {

// What the threads write for each other: one buffer per activation, each element written by one thread.
struct Shared {
  std::vector<float> q, k, v, attn_out, proj, gate, up, cos_sin;
  void resize(const HParams& hp, int64_t n) {  // token t's row of each at t × its width
    q.resize(size_t(n * hp.q_dim()));
    k.resize(size_t(n * hp.kv_dim()));
    v.resize(size_t(n * hp.kv_dim()));
    attn_out.resize(size_t(n * hp.q_dim()));
    proj.resize(size_t(n * hp.n_embd));
    gate.resize(size_t(n * hp.n_ff));
    up.resize(size_t(n * hp.n_ff));
    cos_sin.resize(size_t(n * hp.n_rot));
  }
};

// What each thread computes for itself: every thread normalizes the (small) input of a product and
// quantizes it, instead of one thread doing it while the others wait at a barrier. A cache line
// each, so that one thread's bookkeeping never invalidates another's.
struct alignas(64) Scratch {
  std::vector<float> normed;
  std::vector<ops::RowWork> works;
  std::vector<ops::RowChunk> chunks;
  std::vector<AttentionQuery> queries;
};

// Claim counters, one per phase of each layer; zeroed before each step.
constexpr int kPhasesPerLayer = 6;  // q/k/v, RoPE + K/V store (+ attention), o, gate/up, down, attention spans
struct Counters {
  std::unique_ptr<std::atomic<int64_t>[]> next;
  size_t size = 0;
  std::atomic<int64_t>* reset(size_t n) {
    if (n > size) next = std::make_unique<std::atomic<int64_t>[]>(n), size = n;
    for (size_t i = 0; i < n; ++i) next[i].store(0, std::memory_order_relaxed);
    return next.get();
  }
};

struct Product {
  const TensorView* w;
  float scale;
  float* y;  // token t's rows at y + t·rows
};

// The products of one input over row chunks (ops::plan_row_chunks); the thread that computes a row
// also applies the product's scale and, with `residual`, adds the row into it (x += y, the batch
// path's add_into) — for every token of the step, each weight row read once for all of them.
void run_products(std::initializer_list<Product> products, const ops::MatmulInput& in, std::atomic<int64_t>& next,
                  int thread, int n_threads, Scratch& s, float* residual = nullptr) {
  s.works.clear();
  for (const Product& p : products) s.works.push_back(*ops::row_work(*p.w, in, p.y));  // decode_step_applies
  ops::plan_row_chunks(s.works, n_threads, s.chunks);
  const int64_t n = in.n_tokens();
  // Thread t starts with chunk t and claims the rest from chunk n_threads on: the same thread reads
  // the same long first stream and writes the same rows of y (and x) every step, instead of the
  // threads racing for the counter as each arrives (+5% on `large`, ab 212 → 225 t/s).
  const int64_t n_chunks = int64_t(s.chunks.size());
  for (int64_t c = thread; c < n_chunks; c = n_threads + next.fetch_add(1, std::memory_order_relaxed)) {
    const ops::RowChunk& ch = s.chunks[size_t(c)];
    s.works[size_t(ch.work)].run(ch.r0, ch.r1);
    const Product& p = products.begin()[ch.work];
    const int64_t rows = s.works[size_t(ch.work)].rows;
    for (int64_t t = 0; t < n; ++t) {
      float* y = p.y + t * rows;
      if (p.scale != 1.0f)
        for (int64_t r = ch.r0; r < ch.r1; ++r) y[r] *= p.scale;
      if (residual)
        for (int64_t r = ch.r0; r < ch.r1; ++r) residual[t * rows + r] += y[r];
    }
  }
}

// rms_norm of n rows of `width` floats (each thread normalizes every token of a product's input).
void norm_rows(const float* in, const std::vector<float>& gain, int64_t n, int64_t width, float eps, float* out) {
  for (int64_t t = 0; t < n; ++t) ops::rms_norm(in + t * width, gain.data(), width, eps, out + t * width);
}

std::atomic<bool> g_enabled{true};

}  // namespace

void set_decode_step_enabled(bool on) { g_enabled.store(on); }
bool decode_step_enabled() { return g_enabled.load(); }

bool decode_step_applies(const Model& m) {
  if (!decode_step_enabled() || m.gpu || !ops::row_work_ready(m.output)) return false;
  // Qwen3 / Gemma 3 steps (q/k norms, per-projection norms, windows) take the batch path.
  if (m.hp.arch.qk_norm || m.hp.arch.gemma) return false;
  for (const LayerWeights& w : m.layers) {
    if (w.has_norm_in()) return false;
    for (const TensorView* t : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w_gate, &w.w_up, &w.w_down})
      if (!ops::row_work_ready(*t)) return false;
  }
  return true;
}

std::vector<float> decode_step(const Model& m, KvCache& cache, const Batch& b, float* x, ThreadPool& pool) {
  const HParams& hp = m.hp;
  const int n_threads = pool.size();
  const int64_t n = b.size();
  const int64_t hd = hp.head_dim, group = hp.n_head / hp.n_head_kv;
  const float attn_scale = hp.attention_scale();
  const kernels::Isa attn_isa = attention_isa();
  const bool relu2 = hp.activation == FfnActivation::ReluSquared;
  const int64_t n_logits = b.n_logits();

  // The caller's buffers, kept between steps; the workers reach them through these references (a
  // thread_local named inside the job would be the worker's own).
  static thread_local Shared shared_buffers;
  static thread_local std::vector<Scratch> scratch_buffers;
  static thread_local Counters counters;
  static thread_local std::vector<int64_t> order_buffer, group_buffer;
  static thread_local SpanWork span_work;
  Shared& sh = shared_buffers;
  SpanWork& work = span_work;
  std::vector<int64_t>& order = order_buffer;
  std::vector<int64_t>& group_begin = group_buffer;
  std::vector<Scratch>& scratch = scratch_buffers;
  sh.resize(hp, n);
  if (scratch.size() < size_t(n_threads)) scratch.resize(size_t(n_threads));
  std::atomic<int64_t>* next = counters.reset(size_t(hp.n_layer * kPhasesPerLayer + 1));
  for (int64_t t = 0; t < n; ++t)
    ops::rope_angles(int(hp.n_rot), b.positions[t], hp.rope_base, hp.rope_freq_scale, &sh.cos_sin[size_t(t * hp.n_rot)]);
  // The tokens grouped by sequence, in position order: one attention item is a (sequence, kv head),
  // whose tokens are all stored before any of them attends (a token may read the cells of an
  // earlier token of the same step, as in the batch path).
  order.resize(size_t(n));
  for (int64_t t = 0; t < n; ++t) order[size_t(t)] = t;
  std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) {
    return std::pair(b.seq_ids[i], b.positions[i]) < std::pair(b.seq_ids[j], b.positions[j]);
  });
  group_begin.clear();
  for (int64_t i = 0; i < n; ++i)
    if (i == 0 || b.seq_ids[order[size_t(i)]] != b.seq_ids[order[size_t(i - 1)]]) group_begin.push_back(i);
  const int64_t n_groups = int64_t(group_begin.size());
  group_begin.push_back(n);
  // Attention past one span (kAttentionSpan positions) is cut into (sequence, kv head, span) items
  // that the threads claim once every cell of the step is stored; the thread that completes a
  // head's last span merges it (SpanWork: the same numbers as attend()). Within one span each
  // (sequence, kv head) attends right after its RoPE and store, without the extra barrier.
  work.clear(attn_isa, attn_scale, hd);
  for (int64_t g = 0; g < n_groups; ++g)
    for (int64_t kvh = 0; kvh < hp.n_head_kv; ++kvh) {
      const int64_t seq = b.seq_ids[order[size_t(group_begin[size_t(g)])]];
      Scratch& s = scratch[0];
      s.queries.clear();
      for (int64_t i = group_begin[size_t(g)]; i < group_begin[size_t(g + 1)]; ++i) {
        const int64_t t = order[size_t(i)];
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
          s.queries.push_back({&sh.q[size_t(t * hp.q_dim() + h * hd)], &sh.attn_out[size_t(t * hp.q_dim() + h * hd)],
                               b.positions[t] + 1});
      }
      work.add(cache.head(0, seq, kvh), s.queries);
    }
  const int64_t n_span_items = work.plan();
  const bool split = n_span_items > n_groups * hp.n_head_kv;
  std::vector<float> logits(size_t(n_logits * hp.n_vocab));
  SpinBarrier barrier(n_threads);

  pool.parallel_for(n_threads, 1, [&](int64_t, int64_t, int thread) {
    Scratch& s = scratch[size_t(thread)];
    s.normed.resize(size_t(n * std::max({hp.n_embd, hp.q_dim(), hp.n_ff})));
    float* normed = s.normed.data();
    for (int64_t il = 0; il < hp.n_layer; ++il) {
      const LayerWeights& w = m.layers[size_t(il)];
      std::atomic<int64_t>* phase = next + il * kPhasesPerLayer;
      for (const TensorView* t : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w_gate, &w.w_up, &w.w_down}) ops::prefetch_row_work(*t);

      norm_rows(x, w.attn_norm, n, hp.n_embd, hp.norm_eps, normed);
      run_products({{&w.wq, w.scale_q, sh.q.data()}, {&w.wk, w.scale_k, sh.k.data()}, {&w.wv, w.scale_v, sh.v.data()}},
                   ops::MatmulInput(normed, hp.n_embd, n), phase[0], thread, n_threads, s);
      barrier.arrive_and_wait();

      // One (sequence, kv head) at a time: RoPE of its tokens' query heads and keys, their cache
      // cells, then their attention — or, past one span, after a barrier, the spans of all of them.
      for (int64_t item; (item = phase[1].fetch_add(1, std::memory_order_relaxed)) < n_groups * hp.n_head_kv;) {
        const int64_t g = item / hp.n_head_kv, kvh = item % hp.n_head_kv;
        const int64_t seq = b.seq_ids[order[size_t(group_begin[size_t(g)])]];
        s.queries.clear();
        for (int64_t i = group_begin[size_t(g)]; i < group_begin[size_t(g + 1)]; ++i) {
          const int64_t t = order[size_t(i)];
          const float* cos_sin = &sh.cos_sin[size_t(t * hp.n_rot)];
          for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
            float* head = &sh.q[size_t(t * hp.q_dim() + h * hd)];
            ops::rope_rotate(head, int(hp.n_rot), cos_sin, hp.arch.rope_style);
            s.queries.push_back({head, &sh.attn_out[size_t(t * hp.q_dim() + h * hd)], b.positions[t] + 1});
          }
          float* key = &sh.k[size_t(t * hp.kv_dim() + kvh * hd)];
          ops::rope_rotate(key, int(hp.n_rot), cos_sin, hp.arch.rope_style);
          cache.store_head(il, seq, b.positions[t], kvh, key, &sh.v[size_t(t * hp.kv_dim() + kvh * hd)]);
        }
        const KvHead kv = cache.head(il, seq, kvh);
        if (split)
          work.set_kv(item, kv);  // group `item` of the plan: g × n_head_kv + kvh
        else
          attend(attn_isa, kv, s.queries, attn_scale);
      }
      if (split) {
        barrier.arrive_and_wait();
        for (int64_t item; (item = phase[5].fetch_add(1, std::memory_order_relaxed)) < n_span_items;) work.run(item);
      }
      barrier.arrive_and_wait();

      const float* o_in = sh.attn_out.data();
      if (!w.attn_sub_norm.empty()) {
        norm_rows(o_in, w.attn_sub_norm, n, hp.q_dim(), hp.norm_eps, normed);
        o_in = normed;
      }
      run_products({{&w.wo, w.scale_o, sh.proj.data()}}, ops::MatmulInput(o_in, hp.q_dim(), n), phase[2], thread,
                   n_threads, s, x);
      barrier.arrive_and_wait();

      norm_rows(x, w.ffn_norm, n, hp.n_embd, hp.norm_eps, normed);
      run_products({{&w.w_gate, w.scale_gate, sh.gate.data()}, {&w.w_up, w.scale_up, sh.up.data()}},
                   ops::MatmulInput(normed, hp.n_embd, n), phase[3], thread, n_threads, s);
      barrier.arrive_and_wait();
      {  // the gate, each thread an equal slice (element-wise: no split changes a value)
        const int64_t i0 = n * hp.n_ff * thread / n_threads, i1 = n * hp.n_ff * (thread + 1) / n_threads;
        if (relu2)
          ops::relu_squared_mul(sh.gate.data() + i0, sh.up.data() + i0, i1 - i0);
        else
          ops::silu_mul(sh.gate.data() + i0, sh.up.data() + i0, i1 - i0);
      }
      barrier.arrive_and_wait();

      const float* down_in = sh.gate.data();
      if (!w.ffn_sub_norm.empty()) {
        norm_rows(down_in, w.ffn_sub_norm, n, hp.n_ff, hp.norm_eps, normed);
        down_in = normed;
      }
      run_products({{&w.w_down, w.scale_down, sh.proj.data()}}, ops::MatmulInput(down_in, hp.n_ff, n),
                   phase[4], thread, n_threads, s, x);
      barrier.arrive_and_wait();
    }
    if (n_logits == 0) return;
    for (int64_t t = 0, o = 0; t < n; ++t)  // the final norm of the tokens whose logits are wanted
      if (b.want_logits[t]) ops::rms_norm(x + t * hp.n_embd, m.output_norm.data(), hp.n_embd, hp.norm_eps, normed + o++ * hp.n_embd);
    run_products({{&m.output, 1.0f, logits.data()}}, ops::MatmulInput(normed, hp.n_embd, n_logits),
                 next[hp.n_layer * kPhasesPerLayer], thread, n_threads, s);
  });
  return logits;
}

}  // namespace bitnet
