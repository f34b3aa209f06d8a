// Bad requests get the OpenAI error envelope with the right status and type, never a crash or a
// hang; the API key guards every endpoint but /health (and the static page).
#include "server_process.h"

namespace bitnet::testing {
namespace {

struct BadCase {
  std::string name, method, path, body;
  int status;
  std::string type;
};

void expect_envelope(const httplib::Result& r, int status, const std::string& type, const std::string& what) {
  ASSERT_TRUE(r) << what << ": no response";
  EXPECT_EQ(r->status, status) << what << ": " << r->body;
  const json j = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << what << ": " << r->body;
  EXPECT_EQ(j["error"]["code"], status) << what;
  EXPECT_EQ(j["error"]["type"], type) << what;
  EXPECT_FALSE(j["error"]["message"].get<std::string>().empty()) << what;
}

TEST(ServerErrors, BadRequestsGetSpecificStatusesAndTypes) {
  ServerProcess server({"-np", "2", "-c", "128", "--max-body", "4096"});
  const std::string inv = "invalid_request_error";
  const std::string long_prompt(2000, 'x');  // ~250+ tokens > 64 per slot, under the body limit
  const std::vector<BadCase> cases = {
      {"malformed JSON", "POST", "/completion", "{\"prompt\": ", 400, inv},
      {"body not an object", "POST", "/v1/completions", "[1, 2]", 400, inv},
      {"missing prompt", "POST", "/completion", R"({"n_predict": 3})", 400, inv},
      {"prompt wrong type", "POST", "/completion", R"({"prompt": 12})", 400, inv},
      {"max_tokens wrong type", "POST", "/v1/completions", R"({"prompt": "a", "max_tokens": "ten"})", 400, inv},
      {"max_tokens out of range", "POST", "/v1/completions", R"({"prompt": "a", "max_tokens": -5})", 400, inv},
      {"temperature negative", "POST", "/v1/completions", R"({"prompt": "a", "temperature": -1})", 400, inv},
      {"top_p zero", "POST", "/v1/completions", R"({"prompt": "a", "top_p": 0})", 400, inv},
      {"stream not bool", "POST", "/v1/completions", R"({"prompt": "a", "stream": "yes"})", 400, inv},
      {"stop wrong type", "POST", "/v1/completions", R"({"prompt": "a", "stop": 5})", 400, inv},
      {"stop string too long", "POST", "/v1/completions", "{\"prompt\": \"a\", \"stop\": [\"" + std::string(300, 's') + "\"]}",
       400, inv},
      {"n_probs too large", "POST", "/completion", R"({"prompt": "a", "n_probs": 1000000})", 400, inv},
      {"slot id out of range", "POST", "/completion", R"({"prompt": "a", "id_slot": 2})", 400, inv},
      {"negative slot id", "POST", "/completion", R"({"prompt": "a", "id_slot": -7})", 400, inv},
      {"n_keep out of range", "POST", "/completion", R"({"prompt": "a", "n_keep": 100000})", 400, inv},
      {"prompt token id out of vocab", "POST", "/completion", R"({"prompt": [1, 999999999]})", 400, inv},
      {"negative prompt token", "POST", "/completion", R"({"prompt": [-1]})", 400, inv},
      {"prompt longer than slot context", "POST", "/completion", "{\"prompt\": \"" + long_prompt + "\"}", 400,
       "exceed_context_size_error"},
      {"detokenize bad id", "POST", "/detokenize", R"({"tokens": [5, 128256]})", 400, inv},
      {"detokenize not ints", "POST", "/detokenize", R"({"tokens": ["a"]})", 400, inv},
      {"tokenize missing content", "POST", "/tokenize", R"({"text": "a"})", 400, inv},
      {"chat without messages", "POST", "/v1/chat/completions", R"({"max_tokens": 3})", 400, inv},
      {"chat bad role", "POST", "/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "x"}]})", 400, inv},
      {"chat content wrong type", "POST", "/v1/chat/completions", R"({"messages": [{"role": "user", "content": 3}]})", 400, inv},
      {"too many choices", "POST", "/v1/completions", R"({"prompt": "a", "n": 17})", 400, inv},
      {"several choices on /completion", "POST", "/completion", R"({"prompt": "a", "n": 2})", 400, inv},
      {"echo with logprobs", "POST", "/v1/completions", R"({"prompt": "a", "echo": true, "logprobs": 1})", 400, inv},
      {"suffix (no infill)", "POST", "/v1/completions", R"({"prompt": "a", "suffix": "b"})", 400, inv},
      {"seed wrong type", "POST", "/v1/completions", R"({"prompt": "a", "seed": 1.5})", 400, inv},
      {"n_discard (no context shift)", "POST", "/completion", R"({"prompt": "a", "n_discard": 4})", 400, inv},
      {"logit_bias id outside vocab", "POST", "/v1/completions", R"({"prompt": "a", "logit_bias": {"999999999": 1}})", 400, inv},
      {"logit_bias empty text key", "POST", "/v1/completions", R"({"prompt": "a", "logit_bias": {"": 1}})", 400, inv},
      {"logit_bias too large", "POST", "/v1/completions", R"({"prompt": "a", "logit_bias": {"5": 101}})", 400, inv},
      {"logit_bias wrong shape", "POST", "/completion", R"({"prompt": "a", "logit_bias": [[5]]})", 400, inv},
      {"logit_bias wrong type", "POST", "/completion", R"({"prompt": "a", "logit_bias": 3})", 400, inv},
      {"unknown endpoint", "GET", "/v2/nothing", "", 404, "not_found_error"},
      {"wrong method", "GET", "/v1/completions", "", 404, "not_found_error"},
      {"body over the limit", "POST", "/completion", "{\"prompt\": \"" + std::string(8000, 'y') + "\"}", 413, inv},
  };
  auto cli = server.client();
  for (const BadCase& c : cases) {
    httplib::Result r = c.method == "GET" ? cli.Get(c.path.c_str())
                                          : cli.Post(c.path.c_str(), c.body, "application/json");
    expect_envelope(r, c.status, c.type, c.name);
  }
  // Still alive and serving after all of that.
  EXPECT_EQ(get_json(cli, "/health")["status"], "ok");
  const json ok = post_json(cli, "/completion", {{"prompt", "a"}, {"n_predict", 2}, {"temperature", 0}});
  EXPECT_EQ(ok["tokens_predicted"], 2);
}

// Every endpoint but /health, the page and the model list (public in llama-server too) needs the
// key, as Bearer or X-Api-Key.
void check_key_enforced(ServerProcess& server, const std::string& key) {
  auto anon = server.client();
  EXPECT_EQ(anon.Get("/health")->status, 200);
  EXPECT_EQ(anon.Get("/")->status, 200);
  EXPECT_EQ(anon.Get("/v1/models")->status, 200);
  EXPECT_EQ(anon.Get("/models")->status, 200);
  const std::vector<std::pair<std::string, std::string>> endpoints = {
      {"GET", "/v1/models/x"},         {"GET", "/props"},        {"GET", "/slots"},
      {"GET", "/metrics"},             {"POST", "/tokenize"},    {"POST", "/detokenize"},
      {"POST", "/apply-template"},     {"POST", "/completion"},  {"POST", "/v1/completions"},
      {"POST", "/v1/chat/completions"}, {"GET", "/no-such-page"},
  };
  auto wrong = server.client("not-the-key");
  for (const auto& [method, path] : endpoints) {
    for (httplib::Client* cli : {&anon, &wrong}) {
      auto r = method == "GET" ? cli->Get(path.c_str()) : cli->Post(path.c_str(), "{}", "application/json");
      expect_envelope(r, 401, "authentication_error", method + " " + path);
    }
  }
  auto bearer = server.client(key);
  EXPECT_EQ(bearer.Get("/v1/models")->status, 200);
  EXPECT_EQ(bearer.Post("/tokenize", R"({"content": "hi"})", "application/json")->status, 200);
  auto header = server.client();
  auto r = header.Get("/props", httplib::Headers{{"X-Api-Key", key}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  const StreamResult s = stream_post(server.port(), "/v1/completions",
                                     {{"prompt", "a"}, {"max_tokens", 2}, {"stream", true}}, nullptr,
                                     {{"Authorization", "Bearer " + key}});
  EXPECT_EQ(s.status, 200);
  ASSERT_FALSE(s.data.empty());
  EXPECT_EQ(s.data.back(), "[DONE]");
}

TEST(ServerErrors, ApiKeyFromFlagIsEnforcedOnEveryEndpointButHealth) {
  ServerProcess server({"-c", "128", "--metrics", "--api-key", "s3cret"});
  check_key_enforced(server, "s3cret");
}

TEST(ServerErrors, ApiKeyFromFileAndFromEnvironment) {
  const std::string path = (temp_dir() / "key.txt").string();
  std::ofstream(path) << "file-key\n";
  {
    ServerProcess server({"-c", "128", "--metrics", "--api-key-file", path});
    check_key_enforced(server, "file-key");
  }
  ServerProcess server({"-c", "128", "--metrics"}, {"LLAMA_API_KEY=env-key"});
  check_key_enforced(server, "env-key");
}

TEST(ServerErrors, BadFlagsExitWithOneLineErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string needle;
    int code;
  } cases[] = {
      {{"-np", "0"}, "-np must be between 1 and 256", 2},
      {{"--port", "70000"}, "--port must be between 0 and 65535", 2},
      {{"--api-key-file", "/nonexistent/key"}, "cannot read API key file", 2},
      {{"-c", "16", "-np", "4"}, "fewer than 8 tokens per slot", 1},
      {{"--temp", "-1"}, "temperature", 2},
      {{"--api-key", ""}, "--api-key needs a non-empty KEY", 2},  // would have disabled authentication
  };
  for (const auto& c : cases) {
    const std::string base = (temp_dir() / "badflag").string();
    std::vector<std::string> args = {bitnet_bin(), "serve", "-m", tiny_model(), "--port", "0"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const pid_t pid = spawn(args, base + ".out", base + ".err");
    EXPECT_EQ(wait_exit(pid, std::chrono::seconds(60)), c.code) << c.needle;
    const std::string err = slurp(base + ".err");
    EXPECT_NE(err.find("error: "), std::string::npos) << err;
    EXPECT_NE(err.find(c.needle), std::string::npos) << err;
  }
}

// An empty key from the environment is refused like an empty --api-key; a model that fails to
// load makes the server exit 1 with the load error at once (it used to keep answering 503 and
// ignore SIGTERM when the load failed before the listener had started).
TEST(ServerErrors, EmptyKeyFromEnvironmentAndUnloadableModelsExitWithTheError) {
  const std::string base = (temp_dir() / "serve-fail").string();
  {
    const pid_t pid = spawn({bitnet_bin(), "serve", "-m", tiny_model(), "--port", "0"}, base + ".out", base + ".err",
                            {"LLAMA_API_KEY="});
    EXPECT_EQ(wait_exit(pid, std::chrono::seconds(30)), 2);
    EXPECT_NE(slurp(base + ".err").find("--api-key needs a non-empty KEY"), std::string::npos) << slurp(base + ".err");
  }
  const std::string text = (temp_dir() / "not-a-model.gguf").string();
  std::ofstream(text) << "just some text\n";
  const struct {
    std::string path, needle;
    int code;  // as `run` exits: a directory is a usage error (2), a bad file a load error (1)
  } cases[] = {{text, "not a GGUF file", 1}, {"/dev/null", "not a regular file", 1}, {temp_dir().string(), "is a directory", 2}};
  for (const auto& c : cases)
    for (int repeat = 0; repeat < 3; ++repeat) {  // the failure raced the listener's start
      const pid_t pid = spawn({bitnet_bin(), "serve", "-m", c.path, "--port", "0"}, base + ".out", base + ".err");
      EXPECT_EQ(wait_exit(pid, std::chrono::seconds(30)), c.code) << c.path;
      EXPECT_NE(slurp(base + ".err").find(c.needle), std::string::npos) << slurp(base + ".err");
    }
}

// Bodies that are larger than --max-body only once decoded: a small gzip body inflating to 20 MB
// and a chunked body without a declared length get 413 after reading at most the limit (they were
// read and inflated whole: seconds and gigabytes).
TEST(ServerErrors, CompressedAndChunkedBodiesAreBoundedByMaxBody) {
  ServerProcess server({"-c", "128", "--max-body", "65536"});
  std::signal(SIGPIPE, SIG_IGN);  // the server may close while the client still sends the chunked body
  const std::string big = "{\"content\": \"" + std::string(20 << 20, 'a') + "\"}";
  {
    auto cli = server.client();
    cli.set_compress(true);  // Content-Encoding: gzip, about 20 KB on the wire
    const auto t0 = Clock::now();
    auto r = cli.Post("/tokenize", big, "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 413) << r->body;
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  }
  {
    auto cli = server.client();
    size_t sent = 0;
    auto r = cli.Post(
        "/tokenize",
        [&](size_t, httplib::DataSink& sink) {  // no length: Transfer-Encoding: chunked
          const std::string piece = sent == 0 ? "{\"content\": \"" : std::string(8192, 'b');
          if (sent > (6 << 20) || !sink.write(piece.data(), piece.size())) {
            sink.done();
            return true;
          }
          sent += piece.size();
          return true;
        },
        "application/json");
    if (r) {  // else the server closed while we were still sending
      EXPECT_EQ(r->status, 413) << r->body;
    }
    EXPECT_LT(sent, size_t(6 << 20)) << "the server stopped reading long before the end";
  }
  auto cli = server.client();
  int status = 0;
  post_json(cli, "/tokenize", {{"content", "still serving"}}, &status);
  EXPECT_EQ(status, 200);
}

// After refusing a body it has not read, the server closes the connection: the unread bytes were
// parsed as the next request, so a request hidden in a refused body got answered.
TEST(ServerErrors, NoRequestIsReadFromARefusedBody) {
  ServerProcess server({"-c", "128", "--max-body", "4096"});
  const std::string hidden = "GET /props HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string out = raw_exchange(server.port(), "POST /completion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                                      "Content-Length: 100000\r\n\r\n" + hidden);
  EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out;
  EXPECT_EQ(out.find("HTTP/1.1 200"), std::string::npos) << "the hidden request was served: " << out;
  EXPECT_NE(out.find("Connection: close"), std::string::npos) << out;
  // Pipelined requests: the first is answered and the connection closed with Connection: close, so
  // the client knows to send the others again (no silently lost answers on a kept connection).
  const std::string two = raw_exchange(server.port(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(two.rfind("HTTP/1.1 200", 0), 0u) << two;
  EXPECT_NE(two.find("Connection: close"), std::string::npos) << two;
}

// HTTP/1.0 has no chunked transfer coding: a streaming reply to such a client is the plain event
// stream, ended by the server closing the connection.
TEST(ServerErrors, Http10ClientsGetUnchunkedStreams) {
  ServerProcess server({"-c", "128"});
  const std::string body = R"({"prompt": "Hello", "n_predict": 4, "temperature": 0, "stream": true})";
  const std::string out = raw_exchange(server.port(), "POST /completion HTTP/1.0\r\nContent-Type: application/json\r\n"
                                                      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  ASSERT_EQ(out.rfind("HTTP/1.1 200", 0), 0u) << out;
  const std::string head = out.substr(0, out.find("\r\n\r\n"));
  EXPECT_EQ(head.find("Transfer-Encoding"), std::string::npos) << head;
  const std::string events = out.substr(out.find("\r\n\r\n") + 4);
  EXPECT_EQ(events.rfind("data: {", 0), 0u) << "the first event right after the headers, no chunk size: " << events;
  EXPECT_NE(events.find("\"stop\":true"), std::string::npos) << events;
}

}  // namespace
}  // namespace bitnet::testing
