// Embeddings: /v1/embeddings (OpenAI) and llama-server's /embedding(s) on the real server — every
// input form, base64, dimensions, the errors, an embedding model, concurrency with generation,
// client disconnects, metrics and telemetry.
#include <cmath>
#include <cstring>

#include "gguf_edit.h"
#include "process_runner.h"
#include "server_process.h"

namespace bitnet::testing {
namespace {

double l2(const json& v) {
  double s = 0;
  for (const auto& x : v) s += x.get<double>() * x.get<double>();
  return std::sqrt(s);
}

double metric(httplib::Client& cli, const std::string& name) {
  auto r = cli.Get("/metrics");
  if (!r || r->status != 200) return -1;
  const std::regex re("\n" + name + " ([0-9.e+-]+)\n");
  std::smatch m;
  return std::regex_search(r->body, m, re) ? std::stod(m[1].str()) : -1;
}

bool eventually(const std::function<bool()>& pred, std::chrono::seconds limit = std::chrono::seconds(60)) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::vector<float> decode_base64_floats(const std::string& s) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::vector<uint8_t> bytes;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    if (c == '=') break;
    const int v = value(c);
    EXPECT_GE(v, 0) << "not base64: " << c;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push_back(uint8_t((acc >> bits) & 0xff));
    }
  }
  EXPECT_EQ(bytes.size() % 4, 0u);
  std::vector<float> out(bytes.size() / 4);
  for (size_t i = 0; i < out.size(); ++i) {
    const uint32_t u = uint32_t(bytes[4 * i]) | uint32_t(bytes[4 * i + 1]) << 8 | uint32_t(bytes[4 * i + 2]) << 16 |
                       uint32_t(bytes[4 * i + 3]) << 24;  // little-endian
    std::memcpy(&out[i], &u, 4);
  }
  return out;
}

int64_t n_embd(httplib::Client& cli) { return get_json(cli, "/v1/models")["data"][0]["meta"]["n_embd"].get<int64_t>(); }

void expect_close(const json& a, const json& b, double tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i].get<double>(), b[i].get<double>(), tol) << what << " [" << i << "]";
}

TEST(ServerEmbeddings, EveryInputFormGivesNormalizedVectorsAndUsage) {
  ServerProcess server({"--embeddings", "--pooling", "last", "-np", "4", "-c", "1024"});
  auto cli = server.client();
  const int64_t d = n_embd(cli);
  ASSERT_GT(d, 0);
  struct Case {
    json input;
    size_t n;
    int64_t tokens;  // -1: text (counted by the server)
  };
  const std::vector<Case> cases = {
      {"The quick brown fox", 1, -1},
      {json::array({"first text", "second, longer text here", "third"}), 3, -1},
      {json::array({1, 2, 3, 4}), 1, 4},
      {json::array({json::array({5, 6}), json::array({7, 8, 9})}), 2, 5},
      {json::array({"text", json::array({10, 11, 12})}), 2, -1},
      {json::array({13, "mixed", 14}), 1, -1},
  };
  for (const Case& c : cases) {
    int status = 0;
    const json r = post_json(cli, "/v1/embeddings", {{"input", c.input}, {"model", "text-embedding-3-small"}}, &status);
    ASSERT_EQ(status, 200) << c.input << ": " << r;
    EXPECT_EQ(r["object"], "list");
    EXPECT_EQ(r["model"], "text-embedding-3-small") << "the requested model is echoed";
    ASSERT_EQ(r["data"].size(), c.n) << c.input;
    for (size_t i = 0; i < c.n; ++i) {
      const json& e = r["data"][i];
      EXPECT_EQ(e["object"], "embedding");
      EXPECT_EQ(e["index"], i);
      ASSERT_EQ(e["embedding"].size(), size_t(d));
      EXPECT_NEAR(l2(e["embedding"]), 1.0, 1e-4);
    }
    EXPECT_EQ(r["usage"]["prompt_tokens"], r["usage"]["total_tokens"]);
    if (c.tokens >= 0) {
      EXPECT_EQ(r["usage"]["prompt_tokens"], c.tokens) << c.input;
    }
    EXPECT_GE(r["usage"]["prompt_tokens"].get<int64_t>(), int64_t(c.n));
  }
  // Without "model" the server's own name comes back.
  const json plain = post_json(cli, "/v1/embeddings", {{"input", "x y"}});
  EXPECT_EQ(plain["model"], get_json(cli, "/v1/models")["data"][0]["id"]);
  // An input's vector does not depend on what it was batched with, nor on the request form.
  const json alone = post_json(cli, "/v1/embeddings", {{"input", json::array({5, 6})}});
  const json many = post_json(cli, "/v1/embeddings",
                              {{"input", json::array({json::array({1, 2, 3}), json::array({5, 6}), json::array({9})})}});
  expect_close(alone["data"][0]["embedding"], many["data"][1]["embedding"], 1e-4, "batched vs alone");
  const json texts = post_json(cli, "/v1/embeddings", {{"input", json::array({"alpha beta", "gamma", "alpha beta"})}});
  const json one = post_json(cli, "/v1/embeddings", {{"input", "alpha beta"}});
  expect_close(texts["data"][0]["embedding"], one["data"][0]["embedding"], 1e-4, "text batched vs alone");
  expect_close(texts["data"][0]["embedding"], texts["data"][2]["embedding"], 1e-4, "same text twice");
}

