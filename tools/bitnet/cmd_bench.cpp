// `bitnet bench` / `llama-bench`: prompt-processing (pp) and generation (tg) throughput with
// llama-bench's flags and output formats, plus two efficiency columns measured in the same
// process: read_bw_fraction (tg: weight bytes per token × t/s ÷ streaming read bandwidth, the read
// measured again right before each repetition and the median of the per-repetition ratios taken)
// and mac_peak_fraction (pp: int8 MACs per token × t/s ÷ register-only int8 MAC peak).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "commands.h"
#include "kernels/cpu_features.h"
#include "kernels/peak_rate.h"
#include "model_options.h"
#include "runtime/run_config.h"
#include "runtime/telemetry.h"
#include "telemetry_options.h"

namespace bitnet::cli {
namespace {

struct Test {
  int64_t n_prompt = 0, n_gen = 0;
  std::string name() const {
    if (n_prompt && n_gen) return "pp" + std::to_string(n_prompt) + "+tg" + std::to_string(n_gen);
    return n_prompt ? "pp" + std::to_string(n_prompt) : "tg" + std::to_string(n_gen);
  }
};

struct ModelStats {
  uint64_t file_bytes = 0, params = 0, int8_macs_per_token = 0, bytes_per_token = 0;
  std::string description;
  std::string head_type;  // the LM head's storage type (F16, Q8_0, Q6_K, …): a large share of decode bytes
};

ModelStats model_stats(const Model& m) {
  ModelStats s;
  s.file_bytes = m.file.file_size();
  for (const auto& t : m.file.tensors()) s.params += uint64_t(t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3]);
  for (const auto& l : m.layers)
    for (const TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      if (ggml_type_is_ternary(t->type)) s.int8_macs_per_token += uint64_t(t->elements());
  s.bytes_per_token = m.weight_bytes();
  const double b = double(s.params) / 1e9;
  char size[32];
  std::snprintf(size, sizeof size, b >= 1 ? "%.1fB" : "%.0fM", b >= 1 ? b : b * 1e3);
  // The file's type (llama-bench names the file), even where the loader repacked the tensors.
  const GgufTensorInfo* wq = m.file.find_tensor("blk.0.attn_q.weight");
  s.description = m.hp.arch.name + " " + size + " " +
                  std::string(ggml_type_name(wq ? wq->type : m.layers[0].wq.type));
  s.head_type = ggml_type_name(m.output.type);
  return s;
}

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(rng() % uint64_t(vocab));
  return t;
}

// One timed run of a test on a fresh cache; returns seconds.
double run_once(const Model& m, const Test& test, int threads, int64_t batch, uint64_t seed) {
  Session s(m, test.n_prompt + test.n_gen + 1, threads, batch);
  const auto tokens = random_tokens(test.n_prompt + test.n_gen, m.hp.n_vocab, seed);
  const auto t0 = std::chrono::steady_clock::now();
  if (test.n_prompt) s.set_tokens(std::span(tokens).first(size_t(test.n_prompt)));
  for (int64_t i = 0; i < test.n_gen; ++i) s.append(tokens[size_t(test.n_prompt + i)]);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? NAN : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Row {
  std::string model_file, model, test;
  ModelStats stats;
  int threads;
  int64_t batch, n_prompt, n_gen;
  bool use_mmap;
  int64_t ngl = 0;  // -ngl: layers on the GPU (0: CPU only)
  std::vector<double> ts;  // tokens per second of each repetition
  double read_bw = 0, mac_peak = 0;
  // CPU tg tests: the read bandwidth measured right before each repetition. A shared machine's
  // bandwidth drifts (39–62 GB/s within an hour here), so a fraction against one reference taken
  // minutes earlier could read 0.6 or 1.2 for the same run.
  std::vector<double> read_bws;
  bool tracks_read() const { return ngl == 0 && n_prompt == 0 && n_gen > 0; }
  double read_reference() const { return read_bws.empty() ? read_bw : median(read_bws); }
  double mean() const {
    double s = 0;
    for (double x : ts) s += x;
    return s / double(ts.size());
  }
  double sd() const {
    if (ts.size() < 2) return 0;
    const double m = mean();
    double s = 0;
    for (double x : ts) s += (x - m) * (x - m);
    return std::sqrt(s / double(ts.size() - 1));
  }
  // Only meaningful for the pure tests on the CPU (the rates are the CPU's); NaN otherwise.
  double read_bw_fraction() const {
    if (!tracks_read()) return NAN;
    if (read_bws.size() != ts.size()) return double(stats.bytes_per_token) * mean() / read_bw;
    std::vector<double> f;
    for (size_t r = 0; r < ts.size(); ++r) f.push_back(double(stats.bytes_per_token) * ts[r] / read_bws[r]);
    return median(f);
  }
  double mac_peak_fraction() const {
    return ngl == 0 && n_gen == 0 && n_prompt > 0 ? double(stats.int8_macs_per_token) * mean() / mac_peak : NAN;
  }
  std::string backend() const {
    return ngl > 0 ? "CUDA" : "CPU (" + std::string(kernels::isa_name(kernels::active_isa())) + ")";
  }
};

nlohmann::json row_json(const Row& r) {
  nlohmann::json j;
  j["model_filename"] = r.model_file;
  j["model_type"] = r.model;
  j["model_size"] = r.stats.file_bytes;
  j["model_n_params"] = r.stats.params;
  j["output_type"] = r.stats.head_type;
  j["backends"] = r.ngl > 0 ? "CUDA,CPU" : "CPU";
  j["n_gpu_layers"] = r.ngl;
  j["cpu_isa"] = kernels::isa_name(kernels::active_isa());
  j["n_threads"] = r.threads;
  j["n_batch"] = r.batch;
  j["use_mmap"] = r.use_mmap;
  j["n_prompt"] = r.n_prompt;
  j["n_gen"] = r.n_gen;
  j["test"] = r.test;
  j["avg_ts"] = r.mean();
  j["stddev_ts"] = r.sd();
  j["samples_ts"] = r.ts;
  j["read_bandwidth_bytes_per_s"] = r.read_reference();
  if (!r.read_bws.empty()) j["samples_read_bandwidth_bytes_per_s"] = r.read_bws;
  j["int8_mac_peak_per_s"] = r.mac_peak;
  const double rb = r.read_bw_fraction(), mp = r.mac_peak_fraction();
  j["read_bw_fraction"] = std::isnan(rb) ? nlohmann::json(nullptr) : nlohmann::json(rb);
  j["mac_peak_fraction"] = std::isnan(mp) ? nlohmann::json(nullptr) : nlohmann::json(mp);
  return j;
}

std::string fraction_text(double f) {
  if (std::isnan(f)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", f);
  return b;
}

void print_rows(const std::vector<Row>& rows, const std::string& format) {
  if (format == "json") {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : rows) arr.push_back(row_json(r));
    std::printf("%s\n", arr.dump(2).c_str());
  } else if (format == "jsonl") {
    for (const auto& r : rows) std::printf("%s\n", row_json(r).dump().c_str());
  } else if (format == "csv") {
    std::printf("model,head,size,params,backend,threads,n_batch,test,avg_ts,stddev_ts,read_bw_fraction,mac_peak_fraction,"
                "n_gpu_layers\n");
    for (const auto& r : rows)
      std::printf("\"%s\",%s,%llu,%llu,%s,%d,%lld,%s,%.3f,%.3f,%s,%s,%lld\n", r.model.c_str(), r.stats.head_type.c_str(),
                  (unsigned long long)r.stats.file_bytes, (unsigned long long)r.stats.params,
                  r.ngl > 0 ? "CUDA" : "CPU", r.threads, (long long)r.batch, r.test.c_str(), r.mean(), r.sd(),
                  fraction_text(r.read_bw_fraction()).c_str(), fraction_text(r.mac_peak_fraction()).c_str(),
                  (long long)r.ngl);
  } else {
    // The ngl column only when some row offloads (llama-bench shows it for GPU backends).
    bool any_gpu = false;
    for (const auto& r : rows) any_gpu = any_gpu || r.ngl > 0;
    std::printf("| model | head | size | params | backend |%s threads | test | t/s | read_bw_fraction | mac_peak_fraction |\n",
                any_gpu ? " ngl |" : "");
    std::printf("| --- | --- | ---: | ---: | --- |%s ---: | ---: | ---: | ---: | ---: |\n", any_gpu ? " ---: |" : "");
    for (const auto& r : rows) {
      const std::string ngl = any_gpu ? " " + std::to_string(r.ngl) + " |" : "";
      std::printf("| %s | %s | %.2f GiB | %.2f B | %s |%s %d | %s | %.2f ± %.2f | %s | %s |\n", r.model.c_str(),
                  r.stats.head_type.c_str(), double(r.stats.file_bytes) / double(1 << 30),
                  double(r.stats.params) / 1e9, r.backend().c_str(), ngl.c_str(), r.threads, r.test.c_str(),
                  r.mean(), r.sd(), fraction_text(r.read_bw_fraction()).c_str(),
                  fraction_text(r.mac_peak_fraction()).c_str());
    }
  }
  std::fflush(stdout);
}

void bench_all(const std::vector<std::string>& model_files, const std::vector<Test>& tests,
               const std::vector<int64_t>& threads_list, const std::vector<int64_t>& batches,
               const std::vector<int64_t>& ngl_list, int64_t reps, bool use_mmap, bool no_warmup,
               const std::string& format, Telemetry& telemetry);

int cmd_bench(int argc, char** argv) {
  std::string models_arg, p_arg = "512", n_arg = "128", pg_arg, t_arg, b_arg = "2048", ngl_arg = "0", format = "md";
  int64_t reps = 5, mmap = 0;
  bool no_warmup = false;
  ArgParser p("bitnet bench", "Benchmark prompt processing and generation (llama-bench compatible).");
  p.list_option({"-m", "--model"}, "FILES", "GGUF models, comma-separated or repeated (default: the default model)", &models_arg);
  p.list_option({"-p", "--n-prompt"}, "N[,N...]", "prompt lengths (default 512; 0 skips)", &p_arg);
  p.list_option({"-n", "--n-gen"}, "N[,N...]", "generated tokens (default 128; 0 skips)", &n_arg);
  p.option({"-pg"}, "PP,TG", "combined test: a prompt of PP tokens then TG generated tokens", &pg_arg);
  p.list_option({"-t", "--threads"}, "N[,N...]", "threads (default: all hardware threads)", &t_arg);
  p.list_option({"-b", "--batch-size"}, "N[,N...]", "batch size for prompt processing (default 2048)", &b_arg);
  p.list_option({"-ngl", "--n-gpu-layers", "--gpu-layers"}, "N[,N...]",
                "layers on the GPU (default 0: CPU only; 99: all); needs a CUDA build and an NVIDIA GPU", &ngl_arg);
  p.option({"-r", "--repetitions"}, "N", "repetitions of each test (default 5)", &reps);
  p.option({"-o", "--output"}, "FORMAT", "md, csv, json or jsonl (default md)", &format);
  p.option({"-mmp", "--mmap"}, "0|1", "1: read the weights from the memory-mapped file (default 0: copy them "
           "into huge-page memory, as run and serve do)", &mmap);
  p.flag({"--no-warmup"}, "skip the warm-up run", &no_warmup);
  bool dry = false, json_dry = false;
  std::string telemetry_out, otlp_endpoint;
  p.option({"--telemetry-out"}, "FILE.jsonl", "append structured events (docs/telemetry.md)", &telemetry_out);
  add_otlp_option(p, &otlp_endpoint);
  p.flag({"--dry-run"}, "print the resolved configuration and the argument list; load nothing", &dry);
  p.flag({"--json"}, "with --dry-run: print one JSON object", &json_dry);
  if (!p.parse(argc, argv)) return 0;
  if (json_dry && !dry) throw UsageError("--json goes with --dry-run");
  if (format != "md" && format != "csv" && format != "json" && format != "jsonl")
    throw UsageError("-o must be md, csv, json or jsonl, got '" + format + "'");
  if (reps < 1 || reps > 1000) throw UsageError("-r must be between 1 and 1000");
  if (mmap != 0 && mmap != 1) throw UsageError("-mmp must be 0 or 1, got " + std::to_string(mmap));

  std::vector<Test> tests;
  for (int64_t n : parse_list("-p", p_arg))
    if (n > 0) tests.push_back({n, 0});
  for (int64_t n : parse_list("-n", n_arg))
    if (n > 0) tests.push_back({0, n});
  if (!pg_arg.empty()) {
    const auto pg = parse_list("-pg", pg_arg);
    if (pg.size() != 2 || pg[0] == 0 || pg[1] == 0) throw UsageError("-pg expects PP,TG with both > 0");
    tests.push_back({pg[0], pg[1]});
  }
  if (tests.empty()) throw UsageError("nothing to run: all of -p, -n are 0 and no -pg");
  const std::vector<int64_t> threads_list =
      t_arg.empty() ? std::vector<int64_t>{0} : parse_list("-t", t_arg);
  const std::vector<int64_t> batches = parse_list("-b", b_arg);
  const std::vector<int64_t> ngl_list = parse_list("-ngl", ngl_arg);
  for (int64_t n : ngl_list)
    if (n > 100000) throw UsageError("-ngl values must be at most 100000");
  std::vector<std::string> model_files;
  std::stringstream ms(models_arg);
  for (std::string f; std::getline(ms, f, ',');) model_files.push_back(f);
  if (model_files.empty()) model_files.push_back("");

  if (dry) {
    std::vector<std::string> args = {self_executable(), "bench"};
    for (int i = 1; i < argc; ++i)
      if (std::string(argv[i]) != "--dry-run" && std::string(argv[i]) != "--json") args.push_back(argv[i]);
    std::vector<std::string> test_names, resolved_models;
    for (const Test& t : tests) test_names.push_back(t.name());
    for (const auto& f : model_files) resolved_models.push_back(f.empty() ? default_model_location() : f);
    std::vector<int64_t> threads_resolved;
    for (int64_t t : threads_list) threads_resolved.push_back(plan_threads(t).threads);
    const nlohmann::json config = {{"models", models_arg}, {"n_prompt", p_arg},     {"n_gen", n_arg},
                                   {"pg", pg_arg},         {"threads", t_arg},      {"batch_size", b_arg},
                                   {"repetitions", reps},  {"output", format},      {"warmup", !no_warmup},
                                   {"mmap", mmap == 1},    {"n_gpu_layers", ngl_arg}};
    const nlohmann::json resolved = {{"models", resolved_models}, {"tests", test_names},
                                     {"threads", threads_resolved}, {"batch_sizes", batches}, {"n_gpu_layers", ngl_list},
                                     {"cpu_isa", kernels::isa_name(kernels::active_isa())}, {"backend", "cpu"}};
    print_dry_run("bench", config, resolved, args, json_dry);
    return 0;
  }
  const TelemetrySetup telemetry_setup = open_telemetry({telemetry_out, otlp_endpoint}, "bench");
  Telemetry& telemetry = *telemetry_setup.telemetry;
  telemetry.emit("run_started", {{"config", {{"models", model_files}, {"n_prompt", p_arg}, {"n_gen", n_arg},
                                             {"pg", pg_arg}, {"threads", t_arg}, {"batch_size", b_arg},
                                             {"repetitions", reps}, {"n_gpu_layers", ngl_arg}}}});
  try {
    bench_all(model_files, tests, threads_list, batches, ngl_list, reps, mmap == 1, no_warmup, format, telemetry);
  } catch (const std::exception& e) {
    telemetry.emit("run_failed", {{"error", e.what()}});
    throw;
  }
  telemetry.emit("run_finished", {{"status", "ok"}});
  return 0;
}

void bench_all(const std::vector<std::string>& model_files, const std::vector<Test>& tests,
               const std::vector<int64_t>& threads_list, const std::vector<int64_t>& batches,
               const std::vector<int64_t>& ngl_list, int64_t reps, bool use_mmap, bool no_warmup,
               const std::string& format, Telemetry& telemetry) {
  std::vector<Row> rows;
  std::vector<std::pair<std::string, int64_t>> loads;  // (model, -ngl): one load each
  for (const auto& file : model_files)
    for (const int64_t ngl : ngl_list) loads.emplace_back(file, ngl);
  for (const auto& [file, ngl] : loads) {
    ModelOptions mo;
    mo.model = file;
    mo.threads = threads_list[0];
    mo.mmap = use_mmap;
    mo.gpu_layers = int32_t(ngl);
    LoadedModel lm = load_for_run(mo);
    const ModelStats stats = model_stats(*lm.model);
    // A test runs in one sequence of n_prompt + n_gen positions: refuse what the model cannot hold
    // before spending minutes on it (llama-bench fails the same way, only later).
    for (const Test& test : tests)
      if (const int64_t need = test.n_prompt + test.n_gen, ctx = lm.model->hp.n_ctx_train; ctx > 0 && need > ctx)
        throw UsageError("test " + test.name() + " needs " + std::to_string(need) + " positions but " +
                         (file.empty() ? default_model_path() : file) + " has a context of " + std::to_string(ctx));
    telemetry.emit("model_loaded", {{"model", file.empty() ? default_model_path() : file},
                                    {"load_ms", lm.load_ms}, {"params", stats.params}});
    for (int64_t t : threads_list) {
      const int threads = t > 0 ? int(t) : lm.threads;
      ThreadPool pool(threads);
      const kernels::ReadBandwidthProbe read_probe(pool);
      const double read_bw = read_probe.measure(pool);
      const double mac_peak = kernels::measure_int8_mac_peak(pool);
      std::fprintf(stderr, "threads %d: read bandwidth %.1f GB/s, int8 MAC peak %.1f GMAC/s\n", threads,
                   read_bw / 1e9, mac_peak / 1e9);
      telemetry.emit("bench_reference_rates", {{"threads", threads}, {"read_bandwidth_bytes_per_s", read_bw},
                                               {"int8_mac_peak_per_s", mac_peak}});
      for (int64_t b : batches) {
        if (b < 1) throw UsageError("-b must be ≥ 1");
        for (const Test& test : tests) {
          Row row{file.empty() ? default_model_path() : file, stats.description, test.name(), stats,
                  threads, b, test.n_prompt, test.n_gen, use_mmap, ngl, {}, read_bw, mac_peak, {}};
          if (!no_warmup) run_once(*lm.model, test, threads, b, 999);
          for (int64_t r = 0; r < reps; ++r) {
            if (row.tracks_read()) row.read_bws.push_back(read_probe.measure(pool, 3));
            row.ts.push_back(double(test.n_prompt + test.n_gen) / run_once(*lm.model, test, threads, b, uint64_t(r)));
          }
          if (format == "jsonl") print_rows({row}, format);
          telemetry.emit("bench_result", row_json(row));
          rows.push_back(std::move(row));
        }
      }
    }
  }
  if (format != "jsonl") print_rows(rows, format);
}

const CommandRegistration kRegistration({"bench", "llama-bench", cmd_bench,
                                         "benchmark prompt processing and generation (llama-bench flags)", 30});

}  // namespace
}  // namespace bitnet::cli
