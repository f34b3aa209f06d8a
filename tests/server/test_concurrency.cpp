// Continuous batching: concurrent streams share batched decode steps and produce exactly what
// they produce alone; clients that disconnect free their slot; a full queue yields 503.
#include "server_process.h"

namespace bitnet::testing {
namespace {

int busy_slots(httplib::Client& cli) {
  const json slots = get_json(cli, "/slots");
  int n = 0;
  for (const auto& s : slots) n += s["is_processing"].get<bool>() ? 1 : 0;
  return n;
}

std::string stream_text(const StreamResult& s) {
  std::string text;
  for (const auto& d : s.data)
    if (d != "[DONE]") {
      const json j = json::parse(d);
      if (!j["choices"].empty()) text += j["choices"][0].value("text", "");
    }
  return text;
}

TEST(ServerConcurrency, EightStreamsOnFourSlotsMatchSequentialResults) {
  ServerProcess server({"-np", "4", "-c", "512", "--queue-limit", "8", "--metrics"});
  auto cli = server.client();
  const int kClients = 8;
  std::vector<std::string> prompts, expected;
  for (int i = 0; i < kClients; ++i) {
    prompts.push_back("Stream number " + std::to_string(i) + " says");
    const json r = post_json(cli, "/v1/completions", {{"prompt", prompts[i]}, {"max_tokens", 10}, {"temperature", 0}});
    expected.push_back(r["choices"][0]["text"]);
  }
  const double steps_before = metric(cli, "bitnet_decode_steps_total");
  const double tokens_before = metric(cli, "bitnet_batch_tokens_total");
  std::vector<StreamResult> results(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i)
    threads.emplace_back([&, i] {
      results[size_t(i)] = stream_post(server.port(), "/v1/completions",
                                       {{"prompt", prompts[size_t(i)]}, {"max_tokens", 10}, {"temperature", 0},
                                        {"stream", true}});
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(results[size_t(i)].status, 200);
    ASSERT_FALSE(results[size_t(i)].data.empty());
    EXPECT_EQ(results[size_t(i)].data.back(), "[DONE]");
    EXPECT_EQ(stream_text(results[size_t(i)]), expected[size_t(i)]) << "client " << i;
  }
  // Batching happened: the forward passes carried more than one token each on average.
  const double steps = metric(cli, "bitnet_decode_steps_total") - steps_before;
  const double tokens = metric(cli, "bitnet_batch_tokens_total") - tokens_before;
  EXPECT_GT(steps, 0);
  EXPECT_GT(tokens / steps, 1.5) << tokens << " tokens in " << steps << " steps";
  EXPECT_LT(steps, 60) << "one by one the 8 streams take about 80 steps";
  EXPECT_EQ(busy_slots(cli), 0);
}

TEST(ServerConcurrency, DisconnectingClientFreesItsSlot) {
  ServerProcess server({"-np", "1", "-c", "512", "--metrics"});
  auto cli = server.client();
  int seen = 0;
  const StreamResult s = stream_post(server.port(), "/v1/completions",
                                     {{"prompt", "Go on forever"}, {"max_tokens", 400}, {"ignore_eos", true}, {"stream", true}},
                                     [&](const std::string&) { return ++seen < 3; });
  EXPECT_FALSE(s.completed) << "the client hung up";
  EXPECT_EQ(seen, 3);
  EXPECT_TRUE(eventually([&] { return busy_slots(cli) == 0; })) << "slot still busy after the client left";
  EXPECT_GE(metric(cli, "bitnet_requests_cancelled_total"), 1);
  EXPECT_LT(metric(cli, "bitnet_tokens_predicted_total"), 400) << "generation stopped early";
  // The freed slot serves the next request.
  const json r = post_json(cli, "/completion", {{"prompt", "Next"}, {"n_predict", 3}, {"temperature", 0}});
  EXPECT_EQ(r["tokens_predicted"], 3);
}

TEST(ServerConcurrency, FullQueueGets503AndQueuedRequestsRunLater) {
  ServerProcess server({"-np", "1", "-c", "512", "--queue-limit", "1", "--metrics"});
  auto cli = server.client();
  const json long_req = {{"prompt", "Long one"}, {"max_tokens", 300}, {"ignore_eos", true}, {"stream", true}};
  std::atomic<bool> stop_first{false};
  StreamResult first, second;
  std::thread a([&] {
    first = stream_post(server.port(), "/v1/completions", long_req, [&](const std::string&) { return !stop_first; });
  });
  ASSERT_TRUE(eventually([&] { return busy_slots(cli) == 1; }));
  std::thread b([&] {
    second = stream_post(server.port(), "/v1/completions",
                         {{"prompt", "Queued"}, {"max_tokens", 3}, {"temperature", 0}, {"stream", true}});
  });
  ASSERT_TRUE(eventually([&] { return metric(cli, "bitnet_queue_length") == 1; }));
  auto r = cli.Post("/v1/completions", R"({"prompt": "one too many", "max_tokens": 2})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(json::parse(r->body)["error"]["type"], "unavailable_error");
  EXPECT_EQ(metric(cli, "bitnet_requests_rejected_total"), 1);
  stop_first = true;  // the first client leaves; the queued request gets the slot
  a.join();
  b.join();
  EXPECT_EQ(second.status, 200);
  ASSERT_FALSE(second.data.empty());
  EXPECT_EQ(second.data.back(), "[DONE]");
}

TEST(ServerConcurrency, RequestedSlotAndPrefixReuse) {
  ServerProcess server({"-np", "2", "-c", "512"});
  auto cli = server.client();
  const json a = post_json(cli, "/completion", {{"prompt", "Shared prefix, then A"}, {"n_predict", 2}, {"id_slot", 1}});
  EXPECT_EQ(a["id_slot"], 1);
  EXPECT_EQ(a["tokens_cached"], 0);
  // Another request with the same start lands on slot 1 (longest common prefix) and reuses it.
  const json b = post_json(cli, "/completion", {{"prompt", "Shared prefix, then B"}, {"n_predict", 2}});
  EXPECT_EQ(b["id_slot"], 1);
  EXPECT_GT(b["tokens_cached"].get<int>(), 3);
  const json c = post_json(cli, "/completion", {{"prompt", "Shared prefix, then B"}, {"n_predict", 2}, {"cache_prompt", false}});
  EXPECT_EQ(c["tokens_cached"], 0);
}

}  // namespace
}  // namespace bitnet::testing
