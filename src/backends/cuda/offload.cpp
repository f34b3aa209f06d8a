// -ngl offload (offload.h): layer split and memory estimate (every build), the uploaded layers and
// the GPU forward pass (CUDA builds), and the one-line refusal of builds without the backend.
#include "backends/cuda/offload.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "backends/cuda/device.h"
#include "backends/cuda/gpu_layout.h"
#include "backends/cuda/kernels.h"
#include "errors.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace bitnet::cuda {

LayerSplit split_layers(int64_t n_layer, int64_t requested) {
  LayerSplit s;
  s.gpu_layers = std::clamp<int64_t>(requested, 0, n_layer);
  s.first_gpu_layer = n_layer - s.gpu_layers;
  s.output_on_gpu = requested > 0 && requested >= n_layer;
  return s;
}

OffloadEstimate estimate_offload(const HParams& hp, const LayerSplit& split, bool per_block_scales, bool head_f16,
                                 int64_t n_seq, int64_t n_ctx, int64_t max_tokens) {
  OffloadEstimate e;
  if (split.gpu_layers == 0) return e;
  auto matrix = [&](int64_t rows, int64_t cols) {
    const uint64_t padded = uint64_t(gpu_padded_cols(cols));
    return uint64_t(rows) * (padded / 4 + (per_block_scales ? padded / uint64_t(kGpuBlock) * 2 : 0));
  };
  const uint64_t per_layer = matrix(hp.q_dim(), hp.n_embd) + 2 * matrix(hp.kv_dim(), hp.n_embd) +
                             matrix(hp.n_embd, hp.q_dim()) + 2 * matrix(hp.n_ff, hp.n_embd) +
                             matrix(hp.n_embd, hp.n_ff) +
                             4 * uint64_t(2 * hp.n_embd + (hp.arch.sub_norms ? hp.q_dim() + hp.n_ff : 0));
  e.weights = per_layer * uint64_t(split.gpu_layers);
  const bool head = split.output_on_gpu && head_f16;
  if (head) e.weights += uint64_t(hp.n_vocab) * uint64_t(hp.n_embd) * 2 + uint64_t(hp.n_embd) * 4;
  e.kv_cache = 2 * 2 * uint64_t(split.gpu_layers) * uint64_t(n_seq) * uint64_t(n_ctx) * uint64_t(hp.kv_dim());
  // Scratch per token: x, q, k, v, attention out, projection, gate, up (f32), three quantized copies
  // (codes + block sums), the positions; plus the logits of every token when the head is here.
  const uint64_t t = uint64_t(std::max<int64_t>(1, max_tokens));
  const uint64_t floats = uint64_t(2 * hp.n_embd + 2 * hp.q_dim() + 2 * hp.kv_dim() + hp.n_embd + 2 * hp.n_ff) +
                          (head ? uint64_t(hp.n_embd + hp.n_vocab) : 0);
  const uint64_t codes = uint64_t(gpu_padded_cols(hp.n_embd) + gpu_padded_cols(hp.q_dim()) + gpu_padded_cols(hp.n_ff));
  e.scratch = t * (4 * floats + codes + codes / uint64_t(kGpuBlock) * 4 + 64);
  return e;
}

OffloadEstimate estimate_offload(const Model& m, int64_t requested_layers, int64_t n_seq, int64_t n_ctx,
                                 int64_t max_tokens) {
  const LayerSplit split = split_layers(m.hp.n_layer, requested_layers);
  const GgmlType t = m.layers.empty() ? GgmlType::I2_S : m.layers.back().wq.type;
  const bool per_block = t == GgmlType::TQ1_0 || t == GgmlType::TQ2_0;
  return estimate_offload(m.hp, split, per_block, m.output.type == GgmlType::F16, n_seq, n_ctx, max_tokens);
}

#if !(defined(BITNET_WITH_CUDA) && BITNET_WITH_CUDA)

// Builds without the backend: Model::gpu is never set, so only offload_layers() is reachable.
class GpuLayers {};
class GpuCache {};

