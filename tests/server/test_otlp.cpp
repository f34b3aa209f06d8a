// OTLP/HTTP JSON export (server/otlp.h): a local receiver that checks every body against the OTLP
// JSON encoding (the fields and value types collectors require), for run and serve, and a collector
// that is down costing no request.
#include "server/otlp.h"

#include "process_runner.h"
#include "server_process.h"

namespace bitnet::testing {
namespace {

bool is_uint_string(const json& v) {
  return v.is_string() && !v.get<std::string>().empty() &&
         v.get<std::string>().find_first_not_of("0123456789") == std::string::npos;
}

// An OTLP AnyValue: exactly one of the typed fields, 64-bit integers as decimal strings.
void check_any_value(const json& v, const std::string& where) {
  ASSERT_TRUE(v.is_object() && v.size() == 1) << where << ": " << v.dump();
  const std::string kind = v.begin().key();
  if (kind == "stringValue") EXPECT_TRUE(v[kind].is_string()) << where;
  else if (kind == "boolValue") EXPECT_TRUE(v[kind].is_boolean()) << where;
  else if (kind == "intValue") EXPECT_TRUE(is_uint_string(v[kind]) || (v[kind].is_string() && v[kind].get<std::string>()[0] == '-')) << where;
  else if (kind == "doubleValue") EXPECT_TRUE(v[kind].is_number()) << where;
  else if (kind == "arrayValue") for (const json& e : v[kind]["values"]) check_any_value(e, where);
  else if (kind == "kvlistValue") for (const json& kv : v[kind]["values"]) check_any_value(kv["value"], where + "." + kv["key"].get<std::string>());
  else ADD_FAILURE() << where << ": unknown AnyValue " << kind;
}

void check_attributes(const json& attrs, const std::string& where) {
  ASSERT_TRUE(attrs.is_array()) << where;
  for (const json& a : attrs) {
    ASSERT_TRUE(a["key"].is_string()) << where;
    check_any_value(a["value"], where + "." + a["key"].get<std::string>());
  }
}

// The log records of one /v1/logs body (validated).
std::vector<json> check_logs(const json& body) {
  std::vector<json> records;
  for (const json& rl : body.at("resourceLogs")) {
    check_attributes(rl.at("resource").at("attributes"), "resource");
    for (const json& sl : rl.at("scopeLogs")) {
      EXPECT_TRUE(sl.at("scope").at("name").is_string());
      for (const json& r : sl.at("logRecords")) {
        EXPECT_TRUE(is_uint_string(r.at("timeUnixNano"))) << r.dump();
        EXPECT_TRUE(r.at("severityNumber").is_number_integer());
        check_any_value(r.at("body"), "body");
        check_attributes(r.at("attributes"), "record");
        records.push_back(r);
      }
    }
  }
  return records;
}

// Metric names of one /v1/metrics body (validated).
std::vector<std::string> check_metrics(const json& body) {
  std::vector<std::string> names;
  for (const json& rm : body.at("resourceMetrics"))
    for (const json& sm : rm.at("scopeMetrics"))
      for (const json& m : sm.at("metrics")) {
        const std::string name = m.at("name");
        names.push_back(name);
        const int kinds = int(m.contains("sum")) + int(m.contains("gauge")) + int(m.contains("histogram"));
        EXPECT_EQ(kinds, 1) << name;
        if (m.contains("sum")) {
          EXPECT_EQ(m["sum"]["aggregationTemporality"], 2) << name;
          EXPECT_EQ(m["sum"]["isMonotonic"], true) << name;
          for (const json& p : m["sum"]["dataPoints"]) {
            EXPECT_TRUE(is_uint_string(p.at("startTimeUnixNano")) && is_uint_string(p.at("timeUnixNano"))) << name;
            EXPECT_TRUE(p.at("asDouble").is_number()) << name;
          }
        } else if (m.contains("gauge")) {
          for (const json& p : m["gauge"]["dataPoints"]) EXPECT_TRUE(p.at("asDouble").is_number()) << name;
        } else {
          for (const json& p : m["histogram"]["dataPoints"]) {
            const json& counts = p.at("bucketCounts");
            EXPECT_EQ(counts.size(), p.at("explicitBounds").size() + 1) << name;
            uint64_t total = 0;
            for (const json& c : counts) {
              EXPECT_TRUE(is_uint_string(c)) << name;
              total += std::stoull(c.get<std::string>());
            }
            EXPECT_EQ(std::to_string(total), p.at("count").get<std::string>()) << name;
          }
        }
      }
  return names;
}

// A local OTLP/HTTP receiver on a free port, keeping every body it gets.
struct Receiver {
  httplib::Server srv;
  std::thread thread;
  std::mutex mutex;
  std::vector<json> logs, metrics;
  int port = 0;
  Receiver() {
    srv.Post("/v1/logs", [this](const httplib::Request& req, httplib::Response& res) { keep(req, res, logs); });
    srv.Post("/v1/metrics", [this](const httplib::Request& req, httplib::Response& res) { keep(req, res, metrics); });
    port = srv.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { srv.listen_after_bind(); });
  }
  ~Receiver() {
    // stop() does nothing before the listener runs.
    while (!srv.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    srv.stop();
    thread.join();
  }
  void keep(const httplib::Request& req, httplib::Response& res, std::vector<json>& into) {
    EXPECT_EQ(req.get_header_value("Content-Type"), "application/json");
    json body = json::parse(req.body, nullptr, false);
    EXPECT_FALSE(body.is_discarded()) << req.body.substr(0, 200);
    std::lock_guard lock(mutex);
    into.push_back(std::move(body));
    res.set_content("{}", "application/json");
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

TEST(Otlp, RunExportsItsEventsAsLogRecords) {
  Receiver rx;
  const ProcessResult r = run_process({bitnet_bin(), "run", "-m", tiny_model(), "-p", "Hello", "-n", "4", "--temp", "0",
                                       "--otlp-endpoint", rx.url()});
  ASSERT_EQ(r.code, 0) << r.err;
  std::lock_guard lock(rx.mutex);
  std::set<std::string> events;
  for (const json& body : rx.logs)
    for (const json& rec : check_logs(body)) events.insert(rec["body"]["stringValue"].get<std::string>());
  for (const char* e : {"run_started", "model_loaded", "run_finished"}) EXPECT_TRUE(events.count(e)) << e;
  EXPECT_EQ(r.err.find("OTLP export"), std::string::npos) << "nothing dropped: " << r.err;
}

TEST(Otlp, ServeExportsMetricsAndRequestEvents) {
  Receiver rx;
  ServerProcess server({"-c", "256", "--otlp-endpoint", rx.url()}, {"OTEL_METRIC_EXPORT_INTERVAL=300"});
  auto cli = server.client();
  post_json(cli, "/completion", {{"prompt", "Hello"}, {"n_predict", 4}});
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(server.terminate(), 0) << server.log();
  std::lock_guard lock(rx.mutex);
  ASSERT_FALSE(rx.metrics.empty()) << "no /v1/metrics export";
  std::set<std::string> names;
  for (const json& body : rx.metrics)
    for (const std::string& n : check_metrics(body)) names.insert(n);
  for (const char* n : {"bitnet_requests_total", "bitnet_queue_length", "bitnet_time_to_first_token_seconds",
                        "process_resident_memory_bytes"})
    EXPECT_TRUE(names.count(n)) << n;
  std::set<std::string> events;
  for (const json& body : rx.logs)
    for (const json& rec : check_logs(body)) events.insert(rec["body"]["stringValue"].get<std::string>());
  EXPECT_TRUE(events.count("request_finished"));
}

TEST(Otlp, ACollectorThatIsDownCostsNoRequest) {
  int dead_port = 0;
  {
    Receiver gone;  // a port that was just free: nothing listens there any more
    dead_port = gone.port;
  }
  ServerProcess server({"-c", "256", "-np", "2", "--otlp-endpoint", "http://127.0.0.1:" + std::to_string(dead_port)},
                       {"OTEL_METRIC_EXPORT_INTERVAL=200"});
  auto cli = server.client();
  const auto start = Clock::now();
  for (int i = 0; i < 10; ++i) {
    const json r = post_json(cli, "/completion", {{"prompt", "Hello"}, {"n_predict", 3}});
    EXPECT_EQ(r["tokens_predicted"], 3);
  }
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 30.0);
  EXPECT_EQ(server.terminate(), 0) << server.log();
  EXPECT_NE(server.log().find("OTLP export to"), std::string::npos) << "the drops are reported: " << server.log();
}

TEST(Otlp, BadEndpointsAreUsageErrors) {
  for (const char* bad : {"localhost:4318", "ftp://x", "http://", "http://host/v1/logs"}) {
    const ProcessResult r = run_process({bitnet_bin(), "run", "-m", tiny_model(), "-p", "x", "-n", "1", "--otlp-endpoint", bad});
    EXPECT_EQ(r.code, 2) << bad << ": " << r.err;
    EXPECT_NE(r.err.find("OTLP endpoint must be"), std::string::npos) << r.err;
  }
}

// Found by fuzz_metrics: counts that are infinite, NaN, negative or past 2^64 are clamped, not
// converted out of range (undefined behaviour before).
TEST(Otlp, OutOfRangeCountsAreClamped) {
  server::OtlpConfig c;
  const json body = server::otlp_metrics_from_prometheus(
      "# TYPE h histogram\nh_bucket{le=\"0.1\"} 1e30\nh_bucket{le=\"+Inf\"} +Inf\nh_count -5\nh_sum 1\n"
      "# TYPE g histogram\ng_bucket{le=\"1\"} NaN\ng_bucket{le=\"+Inf\"} 3\ng_count NaN\n",
      c, 1, 2);
  const json& m = body["resourceMetrics"][0]["scopeMetrics"][0]["metrics"];
  const json& h = m[0]["histogram"]["dataPoints"][0];
  EXPECT_EQ(h["bucketCounts"], json({"18446744073709551615", "18446744073709551615"})) << h.dump();
  EXPECT_EQ(h["count"], "0");
  const json& g = m[1]["histogram"]["dataPoints"][0];
  EXPECT_EQ(g["bucketCounts"], json({"0", "0"})) << g.dump();
  EXPECT_EQ(g["count"], "0");
}

TEST(Otlp, PrometheusToOtlpConversion) {
  server::OtlpConfig c;
  c.command = "serve";
  const json body = server::otlp_metrics_from_prometheus(
      "# HELP a_total A.\n# TYPE a_total counter\na_total 5\n# TYPE g gauge\ng{x=\"y\"} 2.5\n"
      "# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 4\nh_sum 2\nh_count 4\n",
      c, 100, 200);
  const std::vector<std::string> names = check_metrics(body);
  EXPECT_EQ(names, (std::vector<std::string>{"a_total", "g", "h"}));
  const json& m = body["resourceMetrics"][0]["scopeMetrics"][0]["metrics"];
  EXPECT_EQ(m[0]["sum"]["dataPoints"][0]["asDouble"], 5);
  EXPECT_EQ(m[1]["gauge"]["dataPoints"][0]["attributes"][0]["key"], "x");
  EXPECT_EQ(m[2]["histogram"]["dataPoints"][0]["bucketCounts"], json({"1", "2", "1"}));
  EXPECT_EQ(m[2]["histogram"]["dataPoints"][0]["explicitBounds"], json({0.1, 1.0}));
}

}  // namespace
}  // namespace bitnet::testing
