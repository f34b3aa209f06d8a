// `bitnet serve` / `llama-server`: the OpenAI-compatible HTTP server (src/server/).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <set>
#include <thread>

#include <unistd.h>

#include "base/untrusted_text.h"
#include "commands.h"
#include "runtime/run_config.h"
#include "runtime/telemetry.h"
#include "telemetry_options.h"
#include "model_options.h"
#include "server/server.h"

namespace bitnet::cli {
namespace {

struct ServeOptions {
  ModelOptions model;
  int64_t parallel = 1, n_predict = -1, port = 8080, timeout = 600, queue_limit = 16;
  int64_t max_body = 1 << 20, max_connections = 256;
  float grace = 10, header_timeout = 10;
  bool cont_batching = true, no_cont_batching = false, metrics = false;
  bool slots = false, no_slots = false, no_webui = false, greedy = false, embeddings = false, verbose = false;
  bool kv_unified = false, no_kv_unified = false;
  bool context_shift = false, no_context_shift = false;
  std::string alias, tags, chat_template, pooling;
  std::string host = "127.0.0.1", api_key, api_key_file, system_prompt, telemetry_out, otlp_endpoint, cors;
  SamplingParams sampling;
  uint64_t seed = UINT64_MAX;
  GrammarOptions grammar;  // the default grammar
};

// Flags that may also come from the environment, llama-server's convention: LLAMA_ARG_<FLAG>
// (dashes → underscores, upper case) for every long flag below, and llama.cpp's own variable names
// where they differ (LLAMA_ARG_N_GPU_LAYERS, LLAMA_ARG_N_PARALLEL, LLAMA_ARG_BATCH, …).
// `boolean`: a flag without a value.
struct EnvFlag {
  const char* flag;
  bool boolean;
  const char* llama_name = nullptr;  // llama.cpp's variable, where it is not the derived one
};
const EnvFlag kEnvFlags[] = {
    {"--model", false},         {"--threads", false},       {"--ctx-size", false},
    {"--batch-size", false, "LLAMA_ARG_BATCH"},              {"--gpu-layers", false, "LLAMA_ARG_N_GPU_LAYERS"},
    {"--parallel", false, "LLAMA_ARG_N_PARALLEL"},           {"--cont-batching", true},
    {"--no-cont-batching", true}, {"--n-predict", false},   {"--temp", false},
    {"--top-k", false},         {"--top-p", false},         {"--min-p", false},
    {"--repeat-penalty", false}, {"--repeat-last-n", false}, {"--seed", false},
    {"--host", false},          {"--port", false},          {"--api-key", false, "LLAMA_API_KEY"},
    {"--api-key-file", false},  {"--timeout", false},       {"--metrics", true, "LLAMA_ARG_ENDPOINT_METRICS"},
    {"--system-prompt", false}, {"--queue-limit", false},   {"--max-body", false},
    {"--shutdown-grace", false}, {"--max-connections", false}, {"--header-timeout", false},
    {"--otlp-endpoint", false}, {"--cors", false},
    {"--grammar", false},       {"--grammar-file", false},  {"--json-schema", false},
    {"--json-schema-file", false},          {"--mmap", true},
    {"--no-mmap", true},        {"--alias", false},         {"--slots", true, "LLAMA_ARG_ENDPOINT_SLOTS"},
    {"--no-slots", true},       {"--no-webui", true, "LLAMA_ARG_NO_WEBUI"}, {"--cache-type-k", false},
    {"--cache-type-v", false},  {"--flash-attn", false},    {"--ubatch-size", false, "LLAMA_ARG_UBATCH"},
    {"--jinja", true},          {"--threads-http", false},  {"--tags", false},
    {"--chat-template", false}, {"--embeddings", true},     {"--pooling", false},
    {"--kv-unified", true},
    {"--context-shift", true},
};

std::string env_name(const std::string& flag) {
  std::string name = "LLAMA_ARG_";
  for (char c : flag.substr(2)) name += c == '-' ? '_' : char(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

// Environment values become flags placed before the real ones, so the command line wins. A
// LLAMA_ARG_ variable this server does not know is named on stderr, never silently dropped.
std::vector<std::string> with_environment(int argc, char** argv) {
  std::vector<std::string> args = {argv[0]};
  std::set<std::string> known;
  for (const EnvFlag& f : kEnvFlags) {
    const std::string derived = env_name(f.flag);
    known.insert(derived);
    if (f.llama_name) known.insert(f.llama_name);
    std::string name = derived;
    const char* value = std::getenv(derived.c_str());
    if (!value && f.llama_name) {
      name = f.llama_name;
      value = std::getenv(f.llama_name);
    }
    if (!value) continue;
    const std::string v = value;
    if (!f.boolean) {
      args.insert(args.end(), {f.flag, v});
    } else if (v == "1" || v == "true" || v == "on" || v == "enabled") {
      args.push_back(f.flag);
    } else if (v != "0" && v != "false" && v != "off" && v != "disabled" && !v.empty()) {
      throw UsageError(name + " must be 1/true/on or 0/false/off, got " + quote_untrusted(v));
    }
  }
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    if (name.rfind("LLAMA_ARG_", 0) == 0 && !known.count(name))
      std::fprintf(stderr, "warning: %s is not a setting of this server; ignored\n", printable(name).c_str());
  }
  args.insert(args.end(), argv + 1, argv + argc);
  return args;
}

std::string read_key_file(const std::string& path) {
  const std::string text = read_text_input(path, "API key file", 1 << 16);
  std::string key = text.substr(0, text.find('\n'));
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
  if (key.empty()) throw UsageError("API key file is empty: " + path);
  return key;
}

// A key a client can send as it is: printable ASCII, no spaces, no '%' (the HTTP library
// percent-decodes header values, so the server refuses '%' in credential headers).
void check_api_key(const std::string& key, const std::string& where) {
  if (key.empty()) return;
  if (std::all_of(key.begin(), key.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); }))
    throw UsageError(where + ": the API key is blank");
  for (char c : key)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f || c == '%')
      throw UsageError(where + ": the API key may only hold printable ASCII characters other than space and '%'");
}