std::shared_ptr<const GpuLayers> offload_layers(const Model&, int64_t requested) {
  throw Error("-ngl " + std::to_string(requested) + ": cannot offload layers to a GPU: " + probe().error +
              " (use -ngl 0)");
}
LayerSplit layer_split(const GpuLayers&) { return {}; }
bool head_on_gpu(const GpuLayers&) { return false; }
uint64_t device_bytes(const GpuLayers&) { return 0; }
std::string describe(const GpuLayers&) { return {}; }
std::vector<float> forward_layers(const GpuLayers&, KvCache&, const Batch&, float*) {
  throw Error("this build has no CUDA backend");
}
void copy_prefix(GpuCache&, int64_t, int64_t, int64_t) { throw Error("this build has no CUDA backend"); }
void prepare_cache(const GpuLayers&, KvCache&, int64_t) { throw Error("this build has no CUDA backend"); }

#else

namespace {

struct GpuLayer {
  DeviceBuffer attn_norm, ffn_norm, attn_sub_norm, ffn_sub_norm;  // sub-norms empty when absent
  DeviceTernaryMatrix wq, wk, wv, wo, w_gate, w_up, w_down;
  float scale_q = 1, scale_k = 1, scale_v = 1, scale_o = 1, scale_gate = 1, scale_up = 1, scale_down = 1;
};

DeviceBuffer upload_floats(const std::vector<float>& v) { return v.empty() ? DeviceBuffer() : upload_vector(v); }

// repack_for_gpu with the rows split over the host's cores (the repack is ~3 ns per weight).
GpuTernaryMatrix repack_parallel(const TensorView& w) {
  GpuTernaryMatrix m = allocate_gpu_ternary(w);
  const int64_t rows = m.rows;
  const int64_t n_threads = std::clamp<int64_t>(int64_t(std::thread::hardware_concurrency()), 1, 32);
  const int64_t per = (rows + n_threads - 1) / n_threads;
  if (n_threads == 1 || rows < 256) {
    repack_rows_for_gpu(w, 0, rows, m);
    return m;
  }
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n_threads));
  for (int64_t i = 0; i < n_threads; ++i) {
    const int64_t r0 = i * per, r1 = std::min(rows, r0 + per);
    if (r0 >= r1) break;
    threads.emplace_back([&, i, r0, r1] {
      try {
        repack_rows_for_gpu(w, r0, r1 - r0, m);
      } catch (...) {
        errors[size_t(i)] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return m;
}

DeviceTernaryMatrix upload_matrix(const TensorView& w, int64_t layer) {
  if (!ggml_type_is_ternary(w.type))
    throw Error("-ngl: layer " + std::to_string(layer) + " tensor '" + w.name + "' is " +
                std::string(ggml_type_name(w.type)) + ", which the GPU backend does not support (ternary "
                "I2_S / TQ1_0 / TQ2_0 / TL1 / TL2 only); use a smaller -ngl");
  return upload_ternary(repack_parallel(w));
}

RopePairing pairing_of(ops::RopeStyle s) { return s == ops::RopeStyle::Neox ? RopePairing::Neox : RopePairing::Norm; }

}  // namespace

class GpuLayers {
 public:
  HParams hp;
  LayerSplit split;
  bool head = false;  // output norm + head on the GPU
  std::vector<GpuLayer> layers;  // layers [split.first_gpu_layer, n_layer)
  DeviceBuffer output_norm, output;  // output: f16 [n_vocab × n_embd]
  uint64_t bytes = 0;
  std::string head_note;
};

// One KvCache's GPU part: keys/values of every GPU layer for all sequences ([seq][kv head][position]
// [dim] f16, seq_stride halves per sequence) and scratch buffers grown to the largest batch seen.
class GpuCache {
 public:
  GpuCache(const GpuLayers& g, int64_t n_seq_, int64_t n_ctx_)
      : n_seq(n_seq_),
        n_ctx(n_ctx_),
        n_kv_heads(g.hp.n_head_kv),
        head_dim(g.hp.head_dim),
        seq_stride(g.hp.n_head_kv * n_ctx_ * g.hp.head_dim) {
    const size_t bytes = size_t(n_seq * seq_stride) * sizeof(uint16_t);
    for (size_t i = 0; i < g.layers.size(); ++i) {
      keys.emplace_back(bytes);
      values.emplace_back(bytes);
      keys.back().fill_zero();
      values.back().fill_zero();
    }
  }

  void reserve(const GpuLayers& g, int64_t n) {
    if (n <= capacity) return;
    const HParams& hp = g.hp;
    const int64_t c = std::max<int64_t>(n, 1);
    auto floats = [&](int64_t per_token) { return DeviceBuffer(size_t(c * per_token) * sizeof(float)); };
    auto ints = [&]() { return DeviceBuffer(size_t(c) * sizeof(int32_t)); };
    x = floats(hp.n_embd);
    q = floats(hp.q_dim());
    k = floats(hp.kv_dim());
    v = floats(hp.kv_dim());
    attn_out = floats(hp.q_dim());
    proj = floats(hp.n_embd);
    gate = floats(hp.n_ff);
    up = floats(hp.n_ff);
    if (g.head) {
      gathered = floats(hp.n_embd);
      normed = floats(hp.n_embd);
      logits = floats(hp.n_vocab);
    }
    positions = ints();
    seq_ids = ints();
    n_kv = ints();
    rows = ints();
    act_embd = std::make_unique<DeviceActivationBuffers>(c, gpu_padded_cols(hp.n_embd));
    act_q = std::make_unique<DeviceActivationBuffers>(c, gpu_padded_cols(hp.q_dim()));
    act_ff = std::make_unique<DeviceActivationBuffers>(c, gpu_padded_cols(hp.n_ff));
    capacity = c;
  }

  int64_t n_seq, n_ctx, n_kv_heads, head_dim, seq_stride;
  std::vector<DeviceBuffer> keys, values;  // per GPU layer
  int64_t capacity = 0;
  DeviceBuffer x, q, k, v, attn_out, proj, gate, up, gathered, normed, logits;
  DeviceBuffer positions, seq_ids, n_kv, rows;
  std::unique_ptr<DeviceActivationBuffers> act_embd, act_q, act_ff;
};

std::shared_ptr<const GpuLayers> offload_layers(const Model& m, int64_t requested) {
  const std::string flag = "-ngl " + std::to_string(requested);
  if (requested <= 0) throw Error(flag + ": nothing to offload");
  const DeviceInfo info = probe();
  if (!info.available()) throw Error(flag + ": no usable GPU: " + info.error + " (use -ngl 0 to run on the CPU)");
  const HParams& hp = m.hp;
  if (hp.head_dim % 2 != 0 || hp.head_dim > 256 || hp.n_rot <= 0 || hp.n_rot % 2 != 0)
    throw Error(flag + ": the GPU attention kernels need an even head_dim ≤ 256 and an even n_rot (model: " +
                std::to_string(hp.head_dim) + ", " + std::to_string(hp.n_rot) + ")");
  auto g = std::make_shared<GpuLayers>();
  g->hp = hp;
  g->split = split_layers(hp.n_layer, requested);
  try {
    for (int64_t il = g->split.first_gpu_layer; il < hp.n_layer; ++il) {
      const LayerWeights& w = m.layers[size_t(il)];
      GpuLayer l;
      l.attn_norm = upload_floats(w.attn_norm);
      l.ffn_norm = upload_floats(w.ffn_norm);
      l.attn_sub_norm = upload_floats(w.attn_sub_norm);
      l.ffn_sub_norm = upload_floats(w.ffn_sub_norm);
      l.wq = upload_matrix(w.wq, il);
      l.wk = upload_matrix(w.wk, il);
      l.wv = upload_matrix(w.wv, il);
      l.wo = upload_matrix(w.wo, il);
      l.w_gate = upload_matrix(w.w_gate, il);
      l.w_up = upload_matrix(w.w_up, il);
      l.w_down = upload_matrix(w.w_down, il);
      l.scale_q = w.scale_q, l.scale_k = w.scale_k, l.scale_v = w.scale_v, l.scale_o = w.scale_o;
      l.scale_gate = w.scale_gate, l.scale_up = w.scale_up, l.scale_down = w.scale_down;
      for (const DeviceTernaryMatrix* d : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
        g->bytes += d->codes.size() + d->block_scales.size();
      g->bytes += l.attn_norm.size() + l.ffn_norm.size() + l.attn_sub_norm.size() + l.ffn_sub_norm.size();
      g->layers.push_back(std::move(l));
    }
    if (g->split.output_on_gpu) {
      if (m.output.type == GgmlType::F16 && m.output.cols() == hp.n_embd) {
        g->head = true;
        g->output_norm = upload_floats(m.output_norm);
        g->output = DeviceBuffer(size_t(m.output.nbytes));
        g->output.upload(m.output.data, size_t(m.output.nbytes));
        g->bytes += g->output_norm.size() + g->output.size();
      } else {
        g->head_note = "; the " + std::string(ggml_type_name(m.output.type)) +
                       " head stays on the CPU (the GPU has F16 heads only)";
      }
    }
    synchronize();
  } catch (const FormatError&) {
    throw;
  } catch (const Error& e) {
    const std::string what = e.what();
    throw Error(what.rfind("-ngl", 0) == 0 ? what : flag + ": " + what);
  }
  return g;
}

LayerSplit layer_split(const GpuLayers& g) { return g.split; }
bool head_on_gpu(const GpuLayers& g) { return g.head; }
uint64_t device_bytes(const GpuLayers& g) { return g.bytes; }

std::string describe(const GpuLayers& g) {
  const DeviceInfo info = probe();
  const std::string gpu = info.available() ? info.gpus[0].name : std::string("GPU");
  return "gpu: layers " + std::to_string(g.split.first_gpu_layer) + ".." + std::to_string(g.hp.n_layer - 1) + " (" +
         std::to_string(g.split.gpu_layers) + " of " + std::to_string(g.hp.n_layer) + ")" +
         (g.head ? " + output norm and head" : "") + " on " + gpu + ", " + std::to_string(g.bytes >> 20) +
         " MiB of weights" + g.head_note;
}

void prepare_cache(const GpuLayers& g, KvCache& cache, int64_t max_tokens) {
  if (!cache.gpu_cache()) cache.set_gpu_cache(std::make_shared<GpuCache>(g, cache.n_seq(), cache.n_ctx()));
  cache.gpu_cache()->reserve(g, max_tokens);
}

std::vector<float> forward_layers(const GpuLayers& g, KvCache& cache, const Batch& b, float* x) {
  const HParams& hp = g.hp;
  const int64_t n = b.size();
  if (n == 0) return {};
  prepare_cache(g, cache, n);
  GpuCache& c = *cache.gpu_cache();

  std::vector<int32_t> n_kv(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) n_kv[size_t(t)] = b.positions[size_t(t)] + 1;
  c.positions.upload(b.positions.data(), size_t(n) * sizeof(int32_t));
  c.seq_ids.upload(b.seq_ids.data(), size_t(n) * sizeof(int32_t));
  c.n_kv.upload(n_kv.data(), size_t(n) * sizeof(int32_t));
  c.x.upload(x, size_t(n * hp.n_embd) * sizeof(float));

  float* dx = c.x.as<float>();
  float *dq = c.q.as<float>(), *dk = c.k.as<float>(), *dv = c.v.as<float>();
  float *dattn = c.attn_out.as<float>(), *dproj = c.proj.as<float>();
  float *dgate = c.gate.as<float>(), *dup = c.up.as<float>();
  const int32_t* pos = c.positions.as<int32_t>();
  const DeviceActivations& ae = c.act_embd->view;
  const DeviceActivations& aq = c.act_q->view;
  const DeviceActivations& af = c.act_ff->view;
  const float attn_scale = hp.attention_scale();
  const RopePairing pairing = pairing_of(hp.arch.rope_style);
  auto project = [&](const DeviceTernaryMatrix& w, const DeviceActivations& a, float scale, float* y) {
    ternary_matmul(w, a, n, y);
    if (scale != 1.0f) scale_in_place(y, n * w.rows, scale);
  };

  for (size_t li = 0; li < g.layers.size(); ++li) {
    const GpuLayer& l = g.layers[li];
    rms_norm_quantize(dx, l.attn_norm.as<float>(), n, hp.n_embd, hp.norm_eps, ae);
    project(l.wq, ae, l.scale_q, dq);
    project(l.wk, ae, l.scale_k, dk);
    project(l.wv, ae, l.scale_v, dv);
    rope(dq, n, int(hp.n_head), int(hp.head_dim), int(hp.n_rot), pos, hp.rope_base, hp.rope_freq_scale, pairing);
    rope(dk, n, int(hp.n_head_kv), int(hp.head_dim), int(hp.n_rot), pos, hp.rope_base, hp.rope_freq_scale, pairing);
    DeviceKvCache kv;
    kv.keys = c.keys[li].as<uint16_t>();
    kv.values = c.values[li].as<uint16_t>();
    kv.capacity = c.n_ctx;
    kv.n_kv_heads = int(hp.n_head_kv);
    kv.head_dim = int(hp.head_dim);
    kv.seq_ids = c.seq_ids.as<int32_t>();
    kv.seq_stride = c.seq_stride;
    store_kv(dk, dv, n, pos, kv);  // every token's K/V before any attention: causal within the batch
    constexpr int64_t kMaxAttentionTokens = 32768;  // the kernel's grid takes ≤ 65535 tokens per launch
    for (int64_t t0 = 0; t0 < n; t0 += kMaxAttentionTokens) {
      DeviceKvCache part = kv;
      part.seq_ids = kv.seq_ids + t0;
      attention_decode(dq + t0 * hp.q_dim(), std::min(kMaxAttentionTokens, n - t0), int(hp.n_head), part,
                       c.n_kv.as<int32_t>() + t0, attn_scale, dattn + t0 * hp.q_dim());
    }
    if (l.attn_sub_norm.size() > 0)
      rms_norm_quantize(dattn, l.attn_sub_norm.as<float>(), n, hp.q_dim(), hp.norm_eps, aq);
    else
      quantize_activations(dattn, n, hp.q_dim(), aq);
    ternary_matmul(l.wo, aq, n, dproj);
    add_scaled(dx, dproj, n * hp.n_embd, l.scale_o);

    rms_norm_quantize(dx, l.ffn_norm.as<float>(), n, hp.n_embd, hp.norm_eps, ae);
    project(l.w_gate, ae, l.scale_gate, dgate);
    project(l.w_up, ae, l.scale_up, dup);
    if (hp.activation == FfnActivation::ReluSquared)
      relu_squared_mul(dgate, dup, n * hp.n_ff);
    else
      silu_mul(dgate, dup, n * hp.n_ff);
    if (l.ffn_sub_norm.size() > 0)
      rms_norm_quantize(dgate, l.ffn_sub_norm.as<float>(), n, hp.n_ff, hp.norm_eps, af);
    else
      quantize_activations(dgate, n, hp.n_ff, af);
    ternary_matmul(l.w_down, af, n, dproj);
    add_scaled(dx, dproj, n * hp.n_embd, l.scale_down);
  }

  if (!g.head) {
    c.x.download(x, size_t(n * hp.n_embd) * sizeof(float));  // the CPU's output norm and head
    return {};
  }
  std::vector<int32_t> wanted;
  for (int64_t t = 0; t < n; ++t)
    if (b.want_logits[size_t(t)]) wanted.push_back(int32_t(t));
  const int64_t n_out = int64_t(wanted.size());
  std::vector<float> logits(size_t(n_out * hp.n_vocab));
  if (n_out == 0) return logits;
  c.rows.upload(wanted.data(), wanted.size() * sizeof(int32_t));
  gather_rows(dx, c.rows.as<int32_t>(), n_out, hp.n_embd, c.gathered.as<float>());
  rms_norm(c.gathered.as<float>(), g.output_norm.as<float>(), n_out, hp.n_embd, hp.norm_eps, c.normed.as<float>());
  f16_matmul(g.output.as<uint16_t>(), hp.n_vocab, hp.n_embd, c.normed.as<float>(), n_out, c.logits.as<float>());
  c.logits.download(logits.data(), logits.size() * sizeof(float));
  return logits;
}

void copy_prefix(GpuCache& c, int64_t from, int64_t to, int64_t n) {
  if (from == to || n <= 0) return;
  // [seq][kv head][position][dim]: per kv head, positions [0, n) are n·head_dim contiguous halves.
  const int64_t head_span = c.n_ctx * c.head_dim;
  for (size_t li = 0; li < c.keys.size(); ++li)
    for (DeviceBuffer* buf : {&c.keys[li], &c.values[li]})
      for (int64_t h = 0; h < c.n_kv_heads; ++h) {
        uint16_t* base = buf->as<uint16_t>();
        copy_on_device(base + to * c.seq_stride + h * head_span, base + from * c.seq_stride + h * head_span,
                       size_t(n * c.head_dim) * sizeof(uint16_t));
      }
}

#endif  // BITNET_WITH_CUDA

}  // namespace bitnet::cuda
