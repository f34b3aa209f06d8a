#include "server/metrics.h"

#include <cstdio>

#include "runtime/telemetry.h"

namespace bitnet::server {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double seconds) {
  size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) ++i;
  std::lock_guard lock(mutex_);
  ++counts_[i];
  sum_ += seconds;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  std::lock_guard lock(mutex_);
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cumulative = 0;
  char line[160];
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    if (i < bounds_.size())
      std::snprintf(line, sizeof line, "%s_bucket{le=\"%g\"} %llu\n", name.c_str(), bounds_[i],
                    (unsigned long long)cumulative);
    else
      std::snprintf(line, sizeof line, "%s_bucket{le=\"+Inf\"} %llu\n", name.c_str(),
                    (unsigned long long)cumulative);
    out += line;
  }
  std::snprintf(line, sizeof line, "%s_sum %.6f\n%s_count %llu\n", name.c_str(), sum_, name.c_str(),
                (unsigned long long)count_);
  out += line;
}

namespace {
void metric(std::string& out, const char* name, const char* type, const char* help, double value) {
  char line[128];
  std::snprintf(line, sizeof line, " %.17g\n", value);
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + line;
}
}  // namespace

std::string Metrics::render(int slots_total, int slots_active, int queued) const {
  std::string out;
  metric(out, "bitnet_requests_total", "counter", "Generation requests accepted.", double(requests));
  metric(out, "bitnet_requests_rejected_total", "counter", "Requests refused with 503 (queue full or shutting down).",
         double(requests_rejected));
  metric(out, "bitnet_requests_cancelled_total", "counter", "Generations cancelled (client gone or shutdown).",
         double(requests_cancelled));
  metric(out, "bitnet_http_errors_total", "counter", "HTTP responses with a 4xx or 5xx status.", double(http_errors));
  metric(out, "bitnet_prompt_tokens_total", "counter", "Prompt tokens evaluated.", double(prompt_tokens));
  metric(out, "bitnet_prompt_tokens_cached_total", "counter", "Prompt tokens reused from a slot's cache.",
         double(cached_tokens));
  metric(out, "bitnet_tokens_predicted_total", "counter", "Tokens generated.", double(generated_tokens));
  metric(out, "bitnet_decode_steps_total", "counter", "Batched forward passes.", double(decode_steps));
  metric(out, "bitnet_batch_tokens_total", "counter", "Tokens over all forward passes.", double(batch_tokens));
  metric(out, "bitnet_context_shifts_total", "counter", "Context shifts of full slots (--context-shift).",
         double(context_shifts));
  metric(out, "bitnet_embedding_requests_total", "counter", "Embedding requests accepted.", double(embedding_requests));
  metric(out, "bitnet_embedding_inputs_total", "counter", "Inputs embedded.", double(embedding_inputs));
  metric(out, "bitnet_embedding_tokens_total", "counter", "Tokens of the inputs embedded.", double(embedding_tokens));
  metric(out, "bitnet_embedding_batches_total", "counter", "Batches of embedding inputs run through the model together.",
         double(embedding_batches));
  metric(out, "bitnet_embedding_requests_cancelled_total", "counter", "Embedding requests cancelled (client gone or shutdown).",
         double(embedding_cancelled));
  metric(out, "bitnet_slots", "gauge", "Slots (requests served at once).", slots_total);
  metric(out, "bitnet_slots_active", "gauge", "Slots serving a request.", slots_active);
  metric(out, "bitnet_queue_length", "gauge", "Requests waiting for a slot (embedding requests waiting for the model included).", queued);
  metric(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", current_rss_mib() * double(1 << 20));
  ttft.render(out, "bitnet_time_to_first_token_seconds", "Time from request to its first generated token.");
  inter_token.render(out, "bitnet_inter_token_latency_seconds", "Time between consecutive generated tokens.");
  e2e.render(out, "bitnet_request_duration_seconds", "Time from request to its last token.");
  embedding_duration.render(out, "bitnet_embedding_request_duration_seconds",
                            "Time from embedding request to its last result.");
  return out;
}

}  // namespace bitnet::server
