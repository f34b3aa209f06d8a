// Google Benchmark microbenchmarks of the CPU kernels (target bench_kernels; not part of ctest):
// every ternary row kernel and matrix-matrix kernel, and the F16/Q8_0/Q6_K output-matrix kernels,
// at each matrix shape of the 2B-4T and large presets, for every ISA level this CPU supports, plus
// the scalar reference for comparison. Counters: weight bytes/s and multiply-accumulates/s.
//   bench_kernels [--benchmark_filter=REGEX] [--benchmark_min_time=0.2]
// One thread (the kernel itself); see docs/kernels.md for results.
#include <benchmark/benchmark.h>

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>

#include "kernels/kernels.h"
#include "kernels/peak_rate.h"
#include "model/attention.h"
#include "model/kv_cache.h"
#include "ops/ops.h"
#include "tensor/quants.h"

namespace bitnet {
namespace {

struct Shape {
  const char* name;
  int64_t rows, cols;
};
// (rows × cols) of each projection and of the LM head.
constexpr Shape kTernaryShapes[] = {
    {"2B4T_qo", 2560, 2560},  {"2B4T_kv", 640, 2560},  {"2B4T_gate_up", 6912, 2560},
    {"2B4T_down", 2560, 6912}, {"large_qkvo", 1536, 1536}, {"large_gate_up", 4096, 1536},
    {"large_down", 1536, 4096}};
constexpr Shape kHeadShapes[] = {{"2B4T_head", 128256, 2560}, {"large_head", 32000, 1536}};

// Weights quantized once per (type, shape) and kept for the whole run.
const std::vector<uint8_t>& weights(GgmlType type, const Shape& s) {
  static std::map<std::tuple<int, int64_t, int64_t>, std::vector<uint8_t>> cache;
  auto& w = cache[{int(type), s.rows, s.cols}];
  if (w.empty()) {
    std::vector<float> f(size_t(s.rows * s.cols));
    uint64_t x = 12345;
    for (auto& v : f) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      v = ggml_type_is_ternary(type) ? 0.02f * float(int((x >> 33) % 3) - 1)
                                     : float(int((x >> 40) % 2001) - 1000) * 1e-3f;
    }
    w = quantize_tensor(type, f.data(), s.cols, s.rows);
  }
  return w;
}

TensorView view(GgmlType type, const Shape& s) {
  const auto& bytes = weights(type, s);
  TensorView w;
  w.name = s.name;
  w.type = type;
  w.ne = {s.cols, s.rows, 1, 1};
  w.data = bytes.data();
  w.nbytes = bytes.size();
  check_ternary_codes(w);  // once, as the model loader does, not inside the timed loop
  w.codes_checked = true;
  return w;
}

void set_counters(benchmark::State& state, const TensorView& w, int64_t n_tokens) {
  const double iters = double(state.iterations());
  state.counters["bytes/s"] = benchmark::Counter(double(w.nbytes) * iters, benchmark::Counter::kIsRate,
                                                 benchmark::Counter::OneK::kIs1024);
  state.counters["MAC/s"] =
      benchmark::Counter(double(w.elements()) * double(n_tokens) * iters, benchmark::Counter::kIsRate);
}

// The whole matrix (all rows) times n_tokens activation vectors through ops::matmul_kernels —
// the row kernels for one token, the matrix-matrix kernels for several — or the reference.
void run_matmul(benchmark::State& state, GgmlType type, Shape s, int64_t n_tokens, int isa) {
  const TensorView w = view(type, s);
  std::vector<float> x(size_t(s.cols * n_tokens)), y(size_t(s.rows * n_tokens));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int64_t(i * 37 % 101) - 50) * 0.01f;
  ThreadPool pool(1);
  // The int8 quantization is shared by several weights in the model; measure the kernels alone.
  const ops::MatmulInput in(x.data(), s.cols, n_tokens);
  if (ggml_type_is_ternary(type)) in.block_qsum(pool);
  for (auto _ : state) {
    if (isa < 0)
      ops::matmul_reference(w, x.data(), n_tokens, y.data(), pool);
    else if (!ops::matmul_kernels(kernels::Isa(isa), w, in, y.data(), pool))
      state.SkipWithError("no kernel for this type/shape");
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, w, n_tokens);
}