TEST(ServerEmbeddings, Base64RoundTripsTheFloats) {
  ServerProcess server({"--embeddings", "--pooling", "mean"});
  auto cli = server.client();
  const json floats = post_json(cli, "/v1/embeddings", {{"input", json::array({"Test base64 output", "another"})}});
  const json b64 = post_json(cli, "/v1/embeddings",
                             {{"input", json::array({"Test base64 output", "another"})}, {"encoding_format", "base64"}});
  const json explicit_float =
      post_json(cli, "/v1/embeddings", {{"input", json::array({"Test base64 output", "another"})}, {"encoding_format", "float"}});
  ASSERT_EQ(b64["data"].size(), 2u) << b64;
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(b64["data"][i]["embedding"].is_string());
    const std::vector<float> decoded = decode_base64_floats(b64["data"][i]["embedding"].get<std::string>());
    const json& ref = floats["data"][i]["embedding"];
    ASSERT_EQ(decoded.size(), ref.size());
    for (size_t k = 0; k < decoded.size(); ++k) EXPECT_EQ(decoded[k], ref[k].get<float>()) << k;
    EXPECT_EQ(explicit_float["data"][i]["embedding"], ref);
  }
  EXPECT_EQ(b64["usage"], floats["usage"]);
}

TEST(ServerEmbeddings, DimensionsTruncateThenRenormalize) {
  ServerProcess server({"--embeddings"});
  auto cli = server.client();
  const int64_t d = n_embd(cli);
  const json full = post_json(cli, "/v1/embeddings", {{"input", "some words to embed"}});
  for (int64_t dims : {int64_t(1), int64_t(8), d / 2, d}) {
    int status = 0;
    const json r = post_json(cli, "/v1/embeddings", {{"input", "some words to embed"}, {"dimensions", dims}}, &status);
    ASSERT_EQ(status, 200) << r;
    const json& v = r["data"][0]["embedding"];
    ASSERT_EQ(v.size(), size_t(dims));
    EXPECT_NEAR(l2(v), 1.0, 1e-4);
    // The full vector's first `dims` values, rescaled to unit length.
    json head = json::array();
    for (int64_t k = 0; k < dims; ++k) head.push_back(full["data"][0]["embedding"][size_t(k)]);
    const double n = l2(head);
    for (auto& x : head) x = x.get<double>() / n;
    expect_close(v, head, 1e-4, "dimensions " + std::to_string(dims));
  }
  // base64 with dimensions: the same values.
  const json b = post_json(cli, "/v1/embeddings", {{"input", "some words to embed"}, {"dimensions", 8}, {"encoding_format", "base64"}});
  EXPECT_EQ(decode_base64_floats(b["data"][0]["embedding"].get<std::string>()).size(), 8u);
  for (const json& bad : {json(0), json(-3), json(d + 1), json("8"), json(2.5)}) {
    int status = 0;
    const json r = post_json(cli, "/v1/embeddings", {{"input", "words"}, {"dimensions", bad}}, &status);
    EXPECT_EQ(status, 400) << bad;
    EXPECT_EQ(r["error"]["type"], "invalid_request_error");
    EXPECT_NE(r["error"]["message"].get<std::string>().find("dimensions"), std::string::npos) << r;
  }
}

