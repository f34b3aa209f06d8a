#include "server/otlp.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <vector>

#include "base/untrusted_text.h"
#include "errors.h"
#include "server/api_error.h"
#include "server/dashboard.h"

namespace bitnet::server {

namespace {

using json = nlohmann::json;

uint64_t unix_now_ns() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count());
}

// A JSON value as an OTLP AnyValue (64-bit integers are strings in OTLP/JSON).
json any_value(const nlohmann::ordered_json& v) {
  if (v.is_string()) return {{"stringValue", v.get<std::string>()}};
  if (v.is_boolean()) return {{"boolValue", v.get<bool>()}};
  if (v.is_number_integer() || v.is_number_unsigned()) return {{"intValue", v.dump()}};
  if (v.is_number_float()) {
    const double d = v.get<double>();
    return std::isfinite(d) ? json{{"doubleValue", d}} : json{{"stringValue", v.dump()}};
  }
  if (v.is_array()) {
    json values = json::array();
    for (const auto& e : v) values.push_back(any_value(e));
    return {{"arrayValue", {{"values", values}}}};
  }
  if (v.is_object()) {
    json values = json::array();
    for (const auto& [k, e] : v.items()) values.push_back({{"key", k}, {"value", any_value(e)}});
    return {{"kvlistValue", {{"values", values}}}};
  }
  return {{"stringValue", ""}};
}

json attribute(const std::string& key, const nlohmann::ordered_json& value) {
  return {{"key", key}, {"value", any_value(value)}};
}

json resource(const OtlpConfig& c) {
  return {{"attributes",
           {attribute("service.name", c.service), attribute("bitnet.command", c.command),
            attribute("process.pid", int64_t(getpid()))}}};
}

// name and labels of a Prometheus series ("a_bucket{le=\"0.5\",x=\"y\"}").
struct Series {
  std::string name;
  std::map<std::string, std::string> labels;
};
Series split_series(const std::string& s) {
  Series out;
  const size_t brace = s.find('{');
  out.name = s.substr(0, brace);
  if (brace == std::string::npos) return out;
  size_t i = brace + 1;
  while (i < s.size() && s[i] != '}') {
    const size_t eq = s.find('=', i);
    if (eq == std::string::npos || eq + 1 >= s.size() || s[eq + 1] != '"') break;
    std::string key = s.substr(i, eq - i), value;
    size_t j = eq + 2;
    for (; j < s.size() && s[j] != '"'; ++j) {
      if (s[j] == '\\' && j + 1 < s.size()) ++j;
      value += s[j];
    }
    out.labels[key] = value;
    i = j + 1;
    if (i < s.size() && s[i] == ',') ++i;
  }
  return out;
}

// A count from a metrics text (a double: it may be NaN, negative, infinite or past 2^64) as OTLP's
// unsigned integer, clamped instead of converted out of range (undefined behaviour; found by
// fuzz_metrics).
uint64_t count_of(double v) {
  if (!(v > 0)) return 0;
  if (v >= 18446744073709551615.0) return UINT64_MAX;
  return uint64_t(v);
}

json label_attributes(const std::map<std::string, std::string>& labels) {
  json a = json::array();
  for (const auto& [k, v] : labels)
    if (k != "le") a.push_back(attribute(k, v));
  return a;
}

}  // namespace

std::string resolve_otlp_endpoint(const std::string& flag_value) {
  std::string url = flag_value;
  if (url.empty())
    if (const char* env = std::getenv("OTEL_EXPORTER_OTLP_ENDPOINT")) url = env;
  if (url.empty()) return "";
  while (!url.empty() && url.back() == '/') url.pop_back();
  const net::Url parsed = net::parse_http_url(url, "OTLP endpoint");
  if (!parsed.path.empty())
    throw Error("OTLP endpoint must be http://HOST[:PORT], the collector's OTLP/HTTP base (e.g. "
                "http://127.0.0.1:4318; /v1/logs and /v1/metrics are appended), got " + quote_untrusted(url, 100));
  return url;
}

