// `bitnet bench` / `llama-bench`: prompt-processing (pp) and generation (tg) throughput with
// llama-bench's flags and output formats, plus two efficiency columns measured in the same
// process: read_bw_fraction (tg: bytes read per token × t/s ÷ streaming read bandwidth, the read
// measured again right before each repetition and the median of the per-repetition ratios taken)
// and mac_peak_fraction (pp: int8 MACs per token × t/s ÷ register-only int8 MAC peak).
//
// Long contexts: `-d N` (llama-bench's --n-depth) runs every test after N random tokens are
// already in the cache (evaluated before the clock starts, once per test: later repetitions keep
// those N positions and overwrite only what follows), so a pp test processes its prompt at
// positions N..N+p-1 and a tg test generates from position N; the test is named `pp512 @ d3584`
// and its rows carry `n_depth`. `-gp PP,TG` (ik_llama.cpp's) prefills PP tokens untimed and times
// TG generated tokens after them: test `tg128@pp512`, n_prompt PP, n_gen TG, t/s over TG tokens.
// A test's cache holds exactly depth + prompt + generated positions.
//
// The bytes a generated token reads are the weights (Model::weight_bytes()) plus its K/V:
// 2 (K and V) × kv_dim × 2 bytes (f16) for every cached position it attends to, in every layer
// (a sliding-window layer: at most its window). A token at position pos attends to pos + 1
// positions, so the K/V part is averaged over the test's generated tokens: for tg n at depth d
// that is 2 × n_layer × (d + (n + 1) / 2) × kv_dim × 2 bytes per token without sliding windows.
// Whole 8-position key blocks the kernels may touch past the last position are not counted.
// mac_peak_fraction counts the int8 MACs of the ternary projections only: attention over a deep
// cache (f32 from f16, not int8) adds work it does not count.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <memory>
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
  int64_t n_depth = 0;  // -d: positions already in the cache before the test
  bool gp = false;      // -gp PP,TG: n_prompt tokens prefilled untimed, then n_gen timed
  std::string name() const {
    std::string s;
    if (gp) s = "tg" + std::to_string(n_gen) + "@pp" + std::to_string(n_prompt);
    else if (n_prompt && n_gen) s = "pp" + std::to_string(n_prompt) + "+tg" + std::to_string(n_gen);
    else s = n_prompt ? "pp" + std::to_string(n_prompt) : "tg" + std::to_string(n_gen);
    return n_depth > 0 ? s + " @ d" + std::to_string(n_depth) : s;
  }
  int64_t prefill() const { return n_depth + (gp ? n_prompt : 0); }     // evaluated before the clock
  int64_t timed_prompt() const { return gp ? 0 : n_prompt; }            // evaluated as one prompt, timed
  int64_t timed_tokens() const { return timed_prompt() + n_gen; }       // the t/s numerator
  int64_t positions() const { return n_depth + n_prompt + n_gen; }      // the cache's size
  int64_t first_gen_pos() const { return n_depth + n_prompt; }
  bool pure_gen() const { return n_gen > 0 && timed_prompt() == 0; }   // only generation is timed
  bool pure_prompt() const { return n_prompt > 0 && n_gen == 0; }
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

// The average K/V bytes each generated token of a test reads (see the top of this file).
double kv_read_bytes_per_token(const HParams& hp, const Test& test, KvType type_k, KvType type_v) {
  if (test.n_gen <= 0) return 0;
  double positions = 0;  // attended positions, summed over layers and generated tokens
  for (int64_t l = 0; l < hp.n_layer; ++l) {
    const int64_t window = hp.is_swa_layer(l) ? hp.n_swa : 0;
    for (int64_t i = 0; i < test.n_gen; ++i) {
      const int64_t seen = test.first_gen_pos() + i + 1;
      positions += double(window > 0 ? std::min(seen, window) : seen);
    }
  }
  // Bytes per cell: 2 (f16), or 1 code + 2/32 of a scale (q8_0).
  auto cell = [](KvType t) { return t == KvType::Q8_0 ? 1.0 + 2.0 / double(kKvQ8Block) : 2.0; };
  return positions * double(hp.kv_dim()) * (cell(type_k) + cell(type_v)) / double(test.n_gen);
}

