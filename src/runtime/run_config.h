#pragma once
// The run configuration every model-running command shares, validated in one place. Front ends
// (the `bitnet` subcommands, the Python scripts through them) fill a RunConfig from their flags,
// call validate() — which names the flag and the bad value — and resolve() the automatic values
// (thread count, context size) the same way, so `--dry-run` shows exactly what a run would use.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "errors.h"
#include "sampling/sampler.h"

namespace bitnet {

// A bad configuration value. `field` is the flag as the user typed it (e.g. "-t").
struct ConfigError : Error {
  ConfigError(std::string field_, const std::string& message) : Error(message), field(std::move(field_)) {}
  std::string field;
};

inline constexpr int64_t kMaxThreads = 1024;
inline constexpr int64_t kMaxBatch = 65536;
// Positions are 32-bit in the batch, so a context beyond this could never be addressed.
inline constexpr int64_t kMaxCtx = 2147483647;
inline constexpr int64_t kDefaultCtxCap = 4096;  // default: min(training context, this)

struct RunConfig {
  std::string model;  // empty: the default model
  std::string prompt, prompt_file, system_prompt;
  int64_t n_predict = -1;  // -1: until end of text or a full context
  int64_t ctx_size = 0;    // 0: min(training context, kDefaultCtxCap)
  int64_t threads = 0;     // 0: automatic (hardware, clamped, ceiling)
  int64_t batch_size = 512;
  int32_t gpu_layers = 0;
  bool mmap = false;  // kernels read the weights from the file mapping (LoadOptions::map_weights)
  SamplingParams sampling;
  std::optional<uint64_t> seed;  // none: from the clock at start
  bool conversation = false, ignore_eos = false, no_display_prompt = false;
  bool interactive = false, interactive_first = false;  // -i / -if: lines from stdin continue the text
  std::vector<std::string> reverse_prompts;             // -r (escapes already processed)
  // --context-shift: a full context keeps its first `keep` tokens (--keep: of the initial prompt,
  // -1 all of it; a leading BOS always stays), drops half of the rest and generation goes on.
  bool context_shift = false;
  int64_t keep = 0;
  std::string telemetry_out;  // JSONL telemetry file, empty: none
};

// Checks of the values shared by every model-running command (-m -t -c -b -ngl). Throws
// ConfigError. The model file must exist when one is named.
void validate_model_settings(const RunConfig& c);
// Every check for `bitnet run`: the shared ones, prompt, -n, sampling.
void validate(const RunConfig& c);
// All problems at once (the first is what validate() throws), for reports that list them.
std::vector<ConfigError> check_all(const RunConfig& c);

// Threads this process may use: the CPUs in its affinity mask (a container's cpuset), at least 1.
int hardware_threads();
// BITNET_MAX_THREADS, the ceiling a supervisor sets for its children. nullopt when unset; throws
// ConfigError for a value that is not an integer in [1, kMaxThreads].
std::optional<int> thread_ceiling();

struct ThreadPlan {
  int threads = 1;
  int hardware = 1;
  std::optional<int> ceiling;
  bool automatic = true;  // chosen by us rather than -t
  std::string note;       // why the number differs from what was asked, empty if it does not
};
// Automatic: every hardware thread, clamped to [1, 256]. Explicit -t is kept unless it exceeds
// the ceiling. The ceiling always wins: a supervisor's limit is a promise to its other children.
ThreadPlan plan_threads(int64_t requested, int hardware, std::optional<int> ceiling);
ThreadPlan plan_threads(int64_t requested);  // with hardware_threads() and thread_ceiling()

// Context size a run uses for a model trained with n_ctx_train tokens.
int64_t resolve_ctx(int64_t requested, int64_t n_ctx_train);

// The configuration as JSON (for --dry-run --json, telemetry and the Python layer).
nlohmann::json to_json(const RunConfig& c);
// The `bitnet run` argument list that reproduces this configuration (argv[0] = binary).
std::vector<std::string> run_arguments(const RunConfig& c, const std::string& binary);
// Shortest text that parses back to the same float (so argument lists round-trip).
std::string format_float(float v);

}  // namespace bitnet