TEST(ServerEmbeddings, BadRequestsGetSpecific400s) {
  ServerProcess server({"--embeddings", "-np", "2", "-c", "256"});  // 128 tokens per input
  auto cli = server.client();
  const int64_t n_vocab = get_json(cli, "/v1/models")["data"][0]["meta"]["n_vocab"].get<int64_t>();
  auto expect_400 = [&](const json& body, const std::string& needle, const std::string& type = "invalid_request_error") {
    int status = 0;
    const json r = post_json(cli, "/v1/embeddings", body, &status);
    EXPECT_EQ(status, 400) << body.dump().substr(0, 200) << " → " << r;
    EXPECT_EQ(r["error"]["code"], 400);
    EXPECT_EQ(r["error"]["type"], type) << r;
    EXPECT_NE(r["error"]["message"].get<std::string>().find(needle), std::string::npos)
        << "'" << needle << "' not in " << r["error"]["message"];
    return r;
  };
  expect_400({{"input", "x"}, {"encoding_format", "binary"}}, "encoding_format");
  expect_400({{"input", "x"}, {"encoding_format", 1}}, "encoding_format");
  expect_400({{"input", ""}}, "empty");
  expect_400({{"input", json::array()}}, "empty");
  expect_400({{"input", json::array({json::array()})}}, "empty");
  expect_400({{"input", json::array({"ok", ""})}}, "empty");
  expect_400({{"input", json::array({1, -1})}}, "vocabulary");
  expect_400({{"input", json::array({json::array({1}), json::array({n_vocab})})}}, "vocabulary");
  expect_400({{"input", json::array({1.5})}}, "input");
  expect_400({{"input", 42}}, "input");
  expect_400({{"input", {{"a", 1}}}}, "input");
  expect_400({{"model", "m"}}, "'input' or 'content' is required");
  expect_400({{"input", "x"}, {"model", 7}}, "model");
  expect_400({{"input", "x"}, {"embd_normalize", "two"}}, "embd_normalize");
  json too_many = json::array();
  for (int i = 0; i < 2049; ++i) too_many.push_back("x");
  expect_400({{"input", too_many}}, "at most 2048");
  // Longer than a slot's context: both lengths named, llama-server's "too large" wording.
  json long_ids = json::array();
  for (int i = 0; i < 200; ++i) long_ids.push_back(1 + i % 50);
  const json r = expect_400({{"input", json::array({json::array({1, 2}), long_ids})}}, "too large", "exceed_context_size_error");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("200"), std::string::npos) << r;
  EXPECT_NE(r["error"]["message"].get<std::string>().find("128"), std::string::npos) << r;
  EXPECT_EQ(r["error"]["n_prompt_tokens"], 200);
  EXPECT_EQ(r["error"]["n_ctx"], 128);
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += "word ";
  expect_400({{"input", long_text}}, "too large", "exceed_context_size_error");
  // Invalid JSON and a non-object body.
  auto raw = cli.Post("/v1/embeddings", "{nope", "application/json");
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->status, 400);
  // The server is fine afterwards.
  int status = 0;
  post_json(cli, "/v1/embeddings", {{"input", "still working"}}, &status);
  EXPECT_EQ(status, 200);
}

TEST(ServerEmbeddings, WithoutTheFlagEveryEmbeddingEndpointAnswers501) {
  ServerProcess server({});
  auto cli = server.client();
  for (const char* path : {"/v1/embeddings", "/embeddings", "/embedding"}) {
    int status = 0;
    const json r = post_json(cli, path, {{"input", "hello"}}, &status);
    EXPECT_EQ(status, 501) << path;
    EXPECT_EQ(r["error"]["type"], "not_supported_error");
    EXPECT_EQ(r["error"]["message"], "This server does not support embeddings. Start it with `--embeddings`");
  }
}