// Runs a test again and again. Without a prefill every run gets a fresh cache; with one (-d, -gp)
// the session keeps the prefilled positions between runs: the first run evaluates them, later
// ones only re-evaluate the last (set_tokens's prefix reuse), all before the clock starts.
class TestRunner {
 public:
  TestRunner(const Model& m, const Test& test, int threads, int64_t batch, KvType type_k, KvType type_v)
      : m_(m), test_(test), threads_(threads), batch_(batch), type_k_(type_k), type_v_(type_v),
        prefix_(random_tokens(test.prefill(), m.hp.n_vocab, 0x5eedULL + uint64_t(test.prefill()))) {}

  // One timed run; returns seconds.
  double run(uint64_t seed) {
    if (!session_ || prefix_.empty())
      session_ = std::make_unique<Session>(m_, test_.positions(), threads_, batch_, type_k_, type_v_);
    Session& s = *session_;
    auto tokens = prefix_;
    const auto body = random_tokens(test_.timed_tokens(), m_.hp.n_vocab, seed);
    tokens.insert(tokens.end(), body.begin(), body.end());
    // The cache now holds exactly the prefix, so the prompt below is evaluated whole.
    if (!prefix_.empty()) s.set_tokens(prefix_);
    const size_t prompt_end = prefix_.size() + size_t(test_.timed_prompt());
    const auto t0 = std::chrono::steady_clock::now();
    if (test_.timed_prompt()) s.set_tokens(std::span(tokens).first(prompt_end));
    for (size_t i = prompt_end; i < tokens.size(); ++i) s.append(tokens[i]);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

 private:
  const Model& m_;
  Test test_;
  int threads_;
  int64_t batch_;
  KvType type_k_, type_v_;
  std::vector<int32_t> prefix_;
  std::unique_ptr<Session> session_;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? NAN : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Row {
  std::string model_file, model;
  Test test;
  ModelStats stats;
  int threads = 0;
  int64_t batch = 0;
  bool use_mmap = false;
  int64_t ngl = 0;  // -ngl: layers on the GPU (0: CPU only)
  KvType type_k = KvType::F16, type_v = KvType::F16;  // -ctk / -ctv
  std::vector<double> ts;  // tokens per second of each repetition
  double read_bw = 0, mac_peak = 0;
  double kv_bytes_per_token = 0;  // the average K/V bytes a generated token reads
  // CPU tg tests: the read bandwidth measured right before each repetition. A shared machine's
  // bandwidth drifts (39–62 GB/s within an hour here), so a fraction against one reference taken
  // minutes earlier could read 0.6 or 1.2 for the same run.
  std::vector<double> read_bws;
  bool tracks_read() const { return ngl == 0 && test.pure_gen(); }
  double bytes_per_token() const { return double(stats.bytes_per_token) + kv_bytes_per_token; }
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
    if (read_bws.size() != ts.size()) return bytes_per_token() * mean() / read_bw;
    std::vector<double> f;
    for (size_t r = 0; r < ts.size(); ++r) f.push_back(bytes_per_token() * ts[r] / read_bws[r]);
    return median(f);
  }
  double mac_peak_fraction() const {
    return ngl == 0 && test.pure_prompt() ? double(stats.int8_macs_per_token) * mean() / mac_peak : NAN;
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
  j["type_k"] = kv_type_name(r.type_k);
  j["type_v"] = kv_type_name(r.type_v);
  j["cpu_isa"] = kernels::isa_name(kernels::active_isa());
  j["n_threads"] = r.threads;
  j["n_batch"] = r.batch;
  j["use_mmap"] = r.use_mmap;
  j["n_prompt"] = r.test.n_prompt;
  j["n_gen"] = r.test.n_gen;
  j["n_depth"] = r.test.n_depth;
  j["test"] = r.test.name();
  j["avg_ts"] = r.mean();
  j["stddev_ts"] = r.sd();
  j["samples_ts"] = r.ts;
  j["read_bandwidth_bytes_per_s"] = r.read_reference();
  if (!r.read_bws.empty()) j["samples_read_bandwidth_bytes_per_s"] = r.read_bws;
  j["int8_mac_peak_per_s"] = r.mac_peak;
  // What read_bw_fraction divides by the bandwidth: weights + the average K/V read per token.
  j["weight_bytes_per_token"] = r.stats.bytes_per_token;
  j["kv_read_bytes_per_token"] = r.tracks_read() ? nlohmann::json(r.kv_bytes_per_token) : nlohmann::json(nullptr);
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
                "type_k,type_v,n_gpu_layers,n_depth\n");
    for (const auto& r : rows)
      std::printf("\"%s\",%s,%llu,%llu,%s,%d,%lld,%s,%.3f,%.3f,%s,%s,%s,%s,%lld,%lld\n", r.model.c_str(),
                  r.stats.head_type.c_str(), (unsigned long long)r.stats.file_bytes, (unsigned long long)r.stats.params,
                  r.ngl > 0 ? "CUDA" : "CPU", r.threads, (long long)r.batch, r.test.name().c_str(), r.mean(), r.sd(),
                  fraction_text(r.read_bw_fraction()).c_str(), fraction_text(r.mac_peak_fraction()).c_str(),
                  kv_type_name(r.type_k), kv_type_name(r.type_v), (long long)r.ngl, (long long)r.test.n_depth);
  } else {
    // The ngl column only when some row offloads (llama-bench shows it for GPU backends).
    // The type_k / type_v columns only when some row's cache is not f16 (llama-bench shows fields
    // that differ from their defaults).
    bool any_gpu = false, any_kv = false;
    for (const auto& r : rows) {
      any_gpu = any_gpu || r.ngl > 0;
      any_kv = any_kv || r.type_k != KvType::F16 || r.type_v != KvType::F16;
    }
    std::printf("| model | head | size | params | backend |%s threads |%s test | t/s | read_bw_fraction | mac_peak_fraction |\n",
                any_gpu ? " ngl |" : "", any_kv ? " type_k | type_v |" : "");
    std::printf("| --- | --- | ---: | ---: | --- |%s ---: |%s ---: | ---: | ---: | ---: |\n", any_gpu ? " ---: |" : "",
                any_kv ? " --- | --- |" : "");
    for (const auto& r : rows) {
      const std::string ngl = any_gpu ? " " + std::to_string(r.ngl) + " |" : "";
      const std::string kv =
          any_kv ? std::string(" ") + kv_type_name(r.type_k) + " | " + kv_type_name(r.type_v) + " |" : "";
      std::printf("| %s | %s | %.2f GiB | %.2f B | %s |%s %d |%s %s | %.2f ± %.2f | %s | %s |\n", r.model.c_str(),
                  r.stats.head_type.c_str(), double(r.stats.file_bytes) / double(1 << 30),
                  double(r.stats.params) / 1e9, r.backend().c_str(), ngl.c_str(), r.threads, kv.c_str(),
                  r.test.name().c_str(),
                  r.mean(), r.sd(), fraction_text(r.read_bw_fraction()).c_str(),
                  fraction_text(r.mac_peak_fraction()).c_str());
    }
  }
  std::fflush(stdout);
}

