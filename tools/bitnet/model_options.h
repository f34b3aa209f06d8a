#pragma once
// Options every model-running subcommand shares (-m -t -c -b -ngl), model loading with timing,
// the default model, and llama.cpp-style timing output.
#include <cstdint>
#include <memory>
#include <string>

#include "args.h"
#include "model/model.h"
#include "runtime/session.h"

namespace bitnet::cli {

struct ModelOptions {
  std::string model;  // empty: the default model (generated on first use)
  int64_t threads = 0;  // 0: all hardware threads
  int64_t ctx = 0;      // 0: min(training context, 4096)
  int64_t batch = 512;
  int32_t gpu_layers = 0;
};

void add_model_options(ArgParser& parser, ModelOptions& options);

struct LoadedModel {
  std::unique_ptr<Model> model;
  double load_ms = 0;
  int threads = 1;
  int64_t ctx = 0;
};
// Validates the options (UsageError with a specific message), resolves defaults and loads.
LoadedModel load_for_run(const ModelOptions& options);

// Path of the default model; generates it (with a progress bar) if it does not exist yet.
std::string default_model_path();

void print_timings(const Timings& t);
// Peak resident memory of this process in MiB.
double peak_rss_mib();
// A progress bar on stderr for long operations.
void print_progress(const char* what, uint64_t done, uint64_t total);

}  // namespace bitnet::cli