json otlp_log_record(const nlohmann::ordered_json& event, uint64_t now_ns) {
  json attributes = json::array();
  for (const auto& [k, v] : event.items())
    if (k != "event" && !v.is_null()) attributes.push_back(attribute(k, v));
  const std::string name = event.contains("event") && event["event"].is_string() ? event["event"].get<std::string>() : "";
  const bool error = name.find("error") != std::string::npos || name.find("fail") != std::string::npos;
  return {{"timeUnixNano", std::to_string(now_ns)},
          {"observedTimeUnixNano", std::to_string(now_ns)},
          {"severityNumber", error ? 17 : 9},
          {"severityText", error ? "ERROR" : "INFO"},
          {"body", {{"stringValue", name}}},
          {"attributes", attributes}};
}

json otlp_metrics_from_prometheus(std::string_view text, const OtlpConfig& config, uint64_t start_ns, uint64_t now_ns) {
  // TYPE and HELP lines first: the metric families and their kinds.
  std::map<std::string, std::string> type, help;
  std::vector<std::string> order;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    for (const char* tag : {"# TYPE ", "# HELP "}) {
      if (line.rfind(tag, 0) != 0) continue;
      const std::string_view rest = line.substr(7);
      const size_t sp = rest.find(' ');
      const std::string name(rest.substr(0, sp));
      const std::string value(sp == std::string_view::npos ? "" : rest.substr(sp + 1));
      if (tag[2] == 'T') {
        if (!type.count(name)) order.push_back(name);
        type[name] = value;
      } else {
        help[name] = value;
      }
    }
  }
  const Scrape scrape = parse_metrics(text);
  const std::string start = std::to_string(start_ns), now = std::to_string(now_ns);
  json metrics = json::array();
  for (const std::string& name : order) {
    const std::string& kind = type[name];
    json m = {{"name", name}, {"description", help[name]}};
    if (name.size() > 8 && name.compare(name.size() - 8, 8, "_seconds") == 0) m["unit"] = "s";
    if (name.size() > 6 && name.compare(name.size() - 6, 6, "_bytes") == 0) m["unit"] = "By";
    if (kind == "histogram") {
      std::vector<std::pair<double, double>> buckets;  // (le, cumulative)
      for (const auto& [series, value] : scrape.samples) {
        const Series s = split_series(series);
        if (s.name != name + "_bucket" || !s.labels.count("le")) continue;
        const std::string& le = s.labels.at("le");
        buckets.emplace_back(le == "+Inf" ? INFINITY : std::strtod(le.c_str(), nullptr), value);
      }
      std::sort(buckets.begin(), buckets.end());
      json bounds = json::array(), counts = json::array();
      double below = 0;
      for (const auto& [le, cumulative] : buckets) {
        if (std::isfinite(le)) bounds.push_back(le);
        counts.push_back(std::to_string(count_of(cumulative - below)));
        below = cumulative;
      }
      if (buckets.empty() || std::isfinite(buckets.back().first)) counts.push_back("0");  // the +Inf bucket
      m["histogram"] = {{"aggregationTemporality", 2},
                        {"dataPoints",
                         {{{"startTimeUnixNano", start},
                           {"timeUnixNano", now},
                           {"count", std::to_string(count_of(scrape.get(name + "_count").value_or(below)))},
                           {"sum", scrape.get(name + "_sum").value_or(0.0)},
                           {"bucketCounts", counts},
                           {"explicitBounds", bounds}}}}};
    } else {
      json points = json::array();
      for (const auto& [series, value] : scrape.samples) {
        const Series s = split_series(series);
        if (s.name != name || !std::isfinite(value)) continue;
        json p = {{"timeUnixNano", now}, {"asDouble", value}, {"attributes", label_attributes(s.labels)}};
        if (kind == "counter") p["startTimeUnixNano"] = start;
        points.push_back(p);
      }
      if (kind == "counter")
        m["sum"] = {{"aggregationTemporality", 2}, {"isMonotonic", true}, {"dataPoints", points}};
      else
        m["gauge"] = {{"dataPoints", points}};
    }
    metrics.push_back(m);
  }
  return {{"resourceMetrics",
           {{{"resource", resource(config)},
             {"scopeMetrics", {{{"scope", {{"name", "bitnet.server"}, {"version", "1"}}}, {"metrics", metrics}}}}}}}};
}