void bench_all(const std::vector<std::string>& model_files, const std::vector<Test>& tests,
               const std::vector<int64_t>& threads_list, const std::vector<int64_t>& batches,
               const std::vector<int64_t>& ngl_list, const std::vector<std::pair<KvType, KvType>>& kv_types,
               int64_t reps, bool use_mmap, bool no_warmup, const std::string& format, Telemetry& telemetry);

// A -ctk / -ctv list: each name f16 or q8_0.
std::vector<KvType> parse_kv_types(const std::string& flag, const std::string& arg) {
  std::vector<KvType> out;
  std::stringstream ss(arg);
  for (std::string name; std::getline(ss, name, ',');) {
    const std::optional<KvType> t = parse_kv_type(name);
    if (!t) throw UsageError(flag + ": KV cache type '" + name + "' is not supported; accepted: " + kKvTypeNames);
    out.push_back(*t);
  }
  if (out.empty()) throw UsageError(flag + " needs at least one type (" + std::string(kKvTypeNames) + ")");
  return out;
}

int cmd_bench(int argc, char** argv) {
  std::string models_arg, p_arg = "512", n_arg = "128", pg_arg, d_arg = "0", t_arg, b_arg = "2048", ngl_arg = "0",
              ctk_arg = "f16", ctv_arg = "f16", format = "md";
  std::vector<std::string> gp_args;
  int64_t reps = 5, mmap = 0;
  bool no_warmup = false;
  ArgParser p("bitnet bench", "Benchmark prompt processing and generation (llama-bench compatible).");
  p.list_option({"-m", "--model"}, "FILES", "GGUF models, comma-separated or repeated (default: the default model)", &models_arg);
  p.list_option({"-p", "--n-prompt"}, "N[,N...]", "prompt lengths (default 512; 0 skips)", &p_arg);
  p.list_option({"-n", "--n-gen"}, "N[,N...]", "generated tokens (default 128; 0 skips)", &n_arg);
  p.option({"-pg"}, "PP,TG", "combined test: a prompt of PP tokens then TG generated tokens", &pg_arg);
  p.multi_option({"-gp"}, "PP,TG", "generation after a prompt (ik_llama.cpp's): PP tokens prefilled untimed, then "
                 "TG generated tokens timed; test tgTG@ppPP; repeatable", &gp_args);
  p.list_option({"-d", "--n-depth"}, "N[,N...]", "depth: run every test after N tokens already in the cache "
                "(filled untimed; default 0); tests are named e.g. pp512 @ d4096", &d_arg);
  p.list_option({"-t", "--threads"}, "N[,N...]", "threads (default: all hardware threads)", &t_arg);
  p.list_option({"-b", "--batch-size"}, "N[,N...]", "batch size for prompt processing (default 2048)", &b_arg);
  p.list_option({"-ngl", "--n-gpu-layers", "--gpu-layers"}, "N[,N...]",
                "layers on the GPU (default 0: CPU only; 99: all); needs a CUDA build and an NVIDIA GPU", &ngl_arg);
  p.option({"-r", "--repetitions"}, "N", "repetitions of each test (default 5)", &reps);
  p.option({"-o", "--output"}, "FORMAT", "md, csv, json or jsonl (default md)", &format);
  p.list_option({"-ctk", "--cache-type-k"}, "TYPE[,TYPE...]",
                std::string("KV cache types of the keys: ") + kCacheTypeHelp, &ctk_arg);
  p.list_option({"-ctv", "--cache-type-v"}, "TYPE[,TYPE...]",
                std::string("KV cache types of the values: ") + kCacheTypeHelp, &ctv_arg);
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

  std::vector<Test> base_tests;
  for (int64_t n : parse_list("-p", p_arg))
    if (n > 0) base_tests.push_back({n, 0});
  for (int64_t n : parse_list("-n", n_arg))
    if (n > 0) base_tests.push_back({0, n});
  if (!pg_arg.empty()) {
    const auto pg = parse_list("-pg", pg_arg);
    if (pg.size() != 2 || pg[0] == 0 || pg[1] == 0) throw UsageError("-pg expects PP,TG with both > 0");
    base_tests.push_back({pg[0], pg[1]});
  }
  for (const std::string& gp_arg : gp_args) {
    const auto gp = parse_list("-gp", gp_arg);
    if (gp.size() != 2 || gp[0] == 0 || gp[1] == 0)
      throw UsageError("-gp expects PP,TG with both > 0, got '" + gp_arg + "'");
    base_tests.push_back({gp[0], gp[1], 0, true});
  }
  if (base_tests.empty()) throw UsageError("nothing to run: all of -p, -n are 0 and no -pg or -gp");
  // Each test's positions (depth + prompt + generated) must stay far from int64 overflow; the
  // model's context refuses the rest later with a clearer message.
  constexpr int64_t kMaxPositions = int64_t(1) << 30;
  const std::vector<int64_t> depths = parse_list("-d", d_arg);
  for (int64_t d : depths)
    if (d > kMaxPositions) throw UsageError("-d values must be at most " + std::to_string(kMaxPositions));
  for (const Test& t : base_tests)
    if (t.n_prompt > kMaxPositions || t.n_gen > kMaxPositions)
      throw UsageError("test " + t.name() + ": -p, -n, -pg and -gp values must be at most " +
                       std::to_string(kMaxPositions));
  // llama-bench's order: every test at the first depth, then every test at the next.
  std::vector<Test> tests;
  for (int64_t d : depths)
    for (Test t : base_tests) {
      t.n_depth = d;
      tests.push_back(t);
    }
  const std::vector<int64_t> threads_list =
      t_arg.empty() ? std::vector<int64_t>{0} : parse_list("-t", t_arg);
  const std::vector<int64_t> batches = parse_list("-b", b_arg);
  const std::vector<int64_t> ngl_list = parse_list("-ngl", ngl_arg);
  for (int64_t n : ngl_list)
    if (n > 100000) throw UsageError("-ngl values must be at most 100000");
  // Every (type_k, type_v) pair is a test parameter, as llama-bench's -ctk/-ctv lists.
  std::vector<std::pair<KvType, KvType>> kv_types;
  for (KvType k : parse_kv_types("-ctk", ctk_arg))
    for (KvType v : parse_kv_types("-ctv", ctv_arg)) {
      if ((k != KvType::F16 || v != KvType::F16) &&
          std::any_of(ngl_list.begin(), ngl_list.end(), [](int64_t n) { return n > 0; }))
        throw UsageError("-ctk/-ctv q8_0 run on the CPU only: the GPU layers (-ngl) keep an f16 cache");
      kv_types.emplace_back(k, v);
    }
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
                                   {"pg", pg_arg},         {"gp", gp_args},         {"n_depth", d_arg},
                                   {"threads", t_arg},     {"batch_size", b_arg},
                                   {"repetitions", reps},  {"output", format},      {"warmup", !no_warmup},
                                   {"mmap", mmap == 1},    {"n_gpu_layers", ngl_arg},
                                   {"cache_type_k", ctk_arg}, {"cache_type_v", ctv_arg}};
    const nlohmann::json resolved = {{"models", resolved_models}, {"tests", test_names}, {"depths", depths},
                                     {"threads", threads_resolved}, {"batch_sizes", batches}, {"n_gpu_layers", ngl_list},
                                     {"cpu_isa", kernels::isa_name(kernels::active_isa())}, {"backend", "cpu"}};
    print_dry_run("bench", config, resolved, args, json_dry);
    return 0;
  }
  const TelemetrySetup telemetry_setup = open_telemetry({telemetry_out, otlp_endpoint}, "bench");
  Telemetry& telemetry = *telemetry_setup.telemetry;
  telemetry.emit("run_started", {{"config", {{"models", model_files}, {"n_prompt", p_arg}, {"n_gen", n_arg},
                                             {"pg", pg_arg}, {"gp", gp_args}, {"n_depth", d_arg},
                                             {"threads", t_arg}, {"batch_size", b_arg},
                                             {"repetitions", reps}, {"n_gpu_layers", ngl_arg},
                                             {"cache_type_k", ctk_arg}, {"cache_type_v", ctv_arg}}}});
  try {
    bench_all(model_files, tests, threads_list, batches, ngl_list, kv_types, reps, mmap == 1, no_warmup, format,
              telemetry);
  } catch (const std::exception& e) {
    telemetry.emit("run_failed", {{"error", e.what()}});
    throw;
  }
  telemetry.emit("run_finished", {{"status", "ok"}});
  return 0;
}