TEST(ServerEmbeddings, NativeEndpointsAndPoolingNone) {
  {
    ServerProcess server({"--embeddings", "--pooling", "none"});
    auto cli = server.client();
    const int64_t d = n_embd(cli);
    int status = 0;
    // OpenAI's endpoint needs one vector per input.
    const json oai = post_json(cli, "/v1/embeddings", {{"input", "hello hello hello"}}, &status);
    EXPECT_EQ(status, 400);
    EXPECT_NE(oai["error"]["message"].get<std::string>().find("none"), std::string::npos) << oai;
    // llama-server's: one row per token, not normalized.
    for (const char* path : {"/embeddings", "/embedding"}) {
      const json r = post_json(cli, path, {{"input", json::array({json::array({4, 5, 6}), json::array({7})})}}, &status);
      ASSERT_EQ(status, 200) << r;
      ASSERT_TRUE(r.is_array());
      ASSERT_EQ(r.size(), 2u);
      EXPECT_EQ(r[0]["index"], 0);
      EXPECT_EQ(r[1]["index"], 1);
      ASSERT_EQ(r[0]["embedding"].size(), 3u);
      ASSERT_EQ(r[1]["embedding"].size(), 1u);
      for (const json& row : r[0]["embedding"]) EXPECT_EQ(row.size(), size_t(d));
    }
    const json c = post_json(cli, "/embedding", {{"content", "hello world"}}, &status);
    ASSERT_EQ(status, 200);
    EXPECT_GE(c[0]["embedding"].size(), 2u);
    post_json(cli, "/embedding", {{"content", "hello"}, {"dimensions", 4}}, &status);
    EXPECT_EQ(status, 400);
  }
  ServerProcess server({"--embeddings", "--pooling", "mean"});
  auto cli = server.client();
  int status = 0;
  // Pooled: one row, normalized per embd_normalize (default L2; 1: taxicab; -1: none).
  const json l2r = post_json(cli, "/embedding", {{"content", "pooled text"}}, &status);
  ASSERT_EQ(status, 200) << l2r;
  ASSERT_EQ(l2r.size(), 1u);
  ASSERT_EQ(l2r[0]["embedding"].size(), 1u);
  EXPECT_NEAR(l2(l2r[0]["embedding"][0]), 1.0, 1e-4);
  const json l1r = post_json(cli, "/embeddings", {{"content", "pooled text"}, {"embd_normalize", 1}});
  double l1 = 0;
  for (const auto& x : l1r[0]["embedding"][0]) l1 += std::fabs(x.get<double>());
  EXPECT_NEAR(l1, 1.0, 1e-4);
  const json raw = post_json(cli, "/embeddings", {{"content", "pooled text"}, {"embd_normalize", -1}});
  const double n = l2(raw[0]["embedding"][0]);
  ASSERT_GT(n, 0);
  json scaled = json::array();
  for (const auto& x : raw[0]["embedding"][0]) scaled.push_back(x.get<double>() / n);
  expect_close(scaled, l2r[0]["embedding"][0], 1e-4, "raw / |raw| == normalized");
  // "content" on the OpenAI path answers in the native format, as llama-server does.
  const json native = post_json(cli, "/v1/embeddings", {{"content", "pooled text"}});
  ASSERT_TRUE(native.is_array()) << native;
  // embd_normalize applies to the OpenAI endpoint too.
  const json oai_raw = post_json(cli, "/v1/embeddings", {{"input", "pooled text"}, {"embd_normalize", -1}});
  expect_close(oai_raw["data"][0]["embedding"], raw[0]["embedding"][0], 1e-5, "OpenAI vs native, unnormalized");
}