OtlpExporter::OtlpExporter(OtlpConfig config)
    : config_(std::move(config)), url_(net::parse_http_url(config_.endpoint, "OTLP endpoint")), start_ns_(unix_now_ns()) {
  thread_ = std::thread([this] { run(); });
}

OtlpExporter::~OtlpExporter() { close(); }

void OtlpExporter::close() {
  {
    std::lock_guard lock(mutex_);
    if (!stop_)
      final_deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(config_.timeout_s));
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void OtlpExporter::log(const nlohmann::ordered_json& event) {
  json record = otlp_log_record(event, unix_now_ns());
  std::lock_guard lock(mutex_);
  if (queue_.size() >= config_.max_queue) {
    ++dropped_;
    return;
  }
  queue_.push_back(std::move(record));
}

void OtlpExporter::set_metrics_source(std::function<std::string()> source) {
  std::lock_guard call(metrics_call_);
  std::lock_guard lock(mutex_);
  metrics_ = std::move(source);
}

OtlpExporter::Stats OtlpExporter::stats() const { return {sent_, dropped_, exports_, failures_}; }

bool OtlpExporter::post(const std::string& path, const std::string& body, Clock::time_point deadline) {
  net::HttpLimits limits;
  limits.deadline_s = std::min(config_.timeout_s, std::chrono::duration<double>(deadline - Clock::now()).count());
  limits.max_response_bytes = config_.max_response_bytes;
  limits.cancel = &cancel_;
  bool ok = false;
  if (limits.deadline_s > 0) {
    try {
      const net::HttpResponse r = net::http_request(url_, "POST", path, {{"Content-Type", "application/json"}}, body, limits);
      ok = r.status >= 200 && r.status < 300;
    } catch (const net::HttpError&) {
    }
  }
  if (!ok) ++failures_;
  return ok;
}

void OtlpExporter::run() {
  // Signals are for the program's own threads (the server takes SIGTERM/SIGINT with sigwait):
  // a background sender must never be the thread a signal is delivered to.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  auto next_metrics = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(config_.metrics_interval_s));
  for (bool last = false; !last;) {
    std::vector<json> batch;
    bool have_metrics = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, std::chrono::duration<double>(config_.flush_interval_s), [&] { return stop_; });
      last = stop_;
      // The last round sends everything queued, in batches; earlier ones one batch per interval.
      while (!queue_.empty() && (last || batch.size() < config_.max_batch)) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      have_metrics = bool(metrics_);
    }
    // Each request has timeout_s; the last round (at exit) has timeout_s for all of its requests
    // together, so a slow collector delays the program's exit by that much at most.
    const Clock::time_point deadline = last ? final_deadline_ : Clock::time_point::max();
    for (size_t i = 0; i < batch.size(); i += config_.max_batch) {
      const size_t n = std::min(config_.max_batch, batch.size() - i);
      json records = json::array();
      for (size_t k = i; k < i + n; ++k) records.push_back(std::move(batch[k]));
      const json body = {{"resourceLogs",
                          {{{"resource", resource(config_)},
                            {"scopeLogs", {{{"scope", {{"name", "bitnet.telemetry"}, {"version", "1"}}},
                                            {"logRecords", records}}}}}}}};
      if (post("/v1/logs", dump(body), deadline))
        sent_ += n;
      else
        dropped_ += n;
    }
    if (have_metrics && (last || Clock::now() >= next_metrics)) {
      next_metrics = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(config_.metrics_interval_s));
      std::string text;
      {
        std::lock_guard call(metrics_call_);
        std::function<std::string()> source;
        {
          std::lock_guard lock(mutex_);
          source = metrics_;
        }
        if (source) text = source();
      }
      try {
        if (!text.empty() &&
            post("/v1/metrics", dump(otlp_metrics_from_prometheus(text, config_, start_ns_, unix_now_ns())), deadline))
          ++exports_;
      } catch (const Error&) {
        ++failures_;
      }
    }
  }
}

}  // namespace bitnet::server
