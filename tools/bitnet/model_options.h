#pragma once
// Options every model-running subcommand shares (-m -t -c -b -ngl), model loading with timing,
// the default model, and llama.cpp-style timing output.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.h"
#include "model/kv_type.h"
#include "model/model.h"
#include "runtime/run_config.h"
#include "runtime/session.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::cli {

struct ModelOptions {
  std::string model;  // empty: the default model (generated on first use)
  int64_t threads = 0;  // 0: all hardware threads
  int64_t ctx = 0;      // 0: min(training context, 4096)
  int64_t batch = 512;
  int32_t gpu_layers = 0;
  bool mmap = false, no_mmap = false;  // no_mmap: the default, a flag for llama.cpp compatibility
  std::string cache_type_k = "f16", cache_type_v = "f16";  // -ctk / -ctv: f16 or q8_0 (model/kv_type.h)
  bool map_weights() const { return mmap && !no_mmap; }  // LoadOptions::map_weights
};

// Also adds the llama.cpp flags every model-running tool accepts as no-ops, or refuses by name
// (docs/cli.md lists them).
// grammar_flags: the command takes --grammar/-j itself (else they are refused as unsupported).
// verbose: where -v/--verbose has a meaning (serve: `__verbose` in responses); else it is a no-op.
void add_model_options(ArgParser& parser, ModelOptions& options, bool grammar_flags = false, bool* verbose = nullptr);
struct CacheTypes {
  KvType k = KvType::F16, v = KvType::F16;
  bool quantized() const { return k != KvType::F16 || v != KvType::F16; }
};
// -ctk / -ctv parsed: a UsageError naming the accepted values for any other name, and for q8_0
// with -ngl > 0 (the GPU layers keep an f16 cache).
CacheTypes cache_types(const ModelOptions& options);
// The same check, for commands that only validate.
void check_cache_types(const ModelOptions& options);
// A UsageError when a q8_0 side meets a head size that is not a multiple of 32.
void check_cache_head_dim(const CacheTypes& types, int64_t head_dim);
// --chat-template NAME|TEMPLATE (run and serve): nullopt when empty (the model's own format), else
// the built-in format it names or spells; a UsageError listing the formats otherwise.
std::optional<ChatFormat> chat_template_option(const std::string& value);
inline constexpr const char* kChatTemplateHelp =
    "chat format: bitnet, llama3, falcon3, chatml, plain, or a template text in one of those formats "
    "(default: from the model)";
// The help line of -ctk / -ctv.
inline constexpr const char* kCacheTypeHelp = "f16 (default) or q8_0 (32 dimensions per f16 scale; CPU only)";
// --temp --top-k --top-p --min-p --repeat-penalty --repeat-last-n (llama.cpp's sampling flags).
void add_sampling_options(ArgParser& parser, SamplingParams& sampling);
// The shared options as the library's run configuration (validated there, in one place).
RunConfig to_run_config(const ModelOptions& options);

struct LoadedModel {
  std::unique_ptr<Model> model;
  double load_ms = 0;
  int threads = 1;
  int64_t ctx = 0;
  CacheTypes cache;  // -ctk / -ctv
};
// Validates the options (UsageError with a specific message), resolves defaults and loads.
LoadedModel load_for_run(const ModelOptions& options);

// A UsageError for an embedding-only model (it has no head to generate or score text with): the
// message points to `bitnet embed`.
void refuse_embedding_model(const Model& model);

// --grammar / --grammar-file / -j / -jf of `run` and `serve` (llama.cpp's names).
struct GrammarOptions {
  std::string grammar, grammar_file, json_schema, json_schema_file;
  bool given() const {
    return !grammar.empty() || !grammar_file.empty() || !json_schema.empty() || !json_schema_file.empty();
  }
};
// Adds the four flags; `what` ends each help line ("only generate …" / "default grammar …").
void add_grammar_options(ArgParser& parser, GrammarOptions& options, const std::string& what);
// The GBNF text they name (a schema converted with its properties in declaration order), checked
// to parse; empty when none is given. A UsageError for two of them, a bad file, schema or grammar.
std::string resolve_grammar(const GrammarOptions& options);

// The trained model shipped in models/ (docs/default-model.md; training/train.sh makes it).
inline constexpr const char* kDefaultModelName = "bitnet-kjv-13M-i2_s.gguf";
// Path of the default model (BITNET_DEFAULT_MODEL overrides); a UsageError when it is missing.
std::string default_model_path();

// The whole of a text input file (-f prompt, perplexity text, key file): a regular file of at most
// max_bytes, else a UsageError naming `what` and the path — a directory, FIFO or device
// (/dev/zero) is refused up front instead of read forever or blocked on.
std::string read_text_input(const std::string& path, const std::string& what, uint64_t max_bytes = uint64_t(1) << 30);
// Where the default model is; checks nothing.
std::string default_model_location();

// --dry-run output shared by run/serve/bench: the resolved configuration and the exact argument
// list, as text or one JSON object ({"command", "dry_run", "config", "resolved", "argv"}).
void print_dry_run(const std::string& command, const nlohmann::json& config, const nlohmann::json& resolved,
                   const std::vector<std::string>& argv, bool json);
// Absolute path of the running binary (argv[0] of the argument lists --dry-run prints).
std::string self_executable();

void print_timings(const Timings& t);
// Peak resident memory of this process in MiB.
double peak_rss_mib();
// A progress bar on stderr for long operations.
void print_progress(const char* what, uint64_t done, uint64_t total);
// "note: …" lines on stderr; notes that differ only in the layer number (blk.N.) print once, with
// the layer count, so a per-tensor fallback in every layer stays one line.
void print_notes(const std::vector<std::string>& notes);

}  // namespace bitnet::cli
