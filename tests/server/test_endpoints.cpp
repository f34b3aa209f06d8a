// Every endpoint of a real `bitnet serve` process over loopback: streaming and non-streaming
// generation equal to `bitnet run`, chat, tokenizer endpoints, introspection and metrics.
#include "formats/gguf.h"
#include "model/hparams.h"
#include "model/kv_cache.h"
#include "server_process.h"

namespace bitnet::testing {
namespace {

std::string join_native(const StreamResult& s, json* last = nullptr) {
  std::string text;
  for (const auto& d : s.data) {
    const json j = json::parse(d);
    text += j.value("content", "");
    if (last) *last = j;
  }
  return text;
}

// Text of OpenAI stream chunks; checks the framing: usage chunk then [DONE] at the end.
std::string join_openai(const StreamResult& s, bool chat, json* usage, std::string* finish) {
  std::string text;
  EXPECT_GE(s.data.size(), 3u);
  if (s.data.size() < 3) return text;
  EXPECT_EQ(s.data.back(), "[DONE]");
  for (size_t i = 0; i + 1 < s.data.size(); ++i) {
    const json j = json::parse(s.data[i]);
    EXPECT_EQ(j["object"], chat ? "chat.completion.chunk" : "text_completion");
    if (j["choices"].empty()) {
      EXPECT_EQ(i + 2, s.data.size()) << "the usage chunk comes last, before [DONE]";
      *usage = j["usage"];
      continue;
    }
    const json& c = j["choices"][0];
    if (!c["finish_reason"].is_null()) *finish = c["finish_reason"];
    const json& piece = chat ? c["delta"].value("content", json()) : c.value("text", json());
    if (piece.is_string()) text += piece.get<std::string>();  // the chat role chunk's content is null
  }
  return text;
}

const char* kPrompt = "Hello world";

TEST(ServerEndpoints, CompletionEqualsBitnetRunStreamedAndNot) {
  const std::string expected = run_cli({"--no-display-prompt", "--temp", "0", "-n", "12", "-m", tiny_model(), "-t", "1",
                                        "-p", kPrompt});
  ASSERT_FALSE(expected.empty());
  ASSERT_EQ(expected.back(), '\n');
  const std::string text = expected.substr(0, expected.size() - 1);

  ServerProcess server({"-np", "2", "-c", "512"});
  auto cli = server.client();
  const json req = {{"prompt", kPrompt}, {"n_predict", 12}, {"temperature", 0}, {"seed", 42}};
  const json plain = post_json(cli, "/completion", req);
  EXPECT_EQ(plain["content"], text);
  EXPECT_EQ(plain["tokens_predicted"], 12);
  EXPECT_EQ(plain["stop_type"], "limit");
  EXPECT_TRUE(plain["tokens"].empty()) << "token ids only with return_tokens, as llama-server";

  json stream_req = req;
  stream_req["stream"] = true;
  json last;
  const StreamResult streamed = stream_post(server.port(), "/completion", stream_req);
  EXPECT_EQ(streamed.status, 200);
  EXPECT_EQ(join_native(streamed, &last), text);
  EXPECT_EQ(last["stop"], true);

  // OpenAI text completions: same text, both ways.
  const json oreq = {{"prompt", kPrompt}, {"max_tokens", 12}, {"temperature", 0}, {"seed", 42}};
  const json ojson = post_json(cli, "/v1/completions", oreq);
  EXPECT_EQ(ojson["object"], "text_completion");
  EXPECT_EQ(ojson["choices"][0]["text"], text);
  EXPECT_EQ(ojson["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(ojson["usage"]["completion_tokens"], 12);
  json ostream_req = oreq;
  ostream_req["stream"] = true;
  ostream_req["stream_options"] = {{"include_usage", true}};
  json usage;
  std::string finish;
  EXPECT_EQ(join_openai(stream_post(server.port(), "/v1/completions", ostream_req), false, &usage, &finish), text);
  EXPECT_EQ(finish, "length");
  EXPECT_EQ(usage["completion_tokens"], 12);
  EXPECT_EQ(usage["prompt_tokens"], ojson["usage"]["prompt_tokens"]);
  EXPECT_GT(usage["prompt_tokens_details"]["cached_tokens"].get<int>(), 0) << "the repeated prompt reuses the slot cache";
}

TEST(ServerEndpoints, ChatCompletionsUseTheModelTemplate) {
  ServerProcess server({"-np", "2", "-c", "512"});
  auto cli = server.client();
  const json messages = json::array({{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi there"}}});
  const json templ = post_json(cli, "/apply-template", {{"messages", messages}});
  const std::string prompt = templ["prompt"];
  EXPECT_NE(prompt.find("Hi there"), std::string::npos);
  EXPECT_NE(prompt.find("Be brief."), std::string::npos);
  const json toks = post_json(cli, "/tokenize", {{"content", prompt}, {"add_special", true}});

  const json req = {{"messages", messages}, {"max_tokens", 8}, {"temperature", 0}, {"seed", 1}};
  const json plain = post_json(cli, "/v1/chat/completions", req);
  EXPECT_EQ(plain["object"], "chat.completion");
  EXPECT_EQ(plain["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(plain["usage"]["prompt_tokens"], toks["tokens"].size());
  const std::string reply = plain["choices"][0]["message"]["content"];
  // Same text as a raw completion of the rendered template.
  const json raw = post_json(cli, "/completion", {{"prompt", prompt}, {"n_predict", 8}, {"temperature", 0}});
  if (plain["choices"][0]["finish_reason"] == "length") {
    EXPECT_EQ(raw["content"], reply);
  }

  json sreq = req;
  sreq["stream"] = true;
  sreq["stream_options"] = {{"include_usage", true}};
  const StreamResult s = stream_post(server.port(), "/v1/chat/completions", sreq);
  ASSERT_FALSE(s.data.empty());
  EXPECT_EQ(json::parse(s.data[0])["choices"][0]["delta"]["role"], "assistant");
  json usage;
  std::string finish;
  EXPECT_EQ(join_openai(s, true, &usage, &finish), reply);
  EXPECT_EQ(finish, plain["choices"][0]["finish_reason"]);
  EXPECT_EQ(usage["completion_tokens"], plain["usage"]["completion_tokens"]);
}

TEST(ServerEndpoints, StopStringsEndGenerationBeforeTheStopText) {
  ServerProcess server({"-c", "256"});
  auto cli = server.client();
  const json req = {{"prompt", kPrompt}, {"n_predict", 12}, {"temperature", 0}};
  const std::string full = post_json(cli, "/completion", req)["content"];
  // Stop at the second piece of the greedy text; the output is everything before it.
  const size_t cut = full.find(' ', 1);
  ASSERT_NE(cut, std::string::npos) << full;
  const std::string stop = full.substr(cut, 4);
  json stop_req = req;
  stop_req["stop"] = json::array({stop, "never-generated-xyz"});
  const json r = post_json(cli, "/completion", stop_req);
  EXPECT_EQ(r["content"], full.substr(0, full.find(stop)));
  EXPECT_EQ(r["stop_type"], "word");
  EXPECT_EQ(r["stopping_word"], stop);
  stop_req["stream"] = true;
  EXPECT_EQ(join_native(stream_post(server.port(), "/completion", stop_req)), full.substr(0, full.find(stop)));
  json oreq = {{"prompt", kPrompt}, {"max_tokens", 12}, {"temperature", 0}, {"stop", stop}};
  EXPECT_EQ(post_json(cli, "/v1/completions", oreq)["choices"][0]["finish_reason"], "stop");
}

// logit_bias in both accepted forms: banning each greedy token in turn (OpenAI's object, -100)
// or with llama.cpp's [[id, false]] changes the reply, a strong positive bias forces a token.
TEST(ServerEndpoints, LogitBiasBansAndForcesTokens) {
  ServerProcess server({"-c", "256"});
  auto cli = server.client();
  const json req = {{"prompt", kPrompt}, {"n_predict", 4}, {"temperature", 0}};
  const json base = post_json(cli, "/completion", req);
  const json first = post_json(cli, "/tokenize", {{"content", base["content"]}})["tokens"];
  ASSERT_FALSE(first.empty());
  const int id = first[0].get<int>();
  json banned = req;
  banned["logit_bias"] = {{std::to_string(id), -100}};
  const std::string a = post_json(cli, "/completion", banned)["content"];
  EXPECT_NE(a, base["content"].get<std::string>());
  banned["logit_bias"] = json::array({json::array({id, false})});
  EXPECT_EQ(post_json(cli, "/completion", banned)["content"], a) << "false bans like -100 here";
  const json forced_id = post_json(cli, "/tokenize", {{"content", " dog"}})["tokens"];
  ASSERT_EQ(forced_id.size(), 1u);
  json forced = req;
  forced["n_predict"] = 2;
  forced["logit_bias"] = {{std::to_string(forced_id[0].get<int>()), 100}};
  EXPECT_EQ(post_json(cli, "/completion", forced)["content"], " dog dog");
}

TEST(ServerEndpoints, TokenizerEndpointsAndProbabilities) {
  ServerProcess server({"-c", "256"});
  auto cli = server.client();
  const json t = post_json(cli, "/tokenize", {{"content", "Hello world"}, {"with_pieces", true}});
  ASSERT_EQ(t["tokens"].size(), 2u);
  EXPECT_EQ(t["tokens"][0]["piece"], "Hello");
  const json ids = post_json(cli, "/tokenize", {{"content", "Hello world"}, {"add_special", true}})["tokens"];
  EXPECT_EQ(ids.size(), 3u) << "BOS added";
  EXPECT_EQ(post_json(cli, "/detokenize", {{"tokens", {ids[1], ids[2]}}})["content"], "Hello world");

  const json r = post_json(cli, "/completion", {{"prompt", ids}, {"n_predict", 3}, {"temperature", 0}, {"n_probs", 5}});
  ASSERT_EQ(r["completion_probabilities"].size(), 3u);
  EXPECT_EQ(r["tokens"], json::array()) << "token ids only with return_tokens";
  std::string text;
  for (size_t i = 0; i < 3; ++i) {
    const json& p = r["completion_probabilities"][i];
    ASSERT_EQ(p["top_logprobs"].size(), 5u);
    EXPECT_EQ(p["top_logprobs"][0]["id"], p["id"]) << "greedy picks the most probable token";
    EXPECT_EQ(p["top_logprobs"][0]["logprob"], p["logprob"]);
    EXPECT_LE(p["logprob"].get<double>(), 0.0);
    for (size_t k = 1; k < 5; ++k)
      EXPECT_GE(p["top_logprobs"][k - 1]["logprob"].get<double>(), p["top_logprobs"][k]["logprob"].get<double>());
    std::string bytes;
    for (const json& b : p["bytes"]) bytes += char(b.get<int>());
    EXPECT_EQ(bytes, p["token"].get<std::string>());
    text += bytes;
  }
  EXPECT_EQ(text, r["content"].get<std::string>());
  const json with_ids = post_json(cli, "/completion", {{"prompt", ids}, {"n_predict", 3}, {"temperature", 0}, {"return_tokens", true}});
  ASSERT_EQ(with_ids["tokens"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(with_ids["tokens"][i], r["completion_probabilities"][i]["id"]);
}

TEST(ServerEndpoints, IntrospectionMetricsAndWebPage) {
  ServerProcess server({"-np", "3", "-c", "384", "--metrics"});
  auto cli = server.client();
  EXPECT_EQ(get_json(cli, "/health")["status"], "ok");
  const json models = get_json(cli, "/v1/models");
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], std::filesystem::path(tiny_model()).filename().string());
  const json props = get_json(cli, "/props");
  EXPECT_EQ(props["total_slots"], 3);
  EXPECT_EQ(props["default_generation_settings"]["n_ctx"], 128);
  EXPECT_EQ(props["default_generation_settings"]["params"]["n_keep"], 0) << "llama-server lists n_keep and n_discard";
  EXPECT_EQ(props["default_generation_settings"]["params"]["n_discard"], 0);
  EXPECT_FALSE(props["chat_template"].get<std::string>().empty());
  const json slots = get_json(cli, "/slots");
  ASSERT_EQ(slots.size(), 3u);
  for (const auto& s : slots) EXPECT_FALSE(s["is_processing"].get<bool>());

  post_json(cli, "/completion", {{"prompt", kPrompt}, {"n_predict", 4}, {"temperature", 0}});
  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  for (const char* needle :
       {"bitnet_requests_total 1", "bitnet_tokens_predicted_total 4", "bitnet_slots 3", "bitnet_slots_active 0",
        "bitnet_queue_length 0", "bitnet_time_to_first_token_seconds_count 1",
        "bitnet_inter_token_latency_seconds_count 3", "bitnet_request_duration_seconds_bucket{le=\"+Inf\"} 1",
        "# TYPE bitnet_time_to_first_token_seconds histogram"})
    EXPECT_NE(m->body.find(needle), std::string::npos) << needle << "\n" << m->body;

  auto page = cli.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(page->body.find("/v1/chat/completions"), std::string::npos);
}

// Each slot reports the bytes of KV cache it holds: what a KvCache of one sequence of the slot's
// context occupies (-c 300 over 3 slots: 100 positions each, stored as 104, whole key blocks);
// /props reports them for all slots, and the start-up line states both.
TEST(ServerEndpoints, SlotsReportTheirKvCacheBytes) {
  ServerProcess server({"-np", "3", "-c", "300"});
  auto cli = server.client();
  const HParams hp = read_hparams(GgufFile::open(tiny_model()));
  const uint64_t expected = KvCache(hp.n_layer, 1, 100, hp.n_head_kv, hp.head_dim).bytes();
  EXPECT_EQ(expected, uint64_t(2 * hp.n_layer * 104 * hp.kv_dim() * 2));
  const json slots = get_json(cli, "/slots");
  ASSERT_EQ(slots.size(), 3u);
  for (const auto& s : slots) {
    EXPECT_EQ(s["n_ctx"], 100);
    EXPECT_EQ(s["kv_cache_bytes"].get<uint64_t>(), expected) << s;
  }
  EXPECT_EQ(get_json(cli, "/props")["kv_cache_bytes"].get<uint64_t>(), 3 * expected);
  // A slot's cache is reserved at start-up: busy or idle, its size does not change.
  post_json(cli, "/completion", {{"prompt", kPrompt}, {"n_predict", 2}, {"temperature", 0}});
  EXPECT_EQ(get_json(cli, "/slots")[0]["kv_cache_bytes"].get<uint64_t>(), expected);
  EXPECT_NE(server.log().find("server ready: 3 slots of 100 tokens (KV cache "), std::string::npos)
      << server.log();
}

TEST(ServerEndpoints, MetricsAreOffUnlessEnabled) {
  ServerProcess server({"-c", "256"});
  auto cli = server.client();
  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 501);
  EXPECT_EQ(json::parse(m->body)["error"]["type"], "not_supported_error");
}

TEST(ServerEndpoints, SystemPromptIsPrimedIntoEverySlot) {
  ServerProcess server({"-np", "2", "-c", "512", "-sys", "You are a terse assistant."});
  auto cli = server.client();
  const json slots = get_json(cli, "/slots");
  ASSERT_EQ(slots.size(), 2u);
  const int primed = slots[0]["n_cached"];
  EXPECT_GT(primed, 5);
  EXPECT_EQ(slots[1]["n_cached"], primed);
  EXPECT_EQ(get_json(cli, "/props")["system_prompt"], "You are a terse assistant.");
  const json r = post_json(cli, "/v1/chat/completions",
                           {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 2}, {"temperature", 0}});
  EXPECT_GE(r["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), primed);
  const json c = post_json(cli, "/completion", {{"prompt", "Hi"}, {"n_predict", 2}, {"temperature", 0}});
  EXPECT_EQ(c["tokens_cached"], primed) << "completions start with the primed prefix too";
}

TEST(ServerEndpoints, HealthIs503WhileLoadingThen200) {
  ServerProcess server({"-c", "256"}, {"BITNET_SERVE_LOAD_DELAY_MS=1500"}, false);
  auto cli = server.client();
  auto r = cli.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(json::parse(r->body)["error"]["type"], "unavailable_error");
  auto c = cli.Post("/completion", R"({"prompt":"x"})", "application/json");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->status, 503);
  server.wait_ready();
  EXPECT_EQ(cli.Get("/health")->status, 200);
}

TEST(ServerEndpoints, EnvironmentTwinsAndCommandLinePrecedence) {
  {
    ServerProcess server({"-c", "512"}, {"LLAMA_ARG_PARALLEL=4", "LLAMA_ARG_METRICS=1"});
    auto cli = server.client();
    EXPECT_EQ(get_json(cli, "/props")["total_slots"], 4);
    EXPECT_EQ(cli.Get("/metrics")->status, 200);
  }
  ServerProcess server({"-c", "512", "-np", "2"}, {"LLAMA_ARG_PARALLEL=4"});
  auto cli = server.client();
  EXPECT_EQ(get_json(cli, "/props")["total_slots"], 2);
}

TEST(ServerEndpoints, LlamaServerAliasTakesTheSameFlagsAndSigintExitsZero) {
  ServerProcess server({"-c", "256", "-np", "2", "-cb", "--temp", "0", "-n", "3", "--host", "127.0.0.1", "-to", "30"}, {},
                       true, true);
  auto cli = server.client();
  const json r = post_json(cli, "/completion", {{"prompt", kPrompt}});
  EXPECT_EQ(r["tokens_predicted"], 3) << "-n is the default token limit";
  EXPECT_EQ(get_json(cli, "/props")["total_slots"], 2);
  kill(server.pid(), SIGINT);
  EXPECT_EQ(server.terminate(), 0) << server.log();
}

TEST(ServerEndpoints, SigtermFinishesInFlightStreamsAndExitsZero) {
  ServerProcess server({"-c", "256", "--shutdown-grace", "30"});
  StreamResult result;
  std::thread client([&] {
    result = stream_post(server.port(), "/v1/completions",
                         {{"prompt", kPrompt}, {"max_tokens", 40}, {"temperature", 0}, {"stream", true},
                          {"stream_options", {{"include_usage", true}}}});
  });
  // Signal once the stream is under way.
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    auto cli = server.client();
    const json slots = get_json(cli, "/slots");
    if (slots.is_array() && !slots.empty() && slots[0]["is_processing"].get<bool>()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const pid_t pid = server.pid();
  kill(pid, SIGTERM);
  client.join();
  EXPECT_EQ(server.terminate(), 0) << server.log();
  ASSERT_FALSE(result.data.empty());
  EXPECT_EQ(result.data.back(), "[DONE]") << "the in-flight stream finished within the grace period";
  json usage;
  std::string finish;
  join_openai(result, false, &usage, &finish);
  EXPECT_EQ(usage["completion_tokens"], 40);
}

}  // namespace
}  // namespace bitnet::testing
