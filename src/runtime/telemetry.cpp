#include "runtime/telemetry.h"

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>

#include "errors.h"

namespace bitnet {

double current_rss_mib() {
  // /proc/self/statm: size resident ... in pages.
  std::ifstream in("/proc/self/statm");
  long long size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return double(resident) * double(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

double peak_rss_mib_self() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;
}

std::string new_run_id() {
  std::random_device rd;
  const uint64_t v = (uint64_t(rd()) << 32) ^ rd() ^
                     uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", (unsigned long long)v);
  return buf;
}

std::string utc_timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms));
  return buf;
}

namespace {
std::atomic<bool> g_write_failed{false};
}  // namespace

bool telemetry_write_failed() { return g_write_failed; }

Telemetry::Telemetry(const std::string& path, std::string command)
    : command_(std::move(command)), path_(path), start_(std::chrono::steady_clock::now()) {
  if (!path.empty()) {
    file_.reset(std::fopen(path.c_str(), "a"));
    if (!file_) throw Error("cannot open telemetry file " + path + ": " + std::strerror(errno));
  }
  const char* env = std::getenv("BITNET_RUN_ID");
  run_id_ = env && *env ? env : new_run_id();
}

void Telemetry::emit(const std::string& event, const nlohmann::json& fields) {
  if (!enabled()) return;
  nlohmann::ordered_json line = {
      {"schema", "bitnet.telemetry"},
      {"schema_version", kTelemetrySchemaVersion},
      {"event", event},
      {"run_id", run_id_},
      {"command", command_},
      {"ts", utc_timestamp()},
      {"elapsed_ms", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count()},
      {"pid", int64_t(getpid())},
      {"rss_mib", current_rss_mib()},
      {"peak_rss_mib", peak_rss_mib_self()},
  };
  for (const auto& [k, v] : fields.items()) line[k] = nlohmann::ordered_json(v);
  if (sink_) sink_(line);
  if (!file_) return;
  const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  errno = 0;
  const bool written = std::fwrite(text.data(), 1, text.size(), file_.get()) == text.size() &&
                       std::fflush(file_.get()) == 0;
  if (!written && !g_write_failed.exchange(true))
    std::fprintf(stderr, "warning: cannot write telemetry file %s: %s; events are lost\n", path_.c_str(),
                 std::strerror(errno ? errno : EIO));
}

}  // namespace bitnet
