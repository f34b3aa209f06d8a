#include "runtime/run_config.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <thread>

namespace bitnet {
namespace {

std::string got(int64_t v) { return " (got " + std::to_string(v) + ")"; }

void model_checks(const RunConfig& c, std::vector<ConfigError>& out) {
  if (c.threads < 0 || c.threads > kMaxThreads)
    out.emplace_back("-t", "-t must be between 1 and 1024, or 0 for automatic" + got(c.threads));
  if (c.ctx_size < 0 || c.ctx_size > kMaxCtx)
    out.emplace_back("-c", "-c must be positive and at most 2147483647, or 0 for the model's" + got(c.ctx_size));
  if (c.batch_size < 1 || c.batch_size > kMaxBatch)
    out.emplace_back("-b", "-b must be between 1 and 65536" + got(c.batch_size));
  if (c.gpu_layers < 0) out.emplace_back("-ngl", "-ngl must be ≥ 0" + got(c.gpu_layers));
  if (!c.model.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(c.model, ec))
      out.emplace_back("-m", "model file not found: " + c.model);
    else if (std::filesystem::is_directory(c.model, ec))
      out.emplace_back("-m", "model path is a directory, not a GGUF file: " + c.model);
  }
}

void run_checks(const RunConfig& c, std::vector<ConfigError>& out) {
  if (!c.prompt.empty() && !c.prompt_file.empty())
    out.emplace_back("-f", "give either -p or -f, not both");
  if (!c.prompt_file.empty() && !std::filesystem::exists(c.prompt_file))
    out.emplace_back("-f", "cannot read prompt file: " + c.prompt_file);
  if (!c.conversation && !c.interactive && !c.interactive_first && c.prompt.empty() && c.prompt_file.empty())
    out.emplace_back("-p", "no prompt: give -p TEXT or -f FILE (or -cnv, -i)");
  if (c.n_predict < -1) out.emplace_back("-n", "-n must be -1 or ≥ 0" + got(c.n_predict));
  if (c.keep < -1) out.emplace_back("--keep", "--keep must be -1 (the whole initial prompt) or ≥ 0" + got(c.keep));
  if (const std::string err = validate(c.sampling); !err.empty()) out.emplace_back("--temp", err);
}

}  // namespace

std::vector<ConfigError> check_all(const RunConfig& c) {
  std::vector<ConfigError> out;
  model_checks(c, out);
  run_checks(c, out);
  return out;
}

void validate_model_settings(const RunConfig& c) {
  std::vector<ConfigError> out;
  model_checks(c, out);
  if (!out.empty()) throw out.front();
}

void validate(const RunConfig& c) {
  const auto out = check_all(c);
  if (!out.empty()) throw out.front();
}

int hardware_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1, int(std::thread::hardware_concurrency()));
}

std::optional<int> thread_ceiling() {
  const char* env = std::getenv("BITNET_MAX_THREADS");
  if (!env || !*env) return std::nullopt;
  const std::string text = env;
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 1 || v > kMaxThreads)
    throw ConfigError("BITNET_MAX_THREADS",
                      "BITNET_MAX_THREADS must be an integer between 1 and 1024 (got '" + text + "')");
  return int(v);
}

ThreadPlan plan_threads(int64_t requested, int hardware, std::optional<int> ceiling) {
  ThreadPlan p;
  p.hardware = std::max(1, hardware);
  p.ceiling = ceiling;
  p.automatic = requested <= 0;
  // More than 256 threads only adds synchronisation cost at the matrix sizes these models have.
  p.threads = p.automatic ? std::clamp(p.hardware, 1, 256) : int(requested);
  if (ceiling && p.threads > *ceiling) {
    p.note = (p.automatic ? "automatic " : "-t ") + std::to_string(p.threads) +
             " lowered to the BITNET_MAX_THREADS ceiling " + std::to_string(*ceiling);
    p.threads = *ceiling;
  } else if (!p.automatic && p.threads > p.hardware) {
    p.note = "-t " + std::to_string(p.threads) + " exceeds the " + std::to_string(p.hardware) +
             " hardware threads available: threads will share cores";
  }
  return p;
}