TEST(ServerEmbeddings, FlagsAndEnvironment) {
  for (const char* bad : {"rank", "max", "sum"}) {
    const ProcessResult p = run_process({bitnet_bin(), "serve", "-m", tiny_model(), "--embeddings", "--pooling", bad});
    EXPECT_EQ(p.code, 2) << bad << ": " << p.err;
    EXPECT_NE(p.err.find("--pooling"), std::string::npos) << p.err;
    if (std::string(bad) == "rank") {
      EXPECT_NE(p.err.find("rerank"), std::string::npos) << p.err;
    }
  }
  const ProcessResult dry = run_process({bitnet_bin(), "serve", "-m", tiny_model(), "--embedding", "--pooling", "cls",
                                         "--dry-run", "--json"});
  ASSERT_EQ(dry.code, 0) << dry.err;
  const json config = json::parse(dry.out)["config"];
  EXPECT_EQ(config["embeddings"], true);
  EXPECT_EQ(config["pooling"], "cls");
  // llama-server's environment names.
  ServerProcess server({}, {"LLAMA_ARG_EMBEDDINGS=1", "LLAMA_ARG_POOLING=mean"});
  auto cli = server.client();
  int status = 0;
  const json r = post_json(cli, "/v1/embeddings", {{"input", "from the environment"}}, &status);
  EXPECT_EQ(status, 200) << r;
  EXPECT_NE(server.log().find("mean pooling"), std::string::npos) << server.log();
  EXPECT_EQ(server.log().find("is not a setting of this server"), std::string::npos) << server.log();
}

// A model whose file names a pooling type is an embedding model: embeddings without the flag,
// every generation endpoint refused with 400.
TEST(ServerEmbeddings, EmbeddingModelRefusesGeneration) {
  const std::string path = (temp_dir() / "embedding-model.gguf").string();
  {
    const std::vector<uint8_t> bytes = edited_gguf(tiny_model(), [](std::vector<GgufKV>& kvs, std::vector<TensorCopy>&) {
      GgufValue v;
      v.type = GgufValueType::UINT32;
      v.value = uint64_t(1);  // mean
      kvs.push_back({"bitnet-b1.58.pooling_type", v});
    });
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
  ServerProcess server({"-m", path});  // the later -m wins
  auto cli = server.client();
  int status = 0;
  const json e = post_json(cli, "/v1/embeddings", {{"input", json::array({"one", "two"})}}, &status);
  ASSERT_EQ(status, 200) << e << server.log();
  EXPECT_EQ(e["data"].size(), 2u);
  const std::vector<std::pair<std::string, json>> generation = {
      {"/v1/completions", {{"prompt", "hi"}, {"max_tokens", 2}}},
      {"/completion", {{"prompt", "hi"}, {"n_predict", 2}}},
      {"/completions", {{"prompt", "hi"}}},
      {"/v1/chat/completions", {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}}},
      {"/chat/completions", {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}, {"stream", true}}},
  };
  for (const auto& [endpoint, body] : generation) {
    const json r = post_json(cli, endpoint, body, &status);
    EXPECT_EQ(status, 400) << endpoint;
    EXPECT_EQ(r["error"]["type"], "invalid_request_error");
    EXPECT_NE(r["error"]["message"].get<std::string>().find("embedding model"), std::string::npos) << r;
  }
  EXPECT_NE(server.log().find("embedding model"), std::string::npos) << server.log();
}

// The BitNet-embedding presets (qwen3, gemma3 with their real tokenizers): the server's vectors
// are `bitnet embed`'s, and generation is refused.
TEST(ServerEmbeddings, EmbeddingPresetsMatchTheCli) {
  for (const auto& [arch, preset] : {std::pair<std::string, std::string>{"qwen3", "embed-tiny-qwen3"},
                                     {"gemma3", "embed-tiny-gemma3"}}) {
    const std::string model = dummy_model(arch, preset, GgmlType::I2_S);
    ServerProcess server({"-m", model, "-np", "2", "-c", "1024"});
    auto cli = server.client();
    const std::vector<std::string> texts = {"hello world", "A second, somewhat longer input text."};
    int status = 0;
    const json r = post_json(cli, "/v1/embeddings", {{"input", texts}}, &status);
    ASSERT_EQ(status, 200) << r << server.log();
    ASSERT_EQ(r["data"].size(), 2u);
    for (size_t i = 0; i < texts.size(); ++i) {
      const ProcessResult p =
          run_process({bitnet_bin(), "embed", "-m", model, "-t", "1", "-p", texts[i], "--embd-output-format", "json"});
      ASSERT_EQ(p.code, 0) << p.err;
      const json ref = json::parse(p.out)["data"][0]["embedding"];
      expect_close(r["data"][i]["embedding"], ref, 1e-5, preset + " input " + std::to_string(i));
    }
    const json chat = post_json(cli, "/v1/chat/completions",
                                {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}}, &status);
    EXPECT_EQ(status, 400) << chat;
    EXPECT_NE(chat["error"]["message"].get<std::string>().find("embedding model"), std::string::npos) << chat;
  }
}

