// Reliability round 3: every network client of the project bounded against peers that misbehave
// (an OTLP collector or a /metrics server that sends forever, trickles, or sends control bytes),
// URLs validated before use, request heads checked on their raw bytes, CORS opt-in with a key.
// Each test here failed on the code before the fix it names (N1–N16 of the reliability issue).
#include <fstream>

#include "base/untrusted_text.h"
#include "process_runner.h"
#include "raw_server.h"
#include "server_process.h"

namespace bitnet::testing {
namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int64_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  return -1;
}

// A /metrics server answering every request with `body` (status 200).
RawServer metrics_server(std::string body) {
  return RawServer([body](int fd, const std::atomic<bool>&) {
    RawServer::read_request(fd);
    RawServer::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  });
}

// N1: a collector answering with an endless body grew serve past 4 GB.
TEST(HostilePeers, ServeStaysBoundedAgainstACollectorWithAnEndlessBody) {
  RawServer collector(endless_body);
  ServerProcess server({"-c", "256", "--otlp-endpoint", collector.url()}, {"OTEL_METRIC_EXPORT_INTERVAL=200"});
  auto cli = server.client();
  post_json(cli, "/completion", {{"prompt", "Hello"}, {"n_predict", 2}});
  const int64_t start_kib = rss_kib(server.pid());
  int64_t peak_kib = start_kib;
  for (int i = 0; i < 30; ++i) {  // 3 s: several metric exports and a log flush
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    peak_kib = std::max(peak_kib, rss_kib(server.pid()));
  }
  EXPECT_GE(collector.accepted(), 3) << "the exporter kept trying";
  EXPECT_LT(peak_kib - start_kib, 64 * 1024) << "RSS grew from " << start_kib << " to " << peak_kib << " KiB";
  const auto stop = Clock::now();
  EXPECT_EQ(server.terminate(std::chrono::seconds(30)), 0) << server.log();
  EXPECT_LT(seconds_since(stop), 15.0);
  EXPECT_NE(server.log().find("OTLP export to"), std::string::npos) << "the failures are reported: " << server.log();
}

// N1 + N4: run and bench finish and exit whatever the collector does: endless, trickled, silent.
TEST(HostilePeers, RunAndBenchExitPromptlyWhateverTheCollectorDoes) {
  RawServer endless(endless_body);
  RawServer trickling([](int fd, const std::atomic<bool>& stopping) { trickle(fd, stopping); });
  for (const RawServer* collector : {&endless, &trickling}) {
    auto start = Clock::now();
    const ProcessResult r = run_process({bitnet_bin(), "run", "-m", tiny_model(), "-p", "Hello", "-n", "4", "--temp",
                                         "0", "--otlp-endpoint", collector->url()});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_LT(seconds_since(start), 12.0) << "run waited on the collector";
    EXPECT_NE(r.err.find("failed requests"), std::string::npos) << r.err;
    start = Clock::now();
    const ProcessResult b = run_process({bitnet_bin(), "bench", "-m", tiny_model(), "-p", "8", "-n", "4", "-r", "1",
                                         "--otlp-endpoint", collector->url()});
    EXPECT_EQ(b.code, 0) << b.err;
    EXPECT_LT(seconds_since(start), 20.0) << "bench waited on the collector";
  }
}

