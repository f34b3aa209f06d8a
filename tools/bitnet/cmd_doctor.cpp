// `bitnet doctor`: is this machine ready to run (or serve) a model? Text or --json report; exit 0
// when ready, 1 when a check failed, 2 for bad flags.
#include <cstdio>

#include "commands.h"
#include "model_options.h"
#include "runtime/diagnostics.h"

namespace bitnet::cli {

int cmd_doctor(int argc, char** argv) {
  ModelOptions mo;
  DiagnosticsRequest r;
  std::string host = r.host, bin_dir;
  int32_t port = 0;
  int64_t parallel = 1;
  bool json = false;
  ArgParser p("bitnet doctor", "Check the environment before a run: binaries, CPU, memory, model, GPU, port.");
  add_model_options(p, mo);
  p.option({"--host"}, "ADDR", "server address to check (default 127.0.0.1)", &host);
  p.option({"--port"}, "N", "server port to check (default 8080; a busy default port only warns)", &port);
  p.option({"-np", "--parallel"}, "N", "server slots sharing -c, as `serve -np` (default 1): the KV cache is "
           "reported per slot and in total", &parallel);
  p.flag({"-kvu", "--kv-unified"}, "as `serve --kv-unified`: the slots share one KV cache of -c positions",
         &r.kv_unified);
  p.option({"--bin-dir"}, "DIR", "where the binaries should be (default: next to this one)", &bin_dir);
  p.flag({"--json"}, "print one JSON object (schema bitnet.doctor, version 1)", &json);
  if (!p.parse(argc, argv)) return 0;
  // The same value checks as a run, except that a missing model is a finding, not a usage error.
  RunConfig config = to_run_config(mo);
  config.model.clear();
  try {
    validate_model_settings(config);
  } catch (const ConfigError& e) {
    throw UsageError(e.what());
  }
  if (p.given("--port") && (port < 1 || port > 65535)) throw UsageError("--port must be between 1 and 65535");
  if (parallel < 1 || parallel > 256) throw UsageError("-np must be between 1 and 256");

  r.model = mo.model.empty() ? default_model_location() : mo.model;
  r.model_is_default = mo.model.empty();
  r.ctx = mo.ctx;
  r.batch = mo.batch;
  r.parallel = parallel;
  r.threads = mo.threads;
  r.gpu_layers = mo.gpu_layers;
  const CacheTypes cache = cache_types(mo);
  r.cache_type_k = cache.k;
  r.cache_type_v = cache.v;
  r.bin_dir = bin_dir;
  r.binaries = {"bitnet", "llama-cli"};
  r.host = host;
  r.port = p.given("--port") ? port : 8080;
  r.port_required = p.given("--port");
  const Diagnostics d = diagnose(r);
  if (json)
    std::printf("%s\n", d.to_json().dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  else
    std::fputs(d.to_text().c_str(), stdout);
  return d.ready ? 0 : 1;
}

namespace {
const CommandRegistration kRegistration({"doctor", nullptr, cmd_doctor,
                                         "check that this machine is ready to run a model", 90});
}  // namespace

}  // namespace bitnet::cli