// Neither kind of request starves the other: a completion finishes while a long embedding request
// is still running, and an embedding request finishes while a long generation is still going.
TEST(ServerEmbeddings, NeitherKindStarvesTheOther) {
  ServerProcess server({"--embeddings", "-np", "1", "-c", "4096", "--metrics", "--max-body", "33554432"});
  auto cli = server.client();
  {
    json ids = json::array();
    for (int i = 0; i < 1000; ++i) ids.push_back(1 + i % 89);
    json input = json::array();
    for (int i = 0; i < 150; ++i) input.push_back(ids);
    std::atomic<bool> embedded{false};
    std::thread big([&] {
      auto c = server.client();
      int status = 0;
      post_json(c, "/v1/embeddings", {{"input", input}}, &status);
      EXPECT_EQ(status, 200);
      embedded = true;
    });
    ASSERT_TRUE(eventually([&] { return metric(cli, "bitnet_embedding_batches_total") >= 1; }));
    int status = 0;
    const json r = post_json(cli, "/v1/completions", {{"prompt", "While embeddings run"}, {"max_tokens", 8},
                                                      {"temperature", 0}, {"ignore_eos", true}}, &status);
    EXPECT_EQ(status, 200) << r;
    EXPECT_EQ(r["usage"]["completion_tokens"], 8);
    EXPECT_FALSE(embedded.load()) << "the completion waited for the whole embedding request";
    big.join();
  }
  {
    std::atomic<bool> generated{false};
    std::thread gen([&] {
      auto c = server.client();
      int status = 0;
      post_json(c, "/v1/completions", {{"prompt", "A long story"}, {"max_tokens", 1500}, {"temperature", 0},
                                       {"ignore_eos", true}}, &status);
      EXPECT_EQ(status, 200);
      generated = true;
    });
    ASSERT_TRUE(eventually([&] { return metric(cli, "bitnet_tokens_predicted_total") >= 8 + 1; }));
    int status = 0;
    const json r = post_json(cli, "/v1/embeddings", {{"input", json::array({"one", "two", "three"})}}, &status);
    EXPECT_EQ(status, 200) << r;
    EXPECT_EQ(r["data"].size(), 3u);
    EXPECT_FALSE(generated.load()) << "the embedding request waited for the whole generation";
    gen.join();
  }
}