// N2 and N3: endpoints that passed validation and then crashed the process.
TEST(HostilePeers, BadOtlpEndpointsAreUsageErrorsBeforeAnythingStarts) {
  const std::string long_host = "http://" + std::string(20000, 'a') + ":4318";
  for (const std::string& bad : {std::string("http://127.0.0.1:99999999999"), long_host}) {
    const ProcessResult r =
        run_process({bitnet_bin(), "run", "-m", tiny_model(), "-p", "x", "-n", "1", "--otlp-endpoint", bad});
    EXPECT_EQ(r.code, 2) << r.err.substr(0, 300);
    EXPECT_NE(r.err.find("OTLP endpoint must be http://HOST[:PORT]"), std::string::npos) << r.err.substr(0, 300);
    EXPECT_LT(r.err.size(), 1000u) << "the message quotes a bounded part of the URL";
    const ProcessResult s = run_process({bitnet_bin(), "serve", "-m", tiny_model(), "--port", "0"}, "", "",
                                        {"OTEL_EXPORTER_OTLP_ENDPOINT=" + bad});
    EXPECT_EQ(s.code, 2) << s.err.substr(0, 300);
    EXPECT_NE(s.err.find("OTLP endpoint must be"), std::string::npos) << s.err.substr(0, 300);
  }
  const ProcessResult top = run_process({bitnet_bin(), "top", "--once", "--url", long_host});
  EXPECT_EQ(top.code, 2) << top.err.substr(0, 300);
  EXPECT_NE(top.err.find("longer than"), std::string::npos) << top.err.substr(0, 300);
  const ProcessResult port = run_process({bitnet_bin(), "top", "--once", "--url", "http://127.0.0.1:99999999999"});
  EXPECT_EQ(port.code, 2) << port.err;
}

