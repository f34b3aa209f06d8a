#pragma once
// Environment readiness before a run (`bitnet doctor`): binaries, CPU and kernels, threads, memory
// against what the model needs, the model file itself, GPU, server port. Every failed check carries
// an actionable hint. The JSON form is the schema the Python layer's RuntimeDiagnostics.as_dict()
// returns too (docs/deployment.md).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/hparams.h"
#include "model/kv_type.h"

namespace bitnet {

// How a missing default model comes back: the doctor's hint and the tools' error say the same.
inline constexpr const char* kRestoreDefaultModel =
    "it ships with the repository: restore it with `git checkout -- models/`, or retrain it with training/train.sh";

inline constexpr int kDiagnosticsSchemaVersion = 1;

// ---- host probes ----------------------------------------------------------------------------

struct CpuInfo {
  std::string model;  // "model name" / "Hardware" from /proc/cpuinfo
  std::string arch;   // x86_64, aarch64, ...
  bool avx2 = false, avx_vnni = false, avx512f = false, avx512_vnni = false, neon = false, dotprod = false;
  std::string kernel;  // kernel family the matmuls dispatch to (e.g. "avx2", "generic")
};
CpuInfo probe_cpu();

struct MemoryInfo {
  uint64_t total = 0, available = 0;  // bytes
  std::string limit_source;           // "MemAvailable" or "cgroup memory.max"
};
// MemAvailable, lowered to the cgroup (container) limit minus its usage when that is smaller.
MemoryInfo probe_memory();

// What a run needs: weights (mapped and read), the f16 KV cache, and a rough allowance for
// activations and logits (scratch). An estimate, used to warn before a run fails mid-way.
struct MemoryEstimate {
  uint64_t weights = 0, kv_cache = 0, scratch = 0;
  uint64_t total() const { return weights + kv_cache + scratch; }
};
MemoryEstimate estimate_memory(const HParams& hp, uint64_t weight_bytes, int64_t ctx, int64_t batch);
// Exactly what a KvCache of n_seq sequences of n_ctx positions allocates (KvCache::bytes(): K and
// V of every layer in f16 or q8_0 — codes and scales —, each sequence's positions rounded up to
// whole key blocks), without allocating it. A server's slot is one such sequence of -c / -np positions.
uint64_t kv_cache_bytes(const HParams& hp, int64_t n_ctx, int64_t n_seq = 1, KvType type_k = KvType::F16,
                        KvType type_v = KvType::F16);
// Largest context (0 if none) whose estimate fits into `available` bytes.
int64_t max_ctx_that_fits(const HParams& hp, uint64_t weight_bytes, int64_t batch, uint64_t available);

struct GpuInfo {
  std::vector<std::string> devices;  // NVIDIA GPU models from the driver's /proc entries
  std::string driver;                // driver version line, empty if none
  bool cuda_library = false;         // libcuda.so found
};
GpuInfo probe_gpu();

// Empty when `host:port` can be bound now, else why not.
std::string port_problem(const std::string& host, int port);
// Empty when `path` exists, is executable and `path --help` exits 0 within 10 s, else why not.
std::string binary_problem(const std::string& path);
// Directory of the running executable.
std::string self_dir();

// ---- the report -----------------------------------------------------------------------------

struct DiagnosticsRequest {
  std::string model;           // path to check; empty: no model check
  bool model_is_default = false;  // a missing default model is generated on first run
  int64_t ctx = 0, batch = 512, threads = 0;
  int64_t parallel = 1;  // server slots sharing ctx (-np): the KV cache is reported per slot too
  bool kv_unified = false;  // serve --kv-unified: the slots share one cache of ctx positions
  int32_t gpu_layers = 0;
  KvType cache_type_k = KvType::F16, cache_type_v = KvType::F16;  // -ctk / -ctv: the KV cache's size
  std::string bin_dir;                        // where the binaries should be
  std::vector<std::string> binaries = {"bitnet"};
  std::string host = "127.0.0.1";
  int port = 8080;
  bool port_required = false;  // an explicitly requested port that is busy fails, a default warns
};

struct DiagnosticCheck {
  std::string name;    // binaries, cpu, threads, memory, model, gpu, port
  std::string status;  // ok, warn, fail, skip
  std::string detail;  // what was found
  std::string hint;    // what to do about it (failed and warning checks)
};

struct Diagnostics {
  bool ready = true;  // no check failed
  std::vector<DiagnosticCheck> checks;
  nlohmann::json facts = nlohmann::json::object();  // cpu, memory, model, gpu, server sections

  nlohmann::json to_json() const;
  std::string to_text() const;
};

Diagnostics diagnose(const DiagnosticsRequest& request);

}  // namespace bitnet
