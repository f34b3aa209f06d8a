#pragma once
// `bitnet serve`: the HTTP server's life cycle. Listens first (GET /health answers 503 while the
// model loads), loads the model, primes the system prompt, serves until SIGINT/SIGTERM, then
// refuses new work, lets in-flight generations finish within a grace period (cancelling the
// rest) and returns 0.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "server/connection_guard.h"
#include "server/engine.h"
#include "server/http_api.h"
#include "server/otlp.h"

namespace bitnet::server {

struct ServedModel {
  std::unique_ptr<Model> model;
  int64_t total_ctx = 0;  // shared by the slots
};

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (the chosen one is printed)
  int timeout_s = 600;  // read/write timeout of a connection
  ConnectionLimits connections;  // request head size/time, connections served at once
  size_t max_body = size_t(1) << 20;
  double shutdown_grace_s = 10;
  ApiConfig api;
  EngineConfig engine;  // n_ctx_slot and system_prefix are filled in once the model is loaded
  std::function<ServedModel()> load;
  std::shared_ptr<OtlpExporter> otlp;  // when set, the server's metrics are exported through it
};

// Blocks until SIGINT/SIGTERM; returns the process exit code. Throws Error when the address cannot
// be bound or the model does not fit the configuration.
int run_server(ServerConfig config);

}  // namespace bitnet::server
