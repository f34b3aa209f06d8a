// Generation endpoints: POST /completion (llama.cpp's native format), /v1/completions and
// /v1/chat/completions (OpenAI), as one JSON response or as Server-Sent Events.
#include <httplib.h>

#include <charconv>
#include <chrono>
#include <cmath>

#include "server/api_error.h"
#include "server/http_api.h"

namespace bitnet::server {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string new_id(Dialect d) {
  static std::atomic<uint64_t> counter{0};
  const char* prefix = d == Dialect::OpenAiChat ? "chatcmpl-" : "cmpl-";
  return prefix + std::to_string(unix_now()) + "-" + std::to_string(++counter);
}

// OpenAI's finish_reason; llama.cpp's native stop_type.
std::string stop_type(const Event& done) {
  if (!done.stopping_word.empty()) return "word";
  if (done.finish_reason == "stop") return "eos";
  if (done.finish_reason == "length") return "limit";
  return "none";
}

json usage(const JobStats& s) {
  return {{"prompt_tokens", s.prompt_tokens},
          {"completion_tokens", s.generated},
          {"total_tokens", s.prompt_tokens + s.generated},
          {"prompt_tokens_details", {{"cached_tokens", s.cached_tokens}}}};
}

json timings(const JobStats& s) {
  const int64_t evaluated = s.prompt_tokens - s.cached_tokens;
  return {{"cache_n", s.cached_tokens},
          {"prompt_n", evaluated},
          {"prompt_ms", s.prompt_ms},
          {"prompt_per_second", s.prompt_ms > 0 ? 1e3 * double(evaluated) / s.prompt_ms : 0.0},
          {"predicted_n", s.generated},
          {"predicted_ms", s.generation_ms},
          {"predicted_per_second", s.generation_ms > 0 ? 1e3 * double(s.generated) / s.generation_ms : 0.0}};
}

json probs_json(const Tokenizer& tok, const Event& e) {
  json probs = json::array();
  for (const TokenProb& p : e.probs) probs.push_back({{"id", p.id}, {"tok_str", tok.token_to_piece(p.id, true)}, {"prob", p.prob}});
  return {{"id", e.token}, {"content", tok.token_to_piece(e.token, true)}, {"probs", probs}};
}

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

// OpenAI's {"token id": bias} or llama.cpp's [[id, bias], …]; bias in [−100, 100], or false to ban
// the token (−∞), as llama-server accepts.
std::vector<std::pair<int32_t, float>> get_logit_bias(const json& body, int64_t n_tokens) {
  const auto it = body.find("logit_bias");
  if (it == body.end() || it->is_null()) return {};
  std::vector<std::pair<int32_t, float>> out;
  auto add = [&](int64_t id, const json& bias) {
    if (id < 0 || id >= n_tokens)
      throw bad_request("'logit_bias' token id " + std::to_string(id) + " is outside the vocabulary (0 … " +
                        std::to_string(n_tokens - 1) + ")");
    if (bias.is_boolean() && !bias.get<bool>()) return out.push_back({int32_t(id), -INFINITY});
    if (!bias.is_number() || !(bias.get<double>() >= -100 && bias.get<double>() <= 100))
      throw bad_request("'logit_bias' values must be numbers between -100 and 100 (or false to ban a token)");
    out.push_back({int32_t(id), float(bias.get<double>())});
  };
  if (it->is_object()) {
    for (const auto& [key, bias] : it->items()) {
      int64_t id = -1;
      const auto [ptr, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
      if (ec != std::errc() || ptr != key.data() + key.size())
        throw bad_request("'logit_bias' keys must be token ids, got '" + key + "'");
      add(id, bias);
    }
  } else if (it->is_array()) {
    for (const json& pair : *it) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_integer())
        throw bad_request("'logit_bias' as an array must hold [token id, bias] pairs");
      add(pair[0].get<int64_t>(), pair[1]);
    }
  } else {
    throw bad_request("'logit_bias' must be an object {\"token id\": bias} or an array of [token id, bias] pairs");
  }
  return out;
}

}  // namespace

