// `bitnet top` and the metrics it reads: the exposition parser, histogram quantiles, the frame,
// the live command against a server (plain and in tmux), and /metrics through promtool.
#include "server/dashboard.h"

#include "errors.h"
#include "process_runner.h"
#include "server_process.h"

namespace bitnet::testing {
namespace {

using server::dashboard_frame;
using server::histogram_quantile;
using server::parse_metrics;

const char* kSample =
    "# HELP bitnet_requests_total Generation requests accepted.\n"
    "# TYPE bitnet_requests_total counter\n"
    "bitnet_requests_total 10\n"
    "bitnet_tokens_predicted_total 400 1700000000000\n"
    "bitnet_slots 4\n"
    "bitnet_slots_active 3\n"
    "bitnet_queue_length 2\n"
    "odd_metric{path=\"/a b\",q=\"x\\\"y\"} 1.5e3\n"
    "h_bucket{le=\"0.1\"} 10\n"
    "h_bucket{le=\"0.2\"} 30\n"
    "h_bucket{le=\"0.4\"} 40\n"
    "h_bucket{le=\"+Inf\"} 40\n"
    "h_sum 5\n"
    "h_count 40\n";

TEST(Dashboard, ParsesTheExpositionFormat) {
  const server::Scrape s = parse_metrics(kSample);
  EXPECT_EQ(s.get("bitnet_requests_total"), 10);
  EXPECT_EQ(s.get("bitnet_tokens_predicted_total"), 400) << "a timestamp after the value is ignored";
  EXPECT_EQ(s.get("odd_metric{path=\"/a b\",q=\"x\\\"y\"}"), 1500) << "spaces and quotes inside label values";
  EXPECT_FALSE(s.get("missing"));
  EXPECT_THROW(parse_metrics("no_value_here\n"), Error);
  EXPECT_THROW(parse_metrics("m 12abc\n"), Error);
  EXPECT_THROW(parse_metrics("m{unterminated=\"x} 1\n"), Error);
}

// Found by fuzz_metrics: every parse error quotes the line escaped, never raw.
TEST(Dashboard, ParseErrorsNeverCarryRawControlBytes) {
  for (const std::string& text : {std::string("xz\x14\0\0NaN\n"), std::string("a \x1b]0;t\x07\n"),
                                  std::string("\x1b[2J{x=\"\n")}) {
    try {
      server::parse_metrics(text);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      const std::string m = e.what();
      for (char c : m) EXPECT_FALSE((static_cast<unsigned char>(c) < 0x20) || c == 0x7f) << m;
    }
  }
}

TEST(Dashboard, HistogramQuantilesInterpolateInsideTheBucket) {
  const server::Scrape s = parse_metrics(kSample);
  // 40 observations: 10 ≤ 0.1, 20 in (0.1, 0.2], 10 in (0.2, 0.4].
  EXPECT_NEAR(*histogram_quantile(s, "h", 0.25), 0.1, 1e-12);   // rank 10: the top of the first bucket
  EXPECT_NEAR(*histogram_quantile(s, "h", 0.5), 0.15, 1e-12);   // rank 20: halfway through the second
  EXPECT_NEAR(*histogram_quantile(s, "h", 0.875), 0.3, 1e-12);  // rank 35: halfway through the third
  EXPECT_FALSE(histogram_quantile(s, "nothing", 0.5));
  // Since a previous scrape: only the new observations (10 more in the first bucket) count.
  const server::Scrape before = parse_metrics(
      "h_bucket{le=\"0.1\"} 0\nh_bucket{le=\"0.2\"} 20\nh_bucket{le=\"0.4\"} 30\nh_bucket{le=\"+Inf\"} 30\n");
  ASSERT_TRUE(histogram_quantile(s, "h", 0.99, &before));
  EXPECT_NEAR(*histogram_quantile(s, "h", 0.99, &before), 0.099, 1e-12);
  EXPECT_FALSE(histogram_quantile(s, "h", 0.5, &s)) << "no new observations";
  // Everything in the open top bucket: its lower bound.
  EXPECT_EQ(*histogram_quantile(parse_metrics("g_bucket{le=\"1\"} 0\ng_bucket{le=\"+Inf\"} 5\n"), "g", 0.5), 1.0);
}

TEST(Dashboard, FrameRatesAndText) {
  const server::Scrape before = parse_metrics("bitnet_tokens_predicted_total 100\nbitnet_requests_total 4\n");
  const server::Scrape now = parse_metrics(kSample);
  const server::DashboardFrame f = dashboard_frame(before, now, 2.0);
  EXPECT_DOUBLE_EQ(f.tokens_per_s, 150);
  EXPECT_DOUBLE_EQ(f.requests_per_s, 3);
  EXPECT_EQ(f.slots_active, 3);
  EXPECT_EQ(f.slots_total, 4);
  EXPECT_EQ(f.queue, 2);
  const std::string text = server::render_dashboard(f, "http://h:1");
  EXPECT_NE(text.find("150.0 tokens/s"), std::string::npos) << text;
  EXPECT_NE(text.find("3 / 4"), std::string::npos) << text;
  EXPECT_NE(text.find("queue 2"), std::string::npos) << text;
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << "no terminal codes in the frame itself";
}

// Generates `n` requests of 24 tokens in the background while `fn` runs.
template <class Fn>
void under_load(const ServerProcess& server, int n, const Fn& fn) {
  std::vector<std::thread> clients;
  for (int i = 0; i < n; ++i)
    clients.emplace_back([&] {
      auto cli = server.client();
      cli.Post("/completion", json{{"prompt", "Once upon a time"}, {"n_predict", 24}}.dump(), "application/json");
    });
  fn();
  for (auto& t : clients) t.join();
}

TEST(Dashboard, TopShowsALiveServer) {
  ServerProcess server({"--metrics", "-np", "2", "-c", "256"});
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port());
  ProcessResult r;
  under_load(server, 4, [&] { r = run_process({bitnet_bin(), "top", "--url", url, "--once", "-i", "1"}); });
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("bitnet top — " + url), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("/ 2"), std::string::npos) << "two slots: " << r.out;
  EXPECT_NE(r.out.find("MiB resident"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("    0.0 tokens/s"), std::string::npos) << "tokens were generated during the interval: " << r.out;

  // Errors: no metrics endpoint, nothing listening, a bad URL.
  ServerProcess plain({});
  const ProcessResult no_metrics =
      run_process({bitnet_bin(), "top", "--url", "http://127.0.0.1:" + std::to_string(plain.port()), "--once"});
  EXPECT_EQ(no_metrics.code, 1);
  EXPECT_NE(no_metrics.err.find("start the server with --metrics"), std::string::npos) << no_metrics.err;
  const ProcessResult bad = run_process({bitnet_bin(), "top", "--url", "localhost:8080", "--once"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("http://HOST[:PORT]"), std::string::npos) << bad.err;
}

TEST(Dashboard, TopRedrawsInPlaceInTmux) {
  ServerProcess server({"--metrics", "-np", "2", "-c", "256"});
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port());
  const std::string sock = "bitnet-top-test-" + std::to_string(getpid());
  const std::string cmd = bitnet_bin() + " top --url " + url + " -i 0.3";
  ProcessResult start = run_process({"/usr/bin/tmux", "-L", sock, "new-session", "-d", "-x", "120", "-y", "30", cmd});
  ASSERT_EQ(start.code, 0) << "tmux: " << start.err;
  std::string pane;
  under_load(server, 4, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // several frames
    pane = run_process({"/usr/bin/tmux", "-L", sock, "capture-pane", "-p"}).out;
  });
  run_process({"/usr/bin/tmux", "-L", sock, "kill-server"});
  size_t titles = 0;
  for (size_t p = pane.find("bitnet top —"); p != std::string::npos; p = pane.find("bitnet top —", p + 1)) ++titles;
  EXPECT_EQ(titles, 1u) << "each frame replaces the last (cursor home, clear): " << pane;
  EXPECT_NE(pane.find("tokens/s"), std::string::npos) << pane;
  EXPECT_NE(pane.find("first token"), std::string::npos) << pane;
}

TEST(Dashboard, MetricsPassPromtool) {
  ServerProcess server({"--metrics", "-np", "2", "-c", "256"});
  auto cli = server.client();
  post_json(cli, "/completion", {{"prompt", "Hello"}, {"n_predict", 4}});
  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m && m->status == 200);
  const ProcessResult r = run_process({"/usr/bin/promtool", "check", "metrics"}, m->body);
  EXPECT_EQ(r.code, 0) << "promtool: " << r.out << r.err << "\n" << m->body;
}

}  // namespace
}  // namespace bitnet::testing
