// `bitnet batched-bench` / `llama-batched-bench`: throughput of B sequences processed together, with
// llama-batched-bench's flags, semantics and table. For every (PP, TG, B): a prompt of PP tokens
// for each of B sequences (one token of every sequence per position, as llama-batched-bench lays
// the batch out, fed to forward() in chunks of -b and then -ub tokens; with -pps one prompt in
// sequence 0 whose cache is then copied to the others), then TG steps of one token for each
// sequence, every step one batch of B tokens with B sets of logits. Tokens are random ids from a
// fixed seed. Our additions: -r repetitions (medians), JSON output, the CPU and ISA on stderr.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "backends/cuda/offload.h"
#include "commands.h"
#include "kernels/cpu_features.h"
#include "model/forward.h"
#include "model_options.h"
#include "runtime/diagnostics.h"

namespace bitnet::cli {
namespace {

struct Case {
  int64_t pp = 0, tg = 0, pl = 0;
  // KV cells the case fills, llama-batched-bench's N_KV: B·(PP+TG), or PP + B·TG with a shared prompt.
  int64_t n_kv(bool shared) const { return shared ? pp + pl * tg : pl * (pp + tg); }
  std::string name() const {
    return "PP " + std::to_string(pp) + ", TG " + std::to_string(tg) + ", B " + std::to_string(pl);
  }
};

struct Settings {
  bool shared = false;
  int64_t n_batch = 2048, n_ubatch = 512, reps = 1;
  uint64_t seed = 1234;
};

struct Row {
  Case c;
  int64_t n_kv = 0, n_kv_max = 0;
  std::vector<double> t_pp, t_tg;  // seconds, one per repetition
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double rate(double tokens, double seconds) { return seconds > 0 ? tokens / seconds : 0; }

// Runs `b` through the model in chunks of n_batch tokens, each split again into n_ubatch tokens
// (llama.cpp's logical and physical batch sizes; forward() is our physical batch).
void decode_chunked(const Model& m, KvCache& cache, const Batch& b, ThreadPool& pool, const Settings& s) {
  for (int64_t outer = 0; outer < b.size(); outer += s.n_batch) {
    const int64_t outer_end = std::min(b.size(), outer + s.n_batch);
    for (int64_t begin = outer; begin < outer_end; begin += s.n_ubatch) {
      const int64_t end = std::min(outer_end, begin + s.n_ubatch);
      Batch chunk;
      for (int64_t i = begin; i < end; ++i)
        chunk.add(b.tokens[size_t(i)], b.positions[size_t(i)], b.seq_ids[size_t(i)], b.want_logits[size_t(i)] != 0);
      forward(m, cache, chunk, pool);
    }
  }
}

// One timed run of a case on `cache` (B sequences of at least PP+TG positions); returns {T_PP, T_TG}.
std::pair<double, double> run_case(const Model& m, KvCache& cache, ThreadPool& pool, const Case& c,
                                   const Settings& s, uint64_t seed) {
  const int64_t prompt_seqs = s.shared ? 1 : c.pl;
  std::mt19937_64 rng(seed);
  auto token = [&] { return int32_t(rng() % uint64_t(m.hp.n_vocab)); };
  Batch prompt;
  for (int64_t i = 0; i < c.pp; ++i)
    for (int64_t j = 0; j < prompt_seqs; ++j) prompt.add(token(), int32_t(i), int32_t(j), false);
  if (prompt.size() > 0) prompt.want_logits.back() = 1;  // llama-batched-bench: the last token's logits
  std::vector<Batch> steps(size_t(c.tg));
  for (int64_t i = 0; i < c.tg; ++i)
    for (int64_t j = 0; j < c.pl; ++j) steps[size_t(i)].add(token(), int32_t(c.pp + i), int32_t(j), true);

  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  for (int64_t j = 0; j < cache.n_seq(); ++j) cache.clear(j);
  decode_chunked(m, cache, prompt, pool, s);
  if (s.shared)
    for (int64_t j = 1; j < c.pl; ++j) {
      cache.copy_prefix(0, j, c.pp);
      cache.set_length(j, c.pp);
    }
  const auto t1 = clock::now();
  for (const Batch& step : steps) decode_chunked(m, cache, step, pool, s);
  const auto t2 = clock::now();
  return {std::chrono::duration<double>(t1 - t0).count(), std::chrono::duration<double>(t2 - t1).count()};
}

struct Context {
  std::string model_path, model_type, cpu, isa;
  int threads = 1;
  int64_t ngl = 0;
  std::string type_k = "f16", type_v = "f16";
};

nlohmann::ordered_json row_json(const Row& r, const Settings& s, const Context& ctx) {
  const double t_pp = median(r.t_pp), t_tg = median(r.t_tg), t = t_pp + t_tg;
  const int64_t pp_tokens = s.shared ? r.c.pp : r.c.pl * r.c.pp;
  // llama-batched-bench's JSON-lines names (its --output-format jsonl), then ours.
  return {{"n_kv_max", r.n_kv_max},
          {"n_batch", s.n_batch},
          {"n_ubatch", s.n_ubatch},
          {"is_pp_shared", s.shared ? 1 : 0},
          {"n_gpu_layers", ctx.ngl},
          {"type_k", ctx.type_k},
          {"type_v", ctx.type_v},
          {"n_threads", ctx.threads},
          {"n_threads_batch", ctx.threads},
          {"pp", r.c.pp},
          {"tg", r.c.tg},
          {"pl", r.c.pl},
          {"n_kv", r.n_kv},
          {"t_pp", t_pp},
          {"speed_pp", rate(double(pp_tokens), t_pp)},
          {"t_tg", t_tg},
          {"speed_tg", rate(double(r.c.pl * r.c.tg), t_tg)},
          {"t", t},
          {"speed", rate(double(r.n_kv), t)},
          {"model", ctx.model_path},
          {"model_type", ctx.model_type},
          {"cpu", ctx.cpu},
          {"cpu_isa", ctx.isa},
          {"repetitions", s.reps},
          {"samples_t_pp", r.t_pp},
          {"samples_t_tg", r.t_tg}};
}

void print_table_header() {
  std::printf("|%6s | %6s | %4s | %6s | %8s | %8s | %8s | %8s | %8s | %8s |\n", "PP", "TG", "B", "N_KV", "T_PP s",
              "S_PP t/s", "T_TG s", "S_TG t/s", "T s", "S t/s");
  std::printf("|%6s-|-%6s-|-%4s-|-%6s-|-%8s-|-%8s-|-%8s-|-%8s-|-%8s-|-%8s-|\n", "------", "------", "----", "------",
              "--------", "--------", "--------", "--------", "--------", "--------");
}

void print_table_row(const nlohmann::ordered_json& j) {
  std::printf("|%6lld | %6lld | %4lld | %6lld | %8.3f | %8.2f | %8.3f | %8.2f | %8.3f | %8.2f |\n",
              (long long)j["pp"], (long long)j["tg"], (long long)j["pl"], (long long)j["n_kv"], double(j["t_pp"]),
              double(j["speed_pp"]), double(j["t_tg"]), double(j["speed_tg"]), double(j["t"]), double(j["speed"]));
}

std::string model_type(const Model& m) {
  const GgufTensorInfo* wq = m.file.find_tensor("blk.0.attn_q.weight");
  return m.hp.arch.name + " " + std::string(ggml_type_name(wq ? wq->type : m.layers[0].wq.type));
}

int cmd_batched_bench(int argc, char** argv) {
  ModelOptions mo;
  Settings s;
  std::string npp_arg = "128", ntg_arg = "128", npl_arg = "1", format = "md";
  bool no_warmup = false;
  ArgParser p("bitnet batched-bench",
              "Benchmark B sequences decoded together (llama-batched-bench compatible): for each PP, TG and B, a "
              "prompt of PP tokens in each of B sequences, then TG steps of B tokens (one per sequence).");
  p.option({"-m", "--model"}, "FILE", "GGUF model (default: the trained default model in models/)", &mo.model);
  p.list_option({"-npp"}, "N[,N...]", "prompt tokens per sequence (default 128)", &npp_arg);
  p.list_option({"-ntg"}, "N[,N...]", "generated tokens per sequence (default 128)", &ntg_arg);
  p.list_option({"-npl"}, "N[,N...]", "numbers of sequences B (default 1)", &npl_arg);
  p.flag({"-pps"}, "the prompt is shared: evaluated once in sequence 0, its cache copied to the others", &s.shared);
  p.option({"-t", "--threads"}, "N", "threads (default: all hardware threads)", &mo.threads);
  p.option({"-c", "--ctx-size"}, "N",
           "KV cells over all sequences, as llama-batched-bench's n_kv_max: a case needing more (N_KV) is an "
           "error before anything runs (default 0: each case gets what it needs, B sequences of PP+TG positions)",
           &mo.ctx);
  p.option({"-b", "--batch-size"}, "N", "logical batch: tokens per decode call (default 2048)", &s.n_batch);
  p.option({"-ub", "--ubatch-size"}, "N", "physical batch: tokens per forward pass (default 512)", &s.n_ubatch);
  p.option({"-ngl", "--gpu-layers", "--n-gpu-layers"}, "N",
           "run the last N layers on the GPU (needs a CUDA build and an NVIDIA GPU; default 0)", &mo.gpu_layers);
  p.flag({"--mmap"}, "read the weights from the memory-mapped file (default: copy them into huge-page memory)", &mo.mmap);
  p.flag({"--no-mmap"}, "copy the weights into huge-page memory (the default)", &mo.no_mmap);
  p.option({"-ctk", "--cache-type-k"}, "TYPE", std::string("KV cache type of the keys: ") + kCacheTypeHelp,
           &mo.cache_type_k);
  p.option({"-ctv", "--cache-type-v"}, "TYPE", std::string("KV cache type of the values: ") + kCacheTypeHelp,
           &mo.cache_type_v);
  p.option({"-r", "--repetitions"}, "N", "runs of each case; the table shows the median times (default 1)", &s.reps);
  p.option({"--output-format"}, "FORMAT", "md (llama-batched-bench's table), json (one array) or jsonl (default md)",
           &format);
  p.option({"-s", "--seed"}, "N", "seed of the random token ids (default 1234)", &s.seed);
  p.flag({"--no-warmup"}, "skip the warm-up decode before the first case", &no_warmup);
  p.compat_noop({"-fa", "--flash-attn"}, "on|off|auto", "one attention kernel serves every case");
  p.compat_noop({"-tb", "--threads-batch"}, "N", "-t sets the threads for prompts and generation");
  p.compat_noop({"-np", "--parallel"}, "N", "-npl sets the numbers of sequences");
  p.compat_noop({"--numa"}, "MODE", "threads are placed by the operating system");
  p.compat_noop({"--mlock"}, "", "the weights are copied into huge-page memory, or read from the file with --mmap");
  p.compat_noop({"--prio"}, "N", "threads run at the default priority");
  p.compat_noop({"-v", "--verbose"}, "", "the log has one verbosity");
  p.compat_noop({"--log-disable"}, "", "the log has one verbosity");
  p.unsupported({"-hf", "-hfr", "--hf-repo"}, "REPO", "models are not downloaded; pass -m FILE");
  p.unsupported({"--lora", "--lora-scaled"}, "FILE", "LoRA adapters");
  if (!p.parse(argc, argv)) return 0;

  if (format != "md" && format != "json" && format != "jsonl")
    throw UsageError("--output-format must be md, json or jsonl, got '" + format + "'");
  if (s.reps < 1 || s.reps > 1000) throw UsageError("-r must be between 1 and 1000, got " + std::to_string(s.reps));
  for (const auto& [flag, v] : {std::pair{"-b", s.n_batch}, std::pair{"-ub", s.n_ubatch}})
    if (v < 1 || v > kMaxBatch)
      throw UsageError(std::string(flag) + " must be between 1 and " + std::to_string(kMaxBatch) + ", got " +
                       std::to_string(v));
  if (s.seed == UINT64_MAX) s.seed = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  std::vector<Case> cases;
  const auto npp = parse_list("-npp", npp_arg), ntg = parse_list("-ntg", ntg_arg), npl = parse_list("-npl", npl_arg);
  for (int64_t b : npl)
    if (b < 1 || b > 4096) throw UsageError("-npl values must be between 1 and 4096, got " + std::to_string(b));
  for (int64_t pp : npp)
    for (int64_t tg : ntg) {
      if (pp + tg < 1) throw UsageError("-npp " + std::to_string(pp) + " with -ntg " + std::to_string(tg) + " runs nothing");
      if (pp + tg > kMaxCtx) throw UsageError("PP+TG must be at most " + std::to_string(kMaxCtx));
      for (int64_t b : npl) cases.push_back({pp, tg, b});
    }
  // -c is the budget of KV cells over all sequences (llama-batched-bench skips a case beyond it
  // with a line on stdout; a benchmark that quietly measures less is refused here instead).
  int64_t need_max = 0;
  for (const Case& c : cases) {
    const int64_t need = c.n_kv(s.shared), cells = c.pl * (c.pp + c.tg);
    need_max = std::max(need_max, cells);
    if (mo.ctx > 0 && need > mo.ctx)
      throw UsageError("-c " + std::to_string(mo.ctx) + " is too small for " + c.name() + ": it needs N_KV = " +
                       std::to_string(need) + (s.shared ? " (PP + B*TG)" : " (B*(PP+TG))") +
                       " cells; raise -c or leave it out (each case then gets what it needs)");
  }
  const int64_t ctx_arg = mo.ctx;
  // For the memory check of the load: the largest cache a case allocates (B sequences of PP+TG,
  // with -pps too), whatever -c says.
  mo.ctx = std::min(need_max, kMaxCtx);
  mo.batch = std::min(s.n_batch, s.n_ubatch);
  LoadedModel lm = load_for_run(mo);
  const Model& m = *lm.model;
  refuse_embedding_model(m);
  for (const Case& c : cases)
    if (const int64_t ctx = m.hp.n_ctx_train; ctx > 0 && c.pp + c.tg > ctx)
      throw UsageError(c.name() + " needs " + std::to_string(c.pp + c.tg) + " positions per sequence but the model " +
                       "has a context of " + std::to_string(ctx));

  Context ctx;
  ctx.model_path = mo.model.empty() ? default_model_path() : mo.model;
  ctx.model_type = model_type(m);
  ctx.cpu = probe_cpu().model;
  ctx.isa = std::string(kernels::isa_name(kernels::active_isa()));
  ctx.threads = lm.threads;
  ctx.ngl = mo.gpu_layers;
  ctx.type_k = kv_type_name(lm.cache.k);
  ctx.type_v = kv_type_name(lm.cache.v);
  ThreadPool pool(lm.threads);
  const int64_t chunk = std::min(s.n_batch, s.n_ubatch);
  std::fprintf(stderr,
               "batched-bench: cpu '%s', isa %s, threads %d, n_batch %lld, n_ubatch %lld, is_pp_shared %d, "
               "n_gpu_layers %lld, n_kv_max %s, %s, seed %llu\n",
               ctx.cpu.c_str(), ctx.isa.c_str(), ctx.threads, (long long)s.n_batch, (long long)s.n_ubatch,
               s.shared ? 1 : 0, (long long)ctx.ngl, ctx_arg > 0 ? std::to_string(ctx_arg).c_str() : "per case",
               s.reps == 1 ? "1 run per case" : ("medians of " + std::to_string(s.reps) + " runs per case").c_str(),
               (unsigned long long)s.seed);

  if (!no_warmup) {  // as llama-batched-bench: 16 prompt tokens of one sequence, and one decode step
    const int64_t n = std::min<int64_t>(16, m.hp.n_ctx_train > 1 ? m.hp.n_ctx_train - 1 : 16);
    KvCache warm(m.hp.n_layer, 1, n + 1, m.hp.n_head_kv, m.hp.head_dim, lm.cache.k, lm.cache.v);
    if (m.gpu) cuda::prepare_cache(*m.gpu, warm, std::min(chunk, n));
    Batch b;
    for (int64_t i = 0; i < n; ++i) b.add(0, int32_t(i), 0, i + 1 == n);
    decode_chunked(m, warm, b, pool, s);
    Batch step;
    step.add(0, int32_t(n), 0, true);
    forward(m, warm, step, pool);
  }

  if (format == "md") {
    print_table_header();
    std::fflush(stdout);
  }
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  for (const Case& c : cases) {
    Row row{c, c.n_kv(s.shared), ctx_arg > 0 ? ctx_arg : c.pl * (c.pp + c.tg), {}, {}};
    // Allocated (and faulted in) outside the timed region; the runs only reset its lengths.
    KvCache cache(m.hp.n_layer, c.pl, c.pp + c.tg, m.hp.n_head_kv, m.hp.head_dim, lm.cache.k, lm.cache.v);
    if (m.gpu) cuda::prepare_cache(*m.gpu, cache, std::min(chunk, std::max(c.pl * c.pp, c.pl)));
    for (int64_t r = 0; r < s.reps; ++r) {
      const auto [t_pp, t_tg] = run_case(m, cache, pool, c, s, s.seed + uint64_t(r));
      row.t_pp.push_back(t_pp);
      row.t_tg.push_back(t_tg);
    }
    const nlohmann::ordered_json j = row_json(row, s, ctx);
    if (format == "md") print_table_row(j);
    else if (format == "jsonl") std::printf("%s\n", j.dump().c_str());
    else all.push_back(j);
    std::fflush(stdout);
  }
  if (format == "json") std::printf("%s\n", all.dump(2).c_str());
  return 0;
}

const CommandRegistration kRegistration({"batched-bench", "llama-batched-bench", cmd_batched_bench,
                                         "benchmark many sequences decoded together (llama-batched-bench flags)", 31});

}  // namespace
}  // namespace bitnet::cli