std::vector<ChatMessage> Api::chat_messages(const json& body) const {
  const auto it = body.find("messages");
  if (it == body.end() || !it->is_array() || it->empty()) throw bad_request("'messages' must be a non-empty array");
  std::vector<ChatMessage> out;
  for (const json& m : *it) {
    if (!m.is_object()) throw bad_request("each message must be an object");
    const auto role = get_string(m, "role");
    if (!role || (*role != "system" && *role != "user" && *role != "assistant"))
      throw bad_request("message 'role' must be \"system\", \"user\" or \"assistant\"");
    std::string content;
    const auto c = m.find("content");
    if (c != m.end() && c->is_string()) {
      content = c->get<std::string>();
    } else if (c != m.end() && c->is_array()) {  // content parts: only text is supported
      for (const json& part : *c) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
          throw bad_request("message content parts must be {\"type\": \"text\", \"text\": string}");
        content += part["text"].get<std::string>();
      }
    } else if (c != m.end() && !c->is_null()) {
      throw bad_request("message 'content' must be a string or an array of text parts");
    }
    out.push_back({*role, content});
  }
  return out;
}

// Every field that reaches the engine is checked here: types, ranges and anything that could
// index a buffer (token ids, slot id, n_probs, n_keep).
GenerationRequest Api::parse_generation(const json& body, Dialect dialect) const {
  const Tokenizer& tok = *model_->tokenizer;
  const EngineConfig& ec = engine_->config();
  GenerationRequest r;
  if (body.contains("model") && !body["model"].is_string()) throw bad_request("'model' must be a string");
  get_int(body, "n", 1, 1);  // several choices per request are not supported
  if (dialect == Dialect::OpenAiChat) {
    std::vector<ChatMessage> messages = chat_messages(body);
    if (!config_.system_prompt.empty() && messages.front().role != "system")
      messages.insert(messages.begin(), {"system", config_.system_prompt});
    const ChatFormat format = detect_chat_format(tok.data().chat_template, model_->hp.arch.name);
    r.prompt = tok.encode(apply_chat_template(format, messages, true), true, true);
  } else {
    const auto it = body.find("prompt");
    if (it == body.end()) throw bad_request("'prompt' is required");
    const json* prompt = &*it;
    if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) prompt = &(*prompt)[0];
    if (prompt->is_string()) {
      // Same tokenization as `bitnet run`: BOS per the vocabulary, special tokens parsed.
      const std::vector<int32_t> prefix = system_prefix(*model_);
      r.prompt = prefix;
      const auto ids = tok.encode(prompt->get<std::string>(), prefix.empty(), true);
      r.prompt.insert(r.prompt.end(), ids.begin(), ids.end());
    } else if (prompt->is_array()) {
      r.prompt = get_tokens(*prompt, "prompt", tok.n_tokens());
    } else {
      throw bad_request("'prompt' must be a string, an array of token ids or an array with one string");
    }
  }
  if (r.prompt.empty()) throw bad_request("the prompt is empty");
  if (int64_t(r.prompt.size()) > ec.n_ctx_slot)
    throw bad_request("the prompt is " + std::to_string(r.prompt.size()) + " tokens, more than the slot context of " +
                      std::to_string(ec.n_ctx_slot) + " tokens");

  const int64_t big = int64_t(1) << 30;
  r.n_predict = config_.n_predict;
  if (auto v = get_int(body, "max_tokens", -1, big)) r.n_predict = *v;
  if (auto v = get_int(body, "max_completion_tokens", -1, big)) r.n_predict = *v;
  if (auto v = get_int(body, "n_predict", -1, big)) r.n_predict = *v;
  SamplingParams& p = r.sampling;
  p = config_.sampling;
  if (auto v = get_number(body, "temperature", 0, 100)) p.temperature = float(*v);
  if (auto v = get_number(body, "top_p", 0, 1)) p.top_p = float(*v);
  if (auto v = get_int(body, "top_k", 0, big)) p.top_k = int32_t(*v);
  if (auto v = get_number(body, "min_p", 0, 1)) p.min_p = float(*v);
  if (auto v = get_number(body, "repeat_penalty", 0, 100)) p.repeat_penalty = float(*v);
  if (auto v = get_int(body, "repeat_last_n", 0, ec.n_ctx_slot)) p.repeat_last_n = int32_t(*v);
  const auto seed = get_int(body, "seed", -1, INT64_MAX);
  if (seed && *seed >= 0)
    p.seed = uint64_t(*seed);
  else if (seed || config_.random_seed)
    p.seed = uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
  if (const std::string err = validate(p); !err.empty()) throw bad_request(err);
  r.stop = get_stop(body);
  r.ignore_eos = get_bool(body, "ignore_eos").value_or(false);
  r.cache_prompt = get_bool(body, "cache_prompt").value_or(true);
  r.slot_id = int32_t(get_int(body, "id_slot", -1, ec.n_slots - 1).value_or(-1));
  r.n_probs = int32_t(get_int(body, "n_probs", 0, std::min<int64_t>(100, tok.n_tokens())).value_or(0));
  get_int(body, "n_keep", -1, ec.n_ctx_slot);  // no context shifting: validated, otherwise unused
  if (get_int(body, "n_discard", 0, big).value_or(0) != 0)
    throw bad_request("'n_discard' must be 0: this server does not shift the context (a full slot ends the reply)");
  p.logit_bias = get_logit_bias(body, tok.n_tokens());
  // OpenAI's log-probability fields, in their ranges: chat `logprobs` a boolean with
  // `top_logprobs` 0–20, completions `logprobs` 0–5.
  if (dialect == Dialect::OpenAiChat) {
    get_bool(body, "logprobs");
    get_int(body, "top_logprobs", 0, 20);
  } else if (dialect == Dialect::OpenAiText) {
    get_int(body, "logprobs", 0, 5);
  }
  return r;
}

