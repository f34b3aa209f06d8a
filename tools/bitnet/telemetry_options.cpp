#include "telemetry_options.h"

#include <cstdio>
#include <cstdlib>

#include "errors.h"

namespace bitnet::cli {

void add_otlp_option(ArgParser& p, std::string* endpoint) {
  p.option({"--otlp-endpoint"}, "URL",
           "also export the events (and serve's metrics) over OTLP/HTTP JSON to URL, e.g. http://127.0.0.1:4318 "
           "(default $OTEL_EXPORTER_OTLP_ENDPOINT)",
           endpoint);
}

TelemetrySetup open_telemetry(const TelemetryOptions& o, const std::string& command) {
  TelemetrySetup s;
  try {
    s.endpoint = server::resolve_otlp_endpoint(o.otlp_endpoint);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  s.telemetry = std::make_shared<Telemetry>(o.out, command);
  if (!s.endpoint.empty()) {
    server::OtlpConfig c;
    c.endpoint = s.endpoint;
    c.command = command;
    // The OpenTelemetry SDKs' variable for the metric export interval, in milliseconds.
    if (const char* ms = std::getenv("OTEL_METRIC_EXPORT_INTERVAL"); ms && *ms) {
      char* end = nullptr;
      const double v = std::strtod(ms, &end);
      if (*end != '\0' || !(v >= 100 && v <= 3.6e6))
        throw UsageError("OTEL_METRIC_EXPORT_INTERVAL must be milliseconds between 100 and 3600000, got '" +
                         std::string(ms) + "'");
      c.metrics_interval_s = v / 1000;
    }
    s.otlp = std::make_shared<server::OtlpExporter>(c);
    std::weak_ptr<server::OtlpExporter> exporter = s.otlp;
    s.telemetry->set_sink([exporter](const nlohmann::ordered_json& event) {
      if (auto e = exporter.lock()) e->log(event);
    });
  }
  return s;
}

TelemetrySetup::~TelemetrySetup() {
  if (!otlp) return;
  otlp->close();
  const server::OtlpExporter::Stats st = otlp->stats();
  if (st.logs_dropped > 0 || st.failed_requests > 0)
    std::fprintf(stderr, "warning: OTLP export to %s: %llu events delivered, %llu dropped, %llu failed requests\n",
                 endpoint.c_str(), (unsigned long long)st.logs_sent, (unsigned long long)st.logs_dropped,
                 (unsigned long long)st.failed_requests);
}

}  // namespace bitnet::cli
