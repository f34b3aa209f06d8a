#pragma once
// --telemetry-out FILE and --otlp-endpoint URL, shared by run, serve and bench: the command's
// Telemetry writes the JSONL file and/or hands every event to the OTLP exporter.
#include <memory>
#include <string>

#include "args.h"
#include "runtime/telemetry.h"
#include "server/otlp.h"

namespace bitnet::cli {

struct TelemetryOptions {
  std::string out, otlp_endpoint;
};
// --otlp-endpoint URL (each command declares its own --telemetry-out).
void add_otlp_option(ArgParser& p, std::string* endpoint);

struct TelemetrySetup {
  std::shared_ptr<server::OtlpExporter> otlp;  // null without an endpoint
  std::shared_ptr<Telemetry> telemetry;
  std::string endpoint;
  TelemetrySetup() = default;
  TelemetrySetup(TelemetrySetup&&) = default;
  ~TelemetrySetup();  // flushes the exporter; says on stderr what could not be delivered
};
// Throws UsageError for a malformed endpoint, Error for a file that cannot be opened.
TelemetrySetup open_telemetry(const TelemetryOptions& o, const std::string& command);

}  // namespace bitnet::cli
