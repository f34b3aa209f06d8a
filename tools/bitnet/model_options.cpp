#include "model_options.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "conversion/dummy_model.h"

namespace bitnet::cli {

void add_model_options(ArgParser& p, ModelOptions& o) {
  p.option({"-m", "--model"}, "FILE", "GGUF model (default: the generated default model)", &o.model);
  p.option({"-t", "--threads"}, "N", "threads (default: all hardware threads)", &o.threads);
  p.option({"-c", "--ctx-size"}, "N", "context size in tokens (default: model's, at most 4096)", &o.ctx);
  p.option({"-b", "--batch-size"}, "N", "tokens per forward pass during prompt processing (default: 512)",
           &o.batch);
  p.option({"-ngl", "--gpu-layers", "--n-gpu-layers"}, "N",
           "layers to offload to a GPU (accepted for compatibility; this build runs on the CPU)",
           &o.gpu_layers);
}

std::string default_model_path() {
  const char* env = std::getenv("BITNET_DEFAULT_MODEL");
  const std::string path =
      env ? env : std::string(BITNET_SOURCE_DIR) + "/models/dummy-bitnet-b1.58-125M-i2_s.gguf";
  if (std::filesystem::exists(path)) return path;
  std::fprintf(stderr, "default model %s not found: generating it (bitnet-b1.58, preset 125M, I2_S)\n",
               path.c_str());
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  DummyModelSpec spec;
  spec.arch = "bitnet-b1.58";
  spec.preset = "125M";
  spec.type = GgmlType::I2_S;
  generate_dummy_model(spec, path, [](uint64_t d, uint64_t t) { print_progress("generating", d, t); });
  return path;
}

LoadedModel load_for_run(const ModelOptions& o) {
  if (o.threads < 0 || o.threads > 1024) throw UsageError("-t must be between 1 and 1024");
  if (o.ctx < 0) throw UsageError("-c must be positive");
  if (o.batch < 1 || o.batch > 65536) throw UsageError("-b must be between 1 and 65536");
  if (o.gpu_layers < 0) throw UsageError("-ngl must be ≥ 0");
  if (!o.model.empty() && !std::filesystem::exists(o.model))
    throw UsageError("model file not found: " + o.model);
  if (o.gpu_layers > 0)
    std::fprintf(stderr, "note: -ngl %d ignored: this build has no GPU backend; running on the CPU\n",
                 o.gpu_layers);
  LoadedModel lm;
  lm.threads = o.threads > 0 ? int(o.threads)
                             : int(std::clamp<unsigned>(std::thread::hardware_concurrency(), 1, 256));
  const std::string path = o.model.empty() ? default_model_path() : o.model;
  const auto start = std::chrono::steady_clock::now();
  lm.model = load_model(path);
  lm.load_ms = elapsed_ms(start);
  const HParams& hp = lm.model->hp;
  lm.ctx = o.ctx > 0 ? o.ctx : std::min<int64_t>(hp.n_ctx_train, 4096);
  std::fprintf(stderr, "loaded %s: %s, %lld layers, d=%lld, vocab %lld, %.1f MiB of weights, %d threads, ctx %lld\n",
               path.c_str(), hp.arch.name.c_str(), (long long)hp.n_layer, (long long)hp.n_embd,
               (long long)hp.n_vocab, double(lm.model->weight_bytes()) / (1 << 20), lm.threads,
               (long long)lm.ctx);
  for (const auto& note : lm.model->load_notes) std::fprintf(stderr, "note: %s\n", note.c_str());
  return lm;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;
}

void print_timings(const Timings& t) {
  auto line = [](const char* what, double ms, int64_t n, const char* unit) {
    std::fprintf(stderr, "%18s = %10.2f ms / %5lld %s (%8.2f ms per token, %8.2f tokens per second)\n",
                 what, ms, (long long)n, unit, n ? ms / double(n) : 0.0, ms > 0 ? 1e3 * double(n) / ms : 0.0);
  };
  std::fprintf(stderr, "\n%18s = %10.2f ms\n", "load time", t.load_ms);
  line("prompt eval time", t.prompt_ms, t.prompt_tokens, "tokens");
  line("eval time", t.eval_ms, t.eval_tokens, "runs  ");
  std::fprintf(stderr, "%18s = %10.2f ms / %5lld runs\n", "sampling time", t.sample_ms, (long long)t.sampled);
  std::fprintf(stderr, "%18s = %10.2f ms\n", "total time", t.load_ms + t.prompt_ms + t.eval_ms + t.sample_ms);
  std::fprintf(stderr, "%18s = %10.2f MiB\n", "peak memory", peak_rss_mib());
}

void print_progress(const char* what, uint64_t done, uint64_t total) {
  static int last = -1;
  const int pct = total ? int(100 * done / total) : 100;
  if (pct == last && done != total) return;
  last = pct;
  const int width = 40, filled = pct * width / 100;
  std::fprintf(stderr, "\r%s [%.*s%*s] %3d%% %.1f/%.1f MiB", what, filled,
               "########################################", width - filled, "", pct,
               double(done) / (1 << 20), double(total) / (1 << 20));
  if (done == total) {
    std::fputc('\n', stderr);
    last = -1;
  }
  std::fflush(stderr);
}

}  // namespace bitnet::cli
