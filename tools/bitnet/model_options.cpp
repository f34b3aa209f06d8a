#include "model_options.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "base/untrusted_text.h"
#include "grammar/grammar.h"
#include "grammar/json_schema_ordered.h"
#include "runtime/diagnostics.h"

namespace bitnet::cli {

void add_model_options(ArgParser& p, ModelOptions& o, bool grammar_flags, bool* verbose) {
  p.option({"-m", "--model"}, "FILE", "GGUF model (default: the trained default model in models/)", &o.model);
  p.option({"-t", "--threads"}, "N", "threads (default: all hardware threads)", &o.threads);
  p.option({"-c", "--ctx-size"}, "N", "context size in tokens (default: model's, at most 4096)", &o.ctx);
  p.option({"-b", "--batch-size"}, "N", "tokens per forward pass during prompt processing (default: 512)",
           &o.batch);
  p.option({"-ngl", "--gpu-layers", "--n-gpu-layers"}, "N",
           "run the last N layers on the GPU (N >= the layer count: all of them, the output norm and an F16 "
           "head too; 0, the default: CPU only). Needs a CUDA build and an NVIDIA GPU: without one, -ngl > 0 "
           "is an error",
           &o.gpu_layers);
  p.flag({"--mmap"}, "read the weights from the memory-mapped file: shared page cache and a faster "
         "start, slower decode (default: copy them into huge-page memory)", &o.mmap);
  p.flag({"--no-mmap"}, "copy the weights into huge-page memory (the default)", &o.no_mmap);
  p.option({"-ctk", "--cache-type-k"}, "TYPE", std::string("KV cache type of the keys: ") + kCacheTypeHelp,
           &o.cache_type_k);
  p.option({"-ctv", "--cache-type-v"}, "TYPE", std::string("KV cache type of the values: ") + kCacheTypeHelp,
           &o.cache_type_v);
  // llama.cpp flags with no meaning in this engine: accepted, so that existing scripts run.
  p.compat_noop({"-fa", "--flash-attn"}, "on|off|auto", "one attention kernel serves every case");
  p.compat_noop({"-ub", "--ubatch-size"}, "N", "-b sets the one batch size");
  p.compat_noop({"-tb", "--threads-batch"}, "N", "-t sets the threads for prompts and generation");
  p.compat_noop({"--jinja"}, "", "chat templates are built in, see docs/server.md");
  p.compat_noop({"--no-jinja"}, "", "chat templates are built in, see docs/server.md");
  if (verbose)
    p.flag({"-v", "--verbose"}, "llama-server's debug output: OpenAI-style responses carry a `__verbose` object "
           "(the native /completion result: prompt text, settings, timings)", verbose);
  else
    p.compat_noop({"-v", "--verbose"}, "", "the log has one verbosity");
  p.compat_noop({"--log-disable"}, "", "the log has one verbosity");
  p.compat_noop({"--no-warmup"}, "", "there is no warm-up run");
  p.compat_noop({"--warmup"}, "", "there is no warm-up run");
  p.compat_noop({"--mlock"}, "", "the weights are copied into huge-page memory, or read from the file with --mmap");
  p.compat_noop({"--numa"}, "MODE", "threads are placed by the operating system");
  p.compat_noop({"--prio"}, "N", "threads run at the default priority");
  p.compat_noop({"--no-perf"}, "", "timings are always reported");
  p.compat_noop({"--reasoning-format"}, "FORMAT", "the supported models do not reason");
  p.compat_noop({"--reasoning-budget"}, "N", "the supported models do not reason");
  p.compat_noop({"--reasoning"}, "on|off|auto", "the supported models do not reason");
  // ... and features this engine does not have: refused by name.
  p.unsupported({"-hf", "-hfr", "--hf-repo"}, "REPO", "models are not downloaded; pass -m FILE");
  p.unsupported({"-hff", "--hf-file"}, "FILE", "models are not downloaded; pass -m FILE");
  p.unsupported({"-mu", "--model-url"}, "URL", "models are not downloaded; pass -m FILE");
  p.unsupported({"--lora", "--lora-scaled"}, "FILE", "LoRA adapters");
  p.unsupported({"--grp-attn-n", "-gan", "--grp-attn-w", "-gaw"}, "N", "self-extend (group attention)");
  p.unsupported({"--chat-template-file"}, "FILE", "Jinja templates; the built-in template is chosen from the model");
  if (!grammar_flags) {
    p.unsupported({"--grammar", "--grammar-file"}, "GRAMMAR", "grammar-constrained sampling (bitnet run has it)");
    p.unsupported({"-j", "--json-schema", "-jf", "--json-schema-file"}, "SCHEMA",
                  "JSON-schema-constrained sampling (bitnet run has it)");
  }
}

std::optional<ChatFormat> chat_template_option(const std::string& value) {
  if (value.empty()) return std::nullopt;
  if (auto format = chat_format_by_name_or_template(value)) return format;
  throw UsageError("--chat-template: " + quote_untrusted(value, 60) + " is neither a built-in format (" +
                   chat_format_names() + ") nor a template in one of them (Jinja templates are not executed)");
}

CacheTypes cache_types(const ModelOptions& o) {
  auto parse = [](const std::string& flag, const std::string& name) {
    const std::optional<KvType> t = parse_kv_type(name);
    if (!t)
      throw UsageError(flag + ": KV cache type '" + name + "' is not supported; accepted: " + kKvTypeNames);
    return *t;
  };
  CacheTypes c{parse("-ctk", o.cache_type_k), parse("-ctv", o.cache_type_v)};
  if (c.quantized() && o.gpu_layers > 0)
    throw UsageError("-ctk/-ctv q8_0 run on the CPU only: the GPU layers (-ngl) keep an f16 cache; drop -ngl or use f16");
  return c;
}

void check_cache_types(const ModelOptions& o) { (void)cache_types(o); }

void check_cache_head_dim(const CacheTypes& c, int64_t head_dim) {
  if (c.quantized() && head_dim % kKvQ8Block != 0)
    throw UsageError("q8_0 K/V cache needs a head size that is a multiple of 32; this model's is " +
                     std::to_string(head_dim));
}

std::string default_model_location() {
  const char* env = std::getenv("BITNET_DEFAULT_MODEL");
  return env ? env : std::string(BITNET_SOURCE_DIR) + "/models/" + kDefaultModelName;
}

RunConfig to_run_config(const ModelOptions& o) {
  RunConfig c;
  c.model = o.model;
  c.threads = o.threads;
  c.ctx_size = o.ctx;
  c.batch_size = o.batch;
  c.gpu_layers = o.gpu_layers;
  c.mmap = o.map_weights();
  return c;
}

void add_sampling_options(ArgParser& p, SamplingParams& s) {
  p.option({"--temp"}, "T", "temperature (0: greedy; default 0.8)", &s.temperature);
  p.option({"--top-k"}, "N", "top-k sampling (0: off; default 40)", &s.top_k);
  p.option({"--top-p"}, "P", "top-p sampling (1: off; default 0.95)", &s.top_p);
  p.option({"--min-p"}, "P", "min-p sampling (0: off; default 0.05)", &s.min_p);
  p.option({"--repeat-penalty"}, "X", "repetition penalty (1: off; default 1.0)", &s.repeat_penalty);
  p.option({"--repeat-last-n"}, "N", "tokens considered by the penalty (default 64)", &s.repeat_last_n);
}

std::string default_model_path() {
  const std::string path = default_model_location();
  if (std::filesystem::exists(path)) return path;
  if (std::getenv("BITNET_DEFAULT_MODEL"))
    throw UsageError("BITNET_DEFAULT_MODEL names " + path + ", which does not exist");
  throw UsageError("the default model " + path + " is missing (" + kRestoreDefaultModel + "); or pass -m FILE");
}
namespace {

// The KV cache is allocated up front; refuse a context that cannot fit instead of dying in the
// allocator (checked after loading, so the weights are already part of the used memory).
void check_cache_fits(const HParams& hp, int64_t ctx, int64_t batch) {
  const MemoryEstimate need = estimate_memory(hp, 0, ctx, batch);
  const MemoryInfo mem = probe_memory();
  if (mem.available == 0 || need.total() <= mem.available) return;
  const int64_t fits = max_ctx_that_fits(hp, 0, batch, mem.available);
  throw Error("not enough memory for -c " + std::to_string(ctx) + ": the KV cache and buffers need " +
              std::to_string(need.total() >> 20) + " MiB, " + std::to_string(mem.available >> 20) +
              " MiB available; use -c " + std::to_string(fits) + " or less");
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+") ==
                        std::string::npos)
    return s;
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

}  // namespace

std::string self_executable() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "bitnet" : exe.string();
}