// Attention of one decode token at a given depth in 2B-4T's shapes (20 query heads over 5 kv heads
// of 128, f16 cache) through enough layers that the cache read per iteration (≥ 768 MiB) cannot
// stay in the last-level cache: each iteration streams every layer's K/V once, as decode does.
// Counters: K/V bytes read per second and its ratio to a plain read of 1 GiB measured with the
// same pool right before (read_bw), per repetition: run with --benchmark_repetitions=N for medians.
// The "ratio" of a cache-resident run (BITNET_BENCH_ATTN_MIB) is not a memory efficiency.
constexpr int64_t kAttnHeads = 20, kAttnHeadsKv = 5, kAttnHeadDim = 128;

struct AttentionData {
  int64_t depth, n_layer;
  KvCache cache;
  std::vector<float> q, out;
  AttentionData(int64_t d, int64_t layers)
      : depth(d), n_layer(layers), cache(layers, 1, d, kAttnHeadsKv, kAttnHeadDim),
        q(size_t(layers * kAttnHeads * kAttnHeadDim)), out(q.size()) {
    uint64_t x = 7;
    auto uniform = [&] {  // in [-2, 2): cheap enough for 768 MiB of cache
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      return float(int64_t(x >> 40) - (int64_t(1) << 23)) * (1.0f / float(1 << 22));
    };
    std::vector<float> k(size_t(cache.kv_dim())), v(k.size());
    for (int64_t l = 0; l < layers; ++l)
      for (int64_t p = 0; p < d; ++p) {
        for (size_t i = 0; i < k.size(); ++i) k[i] = uniform(), v[i] = uniform();
        cache.store(l, 0, p, k.data(), v.data());
      }
    for (float& f : q) f = uniform() * 0.5f;
  }
  double kv_bytes() const { return double(n_layer * kAttnHeadsKv * depth * kAttnHeadDim * 2 * 2); }
};

// BITNET_BENCH_ATTN_MIB=N: N MiB of cache instead of 768 (a few MiB: the compute bound, in cache).
AttentionData& attention_data(int64_t depth) {
  static std::map<int64_t, std::unique_ptr<AttentionData>> data;
  auto& d = data[depth];
  if (!d) {
    const char* env = std::getenv("BITNET_BENCH_ATTN_MIB");
    const int64_t bytes = (env && *env ? std::atoll(env) : 768) << 20;
    const int64_t per_layer = kAttnHeadsKv * depth * kAttnHeadDim * 2 * 2;
    d = std::make_unique<AttentionData>(depth, std::max<int64_t>(1, (bytes + per_layer - 1) / per_layer));
  }
  return *d;
}