// --cors: "*" or origins "scheme://host[:port]".
std::vector<std::string> parse_cors(const std::string& list) {
  std::vector<std::string> origins;
  std::stringstream ss(list);
  for (std::string o; std::getline(ss, o, ',');) {
    while (!o.empty() && o.back() == ' ') o.pop_back();
    while (!o.empty() && o.front() == ' ') o.erase(0, 1);
    if (o.empty()) continue;
    const size_t scheme = o.find("://");
    const bool ok = o == "*" || (scheme != std::string::npos && scheme > 0 && o.size() > scheme + 3 &&
                                 o.find('/', scheme + 3) == std::string::npos &&
                                 std::all_of(o.begin(), o.end(), [](char c) { return c > 0x20 && c < 0x7f; }));
    if (!ok) throw UsageError("--cors takes * or origins like https://app.example.com:8443 (no path), got " + quote_untrusted(o));
    origins.push_back(o);
  }
  return origins;
}

void add_options(ArgParser& p, ServeOptions& o) {
  add_model_options(p, o.model, /*grammar_flags=*/true, &o.verbose);
  add_grammar_options(p, o.grammar, "default of requests that ask for no structured output");
  p.option({"-np", "--parallel"}, "N", "slots: requests served at once, sharing -c (default 1)", &o.parallel);
  p.flag({"-cb", "--cont-batching"}, "continuous batching: slots join the running batch at any step (default)",
         &o.cont_batching);
  p.flag({"-nocb", "--no-cont-batching"}, "admit new requests only when every slot is idle", &o.no_cont_batching);
  p.option({"-n", "--n-predict"}, "N", "default token limit per request (-1: until end of text or full slot)",
           &o.n_predict);
  add_sampling_options(p, o.sampling);  // per-request defaults for serve
  p.option({"-s", "--seed"}, "N", "default seed (default: a new one per request)", &o.seed);
  p.option({"--host"}, "ADDR", "address to listen on (default 127.0.0.1)", &o.host);
  p.option({"--port"}, "N", "port (default 8080; 0: any free port, printed at start-up)", &o.port);
  p.option({"--api-key"}, "KEY", "require this key (Authorization: Bearer KEY or X-Api-Key) on all but /health",
           &o.api_key);
  p.option({"--api-key-file"}, "FILE", "read the API key from the first line of FILE", &o.api_key_file);
  p.option({"--cors"}, "ORIGINS",
           "web origins (comma-separated, e.g. https://app.example.com; * for any) whose pages may call this server "
           "from a browser; default: any origin without an API key, none with one",
           &o.cors);
  p.option({"-to", "--timeout"}, "S", "read/write timeout of a connection in seconds (default 600)", &o.timeout);
  p.option({"--telemetry-out"}, "FILE.jsonl", "append structured events (docs/telemetry.md)", &o.telemetry_out);
  add_otlp_option(p, &o.otlp_endpoint);
  p.flag({"--metrics"}, "expose Prometheus metrics at GET /metrics", &o.metrics);
  p.option({"-sys", "--system-prompt"}, "TEXT", "system prompt primed into every slot at start-up", &o.system_prompt);
  p.option({"--queue-limit"}, "N", "requests that may wait for a slot; more get 503 (default 16)", &o.queue_limit);
  p.option({"--max-body"}, "BYTES", "largest request body; larger ones get 413 (default 1048576)", &o.max_body);
  p.option({"--max-connections"}, "N",
           "connections served at once; more get 503 at once, GET /health is always answered (default 256)",
           &o.max_connections);
  p.option({"--header-timeout"}, "S",
           "seconds a client gets to send its request line and headers; slower ones get 408 (default 10)",
           &o.header_timeout);
  p.option({"--shutdown-grace"}, "S", "seconds in-flight requests get to finish on SIGINT/SIGTERM (default 10)",
           &o.grace);
  // llama-server's flags: those with a meaning here, then those accepted as no-ops, then those for
  // features this server does not have (docs/server.md lists all three).
  p.option({"-a", "--alias"}, "NAMES", "the model's names, comma-separated: the first in sorted order is its id in "
           "responses and /v1/models (default: the file name)", &o.alias);
  p.option({"--tags"}, "LIST", "comma-separated tags listed with the model in /v1/models", &o.tags);
  p.option({"--chat-template"}, "NAME|TEMPLATE", kChatTemplateHelp, &o.chat_template);
  p.flag({"--slots"}, "expose GET /slots (the default)", &o.slots);
  p.flag({"--no-slots"}, "turn GET /slots off (501)", &o.no_slots);
  p.flag({"--no-webui"}, "do not serve the chat page at /", &o.no_webui);
  p.flag({"--greedy"}, "greedy sampling by default (temperature 0; requests may still set their own)", &o.greedy);
  p.flag({"--context-shift"}, "a reply that fills its slot keeps the request's n_keep first tokens, drops half of the "
         "rest and goes on (the tokens after the dropped ones are evaluated again)", &o.context_shift);
  p.flag({"--no-context-shift"}, "a reply that fills its slot ends with finish_reason \"length\" (the default)",
         &o.no_context_shift);
  p.flag({"--embedding", "--embeddings"},
         "serve embeddings at /v1/embeddings, /embeddings and /embedding (on by itself for an embedding model)",
         &o.embeddings);
  p.flag({"-kvu", "--kv-unified"},
         "one KV cache of -c positions shared by the slots: each slot may use all of -c while the others leave "
         "room; when the running requests need more, the newest fails (default: each slot gets -c / -np)",
         &o.kv_unified);
  p.flag({"-no-kvu", "--no-kv-unified"}, "each slot gets its own -c / -np positions (the default)", &o.no_kv_unified);
  p.option({"--pooling"}, "TYPE", "how embeddings pool the tokens' hidden states: none, mean, cls or last (default: "
           "the model's, else last)", &o.pooling);
  p.compat_noop({"--offline"}, "", "models are never downloaded");
  p.compat_noop({"--cont-batching-default"}, "", "continuous batching is the default");
  p.compat_noop({"--threads-http"}, "N", "every connection has its own thread (--max-connections)");
  p.compat_noop({"--cache-reuse"}, "N", "the slot's cached prefix is reused as it is");
  p.compat_noop({"--no-models-autoload"}, "", "one model is served");
  p.compat_noop({"--models-max"}, "N", "one model is served");
  p.compat_noop({"--draft", "--draft-max", "--draft-n"}, "N", "no speculative decoding (no draft model)");
  p.compat_noop({"--draft-min"}, "N", "no speculative decoding (no draft model)");
  p.compat_noop({"--draft-p-min"}, "P", "no speculative decoding (no draft model)");
  p.compat_noop({"--sleep-idle-seconds"}, "S", "the model stays loaded");
  p.compat_noop({"--webui-mcp-proxy"}, "", "no MCP proxy");
  p.unsupported({"--models-dir"}, "DIR", "one model is served; pass -m FILE");
  p.unsupported({"-md", "--model-draft"}, "FILE", "no speculative decoding");
  p.unsupported({"--mmproj", "--mmproj-url"}, "FILE", "multimodal projectors");
  p.unsupported({"--media-path"}, "DIR", "multimodal input");
  p.unsupported({"--slot-save-path"}, "DIR", "saving and restoring slots");
  p.unsupported({"--reranking", "--rerank"}, "", "reranking");
}