void Api::completion(const httplib::Request& req, httplib::Response& res, Dialect dialect) {
  if (shutting_down_) throw ApiError(503, "unavailable_error", "server is shutting down");
  const json body = parse_object(req.body);
  const bool stream = get_bool(body, "stream").value_or(false);
  if (body.contains("stream_options") && !body["stream_options"].is_object())
    throw bad_request("'stream_options' must be an object");
  GenerationRequest request = parse_generation(body, dialect);
  auto job = engine_->submit(std::move(request));
  const std::string id = new_id(dialect);
  if (stream) {
    // HTTP/1.0 has no chunked transfer coding: such a client gets the events unframed, ended by
    // the connection's close (every connection here carries one request).
    stream_response(res, std::move(job), dialect, id, /*chunked=*/req.version != "HTTP/1.0");
    return;
  }
  ++in_flight_;
  struct Release {
    std::atomic<int>& n;
    ~Release() { --n; }
  } release{in_flight_};
  std::string text;
  std::vector<int32_t> tokens;
  json probs = json::array();
  for (;;) {
    const auto e = job->next(std::chrono::milliseconds(1000));
    if (!e) continue;  // the engine always ends a job (done, failed or cancelled at shutdown)
    if (e->kind == Event::Kind::Failed) throw ApiError(500, "server_error", "generation failed: " + e->error);
    text += e->text;
    if (e->kind == Event::Kind::Done) {
      reply(res, 200, final_response(dialect, id, text, tokens, probs, *e, job->stats()));
      return;
    }
    tokens.push_back(e->token);
    if (job->request.n_probs > 0) probs.push_back(probs_json(*model_->tokenizer, *e));
  }
}

json Api::final_response(Dialect dialect, const std::string& id, const std::string& text,
                         const std::vector<int32_t>& tokens, const json& probs, const Event& done,
                         const JobStats& stats) const {
  const std::string finish = done.finish_reason == "cancelled" ? "length" : done.finish_reason;
  if (dialect == Dialect::Native) {
    json j = {{"content", text},
              {"tokens", tokens},
              {"id_slot", stats.slot},
              {"stop", true},
              {"model", model_name_},
              {"tokens_predicted", stats.generated},
              {"tokens_evaluated", stats.prompt_tokens},
              {"tokens_cached", stats.cached_tokens},
              {"stop_type", stop_type(done)},
              {"stopping_word", done.stopping_word},
              {"truncated", false},
              {"timings", timings(stats)}};
    if (!probs.empty()) j["completion_probabilities"] = probs;
    return j;
  }
  json choice = {{"index", 0}, {"finish_reason", finish}, {"logprobs", nullptr}};
  if (dialect == Dialect::OpenAiChat)
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  else
    choice["text"] = text;
  return {{"id", id},
          {"object", dialect == Dialect::OpenAiChat ? "chat.completion" : "text_completion"},
          {"created", unix_now()},
          {"model", model_name_},
          {"choices", json::array({choice})},
          {"usage", usage(stats)},
          {"timings", timings(stats)}};
}

