// `bitnet top`: a terminal dashboard of a running `bitnet serve` (started with --metrics), redrawn
// in place every interval from its Prometheus /metrics (server/dashboard.h).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "args.h"
#include "commands.h"
#include "errors.h"
#include "net/http_client.h"
#include "server/dashboard.h"

namespace bitnet::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct Target {
  net::Url url;
  std::string text;  // as given, for messages
};

Target parse_target(const std::string& text) {
  try {
    std::string trimmed = text;
    while (trimmed.size() > 7 && trimmed.back() == '/') trimmed.pop_back();
    Target t{net::parse_http_url(trimmed, "--url"), trimmed};
    if (!t.url.path.empty()) throw UsageError("--url takes no path: http://HOST:PORT");
    return t;
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

// One scrape of /metrics (at most kMaxMetricsBytes, all of it within timeout_s), or an Error
// saying why not.
constexpr size_t kMaxMetricsBytes = 8 << 20;
server::Scrape scrape(const Target& t, const std::string& api_key, double timeout_s) {
  net::HttpLimits limits;
  limits.deadline_s = timeout_s;
  limits.max_response_bytes = kMaxMetricsBytes;
  std::vector<std::pair<std::string, std::string>> headers;
  if (!api_key.empty()) headers.emplace_back("Authorization", "Bearer " + api_key);
  net::HttpResponse r;
  try {
    r = net::http_request(t.url, "GET", "/metrics", headers, "", limits);
  } catch (const net::HttpError& e) {
    throw Error("cannot read " + t.text + "/metrics: " + e.what());
  }
  if (r.status == 501) throw Error(t.text + " has no metrics: start the server with --metrics");
  if (r.status == 401) throw Error(t.text + " wants an API key: --api-key KEY");
  if (r.status != 200) throw Error(t.text + "/metrics answered HTTP " + std::to_string(r.status));
  return server::parse_metrics(r.body);
}

int cmd_top(int argc, char** argv) {
  std::string url = "http://127.0.0.1:8080", api_key;
  float interval = 2;
  int64_t frames = 0;
  bool once = false;
  ArgParser p("bitnet top", "A live dashboard of a running server (bitnet serve --metrics): tokens/s, slots, queue, "
                            "latency percentiles, memory.");
  p.option({"--url"}, "URL", "the server (default http://127.0.0.1:8080)", &url);
  p.option({"--api-key"}, "KEY", "the server's API key, if it has one", &api_key);
  p.option({"-i", "--interval"}, "S", "seconds between updates (default 2)", &interval);
  p.option({"-n", "--frames"}, "N", "stop after N updates (default: until Ctrl-C)", &frames);
  p.flag({"--once"}, "print one frame as plain text (no screen control) and exit", &once);
  if (!p.parse(argc, argv)) return 0;
  if (!(interval >= 0.1f && interval <= 3600)) throw UsageError("--interval must be between 0.1 and 3600 seconds");
  if (frames < 0) throw UsageError("-n must be ≥ 0");
  const Target target = parse_target(url);
  if (once) frames = 1;
  // In place on a terminal (cursor home, clear below); frames one after another otherwise.
  const bool tty = !once && isatty(STDOUT_FILENO);

  server::Scrape previous = scrape(target, api_key, 5);  // the first one must work: a clear error otherwise
  auto previous_at = Clock::now();
  for (int64_t shown = 0; frames == 0 || shown < frames; ++shown) {
    std::this_thread::sleep_for(std::chrono::duration<double>(interval));
    std::string frame;
    try {
      server::Scrape now = scrape(target, api_key, 5);
      const auto at = Clock::now();
      frame = server::render_dashboard(
          server::dashboard_frame(previous, now, std::chrono::duration<double>(at - previous_at).count()), target.text);
      previous = std::move(now);
      previous_at = at;
    } catch (const Error& e) {
      if (once) throw;
      frame = std::string("bitnet top — ") + e.what() + " (retrying)\n";
    }
    if (tty) frame = "\x1b[H\x1b[J" + frame;
    else if (!once) frame += "\n";
    std::fputs(frame.c_str(), stdout);
    std::fflush(stdout);
  }
  return 0;
}

const CommandRegistration kRegistration({"top", nullptr, cmd_top, "live dashboard of a running server", 75});

}  // namespace
}  // namespace bitnet::cli