server::ServerConfig to_config(const ServeOptions& o) {
  if (o.parallel < 1 || o.parallel > 256) throw UsageError("-np must be between 1 and 256");
  if (o.n_predict < -1) throw UsageError("-n must be -1 or ≥ 0");
  if (o.port < 0 || o.port > 65535) throw UsageError("--port must be between 0 and 65535");
  if (o.timeout < 1 || o.timeout > 86400) throw UsageError("--timeout must be between 1 and 86400 seconds");
  if (o.queue_limit < 0 || o.queue_limit > 4096) throw UsageError("--queue-limit must be between 0 and 4096");
  if (o.max_body < 64 || o.max_body > (int64_t(1) << 30)) throw UsageError("--max-body must be between 64 and 2^30");
  if (!(o.grace >= 0 && o.grace <= 3600)) throw UsageError("--shutdown-grace must be between 0 and 3600 seconds");
  if (o.max_connections < 1 || o.max_connections > 65536) throw UsageError("--max-connections must be between 1 and 65536");
  if (!(o.header_timeout >= 0.1f && o.header_timeout <= 3600)) throw UsageError("--header-timeout must be between 0.1 and 3600 seconds");
  if (o.host.empty()) throw UsageError("--host must not be empty");
  if (!o.api_key.empty() && !o.api_key_file.empty()) throw UsageError("give either --api-key or --api-key-file");
  if (const std::string err = validate(o.sampling); !err.empty()) throw UsageError(err);
  server::ServerConfig c;
  c.host = o.host;
  c.port = int(o.port);
  c.timeout_s = int(o.timeout);
  c.max_body = size_t(o.max_body);
  c.shutdown_grace_s = o.grace;
  c.connections.max_connections = int(o.max_connections);
  c.connections.head_timeout_s = o.header_timeout;
  // The whole request (head and body, at most --max-body) within the head's time plus a minute.
  c.connections.request_timeout_s = o.header_timeout + 60;
  c.api.api_key = o.api_key_file.empty() ? o.api_key : read_key_file(o.api_key_file);
  check_api_key(c.api.api_key, o.api_key_file.empty() ? "--api-key" : "the API key file");
  const CacheTypes cache = cache_types(o.model);
  c.engine.cache_type_k = cache.k;
  c.engine.cache_type_v = cache.v;
  if (o.slots && o.no_slots) throw UsageError("give either --slots or --no-slots");
  c.api.alias = o.alias;
  c.api.tags = o.tags;
  c.api.chat_format = chat_template_option(o.chat_template);
  c.api.slots_endpoint = !o.no_slots;
  c.api.web_ui = !o.no_webui;
  c.api.cors_origins = parse_cors(o.cors);
  c.api.metrics = o.metrics;
  c.api.system_prompt = o.system_prompt;
  c.api.sampling = o.sampling;
  c.api.random_seed = o.seed == UINT64_MAX;
  if (o.seed != UINT64_MAX) c.api.sampling.seed = o.seed;
  if (o.greedy) c.api.sampling.temperature = 0;
  c.api.n_predict = o.n_predict;
  c.api.verbose = o.verbose;
  c.api.default_grammar = resolve_grammar(o.grammar);
  c.engine.n_slots = int(o.parallel);
  c.engine.n_batch = o.model.batch;
  c.engine.queue_limit = int(o.queue_limit);
  c.engine.continuous_batching = o.cont_batching && !o.no_cont_batching;
  c.engine.context_shift = o.context_shift && !o.no_context_shift;
  c.engine.kv_unified = o.kv_unified && !o.no_kv_unified;
  if (c.engine.kv_unified && o.model.gpu_layers > 0)
    throw UsageError("--kv-unified runs on the CPU only: the K/V cache of the GPU layers (-ngl) cannot be shared by "
                     "the slots; drop -ngl or --kv-unified");
  c.engine.embeddings = o.embeddings;
  if (!o.pooling.empty()) {
    if (o.pooling == "rank") throw UsageError("--pooling rank is not supported: reranking is not implemented");
    c.engine.pooling = parse_pooling(o.pooling);
    if (!c.engine.pooling)
      throw UsageError("--pooling must be none, mean, cls or last, got " + quote_untrusted(o.pooling, 60));
  }
  return c;
}

