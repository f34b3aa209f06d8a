// `serve --telemetry-out`: the JSONL event stream of a server's life (docs/telemetry.md).
#include <gtest/gtest.h>

#include "server_process.h"

namespace bitnet::testing {
namespace {

TEST(ServerTelemetry, EventsForStartLoadEachRequestAndShutdown) {
  const std::string events = (temp_dir() / ("serve-" + std::to_string(getpid()) + ".jsonl")).string();
  {
    ServerProcess server({"-np", "2", "-c", "256", "--telemetry-out", events});
    auto cli = server.client();
    post_json(cli, "/completion", {{"prompt", "Hello"}, {"n_predict", 3}, {"temperature", 0}});
    post_json(cli, "/completion", {{"prompt", "Hello there"}, {"n_predict", 2}, {"temperature", 0}});
    EXPECT_EQ(server.terminate(), 0);
  }
  std::ifstream in(events);
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  ASSERT_EQ(lines.size(), 5u) << slurp(events);
  const std::vector<std::string> expected = {"run_started", "model_loaded", "request_finished", "request_finished",
                                             "run_finished"};
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["event"], expected[i]);
    EXPECT_EQ(lines[i]["command"], "serve");
    EXPECT_EQ(lines[i]["run_id"], lines[0]["run_id"]);
  }
  EXPECT_EQ(lines[2]["generated_tokens"], 3);
  EXPECT_EQ(lines[2]["finish_reason"], "length");
  EXPECT_EQ(lines[3]["generated_tokens"], 2);
  EXPECT_GT(lines[3]["prompt_tokens"].get<int>(), 1);
  EXPECT_EQ(lines[4]["exit_code"], 0);
}

}  // namespace
}  // namespace bitnet::testing
