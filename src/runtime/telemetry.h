#pragma once
// Structured run telemetry: one JSON object per line (JSONL), flushed as each event happens so a
// supervisor can follow a run live and still has every event up to a crash. The event schema is
// documented and versioned in docs/telemetry.md; bump kTelemetrySchemaVersion on any change that
// removes or renames a field.
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace bitnet {

inline constexpr int kTelemetrySchemaVersion = 1;

// Resident and peak resident memory of this process in MiB (0 where unknown).
double current_rss_mib();
double peak_rss_mib_self();

class Telemetry {
 public:
  Telemetry() = default;  // disabled: emit() does nothing
  // Appends to `path` (created if missing). Throws Error naming the path when it cannot be opened.
  // The run id is $BITNET_RUN_ID when set (a supervisor tags its children that way), else random.
  Telemetry(const std::string& path, std::string command);
  Telemetry(Telemetry&&) noexcept = default;
  Telemetry& operator=(Telemetry&&) noexcept = default;

  // An empty path: no file (events then only reach a sink).
  bool enabled() const { return file_ != nullptr || sink_ != nullptr; }
  // Every event also goes to `sink` (the OTLP exporter), after the file.
  void set_sink(std::function<void(const nlohmann::ordered_json&)> sink) { sink_ = std::move(sink); }
  const std::string& run_id() const { return run_id_; }
  // Writes {schema, schema_version, event, run_id, command, ts, elapsed_ms, pid, rss_mib,
  // peak_rss_mib} merged with `fields` as one line.
  void emit(const std::string& event, const nlohmann::json& fields = nlohmann::json::object());

 private:
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> file_;
  std::function<void(const nlohmann::ordered_json&)> sink_;
  std::string run_id_, command_, path_;
  std::chrono::steady_clock::time_point start_{};
};

// True once any Telemetry of this process failed to write an event (a full disk, /dev/full): the
// first failure is reported on stderr at once, and the `bitnet` front end then exits with 1.
bool telemetry_write_failed();

// Random 16-hex-digit id.
std::string new_run_id();
// UTC time with milliseconds, e.g. 2024-05-01T12:00:00.123Z.
std::string utc_timestamp();

}  // namespace bitnet
