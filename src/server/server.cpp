#include "server/server.h"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstdio>
#include <mutex>
#include <thread>

#include "errors.h"
#include "server/connection_guard.h"

namespace bitnet::server {

namespace {

using Clock = std::chrono::steady_clock;

// SIGINT/SIGTERM are blocked in every thread (the mask is inherited) and taken by one waiting
// thread, so the shutdown sequence runs as ordinary code instead of inside a signal handler.
class SignalWaiter {
 public:
  SignalWaiter() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    signal(SIGPIPE, SIG_IGN);  // a vanished client is a failed write, not a dead server
    std::thread([this] {
      int sig = 0;
      sigwait(&set_, &sig);
      {
        std::lock_guard lock(mutex_);
        signalled_ = sig;
      }
      cv_.notify_all();
    }).detach();  // blocked in sigwait for the process lifetime unless a signal comes
  }
  int wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return signalled_ != 0; });
    return signalled_;
  }
  bool signalled() {
    std::lock_guard lock(mutex_);
    return signalled_ != 0;
  }

 private:
  sigset_t set_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int signalled_ = 0;
};

void configure(httplib::Server& srv, const ServerConfig& c) {
  srv.set_read_timeout(c.timeout_s, 0);
  srv.set_write_timeout(c.timeout_s, 0);
  srv.set_keep_alive_timeout(3);  // bounds how long idle connections delay shutdown
  // One request per connection (answered with Connection: close). The library decides whether to
  // keep a connection before the request is routed, so after a refused body (413, 401 before the
  // body was read) it would parse the unread body as the next request — a hidden request could be
  // smuggled in that way. Requests here cost milliseconds to minutes of compute; a new TCP
  // connection on loopback costs microseconds.
  srv.set_keep_alive_max_count(1);
  srv.set_payload_max_length(c.max_body);
  // Handler threads: one per connection, up to c.connections.max_connections (GuardedServer).
}

}  // namespace

int run_server(ServerConfig config) {
  SignalWaiter signals;  // first, before any thread exists
  Metrics metrics;
  config.api.max_body = config.max_body;
  Api api(config.api, metrics);
  GuardedServer srv(config.connections);
  configure(srv, config);
  api.install(srv);
  int port = config.port;
  if (port == 0)
    port = srv.bind_to_any_port(config.host);
  else if (!srv.bind_to_port(config.host, port))
    port = -1;
  if (port <= 0) throw Error("cannot listen on " + config.host + ":" + std::to_string(config.port));
  std::fprintf(stderr, "server listening on http://%s:%d\n", config.host.c_str(), port);
  std::atomic<bool> listen_ended{false};
  std::thread http([&] {
    srv.listen_after_bind();
    listen_ended = true;
  });

  std::unique_ptr<Model> model;
  std::unique_ptr<Engine> engine;
  int rc = 0;
  auto stop_http = [&] {
    // stop() does nothing until the listener runs: a model that fails to load at once (a text
    // file, /dev/null) used to leave the listener started after the stop, answering 503 forever.
    while (!srv.is_running() && !listen_ended) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    srv.stop();
    http.join();
  };
  try {
    ServedModel served = config.load();
    model = std::move(served.model);
    EngineConfig& e = config.engine;
    // --kv-unified: each slot may use the whole context, the slots sharing its positions.
    e.n_ctx_slot = e.kv_unified ? served.total_ctx : served.total_ctx / e.n_slots;
    if (e.n_ctx_slot < 8)
      throw Error("context of " + std::to_string(served.total_ctx) + " tokens shared by " + std::to_string(e.n_slots) +
                  " slots leaves fewer than 8 tokens per slot (raise -c or lower -np)");
    // A model made for embeddings serves them by itself and refuses generation (llama-server's
    // behaviour for embedding models).
    if (is_embedding_model(*model)) {
      e.embeddings = true;
      e.generation = false;
    }
    if (e.generation) e.system_prefix = api.system_prefix(*model);
    engine = std::make_unique<Engine>(*model, e, metrics);
  } catch (...) {
    stop_http();
    throw;
  }
  if (!signals.signalled()) {
    api.set_ready(*model, *engine);
    if (config.otlp) config.otlp->set_metrics_source([&api] { return api.metrics_text(); });
    const EngineConfig& ec = engine->config();
    const std::string embeddings =
        !ec.embeddings ? ""
                       : std::string(ec.generation ? ", embeddings" : ", embedding model (generation refused)") +
                             " with " + std::string(pooling_name(engine->embedding_pooling())) + " pooling";
    const uint64_t kv = engine->kv_cache_bytes_per_slot();
    char kv_text[160] = "";
    const bool kv_q8 = ec.cache_type_k != KvType::F16 || ec.cache_type_v != KvType::F16;
    if (kv > 0 && ec.kv_unified)
      std::snprintf(kv_text, sizeof kv_text, " (KV cache%s%s%s%s %.1f MiB in all, committed as positions are used)",
                    kv_q8 ? " " : "", kv_q8 ? kv_type_name(ec.cache_type_k) : "", kv_q8 ? "/" : "",
                    kv_q8 ? kv_type_name(ec.cache_type_v) : "", double(engine->kv_cache_bytes_total()) / (1 << 20));
    else if (kv > 0)
      std::snprintf(kv_text, sizeof kv_text, " (KV cache%s%s%s%s %.1f MiB each, %.1f MiB in all)", kv_q8 ? " " : "",
                    kv_q8 ? kv_type_name(ec.cache_type_k) : "", kv_q8 ? "/" : "", kv_q8 ? kv_type_name(ec.cache_type_v) : "",
                    double(kv) / (1 << 20), double(engine->kv_cache_bytes_total()) / (1 << 20));
    std::fprintf(stderr, "server ready: %d slots of %lld tokens%s%s, %d threads%s%s\n", ec.n_slots,
                 (long long)ec.n_ctx_slot, ec.kv_unified && ec.generation ? " sharing one unified KV cache" : "", kv_text,
                 ec.threads, ec.system_prefix.empty() ? "" : ", system prompt primed", embeddings.c_str());
  }
  const int sig = signals.wait();
  std::fprintf(stderr, "server: %s received, shutting down (grace %.1f s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
               config.shutdown_grace_s);
  api.begin_shutdown();
  const auto grace = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(config.shutdown_grace_s));
  engine->drain(Clock::now() + grace);
  // Let the last events of every stream reach its client before the listener closes.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (api.in_flight() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  // A connection stuck in a slow read would hold the listener open for up to --timeout: past a
  // few seconds, exit anyway (every generation has ended by now).
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(5));
    std::fprintf(stderr, "server: connections still open after shutdown; exiting\n");
    std::_Exit(0);
  }).detach();
  stop_http();
  if (config.otlp) config.otlp->set_metrics_source(nullptr);  // before the engine and metrics go
  engine.reset();
  std::fprintf(stderr, "server stopped\n");
  return rc;
}

}  // namespace bitnet::server
