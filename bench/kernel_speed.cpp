// Matrix-vector speed of the kernel paths vs the scalar reference (single thread, median of
// repeats). Not part of the CMake build; see docs/kernels.md for the one-line compile command.
//   kernel_speed [repeats]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "ops/ops.h"
#include "tensor/quants.h"

using namespace bitnet;

namespace {

double median_ms(int repeats, const std::function<void()>& fn) {
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void bench(GgmlType type, int64_t K, int64_t M, int repeats) {
  std::vector<float> wf(size_t(K * M));
  uint64_t s = 12345;
  for (auto& v : wf) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const int t = int((s >> 33) % 3) - 1;
    v = ggml_type_is_ternary(type) ? 0.02f * float(t) : float(int((s >> 40) % 2001) - 1000) * 1e-3f;
  }
  const std::vector<uint8_t> bytes = quantize_tensor(type, wf.data(), K, M);
  TensorView w;
  w.name = "bench";
  w.type = type;
  w.ne = {K, M, 1, 1};
  w.data = bytes.data();
  w.nbytes = bytes.size();
  std::vector<float> x(static_cast<size_t>(K)), y(static_cast<size_t>(M));
  for (int64_t i = 0; i < K; ++i) x[size_t(i)] = float((i * 37) % 101 - 50) * 0.01f;
  ThreadPool pool(1);
  const double ref = median_ms(std::max(1, repeats / 2), [&] { ops::matmul_reference(w, x.data(), 1, y.data(), pool); });
  std::printf("%-5s %6lldx%-5lld reference %9.2f ms\n", std::string(ggml_type_name(type)).c_str(),
              (long long)M, (long long)K, ref);
  for (kernels::Isa isa : kernels::kAllIsas) {
    if (!kernels::isa_supported(isa)) continue;
    const double ms = median_ms(repeats, [&] { ops::matmul_kernels(isa, w, x.data(), 1, y.data(), pool); });
    std::printf("%-5s %6lldx%-5lld %-9s %9.2f ms   %6.1fx faster than reference\n",
                std::string(ggml_type_name(type)).c_str(), (long long)M, (long long)K,
                std::string(kernels::isa_name(isa)).c_str(), ms, ref / ms);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 7;
  std::printf("best ISA: %s, 1 thread, median of %d (reference: %d)\n",
              std::string(kernels::isa_name(kernels::best_isa())).c_str(), repeats,
              std::max(1, repeats / 2));
  bench(GgmlType::I2_S, 2560, 2560, repeats);
  bench(GgmlType::TQ2_0, 2560, 2560, repeats);
  bench(GgmlType::TQ1_0, 2560, 2560, repeats);
  bench(GgmlType::I2_S, 6912, 2560, repeats);
  bench(GgmlType::F16, 768, 128256, repeats);
  bench(GgmlType::Q8_0, 768, 128256, repeats);
  bench(GgmlType::Q6_K, 768, 32000, repeats);
  return 0;
}