ThreadPlan plan_threads(int64_t requested) {
  return plan_threads(requested, hardware_threads(), thread_ceiling());
}

int64_t resolve_ctx(int64_t requested, int64_t n_ctx_train) {
  if (requested > 0) return requested;
  return std::max<int64_t>(1, std::min(n_ctx_train, kDefaultCtxCap));
}

std::string format_float(float v) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

nlohmann::json to_json(const RunConfig& c) {
  const SamplingParams& s = c.sampling;
  // Floats as the user typed them (0.8, not 0.800000011920929).
  auto num = [](float v) { return std::stod(format_float(v)); };
  return {
      {"model", c.model},
      {"prompt", c.prompt},
      {"prompt_file", c.prompt_file},
      {"system_prompt", c.system_prompt},
      {"n_predict", c.n_predict},
      {"ctx_size", c.ctx_size},
      {"threads", c.threads},
      {"batch_size", c.batch_size},
      {"gpu_layers", c.gpu_layers},
      {"mmap", c.mmap},
      {"temperature", num(s.temperature)},
      {"top_k", s.top_k},
      {"top_p", num(s.top_p)},
      {"min_p", num(s.min_p)},
      {"repeat_penalty", num(s.repeat_penalty)},
      {"repeat_last_n", s.repeat_last_n},
      {"seed", c.seed ? nlohmann::json(*c.seed) : nlohmann::json(nullptr)},
      {"conversation", c.conversation},
      {"interactive", c.interactive},
      {"interactive_first", c.interactive_first},
      {"reverse_prompts", c.reverse_prompts},
      {"ignore_eos", c.ignore_eos},
      {"no_display_prompt", c.no_display_prompt},
      {"context_shift", c.context_shift},
      {"keep", c.keep},
      {"telemetry_out", c.telemetry_out},
  };
}

std::vector<std::string> run_arguments(const RunConfig& c, const std::string& binary) {
  std::vector<std::string> a = {binary, "run"};
  auto add = [&](const char* flag, const std::string& value) {
    a.push_back(flag);
    a.push_back(value);
  };
  if (!c.model.empty()) add("-m", c.model);
  if (!c.prompt_file.empty()) add("-f", c.prompt_file);
  else if (!c.prompt.empty()) add("-p", c.prompt);
  add("-n", std::to_string(c.n_predict));
  add("-c", std::to_string(c.ctx_size));
  add("-t", std::to_string(c.threads));
  add("-b", std::to_string(c.batch_size));
  add("-ngl", std::to_string(c.gpu_layers));
  if (c.mmap) a.push_back("--mmap");
  const SamplingParams& s = c.sampling;
  add("--temp", format_float(s.temperature));
  add("--top-k", std::to_string(s.top_k));
  add("--top-p", format_float(s.top_p));
  add("--min-p", format_float(s.min_p));
  add("--repeat-penalty", format_float(s.repeat_penalty));
  add("--repeat-last-n", std::to_string(s.repeat_last_n));
  if (c.seed) add("-s", std::to_string(*c.seed));
  if (c.conversation) a.push_back("-cnv");
  if (c.interactive) a.push_back("-i");
  if (c.interactive_first) a.push_back("-if");
  for (const std::string& r : c.reverse_prompts) add("-r", r);
  a.push_back("--no-escape");  // the texts above are as the model sees them
  if (!c.system_prompt.empty()) add("-sys", c.system_prompt);
  if (c.ignore_eos) a.push_back("--ignore-eos");
  if (c.no_display_prompt) a.push_back("--no-display-prompt");
  if (c.context_shift) a.push_back("--context-shift");
  if (c.keep != 0) add("--keep", std::to_string(c.keep));
  if (!c.telemetry_out.empty()) add("--telemetry-out", c.telemetry_out);
  return a;
}

}  // namespace bitnet