TEST(ServerEmbeddings, EmbeddingsAndGenerationInterleaveAndBatch) {
  ServerProcess server({"--embeddings", "-np", "4", "-c", "1024", "--metrics", "--queue-limit", "16"});
  auto cli = server.client();
  std::vector<std::string> prompts, expected_text;
  std::vector<json> expected_vec;
  for (int i = 0; i < 4; ++i) {
    prompts.push_back("Request number " + std::to_string(i) + " is");
    expected_text.push_back(post_json(cli, "/v1/completions", {{"prompt", prompts.back()}, {"max_tokens", 12}, {"temperature", 0}})
                                ["choices"][0]["text"]);
  }
  json inputs = json::array();
  for (int i = 0; i < 6; ++i) inputs.push_back("embedding input " + std::to_string(i));
  for (int i = 0; i < 6; ++i)
    expected_vec.push_back(post_json(cli, "/v1/embeddings", {{"input", inputs[size_t(i)]}})["data"][0]["embedding"]);
  // Many inputs of one request go through the model together: 8 short inputs, 4 per batch.
  const double batches_before = metric(cli, "bitnet_embedding_batches_total");
  const double tokens_before = metric(cli, "bitnet_embedding_tokens_total");
  json eight = json::array();
  for (int i = 0; i < 8; ++i) eight.push_back(json::array({1 + i, 2 + i, 3 + i}));
  const json packed = post_json(cli, "/v1/embeddings", {{"input", eight}});
  ASSERT_EQ(packed["data"].size(), 8u);
  EXPECT_EQ(metric(cli, "bitnet_embedding_batches_total") - batches_before, 2) << "8 inputs on 4 sequences: 2 batches";
  EXPECT_EQ(metric(cli, "bitnet_embedding_tokens_total") - tokens_before, 24);

  const double requests_before = metric(cli, "bitnet_embedding_requests_total");
  std::vector<std::string> texts(4);
  std::vector<json> vecs(12);
  std::vector<int> statuses(16, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      auto c = server.client();
      const json r = post_json(c, "/v1/completions", {{"prompt", prompts[size_t(i)]}, {"max_tokens", 12}, {"temperature", 0}},
                               &statuses[size_t(i)]);
      texts[size_t(i)] = r["choices"][0]["text"];
    });
  for (int i = 0; i < 12; ++i)
    threads.emplace_back([&, i] {
      auto c = server.client();
      const json r = post_json(c, "/v1/embeddings", {{"input", json::array({inputs[size_t(i % 6)], "padding"})}},
                               &statuses[size_t(4 + i)]);
      vecs[size_t(i)] = r["data"][0]["embedding"];
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < statuses.size(); ++i) EXPECT_EQ(statuses[i], 200) << i;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(texts[size_t(i)], expected_text[size_t(i)]) << "completion " << i;
  for (int i = 0; i < 12; ++i) expect_close(vecs[size_t(i)], expected_vec[size_t(i % 6)], 1e-4, "embedding " + std::to_string(i));
  EXPECT_EQ(metric(cli, "bitnet_embedding_requests_total") - requests_before, 12);
  EXPECT_EQ(metric(cli, "bitnet_queue_length"), 0);
}

TEST(ServerEmbeddings, DisconnectedClientCancelsItsInputs) {
  ServerProcess server({"--embeddings", "-np", "1", "-c", "512", "--metrics", "--max-body", "33554432"});
  auto cli = server.client();
  // 2048 inputs of 500 tokens: one per batch, far longer than the client waits.
  json input = json::array();
  json ids = json::array();
  for (int i = 0; i < 500; ++i) ids.push_back(1 + i % 97);
  for (int i = 0; i < 2048; ++i) input.push_back(ids);
  const std::string body = json{{"input", input}}.dump();
  const std::string request = "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
  raw_exchange(server.port(), request, std::chrono::seconds(2));  // gives up after 2 s
  EXPECT_TRUE(eventually([&] { return metric(cli, "bitnet_embedding_requests_cancelled_total") == 1; }))
      << metric(cli, "bitnet_embedding_requests_cancelled_total");
  EXPECT_LT(metric(cli, "bitnet_embedding_inputs_total"), 2048);
  int status = 0;
  post_json(cli, "/v1/embeddings", {{"input", "after the cancel"}}, &status);
  EXPECT_EQ(status, 200);
}

TEST(ServerEmbeddings, TelemetryEventPerRequest) {
  const std::string events = (temp_dir() / ("embed-" + std::to_string(getpid()) + ".jsonl")).string();
  {
    ServerProcess server({"--embeddings", "-np", "2", "--telemetry-out", events});
    auto cli = server.client();
    post_json(cli, "/v1/embeddings", {{"input", json::array({json::array({1, 2, 3}), json::array({4, 5})})}});
    EXPECT_EQ(server.terminate(), 0);
  }
  std::ifstream in(events);
  std::vector<json> found;
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line);
    if (j["event"] == "embedding_request_finished") found.push_back(j);
  }
  ASSERT_EQ(found.size(), 1u) << slurp(events);
  EXPECT_EQ(found[0]["inputs"], 2);
  EXPECT_EQ(found[0]["tokens"], 5);
  EXPECT_EQ(found[0]["batches"], 1);
  EXPECT_EQ(found[0]["outcome"], "done");
}

}  // namespace
}  // namespace bitnet::testing