struct Api::Stream {
  std::shared_ptr<Job> job;
  Dialect dialect;
  std::string id;
  int64_t created = unix_now();
  bool role_sent = false, finished = false;
};

// The SSE text for one event: OpenAI chunks (a role chunk first for chat; a final chunk with
// finish_reason, a usage chunk and [DONE]) or llama.cpp's native {"content", "stop"} objects.
std::string Api::sse_for(Stream& st, const Event& e) const {
  if (e.kind == Event::Kind::Failed)
    return sse(error_body(500, "server_error", "generation failed: " + e.error));
  const bool done = e.kind == Event::Kind::Done;
  if (st.dialect == Dialect::Native) {
    if (done) return sse(final_response(Dialect::Native, st.id, e.text, {}, json::array(), e, st.job->stats()));
    json j = {{"content", e.text}, {"tokens", {e.token}}, {"stop", false}, {"id_slot", -1}};
    if (!e.probs.empty()) j["completion_probabilities"] = json::array({probs_json(*model_->tokenizer, e)});
    return sse(j);
  }
  const bool chat = st.dialect == Dialect::OpenAiChat;
  auto chunk = [&](json choice) {
    return json{{"id", st.id},
                {"object", chat ? "chat.completion.chunk" : "text_completion"},
                {"created", st.created},
                {"model", model_name_},
                {"choices", json::array({std::move(choice)})}};
  };
  std::string out;
  if (chat && !st.role_sent) {
    out += sse(chunk({{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}}));
    st.role_sent = true;
  }
  auto piece = [&](const std::string& text, json finish) {
    const bool final_chunk = !finish.is_null();
    json choice = {{"index", 0}, {"finish_reason", std::move(finish)}, {"logprobs", nullptr}};
    if (chat) choice["delta"] = text.empty() && final_chunk ? json::object() : json{{"content", text}};
    if (!chat) choice["text"] = text;
    return sse(chunk(std::move(choice)));
  };
  if (!done) return out + piece(e.text, nullptr);
  if (!e.text.empty()) out += piece(e.text, nullptr);
  out += piece("", e.finish_reason == "cancelled" ? "length" : e.finish_reason);
  json last = chunk(json());
  last["choices"] = json::array();
  last["usage"] = usage(st.job->stats());
  return out + sse(last) + "data: [DONE]\n\n";
}

// Streams the job as Server-Sent Events. A client that goes away makes a write fail, which
// cancels the job so its slot is freed at the engine's next step; while no token is ready a
// comment line is written each second, so a vanished client is noticed even then.
void Api::stream_response(httplib::Response& res, std::shared_ptr<Job> job, Dialect dialect, std::string id,
                          bool chunked) {
  auto st = std::make_shared<Stream>();
  st->job = std::move(job);
  st->dialect = dialect;
  st->id = std::move(id);
  ++in_flight_;
  res.set_header("Cache-Control", "no-cache");
  httplib::ContentProviderWithoutLength provide =
      [this, st](size_t, httplib::DataSink& sink) {
        if (st->finished) {
          sink.done();
          return true;
        }
        std::string out;
        auto e = st->job->next(std::chrono::milliseconds(1000));
        if (!e) out = ": keep-alive\n\n";
        while (e) {
          out += sse_for(*st, *e);
          if (e->kind != Event::Kind::Token) {
            st->finished = true;
            break;
          }
          e = st->job->next(std::chrono::milliseconds(0));
        }
        if (!sink.write(out.data(), out.size())) {
          st->job->cancel();
          return false;
        }
        if (st->finished) sink.done();
        return true;
      };
  httplib::ContentProviderResourceReleaser release = [this, st](bool success) {
    if (!success || !st->finished) st->job->cancel();
    --in_flight_;
  };
  if (chunked)
    res.set_chunked_content_provider("text/event-stream", std::move(provide), std::move(release));
  else
    res.set_content_provider("text/event-stream", std::move(provide), std::move(release));
}

}  // namespace bitnet::server