// N5: `top` against an endless or trickled /metrics, N6: control bytes from the server.
TEST(HostilePeers, TopIsBoundedAndNeverPrintsTheServersBytesRaw) {
  RawServer endless(endless_body);
  auto start = Clock::now();
  ProcessResult r = run_process({bitnet_bin(), "top", "--once", "--url", endless.url()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("response larger than"), std::string::npos) << r.err;
  EXPECT_LT(seconds_since(start), 10.0);

  RawServer trickling([](int fd, const std::atomic<bool>& stopping) { trickle(fd, stopping); });
  start = Clock::now();
  r = run_process({bitnet_bin(), "top", "--once", "--url", trickling.url()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no complete answer within"), std::string::npos) << r.err;
  EXPECT_LT(seconds_since(start), 10.0);

  RawServer evil = metrics_server("bitnet_requests_total \x1b]0;owned\x07\x1b[2J\x9b" "1\n");
  r = run_process({bitnet_bin(), "top", "--once", "--url", evil.url()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("bad value"), std::string::npos) << r.err;
  for (char c : {'\x1b', '\x07', '\x9b'}) EXPECT_EQ(r.err.find(c), std::string::npos) << "raw byte " << int(c) << " in: " << r.err;
  EXPECT_NE(r.err.find("\\x1b]0;owned\\x07"), std::string::npos) << r.err;
}

// N9: header values the HTTP library would percent-decode are refused on the raw bytes.
TEST(HostilePeers, PercentSignsInFramingAndCredentialHeadersAre400) {
  ServerProcess server({"-c", "256", "--api-key", "secret-key"});
  const std::string body = R"({"prompt":"Hi","n_predict":1})";
  const auto post = [&](const std::string& headers) {
    return raw_exchange(server.port(), "POST /completion HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n" + body);
  };
  const std::string len = "Content-Length: " + std::to_string(body.size()) + "\r\n";
  EXPECT_EQ(post("Authorization: Bearer secret-key\r\n" + len).rfind("HTTP/1.1 200", 0), 0u) << "the baseline works";
  for (const std::string& bad : std::vector<std::string>{"Authorization: Bearer secret-key\r\nContent-Length: 2%38\r\n",
                                 "Authorization: Bearer secret-key\r\nTransfer-Encoding: chunke%64\r\n",
                                 "X-Api-Key: secret-ke%79\r\n" + len, "X-Api-Key: secret-key%00junk\r\n" + len,
                                 "Authorization: Bearer secret-key\r\n" + len + len,
                                 "Authorization: Bearer secret-key\r\nContent-Length : 29\r\n"}) {
    const std::string reply = post(bad);
    EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << bitnet::printable(bad) << "\n→ " << reply.substr(0, 200);
  }
  // The scheme name is case-insensitive.
  EXPECT_EQ(post("Authorization: bearer secret-key\r\n" + len).rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(server.terminate(), 0) << server.log();
}

// N13: llama.cpp's environment names; unknown LLAMA_ARG_ variables are named, not dropped.
TEST(HostilePeers, LlamaServerEnvironmentNamesAreHonoured) {
  const ProcessResult by_env = run_process({bitnet_bin(), "serve", "-m", tiny_model(), "--dry-run", "--json"}, "", "",
                                           {"LLAMA_ARG_N_PARALLEL=3", "LLAMA_ARG_BATCH=64", "LLAMA_ARG_N_GPU_LAYERS=5",
                                            "LLAMA_ARG_NOT_A_THING=1"});
  ASSERT_EQ(by_env.code, 0) << by_env.err;
  const json j = json::parse(by_env.out);
  EXPECT_EQ(j["config"]["parallel"], 3) << by_env.out;
  EXPECT_EQ(j["config"]["batch_size"], 64);
  EXPECT_NE(by_env.out.find("--gpu-layers"), std::string::npos) << "-ngl from the environment reaches the command";
  EXPECT_NE(by_env.err.find("LLAMA_ARG_NOT_A_THING is not a setting of this server"), std::string::npos) << by_env.err;
}

// N14 and N15.
TEST(HostilePeers, OutOfRangeLogprobFieldsAndBlankKeysAreRefused) {
  ServerProcess server({"-c", "256"});
  auto cli = server.client();
  int status = 0;
  const json chat = {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 1}};
  for (const json& extra : {json{{"top_logprobs", 1000000000}}, json{{"top_logprobs", -1}}, json{{"logprobs", "x"}}}) {
    json b = chat;
    b.update(extra);
    post_json(cli, "/v1/chat/completions", b, &status);
    EXPECT_EQ(status, 400) << extra.dump();
  }
  post_json(cli, "/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 1}, {"logprobs", "x"}}, &status);
  EXPECT_EQ(status, 400);
  post_json(cli, "/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 1}, {"logprobs", 99}}, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(server.terminate(), 0);
  for (const std::string& key : {std::string(" "), std::string("\t "), std::string("has space")}) {
    const ProcessResult r = run_process({bitnet_bin(), "serve", "-m", tiny_model(), "--port", "0", "--api-key", key});
    EXPECT_EQ(r.code, 2) << "key '" << key << "': " << r.err;
    EXPECT_NE(r.err.find("API key"), std::string::npos) << r.err;
  }
}

// CORS is opt-in once a key is set: a page elsewhere must not drive a keyed server.
TEST(HostilePeers, CorsIsOptInWithAnApiKey) {
  const std::string ask = "GET /v1/models HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAuthorization: Bearer k3y-k3y-k3y\r\n\r\n";
  {
    ServerProcess open({"-c", "256"});
    EXPECT_NE(raw_exchange(open.port(), ask).find("Access-Control-Allow-Origin: https://app.example\r\n"), std::string::npos)
        << "without a key any origin may call (llama-server echoes it)";
  }
  {
    ServerProcess keyed({"-c", "256", "--api-key", "k3y-k3y-k3y"});
    const std::string reply = raw_exchange(keyed.port(), ask);
    EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply.substr(0, 200);
    EXPECT_EQ(reply.find("Access-Control-Allow-Origin"), std::string::npos) << reply.substr(0, 400);
  }
  {
    ServerProcess allowed({"-c", "256", "--api-key", "k3y-k3y-k3y", "--cors", "https://app.example"});
    std::string reply = raw_exchange(allowed.port(), ask);
    EXPECT_NE(reply.find("Access-Control-Allow-Origin: https://app.example\r\n"), std::string::npos) << reply.substr(0, 400);
    EXPECT_NE(reply.find("Access-Control-Allow-Credentials: true"), std::string::npos);
    reply = raw_exchange(allowed.port(), "OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\nOrigin: https://other.example\r\n\r\n");
    EXPECT_EQ(reply.find("Access-Control-Allow-Origin"), std::string::npos) << reply.substr(0, 400);
  }
  const ProcessResult bad = run_process({bitnet_bin(), "serve", "-m", tiny_model(), "--cors", "https://a.example/path"});
  EXPECT_EQ(bad.code, 2) << bad.err;
}

}  // namespace
}  // namespace bitnet::testing