// --dry-run: the effective options (environment merged) and the argument list that reproduces
// them. The API key is shown as **** so it never lands in logs.
int serve_dry_run(const ServeOptions& o, const std::vector<std::string>& args, bool json) {
  std::vector<std::string> argv = {self_executable(), "serve"};
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--dry-run" || args[i] == "--json") continue;
    argv.push_back(args[i].rfind("--api-key=", 0) == 0 ? "--api-key=****" : args[i]);
    if ((args[i] == "--api-key") && i + 1 < args.size()) {
      argv.push_back("****");
      ++i;
    }
  }
  const ThreadPlan tp = plan_threads(o.model.threads);
  const std::string model = o.model.model.empty() ? default_model_location() : o.model.model;
  const nlohmann::json config = {
      {"model", o.model.model},     {"threads", o.model.threads},   {"ctx_size", o.model.ctx},
      {"batch_size", o.model.batch}, {"parallel", o.parallel},      {"cont_batching", !o.no_cont_batching},
      {"n_predict", o.n_predict},   {"host", o.host},               {"port", o.port},
      {"timeout", o.timeout},       {"queue_limit", o.queue_limit}, {"max_body", o.max_body},
      {"max_connections", o.max_connections}, {"header_timeout", o.header_timeout},
      {"metrics", o.metrics},       {"api_key_set", !o.api_key.empty() || !o.api_key_file.empty()},
      {"system_prompt", o.system_prompt}, {"temperature", o.sampling.temperature},
      {"embeddings", o.embeddings}, {"pooling", o.pooling.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.pooling)},
      {"context_shift", o.context_shift && !o.no_context_shift},
      {"cache_type_k", o.model.cache_type_k}, {"cache_type_v", o.model.cache_type_v}, {"verbose", o.verbose},
      {"kv_unified", o.kv_unified && !o.no_kv_unified}};
  nlohmann::json resolved = {{"model", model},
                             {"model_exists", std::filesystem::exists(model)},
                             {"threads", tp.threads},
                             {"threads_automatic", tp.automatic},
                             {"backend", "cpu"}};
  print_dry_run("serve", config, resolved, argv, json);
  return 0;
}

}  // namespace

