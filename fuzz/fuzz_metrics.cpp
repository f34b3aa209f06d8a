// What `bitnet top` and the OTLP exporter do with a /metrics body they did not write: the
// exposition-format parser, the dashboard's derived figures and text frame, the OTLP conversion,
// and the error messages, which must never carry a raw terminal control byte.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "errors.h"
#include "fuzz_common.h"
#include "server/dashboard.h"
#include "server/otlp.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  bitnet::server::OtlpConfig config;
  config.command = "serve";
  try {
    (void)bitnet::server::otlp_metrics_from_prometheus(in, config, 1, 2);
  } catch (const bitnet::Error& e) {
    bitnet::fuzz::require_terminal_inert(e.what());
  }
  try {
    const bitnet::server::Scrape now = bitnet::server::parse_metrics(in);
    const bitnet::server::Scrape before;
    (void)bitnet::server::render_dashboard(bitnet::server::dashboard_frame(before, now, 2.0), "http://127.0.0.1:8080");
    (void)bitnet::server::render_dashboard(bitnet::server::dashboard_frame(now, now, 0.0), "x");
  } catch (const bitnet::Error& e) {
    bitnet::fuzz::require_terminal_inert(e.what());
  }
  return 0;
}
