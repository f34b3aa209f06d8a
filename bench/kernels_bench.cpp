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

#include "kernels/kernels.h"
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
