#include "runtime/diagnostics.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include "backends/cuda/device.h"
#include "backends/cuda/offload.h"
#include "base/untrusted_text.h"
#include "formats/gguf.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/run_config.h"

namespace bitnet {
namespace {

std::string mib(uint64_t bytes) {
  std::ostringstream s;
  s.precision(1);
  s << std::fixed << double(bytes) / (1 << 20) << " MiB";
  return s.str();
}

// Bytes per context position that grow with -c: the f16 K and V of every layer, plus one f32
// attention score per head.
uint64_t per_ctx_bytes(const HParams& hp) {
  return uint64_t(2 * hp.n_layer * hp.kv_dim() * 2 + hp.n_head * 4);
}

struct Report {
  Diagnostics d;
  void add(std::string name, std::string status, std::string detail, std::string hint = "") {
    if (status == "fail") d.ready = false;
    d.checks.push_back({std::move(name), std::move(status), std::move(detail), std::move(hint)});
  }
};

void check_binaries(const DiagnosticsRequest& r, Report& rep) {
  const std::string dir = r.bin_dir.empty() ? self_dir() : r.bin_dir;
  nlohmann::json found = nlohmann::json::object();
  std::string problems;
  for (const auto& name : r.binaries) {
    const std::string problem = binary_problem((std::filesystem::path(dir) / name).string());
    found[name] = problem.empty() ? "ok" : problem;
    if (!problem.empty()) problems += (problems.empty() ? "" : "; ") + problem;
  }
  rep.d.facts["binaries"] = {{"dir", dir}, {"status", found}};
  if (problems.empty())
    rep.add("binaries", "ok", "present and runnable in " + dir);
  else
    rep.add("binaries", "fail", problems,
            "build them with `python setup_env.py` (or scripts/setup.sh); if they live elsewhere, "
            "point BITNET_BIN_DIR at that directory");
}

void check_cpu(Report& rep) {
  const CpuInfo c = probe_cpu();
  rep.d.facts["cpu"] = {{"model", c.model},
                        {"arch", c.arch},
                        {"features", {{"avx2", c.avx2}, {"avx_vnni", c.avx_vnni}, {"avx512f", c.avx512f}, {"avx512_vnni", c.avx512_vnni},
                                      {"neon", c.neon}, {"dotprod", c.dotprod}}},
                        {"kernel", c.kernel}};
  auto yn = [](bool b) { return b ? "yes" : "no"; };
  std::string detail = c.model + " (" + c.arch + "): ";
  if (c.arch == "aarch64")
    detail += std::string("NEON ") + yn(c.neon) + ", dotprod " + yn(c.dotprod);
  else
    detail += std::string("AVX2 ") + yn(c.avx2) + ", AVX-VNNI " + yn(c.avx_vnni) + ", AVX-512 VNNI " + yn(c.avx512_vnni);
  detail += "; kernels: " + c.kernel;
  if (c.arch == "x86_64" && c.kernel == "generic" && !c.avx2)
    rep.add("cpu", "warn", detail, "this CPU lacks AVX2: the portable kernels run, but several times slower");
  else if (c.kernel == "reference")
    rep.add("cpu", "warn", detail, "BITNET_KERNELS=reference selects the slow scalar path; unset it for speed");
  else
    rep.add("cpu", "ok", detail);
}

void check_threads(const DiagnosticsRequest& r, Report& rep) {
  const int hw = hardware_threads();
  std::optional<int> ceiling;
  try {
    ceiling = thread_ceiling();
  } catch (const ConfigError& e) {
    rep.d.facts["cpu"]["hardware_threads"] = hw;
    rep.add("threads", "fail", e.what(), "unset BITNET_MAX_THREADS or set it to a whole number of threads");
    return;
  }
  const ThreadPlan p = plan_threads(r.threads, hw, ceiling);
  rep.d.facts["cpu"]["hardware_threads"] = hw;
  rep.d.facts["cpu"]["threads"] = p.threads;
  rep.d.facts["cpu"]["thread_ceiling"] = ceiling ? nlohmann::json(*ceiling) : nlohmann::json(nullptr);
  std::string detail = std::to_string(p.threads) + (p.automatic ? " threads (automatic) of " : " threads of ") +
                       std::to_string(hw) + " hardware threads";
  if (ceiling) detail += ", ceiling " + std::to_string(*ceiling);
  if (!p.note.empty() && !p.automatic && !ceiling)
    rep.add("threads", "warn", detail + ": " + p.note, "use -t " + std::to_string(hw) + " or fewer");
  else
    rep.add("threads", "ok", p.note.empty() ? detail : detail + " (" + p.note + ")");
}

struct ModelFacts {
  std::optional<HParams> hp;
  uint64_t weight_bytes = 0;
  // What an -ngl offload of the loaded model would put on the GPU (check_gpu).
  bool per_block_scales = false;  // TQ1_0 / TQ2_0 layer matrices (after load-time conversion)
  bool head_f16 = false;
};

void model_fail(Report& rep, const std::string& detail, const std::string& hint) {
  rep.add("model", "fail", detail, hint);
}

ModelFacts check_model(const DiagnosticsRequest& r, Report& rep) {
  ModelFacts mf;
  nlohmann::json facts = {{"path", r.model}, {"default", r.model_is_default}};
  std::error_code ec;
  const bool exists = std::filesystem::is_regular_file(r.model, ec);
  facts["exists"] = exists;
  rep.d.facts["model"] = facts;
  if (!exists) {
    if (r.model_is_default)
      model_fail(rep, "default model missing: " + r.model, kRestoreDefaultModel);
    else if (std::filesystem::exists(r.model, ec))  // a directory, device or FIFO: not "not found"
      model_fail(rep, "model path is not a regular file: " + r.model,
                 "-m takes a GGUF file; check the path");
    else
      model_fail(rep, "model file not found: " + r.model,
                 "check the -m path; omit -m to use the default model, or prepare one with `python setup_env.py`");
    return mf;
  }
  std::optional<GgufFile> file;
  try {
    file.emplace(GgufFile::open(r.model));
  } catch (const Error& e) {
    model_fail(rep, std::string("not a valid GGUF model: ") + e.what(),
               "the file is damaged or truncated (interrupted download or conversion?): fetch it again or "
               "regenerate it (`bitnet gen-model`, `python setup_env.py`)");
    return mf;
  }
  const std::string arch = file->get_string("general.architecture").value_or("");
  const auto archs = supported_architectures();
  rep.d.facts["model"]["architecture"] = arch;
  rep.d.facts["model"]["file_bytes"] = file->file_size();
  std::map<std::string, int> types;
  for (const auto& t : file->tensors()) {
    types[std::string(ggml_type_name(t.type))]++;
    mf.weight_bytes += t.nbytes;
  }
  rep.d.facts["model"]["tensors"] = file->tensors().size();
  rep.d.facts["model"]["types"] = types;
  if (std::find(archs.begin(), archs.end(), arch) == archs.end()) {
    std::string list;
    for (const auto& a : archs) list += (list.empty() ? "" : ", ") + a;
    model_fail(rep, "unsupported architecture " + quote_untrusted(arch) + " (supported: " + list + ")",
               "this engine runs BitNet b1.58 and ternary Llama/Falcon3 models; convert a supported model");
    return mf;
  }
  try {
    HParams hp = read_hparams(*file);
    const auto model = load_model(std::move(*file));  // binds every tensor: presence, shape and type
    if (!model->layers.empty()) {
      const GgmlType t = model->layers.back().wq.type;
      mf.per_block_scales = t == GgmlType::TQ1_0 || t == GgmlType::TQ2_0;
    }
    mf.head_f16 = model->output.type == GgmlType::F16;
    rep.d.facts["model"]["n_layer"] = hp.n_layer;
    rep.d.facts["model"]["n_ctx_train"] = hp.n_ctx_train;
    mf.hp = hp;
    rep.add("model", "ok", arch + ", " + std::to_string(hp.n_layer) + " layers, " +
                               std::to_string(rep.d.facts["model"]["tensors"].get<size_t>()) + " tensors, " + mib(mf.weight_bytes));
  } catch (const Error& e) {
    model_fail(rep, std::string("model does not load: ") + e.what(),
               "a tensor is missing, mis-shaped or of an unsupported type: re-convert the model "
               "(`bitnet convert`) or regenerate it");
  }
  return mf;
}

void check_memory(const DiagnosticsRequest& r, const ModelFacts& mf, Report& rep) {
  const MemoryInfo m = probe_memory();
  nlohmann::json facts = {{"total_bytes", m.total}, {"available_bytes", m.available}, {"limit_source", m.limit_source}};
  if (!mf.hp) {
    rep.d.facts["memory"] = facts;
    rep.add("memory", "ok", mib(m.available) + " available of " + mib(m.total) + " (no model to size)");
    return;
  }
  const int64_t ctx = resolve_ctx(r.ctx, mf.hp->n_ctx_train);
  const int64_t batch = std::max<int64_t>(1, r.batch);
  const int64_t slots = std::max<int64_t>(1, r.parallel), slot_ctx = r.kv_unified ? ctx : ctx / slots;
  MemoryEstimate e = estimate_memory(*mf.hp, mf.weight_bytes, ctx, batch);
  // The KV cache as allocated: -np slots of ctx / -np positions each (`serve`; `run` is one slot);
  // with --kv-unified one pool of ctx positions that every slot may fill (its address space is -np
  // times that, committed only as used: what counts is the pool).
  const uint64_t per_slot = slot_ctx > 0 ? kv_cache_bytes(*mf.hp, slot_ctx, 1, r.cache_type_k, r.cache_type_v) : 0;
  e.kv_cache = r.kv_unified ? per_slot : per_slot * uint64_t(slots);
  facts.update({{"ctx", ctx}, {"required_bytes", e.total()}, {"weights_bytes", e.weights},
                {"kv_cache_bytes", e.kv_cache}, {"scratch_bytes", e.scratch}, {"parallel", slots},
                {"kv_unified", r.kv_unified}, {"n_ctx_slot", slot_ctx}, {"kv_cache_bytes_per_slot", per_slot},
                {"cache_type_k", kv_type_name(r.cache_type_k)}, {"cache_type_v", kv_type_name(r.cache_type_v)}});
  rep.d.facts["memory"] = facts;
  if (slot_ctx < 8) {
    rep.add("memory", "fail",
            "-c " + std::to_string(ctx) + " shared by " + std::to_string(slots) + " slots leaves " +
                std::to_string(slot_ctx) + " tokens per slot; the server needs at least 8",
            "raise -c or lower -np");
    return;
  }
  const std::string kv_slots =
      slots == 1   ? ""
      : r.kv_unified ? " (unified: shared by " + std::to_string(slots) + " slots, each may use all of it)"
                     : " (" + std::to_string(slots) + " slots of " + std::to_string(slot_ctx) + " tokens, " +
                           mib(per_slot) + " each)";
  const std::string detail = "needs ~" + mib(e.total()) + " (weights " + mib(e.weights) + " + KV cache " +
                             mib(e.kv_cache) + " at ctx " + std::to_string(ctx) + kv_slots + " + scratch " +
                             mib(e.scratch) + "), " + mib(m.available) + " available";
  if (e.total() > m.available) {
    const int64_t fits = max_ctx_that_fits(*mf.hp, mf.weight_bytes, batch, m.available);
    rep.add("memory", "fail", detail,
            fits > 0 ? "lower the context: -c " + std::to_string(fits) + " or less fits; or free memory"
                     : "the weights alone do not fit: free memory or use a smaller model");
  } else if (e.total() > m.available / 10 * 8) {
    rep.add("memory", "warn", detail, "less than 20% headroom: other programs may push the run into swap");
  } else {
    rep.add("memory", "ok", detail);
  }
}

void check_gpu(const DiagnosticsRequest& r, const ModelFacts& mf, Report& rep) {
  const GpuInfo g = probe_gpu();
  const cuda::DeviceInfo cu = cuda::probe();
  nlohmann::json cuda_devices = nlohmann::json::array();
  for (const cuda::GpuInfo& d : cu.gpus)
    cuda_devices.push_back({{"index", d.index}, {"name", d.name},
                            {"compute_capability", std::to_string(d.compute_major) + "." + std::to_string(d.compute_minor)},
                            {"multiprocessors", d.multiprocessors}, {"total_bytes", d.total_memory},
                            {"free_bytes", d.free_memory}});
  rep.d.facts["gpu"] = {{"devices", g.devices}, {"driver", g.driver}, {"cuda_library", g.cuda_library},
                        {"backend", cuda::built_with_cuda() ? "cuda" : "none"}, {"cuda_devices", cuda_devices},
                        {"cuda_error", cu.error}};
  std::string found;
  if (cu.available()) {
    const cuda::GpuInfo& d = cu.gpus[0];
    found = "GPU: " + d.name + " (compute " + std::to_string(d.compute_major) + "." + std::to_string(d.compute_minor) +
            ", " + mib(d.total_memory) + ", " + mib(d.free_memory) + " free)";
    if (cu.gpus.size() > 1) found += " and " + std::to_string(cu.gpus.size() - 1) + " more (only GPU 0 is used)";
  } else {
    found = g.devices.empty() ? "no GPU found" : "GPU: ";
    for (size_t i = 0; i < g.devices.size(); ++i) found += (i ? ", " : "") + g.devices[i];
    if (!g.devices.empty()) found += g.cuda_library ? " (CUDA driver library present)" : " (no libcuda)";
  }
  if (r.gpu_layers <= 0) {
    rep.add("gpu", "ok", found + (cu.available() ? "; -ngl 0: inference runs on the CPU (-ngl N offloads N layers)"
                                                 : "; inference runs on the CPU"));
    return;
  }
  const std::string ngl = "-ngl " + std::to_string(r.gpu_layers);
  if (!cu.available()) {
    rep.add("gpu", "fail", found + "; " + ngl + " requested, but " + cu.error,
            cuda::built_with_cuda() ? "run on a machine with an NVIDIA GPU and driver, or drop -ngl"
                                    : "rebuild with -DBITNET_CUDA=ON (CUDA toolkit) for GPU offload, or drop -ngl");
    return;
  }
  if (!mf.hp) {
    rep.add("gpu", "ok", found + "; " + ngl + " requested (no model to size)");
    return;
  }
  const int64_t ctx = resolve_ctx(r.ctx, mf.hp->n_ctx_train);
  const cuda::LayerSplit split = cuda::split_layers(mf.hp->n_layer, r.gpu_layers);
  const cuda::OffloadEstimate e = cuda::estimate_offload(*mf.hp, split, mf.per_block_scales, mf.head_f16, 1, ctx,
                                                         std::max<int64_t>(1, r.batch));
  const uint64_t free_bytes = cu.gpus[0].free_memory;
  rep.d.facts["gpu"]["offload"] = {{"gpu_layers", split.gpu_layers}, {"output_on_gpu", split.output_on_gpu && mf.head_f16},
                                   {"required_bytes", e.total()}, {"weights_bytes", e.weights},
                                   {"kv_cache_bytes", e.kv_cache}, {"scratch_bytes", e.scratch}, {"ctx", ctx}};
  const std::string detail = found + "; " + ngl + ": " + std::to_string(split.gpu_layers) + " of " +
                             std::to_string(mf.hp->n_layer) + " layers need ~" + mib(e.total()) + " on the GPU (weights " +
                             mib(e.weights) + " + KV cache " + mib(e.kv_cache) + " at ctx " + std::to_string(ctx) +
                             " + scratch " + mib(e.scratch) + ")";
  if (e.total() > free_bytes)
    rep.add("gpu", "fail", detail + ", " + mib(free_bytes) + " free", "lower -ngl or -c");
  else if (e.total() > free_bytes / 10 * 9)
    rep.add("gpu", "warn", detail + ", " + mib(free_bytes) + " free", "less than 10% of the GPU's memory to spare");
  else
    rep.add("gpu", "ok", detail);
}

void check_port(const DiagnosticsRequest& r, Report& rep) {
  const std::string problem = port_problem(r.host, r.port);
  rep.d.facts["server"] = {{"host", r.host}, {"port", r.port}, {"available", problem.empty()}};
  if (problem.empty()) {
    rep.add("port", "ok", r.host + ":" + std::to_string(r.port) + " is free for the server");
    return;
  }
  rep.add("port", r.port_required ? "fail" : "warn", problem,
          "choose another --port, or stop the process listening on it (`ss -ltnp | grep :" +
              std::to_string(r.port) + "`)");
}

}  // namespace

MemoryEstimate estimate_memory(const HParams& hp, uint64_t weight_bytes, int64_t ctx, int64_t batch) {
  MemoryEstimate e;
  e.weights = weight_bytes;
  e.kv_cache = uint64_t(2 * hp.n_layer * ctx * hp.kv_dim()) * 2;
  const uint64_t per_token = uint64_t(6 * hp.n_embd + hp.q_dim() + 2 * hp.kv_dim() + 3 * hp.n_ff) * 4;
  e.scratch = uint64_t(batch) * per_token + uint64_t(hp.n_vocab) * 4 * 2 + uint64_t(ctx * hp.n_head) * 4;
  return e;
}

uint64_t kv_cache_bytes(const HParams& hp, int64_t n_ctx, int64_t n_seq, KvType type_k, KvType type_v) {
  return KvCache::bytes_for(hp.n_layer, n_seq, n_ctx, hp.n_head_kv, hp.head_dim, type_k, type_v);
}

int64_t max_ctx_that_fits(const HParams& hp, uint64_t weight_bytes, int64_t batch, uint64_t available) {
  const uint64_t base = estimate_memory(hp, weight_bytes, 0, batch).total();
  if (base >= available) return 0;
  return int64_t(std::min<uint64_t>((available - base) / per_ctx_bytes(hp), uint64_t(kMaxCtx)));
}

Diagnostics diagnose(const DiagnosticsRequest& r) {
  Report rep;
  check_binaries(r, rep);
  check_cpu(rep);
  check_threads(r, rep);
  ModelFacts mf;
  if (!r.model.empty()) mf = check_model(r, rep);
  check_memory(r, mf, rep);
  check_gpu(r, mf, rep);
  check_port(r, rep);
  return rep.d;
}

nlohmann::json Diagnostics::to_json() const {
  nlohmann::json j = {{"schema", "bitnet.doctor"}, {"schema_version", kDiagnosticsSchemaVersion}, {"ready", ready}};
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : checks)
    list.push_back({{"name", c.name}, {"status", c.status}, {"detail", c.detail}, {"hint", c.hint}});
  j["checks"] = list;
  for (const auto& [k, v] : facts.items()) j[k] = v;
  return j;
}

std::string Diagnostics::to_text() const {
  std::ostringstream s;
  for (const auto& c : checks) {
    const std::string tag = c.status == "fail" ? "FAIL" : c.status;
    s << "[" << tag << std::string(4 - std::min<size_t>(4, tag.size()), ' ') << "] " << c.name
      << std::string(10 - std::min<size_t>(9, c.name.size()), ' ') << c.detail << "\n";
    if (!c.hint.empty()) s << std::string(17, ' ') << "hint: " << c.hint << "\n";
  }
  s << (ready ? "ready: every required check passed\n" : "not ready: fix the FAIL lines above\n");
  return s.str();
}

}  // namespace bitnet