void bench_all(const std::vector<std::string>& model_files, const std::vector<Test>& tests,
               const std::vector<int64_t>& threads_list, const std::vector<int64_t>& batches,
               const std::vector<int64_t>& ngl_list, const std::vector<std::pair<KvType, KvType>>& kv_types,
               int64_t reps, bool use_mmap, bool no_warmup, const std::string& format, Telemetry& telemetry) {
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
    for (const auto& [k, v] : kv_types) check_cache_head_dim({k, v}, lm.model->hp.head_dim);
    const ModelStats stats = model_stats(*lm.model);
    // A test runs in one sequence of depth + n_prompt + n_gen positions: refuse what the model
    // cannot hold before spending minutes on it (llama-bench fails the same way, only later).
    for (const Test& test : tests)
      if (const int64_t need = test.positions(), ctx = lm.model->hp.n_ctx_train; ctx > 0 && need > ctx)
        throw UsageError("test " + test.name() + " needs " + std::to_string(need) + " positions" +
                         (test.n_depth > 0 ? " (depth " + std::to_string(test.n_depth) + " + " +
                                                 std::to_string(need - test.n_depth) + ")"
                                           : "") +
                         " but " + (file.empty() ? default_model_path() : file) + " has a context of " +
                         std::to_string(ctx));
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
        for (const auto& [type_k, type_v] : kv_types)
        for (const Test& test : tests) {
          Row row;
          row.model_file = file.empty() ? default_model_path() : file;
          row.model = stats.description;
          row.test = test;
          row.stats = stats;
          row.threads = threads;
          row.batch = b;
          row.use_mmap = use_mmap;
          row.ngl = ngl;
          row.type_k = type_k;
          row.type_v = type_v;
          row.read_bw = read_bw;
          row.mac_peak = mac_peak;
          row.kv_bytes_per_token = kv_read_bytes_per_token(lm.model->hp, test, type_k, type_v);
          TestRunner runner(*lm.model, test, threads, b, type_k, type_v);
          if (!no_warmup) runner.run(999);
          for (int64_t r = 0; r < reps; ++r) {
            if (row.tracks_read()) row.read_bws.push_back(read_probe.measure(pool, 3));
            row.ts.push_back(double(test.timed_tokens()) / runner.run(uint64_t(r)));
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
