// What OpenAI clients and llama-server clients rely on (the drop-in issue): usage chunks only when
// asked for, n choices, logprobs in OpenAI's and llama-server's shapes (streamed and not), echo,
// model objects, llama-server's context-size error, and no slot held by a client that left.
#include <cmath>
#include <map>
#include <set>

#include "process_runner.h"
#include "server_process.h"

namespace bitnet::testing {
namespace {

const json kChat = {{"messages", {{{"role", "user"}, {"content", "Hello"}}}}};

json chat(const json& extra) {
  json b = kChat;
  b.update(extra);
  return b;
}

std::vector<json> parse_chunks(const StreamResult& s) {
  std::vector<json> out;
  for (const std::string& d : s.data)
    if (d != "[DONE]") out.push_back(json::parse(d));
  return out;
}

TEST(OpenAiConformance, StreamsEndWithAUsageChunkOnlyWhenAskedFor) {
  ServerProcess server({"-c", "256"});
  for (const char* path : {"/v1/chat/completions", "/v1/completions"}) {
    json body = chat({{"max_tokens", 3}, {"stream", true}});
    if (std::string(path) == "/v1/completions") body = {{"prompt", "Hello"}, {"max_tokens", 3}, {"stream", true}};
    const StreamResult plain = stream_post(server.port(), path, body);
    ASSERT_EQ(plain.status, 200);
    EXPECT_EQ(plain.data.back(), "[DONE]");
    for (const json& c : parse_chunks(plain)) {
      ASSERT_FALSE(c["choices"].empty()) << path << ": " << c.dump() << " (choices[0] must exist in every chunk)";
      EXPECT_FALSE(c.contains("usage")) << c.dump();
      EXPECT_EQ(c["system_fingerprint"], "b-bitnet-cpp");
    }
    body["stream_options"] = {{"include_usage", true}};
    const std::vector<json> with = parse_chunks(stream_post(server.port(), path, body));
    ASSERT_GE(with.size(), 2u);
    EXPECT_TRUE(with.back()["choices"].empty());
    EXPECT_EQ(with.back()["usage"]["completion_tokens"], 3);
    for (size_t i = 0; i + 1 < with.size(); ++i) EXPECT_TRUE(with[i]["usage"].is_null()) << with[i].dump();
  }
}

TEST(OpenAiConformance, NullModelRefusalFingerprintAndModelObjects) {
  ServerProcess server({"-c", "256"});
  auto cli = server.client();
  int status = 0;
  const json r = post_json(cli, "/v1/chat/completions", chat({{"model", nullptr}, {"max_tokens", 2}}), &status);
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_TRUE(r["choices"][0]["message"].contains("refusal"));
  EXPECT_TRUE(r["choices"][0]["message"]["refusal"].is_null());
  EXPECT_EQ(r["system_fingerprint"], "b-bitnet-cpp");
  const std::string id = get_json(cli, "/v1/models")["data"][0]["id"];
  const json one = get_json(cli, "/v1/models/" + id);
  EXPECT_EQ(one["id"], id);
  EXPECT_EQ(one["object"], "model");
  auto missing = cli.Get("/v1/models/no-such-model");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST(OpenAiConformance, SeveralChoicesFromOnePrompt) {
  ServerProcess server({"-c", "512", "-np", "2"});
  auto cli = server.client();
  const json r = post_json(cli, "/v1/chat/completions", chat({{"n", 3}, {"max_tokens", 6}, {"temperature", 1.5}, {"seed", 11}}));
  ASSERT_EQ(r["choices"].size(), 3u) << r.dump();
  std::set<std::string> texts;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r["choices"][i]["index"], i);
    texts.insert(r["choices"][i]["message"]["content"].get<std::string>());
  }
  EXPECT_GT(texts.size(), 1u) << "choices are sampled with their own seeds";
  EXPECT_EQ(r["usage"]["completion_tokens"], 18);
  // Greedy: every choice is the same text, and the same as n = 1.
  const json greedy = post_json(cli, "/v1/completions", {{"prompt", "Hello"}, {"n", 2}, {"max_tokens", 5}, {"temperature", 0}});
  const json single = post_json(cli, "/v1/completions", {{"prompt", "Hello"}, {"max_tokens", 5}, {"temperature", 0}});
  EXPECT_EQ(greedy["choices"][0]["text"], single["choices"][0]["text"]);
  EXPECT_EQ(greedy["choices"][1]["text"], single["choices"][0]["text"]);
  // Streamed: every index ends with its own finish_reason, and the deltas add up to the same texts.
  const std::vector<json> chunks =
      parse_chunks(stream_post(server.port(), "/v1/completions",
                               {{"prompt", "Hello"}, {"n", 2}, {"max_tokens", 5}, {"temperature", 0}, {"stream", true}}));
  std::map<int, std::string> streamed;
  std::map<int, int> finishes;
  for (const json& c : chunks) {
    const json& ch = c["choices"][0];
    streamed[ch["index"].get<int>()] += ch["text"].get<std::string>();
    if (!ch["finish_reason"].is_null()) finishes[ch["index"].get<int>()] += 1;
  }
  EXPECT_EQ(streamed[0], single["choices"][0]["text"]);
  EXPECT_EQ(streamed[1], single["choices"][0]["text"]);
  EXPECT_EQ(finishes, (std::map<int, int>{{0, 1}, {1, 1}}));
  int status = 0;
  post_json(cli, "/v1/completions", {{"prompt", "x"}, {"n", 17}}, &status);
  EXPECT_EQ(status, 400);
}

TEST(OpenAiConformance, ChatLogprobsStreamedAndNot) {
  ServerProcess server({"-c", "256"});
  auto cli = server.client();
  const json body = chat({{"max_tokens", 4}, {"temperature", 0}, {"logprobs", true}, {"top_logprobs", 3}});
  const json r = post_json(cli, "/v1/chat/completions", body);
  const json& content = r["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 4u) << r.dump();
  std::string text;
  for (const json& e : content) {
    ASSERT_EQ(e["top_logprobs"].size(), 3u);
    EXPECT_EQ(e["top_logprobs"][0]["token"], e["token"]) << "greedy: the most probable token";
    EXPECT_LE(e["logprob"].get<double>(), 0.0);
    EXPECT_FALSE(e.contains("id")) << "OpenAI's shape has no ids";
    text += e["token"].get<std::string>();
  }
  EXPECT_EQ(text, r["choices"][0]["message"]["content"]);
  json streamed_body = body;
  streamed_body["stream"] = true;
  std::string streamed;
  int with_logprobs = 0;
  for (const json& c : parse_chunks(stream_post(server.port(), "/v1/chat/completions", streamed_body))) {
    const json& lp = c["choices"][0]["logprobs"];
    if (lp.is_null()) continue;
    ++with_logprobs;
    ASSERT_EQ(lp["content"].size(), 1u);
    EXPECT_EQ(lp["content"][0]["logprob"], content[size_t(with_logprobs - 1)]["logprob"]);
    streamed += lp["content"][0]["token"].get<std::string>();
  }
  EXPECT_EQ(with_logprobs, 4);
  EXPECT_EQ(streamed, text);
  // Without logprobs: null; top_logprobs without logprobs: 400.
  EXPECT_TRUE(post_json(cli, "/v1/chat/completions", chat({{"max_tokens", 1}}))["choices"][0]["logprobs"].is_null());
  int status = 0;
  post_json(cli, "/v1/chat/completions", chat({{"max_tokens", 1}, {"top_logprobs", 2}}), &status);
  EXPECT_EQ(status, 400);
}

TEST(OpenAiConformance, CompletionsLogprobsEchoAndSuffix) {
  ServerProcess server({"-c", "256"});
  auto cli = server.client();
  const json r = post_json(cli, "/v1/completions", {{"prompt", "Hello"}, {"max_tokens", 3}, {"temperature", 0}, {"logprobs", 2}});
  const json& lp = r["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 3u) << r.dump();
  ASSERT_EQ(lp["token_logprobs"].size(), 3u);
  ASSERT_EQ(lp["top_logprobs"].size(), 3u);
  EXPECT_EQ(lp["text_offset"][0], 0);
  for (size_t i = 0; i < 3; ++i) {
    if (i > 0) {
      EXPECT_GT(lp["text_offset"][i].get<int>(), lp["text_offset"][i - 1].get<int>()) << "byte offsets";
    }
    EXPECT_EQ(lp["top_logprobs"][i].size(), 2u);
    EXPECT_EQ(lp["top_logprobs"][i][lp["tokens"][i].get<std::string>()], lp["token_logprobs"][i]);
  }
  const json echo = post_json(cli, "/v1/completions", {{"prompt", "Hello"}, {"max_tokens", 3}, {"temperature", 0}, {"echo", true}});
  EXPECT_EQ(echo["choices"][0]["text"], "Hello" + r["choices"][0]["text"].get<std::string>());
  int status = 0;
  post_json(cli, "/v1/completions", {{"prompt", "Hello"}, {"echo", true}, {"logprobs", 1}}, &status);
  EXPECT_EQ(status, 400) << "echo with logprobs is refused, not ignored";
  post_json(cli, "/v1/completions", {{"prompt", "Hello"}, {"suffix", "world"}}, &status);
  EXPECT_EQ(status, 400) << "suffix is refused, not ignored";
}

TEST(OpenAiConformance, NativeCompletionFieldsAndContextErrors) {
  ServerProcess server({"-c", "64", "-s", "7"});
  auto cli = server.client();
  const json r = post_json(cli, "/completion", {{"prompt", "Hello"}, {"n_predict", 3}});
  EXPECT_TRUE(r["has_new_line"].is_boolean());
  EXPECT_EQ(r["generation_settings"]["n_ctx"], 64);
  EXPECT_EQ(r["truncated"], false);
  EXPECT_EQ(get_json(cli, "/props")["default_generation_settings"]["params"]["seed"], 7);
  const json full = post_json(cli, "/completion", {{"prompt", "Hello"}, {"n_predict", 500}, {"ignore_eos", true}});
  EXPECT_EQ(full["truncated"], true) << "the slot's context filled: " << full.dump().substr(0, 300);
  int status = 0;
  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "word ";
  const json e = post_json(cli, "/completion", {{"prompt", long_prompt}}, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(e["error"]["type"], "exceed_context_size_error");
  EXPECT_EQ(e["error"]["n_ctx"], 64);
  EXPECT_GT(e["error"]["n_prompt_tokens"].get<int>(), 64);
}

TEST(OpenAiConformance, AClientThatLeavesANonStreamingRequestFreesItsSlot) {
  ServerProcess server({"-c", "4096", "-np", "1"});
  const json body = {{"prompt", "Hello"}, {"n_predict", 4000}, {"ignore_eos", true}};
  const std::string dump = body.dump();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(server.port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string req = "POST /completion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(dump.size()) + "\r\n\r\n" + dump;
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), ssize_t(req.size()));
  auto cli = server.client();
  bool busy = false;
  for (int i = 0; i < 100 && !busy; ++i) {  // wait until the slot works on it
    busy = get_json(cli, "/slots")[0]["is_processing"].get<bool>();
    if (!busy) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(busy);
  ::close(fd);
  const auto left = Clock::now();
  bool freed = false;
  while (!freed && Clock::now() - left < std::chrono::seconds(5)) {
    freed = !get_json(cli, "/slots")[0]["is_processing"].get<bool>();
    if (!freed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(freed) << "the slot was still busy 5 s after its client left";
  const json next = post_json(cli, "/completion", {{"prompt", "Hi"}, {"n_predict", 2}});
  EXPECT_EQ(next["tokens_predicted"], 2);
}

TEST(OpenAiConformance, CorsPreflightAnswersLikeLlamaServerWithoutAKey) {
  ServerProcess server({"-c", "256"});
  const std::string reply = raw_exchange(server.port(),
                                         "OPTIONS /completions HTTP/1.1\r\nHost: x\r\nOrigin: web.mydomain.fr\r\n"
                                         "Access-Control-Request-Method: POST\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  EXPECT_NE(reply.find("Access-Control-Allow-Origin: web.mydomain.fr\r\n"), std::string::npos) << reply;
  EXPECT_NE(reply.find("Access-Control-Allow-Credentials: true\r\n"), std::string::npos);
  EXPECT_NE(reply.find("Access-Control-Allow-Methods: GET, POST\r\n"), std::string::npos);
  EXPECT_NE(reply.find("Access-Control-Allow-Headers: *\r\n"), std::string::npos);
}

// llama-server's shapes its test suite checks: prompt forms, text logit_bias, prefill, model names.
TEST(OpenAiConformance, LlamaServerPromptFormsAndShapes) {
  ServerProcess server({"-c", "512", "-np", "2", "--alias", "tinyllama-2,fim,code", "--tags", "chat,small",
                        "--api-key", "k3y-k3y-k3y", "--chat-template", "chatml"});
  httplib::Client open("127.0.0.1", server.port());
  auto models = open.Get("/models");  // public, as llama-server's
  ASSERT_TRUE(models);
  ASSERT_EQ(models->status, 200);
  const json model = json::parse(models->body)["data"][0];
  EXPECT_EQ(model["id"], "code") << "the first alias in sorted order";
  EXPECT_EQ(model["aliases"], json({"code", "fim", "tinyllama-2"}));
  EXPECT_EQ(model["tags"], json({"chat", "small"}));
  auto cli = server.client("k3y-k3y-k3y");
  const json base = {{"n_predict", 3}, {"temperature", 0}};
  auto native = [&](const json& prompt) {
    json b = base;
    b["prompt"] = prompt;
    return post_json(cli, "/completion", b);
  };
  const std::string text = native("And it came")["content"];
  EXPECT_EQ(native(json{{"prompt_string", "And it came"}})["content"], text);
  const json ids = post_json(cli, "/tokenize", {{"content", "And it came"}, {"add_special", true}})["tokens"];
  const json list = native(json::array({ids, "And it came"}));
  ASSERT_TRUE(list.is_array()) << list.dump().substr(0, 300);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["content"], text);
  EXPECT_EQ(list[1]["content"], text);
  EXPECT_EQ(list[1]["index"], 1);
  json mixed = json::array({ids[0], ids[1]});  // ids mixed with text: the text tokenized in place
  mixed.push_back(" it came");
  EXPECT_EQ(native(mixed)["content"], text);
  const json settings = native("And it came")["generation_settings"];
  EXPECT_EQ(settings["n_predict"], 3) << "the request's own settings";
  EXPECT_EQ(settings["temperature"], 0.0);
  const json two = post_json(cli, "/v1/completions", {{"prompt", {"And it came", "And it came"}}, {"max_tokens", 3},
                                                      {"temperature", 0}, {"echo", true}});
  ASSERT_EQ(two["choices"].size(), 2u);
  EXPECT_EQ(two["choices"][1]["index"], 1);
  EXPECT_EQ(two["choices"][1]["text"], "And it came" + text);
  // logit_bias keyed by text bans that text's tokens.
  const std::string first_piece = post_json(cli, "/completion", {{"prompt", "And it came"}, {"n_predict", 1}, {"temperature", 0}})["content"];
  json banned = base;
  banned["prompt"] = "And it came";
  banned["logit_bias"] = json::array({json::array({first_piece, false})});
  EXPECT_NE(post_json(cli, "/completion", banned)["content"].get<std::string>().rfind(first_piece, 0), 0u);
  // Chat: --chat-template chatml, an assistant prefill continues, two at the end are refused.
  const json rendered = post_json(cli, "/apply-template", {{"messages", {{{"role", "user"}, {"content", "Hi"}},
                                                                         {{"role", "assistant"}, {"content", "And"}}}}});
  EXPECT_EQ(rendered["prompt"], "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nAnd");
  int status = 0;
  post_json(cli, "/v1/chat/completions",
            {{"messages", {{{"role", "user"}, {"content", "x"}}, {{"role", "assistant"}, {"content", "y"}},
                           {{"role", "assistant"}, {"content", "z"}}}}},
            &status);
  EXPECT_EQ(status, 400);
  // Streams: the chat role chunk has content null; native chunks carry their token id.
  const std::vector<json> chunks = parse_chunks(stream_post(server.port(), "/v1/chat/completions",
                                                            chat({{"max_tokens", 2}, {"stream", true}}),
                                                            nullptr, {{"Authorization", "Bearer k3y-k3y-k3y"}}));
  ASSERT_FALSE(chunks.empty());
  EXPECT_TRUE(chunks[0]["choices"][0]["delta"]["content"].is_null()) << chunks[0].dump();
  json native_stream = base;
  native_stream["prompt"] = "And it came";
  native_stream["stream"] = true;
  const std::vector<json> pieces = parse_chunks(stream_post(server.port(), "/completion", native_stream, nullptr,
                                                            {{"Authorization", "Bearer k3y-k3y-k3y"}}));
  ASSERT_GE(pieces.size(), 2u);
  EXPECT_EQ(pieces[0]["tokens"].size(), 1u) << pieces[0].dump();
  const ProcessResult bad = run_process({bitnet_bin(), "serve", "-m", tiny_model(), "--chat-template", "command-r"});
  EXPECT_EQ(bad.code, 2) << bad.err;
  EXPECT_NE(bad.err.find("Jinja templates are not executed"), std::string::npos) << bad.err;
}

// Invalid response_format types are refused (structured output itself: test_structured_output.cpp);
// response_fields picks fields as llama-server does.
TEST(OpenAiConformance, InvalidResponseFormatIsRefusedAndResponseFieldsPick) {
  ServerProcess server({"-c", "256"});
  auto cli = server.client();
  int status = 0;
  for (const json& extra : {json{{"response_format", {{"type", "sound"}}}}, json{{"response_format", 3}},
                            json{{"response_format", {{"type", "json_object"}, {"schema", {{"type", "hiccup"}}}}}}}) {
    const json r = post_json(cli, "/v1/chat/completions", chat(extra), &status);
    EXPECT_EQ(status, 400) << extra.dump() << " → " << r.dump();
  }
  post_json(cli, "/v1/chat/completions", chat({{"max_tokens", 1}, {"response_format", {{"type", "text"}}}, {"tools", json::array()}}), &status);
  EXPECT_EQ(status, 200);
  const json picked = post_json(cli, "/completion", {{"prompt", "Hello"}, {"n_predict", 2},
                                                     {"response_fields", {"content", "generation_settings/n_predict", "nope/x"}}});
  EXPECT_EQ(picked.size(), 2u) << picked.dump();
  EXPECT_EQ(picked["generation_settings/n_predict"], 2);
  EXPECT_TRUE(picked["content"].is_string());
}

// The flags llama.cpp's server test suite starts llama-server with.
TEST(OpenAiConformance, LlamaServerLaunchFlags) {
  ServerProcess server({"-c", "256", "--greedy", "--offline", "--no-slots", "--alias", "tinyllama-2", "--no-jinja",
                        "-fa", "off", "-ub", "64", "--no-webui", "--kv-unified"},
                       {}, true, /*llama_alias=*/true);
  auto cli = server.client();
  EXPECT_EQ(get_json(cli, "/v1/models")["data"][0]["id"], "tinyllama-2");
  const json r = post_json(cli, "/v1/chat/completions", chat({{"max_tokens", 2}}));
  EXPECT_EQ(r["model"], "tinyllama-2");
  EXPECT_EQ(get_json(cli, "/props")["default_generation_settings"]["params"]["temperature"], 0.0) << "--greedy";
  auto slots = cli.Get("/slots");
  ASSERT_TRUE(slots);
  EXPECT_EQ(slots->status, 501);
  auto page = cli.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 404);
  EXPECT_NE(server.log().find("note: --offline has no effect here"), std::string::npos);
  for (const char* refused : {"--reranking", "--lora", "--hf-repo"}) {
    std::vector<std::string> args = {bitnet_bin(), "serve", "-m", tiny_model(), refused};
    if (std::string(refused) != "--reranking") args.push_back("x");
    const ProcessResult p = run_process(args);
    EXPECT_EQ(p.code, 2) << refused << ": " << p.err;
    EXPECT_NE(p.err.find("is not supported"), std::string::npos) << p.err;
  }
}

}  // namespace
}  // namespace bitnet::testing