void print_dry_run(const std::string& command, const nlohmann::json& config, const nlohmann::json& resolved,
                   const std::vector<std::string>& argv, bool json) {
  if (json) {
    const nlohmann::json j = {{"command", command}, {"dry_run", true}, {"config", config},
                              {"resolved", resolved}, {"argv", argv}};
    std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return;
  }
  std::printf("bitnet %s --dry-run: nothing was loaded\n\nresolved configuration:\n", command.c_str());
  for (const auto& [k, v] : resolved.items())
    std::printf("  %-18s %s\n", k.c_str(), v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
  std::printf("\nwould run:\n ");
  for (const auto& a : argv) std::printf(" %s", shell_quote(a).c_str());
  std::printf("\n");
}

void add_grammar_options(ArgParser& p, GrammarOptions& o, const std::string& what) {
  p.option({"--grammar"}, "GBNF", what + ": a grammar in llama.cpp's GBNF", &o.grammar);
  p.option({"--grammar-file"}, "FILE", what + ": the --grammar in a file", &o.grammar_file);
  p.option({"-j", "--json-schema"}, "SCHEMA", what + ": JSON valid under this JSON schema", &o.json_schema);
  p.option({"-jf", "--json-schema-file"}, "FILE", what + ": the -j schema in a file", &o.json_schema_file);
}

std::string resolve_grammar(const GrammarOptions& o) {
  if (int(!o.grammar.empty()) + int(!o.grammar_file.empty()) + int(!o.json_schema.empty()) +
          int(!o.json_schema_file.empty()) > 1)
    throw UsageError("give one of --grammar, --grammar-file, -j and -jf");
  std::string text = o.grammar;
  if (!o.grammar_file.empty()) text = read_text_input(o.grammar_file, "grammar file");
  std::string schema = o.json_schema;
  if (!o.json_schema_file.empty()) schema = read_text_input(o.json_schema_file, "JSON schema file");
  if (!schema.empty()) {
    nlohmann::ordered_json parsed;
    try {
      parsed = nlohmann::ordered_json::parse(schema);
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(std::string("the JSON schema is not valid JSON: ") + e.what());
    }
    try {
      text = json_schema_to_gbnf(parsed);
    } catch (const SchemaError& e) {
      throw UsageError(std::string("JSON schema: ") + e.what());
    }
  }
  if (!text.empty()) {
    try {
      Grammar::parse(text);
    } catch (const GrammarError& e) {
      throw UsageError(e.what());
    }
  }
  return text;
}

void refuse_embedding_model(const Model& model) {
  if (model.embedding_only())
    throw UsageError(model.file.path() + " is an embedding model (" + model.hp.arch.name +
                     ", pooling type " + std::to_string(model.hp.pooling_type) +
                     "): it makes vectors, not text; use `bitnet embed` (llama-embedding) or `bitnet serve`'s /v1/embeddings");
}

LoadedModel load_for_run(const ModelOptions& o) {
  const CacheTypes cache = cache_types(o);
  ThreadPlan threads;
  try {
    validate_model_settings(to_run_config(o));
    threads = plan_threads(o.threads);
  } catch (const ConfigError& e) {
    throw UsageError(e.what());
  }
  if (!threads.note.empty()) std::fprintf(stderr, "note: %s\n", threads.note.c_str());
  LoadedModel lm;
  lm.threads = threads.threads;
  lm.cache = cache;
  const std::string path = o.model.empty() ? default_model_path() : o.model;
  LoadOptions load;
  load.map_weights = o.map_weights();
  load.gpu_layers = o.gpu_layers;
  if (!load.map_weights) {
    // The copy needs about the file's size in memory; without it the file mapping still works.
    std::error_code ec;
    const uint64_t file_bytes = std::filesystem::file_size(path, ec);
    const MemoryInfo mem = probe_memory();
    if (!ec && mem.available > 0 && file_bytes > mem.available) {
      load.map_weights = true;
      std::fprintf(stderr, "note: %llu MiB available, the weights need %llu MiB: reading them from the file mapping\n",
                   (unsigned long long)(mem.available >> 20), (unsigned long long)(file_bytes >> 20));
    }
  }
  const auto start = std::chrono::steady_clock::now();
  lm.model = load_model(path, load);
  lm.load_ms = elapsed_ms(start);
  const HParams& hp = lm.model->hp;
  lm.ctx = resolve_ctx(o.ctx, hp.n_ctx_train);
  if (!lm.model->embedding_only()) check_cache_head_dim(cache, hp.head_dim);
  check_cache_fits(hp, lm.ctx, o.batch);
  const std::string kv_types =
      cache.quantized() ? std::string(", K/V cache ") + kv_type_name(cache.k) + "/" + kv_type_name(cache.v) : "";
  std::fprintf(stderr, "loaded %s: %s, %lld layers, d=%lld, vocab %lld, %.1f MiB of weights, %d threads, ctx %lld%s\n",
               path.c_str(), hp.arch.name.c_str(), (long long)hp.n_layer, (long long)hp.n_embd,
               (long long)hp.n_vocab, double(lm.model->weight_bytes()) / (1 << 20), lm.threads,
               (long long)lm.ctx, kv_types.c_str());
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
  if (t.grammar)
    std::fprintf(stderr, "%18s: %lld masks, %.2f ms\n", "grammar", (long long)t.grammar_masks, t.grammar_ms);
  if (t.shifts > 0)
    std::fprintf(stderr, "%18s = %10.2f ms / %5lld shifts (%lld tokens evaluated again)\n", "context shift",
                 t.shift_ms, (long long)t.shifts, (long long)t.shift_tokens);
  std::fprintf(stderr, "%18s = %10.2f ms\n", "total time",
               t.load_ms + t.prompt_ms + t.eval_ms + t.sample_ms + t.shift_ms);
  std::fprintf(stderr, "%18s = %10.2f MiB\n", "peak memory", peak_rss_mib());
}

std::string read_text_input(const std::string& path, const std::string& what, uint64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw UsageError("cannot read " + what + " " + path + ": " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    throw UsageError(what + " " + path + (S_ISDIR(st.st_mode) ? " is a directory" : " is not a regular file"));
  if (uint64_t(st.st_size) > max_bytes)
    throw UsageError(what + " " + path + " is " + std::to_string(st.st_size >> 20) + " MiB; the limit is " +
                     std::to_string(max_bytes >> 20) + " MiB");
  std::string text(size_t(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw UsageError("cannot read " + what + " " + path + ": " + std::strerror(errno));
    if (n == 0) break;  // shrank while reading: keep what is there
    got += size_t(n);
  }
  text.resize(got);
  return text;
}

void print_notes(const std::vector<std::string>& notes) {
  std::vector<std::pair<std::string, int>> lines;  // in first-seen order
  for (const std::string& n : notes) {
    std::string key = n;
    if (n.rfind("blk.", 0) == 0 && n.find('.', 4) != std::string::npos)
      key = "blk.*" + n.substr(n.find('.', 4));
    auto it = std::find_if(lines.begin(), lines.end(), [&](const auto& l) { return l.first == key; });
    if (it == lines.end()) lines.push_back({key, 1});
    else ++it->second;
  }
  for (const auto& [line, count] : lines) {
    const std::string times = count > 1 ? " (" + std::to_string(count) + " layers)" : "";
    std::fprintf(stderr, "note: %s%s\n", line.c_str(), times.c_str());
  }
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