int cmd_serve(int argc, char** argv) {
  ServeOptions o;
  ArgParser p("bitnet serve",
              "OpenAI-compatible HTTP server with continuous batching (llama-server compatible flags). Every long "
              "flag can also be set as LLAMA_ARG_<FLAG> in the environment (e.g. LLAMA_ARG_CTX_SIZE=4096; "
              "LLAMA_API_KEY for the key); the command line wins.");
  add_options(p, o);
  std::vector<std::string> args = with_environment(argc, argv);
  std::vector<char*> ptrs;
  for (auto& a : args) ptrs.push_back(a.data());
  bool dry = false, json = false;
  p.flag({"--dry-run"}, "print the resolved configuration and the argument list; load nothing, bind nothing", &dry);
  p.flag({"--json"}, "with --dry-run: print one JSON object", &json);
  if (!p.parse(int(ptrs.size()), ptrs.data())) return 0;
  if (json && !dry) throw UsageError("--json goes with --dry-run");
  server::ServerConfig config = to_config(o);
  if (dry) return serve_dry_run(o, args, json);
  std::error_code ec;  // a path that exists but is no model (a directory, /dev/null) fails to load: exit 1
  if (!o.model.model.empty() && !std::filesystem::exists(o.model.model, ec))
    throw UsageError("model file not found: " + o.model.model);
  config.api.model_path = o.model.model.empty() ? default_model_path() : o.model.model;
  ModelOptions model_options = o.model;
  model_options.model = config.api.model_path;
  // Thread count as `run` resolves it (load_for_run validates -t too; resolve it up front for the engine).
  if (model_options.threads < 0 || model_options.threads > 1024) throw UsageError("-t must be between 1 and 1024");
  config.engine.threads = model_options.threads > 0
                              ? int(model_options.threads)
                              : int(std::max(1u, std::min(256u, std::thread::hardware_concurrency())));
  const TelemetrySetup telemetry_setup = open_telemetry({o.telemetry_out, o.otlp_endpoint}, "serve");
  const std::shared_ptr<Telemetry> telemetry = telemetry_setup.telemetry;
  config.otlp = telemetry_setup.otlp;
  telemetry->emit("run_started", {{"config", {{"model", config.api.model_path}, {"host", o.host}, {"port", o.port},
                                              {"parallel", o.parallel}, {"ctx_size", o.model.ctx},
                                              {"threads", config.engine.threads}, {"batch_size", o.model.batch}}}});
  if (telemetry->enabled())
    config.engine.on_finished = [telemetry](const server::JobStats& st, const std::string& reason) {
      telemetry->emit("request_finished", {{"slot", st.slot}, {"prompt_tokens", st.prompt_tokens},
                                           {"cached_tokens", st.cached_tokens}, {"generated_tokens", st.generated},
                                           {"queue_ms", st.queue_ms}, {"prompt_ms", st.prompt_ms},
                                           {"generation_ms", st.generation_ms}, {"finish_reason", reason}});
    };
  if (telemetry->enabled())
    config.engine.on_embedding_finished = [telemetry](const server::EmbeddingStats& st, const std::string& outcome) {
      telemetry->emit("embedding_request_finished", {{"inputs", st.inputs}, {"tokens", st.tokens},
                                                     {"batches", st.batches}, {"queue_ms", st.queue_ms},
                                                     {"compute_ms", st.compute_ms}, {"outcome", outcome}});
    };
  config.load = [model_options, telemetry] {
    // Testing aid: keeps the loading phase open long enough to observe /health's 503.
    if (const char* delay = std::getenv("BITNET_SERVE_LOAD_DELAY_MS"))
      std::this_thread::sleep_for(std::chrono::milliseconds(std::clamp(std::atoi(delay), 0, 60000)));
    LoadedModel lm = load_for_run(model_options);
    if (!lm.model->tokenizer) throw Error("model has no tokenizer: the server needs one");
    telemetry->emit("model_loaded", {{"model", model_options.model}, {"architecture", lm.model->hp.arch.name},
                                     {"load_ms", lm.load_ms}, {"threads", lm.threads}, {"ctx_size", lm.ctx}});
    return server::ServedModel{std::move(lm.model), lm.ctx};
  };
  try {
    const int code = server::run_server(std::move(config));
    telemetry->emit("run_finished", {{"exit_code", code}});
    return code;
  } catch (const std::exception& e) {
    telemetry->emit("run_failed", {{"error", e.what()}, {"exit_code", 1}});
    throw;
  }
}

namespace {
const CommandRegistration kRegistration({"serve", "llama-server", cmd_serve,
                                         "OpenAI-compatible HTTP server with continuous batching (llama-server flags)",
                                         40});
}  // namespace

}  // namespace bitnet::cli
