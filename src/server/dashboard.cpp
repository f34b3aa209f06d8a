#include "server/dashboard.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <utility>

#include "base/untrusted_text.h"
#include "errors.h"

namespace bitnet::server {

std::optional<double> Scrape::get(const std::string& series) const {
  const auto it = samples.find(series);
  if (it == samples.end()) return std::nullopt;
  return it->second;
}

namespace {

double parse_value(std::string_view v, std::string_view line) {
  if (v == "+Inf" || v == "Inf") return INFINITY;
  if (v == "-Inf") return -INFINITY;
  if (v == "NaN") return NAN;
  double out = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size())
    throw Error("metrics: bad value " + quote_untrusted(v, 40) + " in line: " + printable(line, 200));
  return out;
}

}  // namespace

Scrape parse_metrics(std::string_view text) {
  Scrape s;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    // The series runs to the first space outside the label braces (label values may hold spaces).
    size_t i = 0;
    bool in_labels = false, in_string = false;
    for (; i < line.size(); ++i) {
      const char c = line[i];
      if (in_string) {
        if (c == '\\') ++i;
        else if (c == '"') in_string = false;
      } else if (c == '"' && in_labels) {
        in_string = true;
      } else if (c == '{') {
        in_labels = true;
      } else if (c == '}') {
        in_labels = false;
      } else if (c == ' ' && !in_labels) {
        break;
      }
    }
    if (i == 0 || i >= line.size() || in_labels || in_string)
      throw Error("metrics: not `name[{labels}] value`: " + printable(line, 200));
    const std::string_view series = line.substr(0, i);
    std::string_view rest = line.substr(i + 1);
    rest = rest.substr(0, rest.find(' '));  // an optional timestamp follows
    s.samples[std::string(series)] = parse_value(rest, line);
  }
  return s;
}

std::optional<double> histogram_quantile(const Scrape& now, const std::string& name, double q, const Scrape* previous) {
  // (upper bound, cumulative count) of every bucket, minus the previous scrape's counts.
  const std::string prefix = name + "_bucket{le=\"";
  std::vector<std::pair<double, double>> buckets;
  for (auto it = now.samples.lower_bound(prefix); it != now.samples.end() && it->first.rfind(prefix, 0) == 0; ++it) {
    const std::string le = it->first.substr(prefix.size(), it->first.size() - prefix.size() - 2);
    double count = it->second;
    if (previous)
      if (const auto before = previous->get(it->first)) count -= *before;
    buckets.emplace_back(parse_value(le, it->first), count);
  }
  std::sort(buckets.begin(), buckets.end());
  if (buckets.empty() || buckets.back().second <= 0) return std::nullopt;
  const double total = buckets.back().second, rank = q * total;
  double lower = 0, below = 0;
  for (const auto& [upper, cumulative] : buckets) {
    if (cumulative >= rank) {
      if (std::isinf(upper)) return lower;  // the top bucket has no upper bound: its lower one
      const double in_bucket = cumulative - below;
      return in_bucket > 0 ? lower + (upper - lower) * (rank - below) / in_bucket : upper;
    }
    lower = upper;
    below = cumulative;
  }
  return lower;
}

DashboardFrame dashboard_frame(const Scrape& previous, const Scrape& now, double interval_s) {
  DashboardFrame f;
  f.interval_s = interval_s;
  const auto value = [&](const Scrape& s, const char* name) { return s.get(name).value_or(0.0); };
  const auto rate = [&](const char* name) {
    return interval_s > 0 ? std::max(0.0, value(now, name) - value(previous, name)) / interval_s : 0.0;
  };
  f.tokens_per_s = rate("bitnet_tokens_predicted_total");
  f.prompt_tokens_per_s = rate("bitnet_prompt_tokens_total");
  f.requests_per_s = rate("bitnet_requests_total");
  f.slots_active = value(now, "bitnet_slots_active");
  f.slots_total = value(now, "bitnet_slots");
  f.queue = value(now, "bitnet_queue_length");
  f.requests_total = value(now, "bitnet_requests_total");
  f.rejected_total = value(now, "bitnet_requests_rejected_total");
  f.errors_total = value(now, "bitnet_http_errors_total");
  f.ttft_p50 = histogram_quantile(now, "bitnet_time_to_first_token_seconds", 0.50, &previous);
  f.ttft_p99 = histogram_quantile(now, "bitnet_time_to_first_token_seconds", 0.99, &previous);
  f.itl_p50 = histogram_quantile(now, "bitnet_inter_token_latency_seconds", 0.50, &previous);
  f.itl_p99 = histogram_quantile(now, "bitnet_inter_token_latency_seconds", 0.99, &previous);
  f.e2e_p50 = histogram_quantile(now, "bitnet_request_duration_seconds", 0.50, &previous);
  f.e2e_p99 = histogram_quantile(now, "bitnet_request_duration_seconds", 0.99, &previous);
  f.rss_bytes = now.get("process_resident_memory_bytes");
  return f;
}

std::string render_dashboard(const DashboardFrame& f, const std::string& url) {
  const auto ms = [](const std::optional<double>& s) {
    char b[32];
    if (!s) return std::string("     -");
    std::snprintf(b, sizeof b, "%6.1f", *s * 1000);
    return std::string(b);
  };
  char buf[256];
  std::string out = "bitnet top — " + url + "\n\n";
  std::snprintf(buf, sizeof buf, "throughput   %8.1f tokens/s generated   %8.1f prompt tokens/s   %6.2f requests/s\n",
                f.tokens_per_s, f.prompt_tokens_per_s, f.requests_per_s);
  out += buf;
  std::snprintf(buf, sizeof buf, "slots        %3.0f / %-3.0f busy          queue %-4.0f\n", f.slots_active,
                f.slots_total, f.queue);
  out += buf;
  out += "latency ms       p50      p99   (last " + std::to_string(int(std::lround(f.interval_s))) + " s)\n";
  out += "  first token " + ms(f.ttft_p50) + "   " + ms(f.ttft_p99) + "\n";
  out += "  inter-token " + ms(f.itl_p50) + "   " + ms(f.itl_p99) + "\n";
  out += "  request     " + ms(f.e2e_p50) + "   " + ms(f.e2e_p99) + "\n";
  std::snprintf(buf, sizeof buf, "requests     %.0f accepted, %.0f refused (503), %.0f HTTP errors\n", f.requests_total,
                f.rejected_total, f.errors_total);
  out += buf;
  if (f.rss_bytes) {
    std::snprintf(buf, sizeof buf, "memory       %.1f MiB resident\n", *f.rss_bytes / 1048576.0);
    out += buf;
  }
  return out;
}

}  // namespace bitnet::server
