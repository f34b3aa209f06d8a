#pragma once
// The HTTP API: routes, API-key check, request validation and the OpenAI error envelope.
// Handlers run on the HTTP library's threads; they only tokenize, submit jobs to the Engine and
// turn the job's events into JSON or Server-Sent Events.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "sampling/sampler.h"
#include "server/engine.h"
#include "server/metrics.h"
#include "server/structured.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace bitnet::server {

struct ApiConfig {
  std::string api_key;           // empty: no authentication
  bool metrics = false;          // expose GET /metrics
  std::string model_path;        // shown by /v1/models and /props
  std::string system_prompt;     // prepended to every conversation (and primed in the cache)
  SamplingParams sampling;       // defaults for requests that do not set them
  bool random_seed = true;       // no -s given: each request without "seed" draws one
  int64_t n_predict = -1;        // default token limit
  size_t max_body = size_t(1) << 20;  // larger declared bodies get 413 before being read
  // Web origins whose pages may call the server from a browser (--cors): "*" for any. Empty: any
  // origin when there is no API key, none when there is (a page elsewhere must not drive a keyed
  // server with a key the browser stored).
  std::vector<std::string> cors_origins;
  std::string alias;            // the model's names (--alias, comma-separated); default: the file name
  std::string tags;             // --tags, comma-separated: listed with the model
  std::optional<ChatFormat> chat_format;  // --chat-template; default: detected from the model
  bool slots_endpoint = true;   // GET /slots (--no-slots: 501)
  bool web_ui = true;           // the chat page at / (--no-webui: 404)
  // --grammar / --grammar-file / -j / -jf: the grammar of requests that ask for no structured
  // output of their own (GBNF text, parsed when the Api is made; GrammarError if it does not parse).
  std::string default_grammar;
  // -v / --verbose (llama-server's debug output): OpenAI-style responses carry `__verbose`, the
  // native /completion result of the same generation.
  bool verbose = false;
};

enum class Dialect { Native, OpenAiText, OpenAiChat };

// What a request asks of its response beyond the generated tokens.
struct ResponseOptions {
  bool logprobs = false;        // per-token log-probabilities (n_probs, logprobs, top_logprobs)
  bool echo = false;            // completions: the prompt's text before the generated text
  std::vector<std::vector<int32_t>> prompts;  // each prompt of the request (chat: one)
  std::vector<std::string> echo_texts;         // each prompt as text (echo)
  bool include_usage = false;   // streams: a last chunk with the usage (stream_options.include_usage)
  bool return_tokens = false;   // native: the generated token ids in "tokens"
  std::vector<std::string> response_fields;  // native: only these fields ("a/b" for nested ones)
  bool post_sampling = false;   // probabilities after the sampler chain ("prob", "top_probs")
  int n = 1;                    // choices generated from the one prompt
  ToolMode tool_mode = ToolMode::None;  // chat with tools: the reply may be a tool call
};

class Api {
 public:
  Api(ApiConfig config, Metrics& metrics);
  // Registers every route and the auth / error handlers.
  void install(httplib::Server& server);
  // The Prometheus text of GET /metrics ("" until the model is loaded), also for the OTLP exporter.
  std::string metrics_text() const;
  // The model is loaded and the engine runs: every endpoint becomes available.
  void set_ready(const Model& model, Engine& engine);
  // From now on generation requests get 503; those in flight carry on.
  void begin_shutdown() { shutting_down_ = true; }
  // Generation requests whose response is still being written.
  int in_flight() const { return in_flight_; }
  // Tokens a completion prompt starts with when a system prompt is set (primed in every slot).
  std::vector<int32_t> system_prefix(const Model& model) const;
  // The conversation as prompt text in the chat format in use; a last assistant message is a
  // prefill the reply continues (rendered open, without its end-of-turn).
  std::string render_chat(const Model& model, const std::vector<ChatMessage>& messages) const;

 private:
  struct Stream;
  bool authorized(const httplib::Request& req) const;
  void add_cors_headers(const httplib::Request& req, httplib::Response& res) const;
  void guard(const httplib::Request& req, httplib::Response& res, const std::function<void()>& body);
  void reply(httplib::Response& res, int status, const nlohmann::json& body);

  void health(const httplib::Request& req, httplib::Response& res);
  void models(httplib::Response& res);
  void model_by_id(const std::string& id, httplib::Response& res);
  nlohmann::json model_object() const;
  void props(httplib::Response& res);
  void slots(const httplib::Request& req, httplib::Response& res);
  void metrics(httplib::Response& res);
  void tokenize(const httplib::Request& req, httplib::Response& res);
  void detokenize(const httplib::Request& req, httplib::Response& res);
  void apply_template(const httplib::Request& req, httplib::Response& res);
  void completion(const httplib::Request& req, httplib::Response& res, Dialect dialect);

  // embedding_api.cpp: /v1/embeddings (openai) and llama-server's /embedding(s)
  void embeddings(const httplib::Request& req, httplib::Response& res, bool openai);
  std::vector<std::vector<int32_t>> embedding_inputs(const nlohmann::json& input, const char* key) const;
  std::vector<int32_t> embedding_tokens(const nlohmann::json& ids, const char* key) const;

  // completion_api.cpp
  std::vector<ChatMessage> chat_messages(const nlohmann::json& body) const;
  // The tools and the call format, appended to the system message (one is added if none).
  void add_tools_prompt(std::vector<ChatMessage>& messages, const Structured& st) const;
  std::vector<const nlohmann::json*> split_prompts(const nlohmann::json& prompt) const;
  std::vector<int32_t> prompt_tokens(const nlohmann::json& prompt) const;
  GenerationRequest parse_generation(const nlohmann::json& body, Dialect dialect, ResponseOptions* options = nullptr,
                                     const nlohmann::ordered_json* ordered = nullptr) const;
  // One finished choice: its text, token ids and token entries (logprobs), how it ended.
  struct Choice {
    std::string text;
    std::vector<int32_t> tokens;
    nlohmann::json entries = nlohmann::json::array();
    Event done;
    JobStats stats;
    nlohmann::json settings;  // the request's generation settings (native responses)
    std::string prompt;       // the prompt's tokens as text, special tokens included (native responses)
    std::string echo;         // completions with echo: the prompt's text, before the reply
  };
  nlohmann::json final_response(Dialect dialect, const std::string& id, const std::vector<Choice>& choices,
                                const ResponseOptions& options) const;
  // --verbose: llama-server's `__verbose` object, the native /completion result of `choice`.
  nlohmann::json verbose_result(const std::string& id, const Choice& choice, const ResponseOptions& options) const;
  // SSE events; `chunked` = false for HTTP/1.0 clients (no chunked coding: ended by the close).
  void stream_response(httplib::Response& res, std::vector<std::shared_ptr<Job>> jobs, Dialect dialect,
                       std::string id, ResponseOptions options, bool chunked);
  std::string sse_for(Stream& st, size_t index, const Event& e) const;
  nlohmann::json generation_settings() const;  // the defaults, as /props and /completion report them

  ApiConfig config_;
  Metrics& metrics_;
  std::atomic<bool> ready_{false}, shutting_down_{false};
  std::atomic<int> in_flight_{0};
  const Model* model_ = nullptr;  // set before ready_
  std::shared_ptr<const Grammar> default_grammar_;  // from config_.default_grammar
  Engine* engine_ = nullptr;
  ChatFormat chat_format(const Model& model) const;
  std::string model_name_;
  std::vector<std::string> aliases_, tags_;
  int64_t created_ = 0;  // start time, for /v1/models
};

}  // namespace bitnet::server
