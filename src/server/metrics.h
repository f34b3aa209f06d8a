#pragma once
// Server counters and latency histograms, rendered in the Prometheus text exposition format.
// Written by the engine and HTTP threads, read by GET /metrics: counters are atomics, each
// histogram has its own lock.
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace bitnet::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);  // seconds, ascending; +Inf is implied
  void observe(double seconds);
  // `name`_bucket{le=…} (cumulative), `name`_sum and `name`_count, with HELP/TYPE lines.
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  mutable std::mutex mutex_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, last = +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

struct Metrics {
  std::atomic<uint64_t> requests{0};           // generation requests accepted
  std::atomic<uint64_t> requests_rejected{0};  // 503: queue full / shutting down
  std::atomic<uint64_t> requests_cancelled{0};
  std::atomic<uint64_t> http_errors{0};        // 4xx/5xx responses
  std::atomic<uint64_t> prompt_tokens{0};      // prompt tokens evaluated
  std::atomic<uint64_t> cached_tokens{0};      // prompt tokens reused from a slot's cache
  std::atomic<uint64_t> generated_tokens{0};
  std::atomic<uint64_t> decode_steps{0};       // forward() calls
  std::atomic<uint64_t> batch_tokens{0};       // tokens over all forward() calls
  std::atomic<uint64_t> context_shifts{0};     // full slots shifted (--context-shift)
  std::atomic<uint64_t> embedding_requests{0};   // embedding requests accepted
  std::atomic<uint64_t> embedding_inputs{0};     // inputs embedded
  std::atomic<uint64_t> embedding_tokens{0};     // tokens of those inputs
  std::atomic<uint64_t> embedding_batches{0};    // Embedder calls (inputs run together)
  std::atomic<uint64_t> embedding_cancelled{0};  // embedding requests whose client went away
  Histogram ttft{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}};
  Histogram inter_token{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}};
  Histogram e2e{{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}};
  Histogram embedding_duration{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}};

  std::string render(int slots_total, int slots_active, int queued) const;
};

}  // namespace bitnet::server