// mode "heads": one work item per kv head (attend() over the whole depth), as decode distributed it
// before spans; "spans": one item per (kv head, span of kAttentionSpan positions), the thread that
// completes a head's last span merging it (SpanWork, as the decode step does).
void run_attention(benchmark::State& state, int64_t depth, int threads, int isa, bool spans) {
  AttentionData& d = attention_data(depth);
  ThreadPool pool(threads);
  static std::unique_ptr<kernels::ReadBandwidthProbe> probe;
  if (!probe) probe = std::make_unique<kernels::ReadBandwidthProbe>(pool);
  const double read_bw = probe->measure(pool, 3);
  const float scale = 1.0f / std::sqrt(float(kAttnHeadDim));
  const int64_t group = kAttnHeads / kAttnHeadsKv;
  auto queries = [&](int64_t l, int64_t kvh, AttentionQuery* qs) {
    for (int64_t i = 0; i < group; ++i) {
      const size_t off = size_t((l * kAttnHeads + kvh * group + i) * kAttnHeadDim);
      qs[i] = {&d.q[off], &d.out[off], depth};
    }
  };
  auto kv_head = [&](int64_t l, int64_t kvh) {
    return KvHead{d.cache.key_blocks(l, 0, kvh), d.cache.key_block_stride(), d.cache.values(l, 0, kvh),
                  kAttnHeadDim, kAttnHeadDim};
  };
  SpanWork work;
  auto layer = [&](int64_t l) {
    if (spans) {
      work.clear(kernels::Isa(isa), scale, kAttnHeadDim);
      for (int64_t kvh = 0; kvh < kAttnHeadsKv; ++kvh) {
        AttentionQuery qs[kAttnHeads / kAttnHeadsKv];
        queries(l, kvh, qs);
        work.add(kv_head(l, kvh), qs);
      }
      pool.for_each_claimed(work.plan(), [&](int64_t item, int) { work.run(item); });
      return;
    }
    pool.for_each_claimed(kAttnHeadsKv, [&](int64_t kvh, int) {
      AttentionQuery qs[kAttnHeads / kAttnHeadsKv];
      queries(l, kvh, qs);
      attend(kernels::Isa(isa), kv_head(l, kvh), qs, scale);
    });
  };
  double seconds = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t l = 0; l < d.n_layer; ++l) layer(l);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  const double rate = d.kv_bytes() * double(state.iterations()) / seconds;
  state.counters["kv_GB/s"] = rate / 1e9;
  state.counters["read_GB/s"] = read_bw / 1e9;
  state.counters["ratio"] = rate / read_bw;
}

std::string type_name(GgmlType t) { return std::string(ggml_type_name(t)); }

void register_all() {
  std::vector<int> isas;
  for (kernels::Isa isa : kernels::kAllIsas)
    if (kernels::isa_supported(isa)) isas.push_back(int(isa));
  auto add = [&](GgmlType type, const Shape& s, int64_t n, int isa) {
    const std::string isa_name = isa < 0 ? "reference" : std::string(kernels::isa_name(kernels::Isa(isa)));
    const std::string name = type_name(type) + "/" + s.name + "/" + std::to_string(s.rows) + "x" +
                             std::to_string(s.cols) + "/tokens:" + std::to_string(n) + "/" + isa_name;
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { run_matmul(st, type, s, n, isa); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  };
  for (GgmlType type : {GgmlType::I2_S, GgmlType::TQ2_0, GgmlType::TQ1_0})
    for (const Shape& s : kTernaryShapes) {
      for (int isa : isas) {
        add(type, s, 1, isa);  // row kernel (decoding)
        if (type != GgmlType::TQ1_0)
          for (int64_t n : {2, 4, 8}) add(type, s, n, isa);  // several streams decoding together
        add(type, s, 64, isa);  // matrix-matrix kernel (prompt processing)
      }
      if (type == GgmlType::I2_S && s.rows == 1536 && s.cols == 1536) add(type, s, 1, -1);
    }
  for (GgmlType type : {GgmlType::F16, GgmlType::Q8_0, GgmlType::Q6_K})
    for (const Shape& s : kHeadShapes)
      for (int isa : isas)
        for (int64_t n : {1, 2, 4, 8}) add(type, s, n, isa);
  for (int64_t depth : {512, 2048, 4096})
    for (int threads : {1, 2})
      for (bool spans : {false, true})
        for (int isa : isas) {
          const std::string name = "attention/2B4T/depth:" + std::to_string(depth) + "/threads:" +
                                   std::to_string(threads) + (spans ? "/spans/" : "/heads/") +
                                   std::string(kernels::isa_name(kernels::Isa(isa)));
          benchmark::RegisterBenchmark(name.c_str(),
                                       [=](benchmark::State& st) { run_attention(st, depth, threads, isa, spans); })
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime()
              ->MinTime(0.5);
        }
}

}  // namespace
}  // namespace bitnet

int main(int argc, char** argv) {
  bitnet::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
