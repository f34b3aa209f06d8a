#pragma once
// OpenTelemetry export over OTLP/HTTP with JSON bodies (docs/telemetry-dashboards.md): telemetry
// events as log records to ENDPOINT/v1/logs, the server's Prometheus metrics as OTLP metrics to
// ENDPOINT/v1/metrics. A background thread sends in batches; callers only append to a bounded
// queue and never wait on the network, so a slow or absent collector costs inference nothing —
// what does not fit or cannot be delivered is dropped and counted.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "net/http_client.h"

namespace bitnet::server {

struct OtlpConfig {
  std::string endpoint;         // http://HOST:PORT (the OTLP/HTTP base; /v1/logs, /v1/metrics appended)
  std::string service = "bitnet";
  std::string command;          // run, serve, bench: a resource attribute
  size_t max_queue = 4096;      // log records held at most; more are dropped
  size_t max_batch = 512;       // log records per request
  double flush_interval_s = 1;  // how often the queue is sent
  double metrics_interval_s = 10;
  double timeout_s = 2;         // per request (the whole exchange); at exit, for all requests together
  size_t max_response_bytes = 64 * 1024;  // a collector's reply is a small JSON object
};

// The endpoint of --otlp-endpoint or $OTEL_EXPORTER_OTLP_ENDPOINT ("" for neither). Throws Error
// for one that is not http://HOST[:PORT] (net::parse_http_url; https is not supported by this build).
std::string resolve_otlp_endpoint(const std::string& flag_value);

// Prometheus text exposition → OTLP metrics JSON (resourceMetrics): counters become cumulative
// monotonic sums, gauges gauges, histograms explicit-bucket histograms. start_ns: the process start.
nlohmann::json otlp_metrics_from_prometheus(std::string_view text, const OtlpConfig& config, uint64_t start_ns,
                                            uint64_t now_ns);
// One telemetry event (a JSONL line's object) → an OTLP log record.
nlohmann::json otlp_log_record(const nlohmann::ordered_json& event, uint64_t now_ns);

class OtlpExporter {
 public:
  explicit OtlpExporter(OtlpConfig config);
  ~OtlpExporter();  // close()
  // One last send of what is queued (all of it within timeout_s), then the thread stops. Idempotent.
  void close();
  // Ends any request in flight at once and skips the last send (a second Ctrl-C).
  void cancel() { cancel_ = true; }
  OtlpExporter(const OtlpExporter&) = delete;
  OtlpExporter& operator=(const OtlpExporter&) = delete;

  // Queues one event; never blocks on the network. Dropped (and counted) when the queue is full.
  void log(const nlohmann::ordered_json& event);
  // Where metrics come from (Prometheus text), exported every metrics_interval_s; none by default.
  // Setting another (or an empty one) waits for a call in progress, so the old source's owner may
  // go away right after.
  void set_metrics_source(std::function<std::string()> source);

  struct Stats {
    uint64_t logs_sent = 0, logs_dropped = 0, metric_exports = 0, failed_requests = 0;
  };
  Stats stats() const;

 private:
  using Clock = std::chrono::steady_clock;
  void run();
  bool post(const std::string& path, const std::string& body, Clock::time_point deadline);
  OtlpConfig config_;
  net::Url url_;
  uint64_t start_ns_;
  Clock::time_point final_deadline_;  // set by close()
  std::atomic<bool> cancel_{false};
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<nlohmann::json> queue_;
  std::function<std::string()> metrics_;
  std::mutex metrics_call_;  // held while metrics_ runs
  bool stop_ = false;
  std::atomic<uint64_t> sent_{0}, dropped_{0}, exports_{0}, failures_{0};
  std::thread thread_;
};

}  // namespace bitnet::server
