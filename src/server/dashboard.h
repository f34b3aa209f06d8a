#pragma once
// `bitnet top`: a terminal dashboard of a running server built from two scrapes of its Prometheus
// /metrics (docs/telemetry-dashboards.md). Parsing, the derived figures and the text frame are
// plain functions here; the command (tools/bitnet/cmd_top.cpp) only fetches and redraws.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::server {

// One scrape: every sample of the text exposition format by its series name with labels, e.g.
// "bitnet_queue_length" or "bitnet_time_to_first_token_seconds_bucket{le=\"0.5\"}".
struct Scrape {
  std::map<std::string, double> samples;
  std::optional<double> get(const std::string& series) const;
};
// Parses the text exposition format (comments and blank lines skipped). Throws Error naming the
// line for one that is not `name[{labels}] value [timestamp]`.
Scrape parse_metrics(std::string_view text);

// The q-quantile (0 < q < 1) of a histogram from its cumulative `_bucket{le="…"}` series, linear
// inside the bucket as Prometheus' histogram_quantile does; nullopt without observations.
// `previous` (optional): quantile of the observations since that scrape only.
std::optional<double> histogram_quantile(const Scrape& now, const std::string& name, double q,
                                         const Scrape* previous = nullptr);

struct DashboardFrame {
  double interval_s = 0;
  double tokens_per_s = 0, prompt_tokens_per_s = 0, requests_per_s = 0;
  double slots_active = 0, slots_total = 0, queue = 0;
  double requests_total = 0, rejected_total = 0, errors_total = 0;
  std::optional<double> ttft_p50, ttft_p99, itl_p50, itl_p99, e2e_p50, e2e_p99;  // seconds, over the interval
  std::optional<double> rss_bytes;
};
DashboardFrame dashboard_frame(const Scrape& previous, const Scrape& now, double interval_s);
// The frame as lines of text (no terminal control codes), `url` in the title.
std::string render_dashboard(const DashboardFrame& f, const std::string& url);

}  // namespace bitnet::server
