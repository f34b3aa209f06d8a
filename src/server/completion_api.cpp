// Generation endpoints: POST /completion (llama.cpp's native format), /v1/completions and
// /v1/chat/completions (OpenAI), as one JSON response or as Server-Sent Events.
#include <httplib.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <optional>

#include "server/api_error.h"
#include "server/connection_guard.h"
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

json bytes_of(const std::string& piece) {
  json out = json::array();
  for (unsigned char c : piece) out.push_back(int(c));
  return out;
}

// One generated token with its log-probability and the top alternatives, in the request's dialect:
// llama-server's completion_probabilities entry (Native) or OpenAI's chat logprobs.content entry.
json token_entry(const Tokenizer& tok, const Event& e, Dialect dialect) {
  const bool native = dialect == Dialect::Native;
  auto one = [&](int32_t id, float logprob) {
    const std::string piece = tok.token_to_piece(id, true);
    json j = {{"token", piece}, {"logprob", logprob}, {"bytes", bytes_of(piece)}};
    if (native) j["id"] = id;
    return j;
  };
  json top = json::array();
  for (const TokenProb& p : e.probs) top.push_back(one(p.id, p.logprob));
  json entry = one(e.token, e.logprob);
  entry["top_logprobs"] = std::move(top);
  return entry;
}

// OpenAI's legacy completions logprobs object for `entries` (token_entry values), text offsets
// counted from `offset`.
json text_logprobs(const json& entries, size_t offset) {
  json tokens = json::array(), logprobs = json::array(), top = json::array(), offsets = json::array();
  for (const json& e : entries) {
    tokens.push_back(e["token"]);
    logprobs.push_back(e["logprob"]);
    json alternatives = json::object();
    for (const json& t : e["top_logprobs"]) alternatives[t["token"].get<std::string>()] = t["logprob"];
    top.push_back(std::move(alternatives));
    offsets.push_back(offset);
    offset += e["token"].get<std::string>().size();
  }
  return {{"tokens", tokens}, {"token_logprobs", logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

// The choice's "logprobs" value for the token entries (null when the request asked for none).
json choice_logprobs(Dialect dialect, bool wanted, const json& entries, size_t text_offset) {
  if (!wanted) return nullptr;
  if (dialect == Dialect::OpenAiChat) return {{"content", entries}, {"refusal", nullptr}};
  return text_logprobs(entries, text_offset);
}

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

// "n": choices per request (each a job of its own; more than the slots wait in the queue).
constexpr int64_t kMaxChoices = 16;

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
GenerationRequest Api::parse_generation(const json& body, Dialect dialect, ResponseOptions* options) const {
  const Tokenizer& tok = *model_->tokenizer;
  const EngineConfig& ec = engine_->config();
  GenerationRequest r;
  ResponseOptions unused;
  ResponseOptions& o = options ? *options : unused;
  if (body.contains("model") && !body["model"].is_string() && !body["model"].is_null())
    throw bad_request("'model' must be a string");
  o.n = int(get_int(body, "n", 1, dialect == Dialect::Native ? 1 : kMaxChoices).value_or(1));
  std::optional<std::string> prompt_string;
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
      prompt_string = prompt->get<std::string>();
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
    throw ApiError(400, "exceed_context_size_error",
                   "the request exceeds the available context size: the prompt is " + std::to_string(r.prompt.size()) +
                       " tokens, the slot context " + std::to_string(ec.n_ctx_slot) + " tokens",
                   {{"n_prompt_tokens", r.prompt.size()}, {"n_ctx", ec.n_ctx_slot}});

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
  if (get_bool(body, "post_sampling_probs").value_or(false))
    throw bad_request("'post_sampling_probs' is not supported: n_probs reports the model's log-probabilities");
  get_int(body, "n_keep", -1, ec.n_ctx_slot);  // no context shifting: validated, otherwise unused
  if (get_int(body, "n_discard", 0, big).value_or(0) != 0)
    throw bad_request("'n_discard' must be 0: this server does not shift the context (a full slot ends the reply)");
  p.logit_bias = get_logit_bias(body, tok.n_tokens());
  // OpenAI's log-probability fields: chat `logprobs` (boolean) with `top_logprobs` 0–20,
  // completions `logprobs` 0–20 (alternatives per token); llama.cpp's n_probs for /completion.
  if (dialect == Dialect::OpenAiChat) {
    o.logprobs = get_bool(body, "logprobs").value_or(false);
    const auto top = get_int(body, "top_logprobs", 0, 20);
    if (top && *top > 0 && !o.logprobs) throw bad_request("'top_logprobs' needs 'logprobs': true");
    if (top) r.n_probs = int32_t(*top);
  } else if (dialect == Dialect::OpenAiText) {
    const auto k = get_int(body, "logprobs", 0, 20);
    o.logprobs = k.has_value();
    if (k) r.n_probs = int32_t(*k);
    o.echo = get_bool(body, "echo").value_or(false);
    if (o.echo && o.logprobs)
      throw bad_request("'echo' with 'logprobs' is not supported (the prompt's log-probabilities are not computed)");
    if (o.echo) o.echo_text = prompt_string ? *prompt_string : tok.decode(r.prompt);
    const auto suffix = get_string(body, "suffix");
    if (suffix && !suffix->empty()) throw bad_request("'suffix' is not supported: this server does no insertion (infill)");
  } else {
    o.logprobs = r.n_probs > 0;
    o.return_tokens = get_bool(body, "return_tokens").value_or(false);
  }
  r.logprobs = o.logprobs;
  return r;
}

void Api::completion(const httplib::Request& req, httplib::Response& res, Dialect dialect) {
  if (shutting_down_) throw ApiError(503, "unavailable_error", "server is shutting down");
  const json body = parse_object(req.body);
  const bool stream = get_bool(body, "stream").value_or(false);
  ResponseOptions options;
  if (const auto so = body.find("stream_options"); so != body.end() && !so->is_null()) {
    if (!so->is_object()) throw bad_request("'stream_options' must be an object");
    options.include_usage = get_bool(*so, "include_usage").value_or(false);
  }
  GenerationRequest request = parse_generation(body, dialect, &options);
  // n choices from one prompt: n jobs, choice i seeded seed + i so they differ when sampling.
  std::vector<std::shared_ptr<Job>> jobs;
  try {
    for (int i = 0; i < options.n; ++i) {
      GenerationRequest r = request;
      r.sampling.seed = request.sampling.seed + uint64_t(i);
      if (i > 0) r.slot_id = -1;
      jobs.push_back(engine_->submit(std::move(r)));
    }
  } catch (...) {
    for (auto& j : jobs) j->cancel();
    throw;
  }
  const std::string id = new_id(dialect);
  if (stream) {
    // HTTP/1.0 has no chunked transfer coding: such a client gets the events unframed, ended by
    // the connection's close (every connection here carries one request).
    stream_response(res, std::move(jobs), dialect, id, std::move(options), /*chunked=*/req.version != "HTTP/1.0");
    return;
  }
  ++in_flight_;
  struct Release {
    std::atomic<int>& n;
    std::vector<std::shared_ptr<Job>>& jobs;
    ~Release() {
      for (auto& j : jobs) j->cancel();  // no-op for finished jobs; frees the slot of an abandoned one
      --n;
    }
  } release{in_flight_, jobs};
  std::vector<Choice> choices(jobs.size());
  auto checked = Clock::now();
  for (size_t i = 0; i < jobs.size(); ++i) {
    Choice& c = choices[i];
    for (;;) {
      const auto e = jobs[i]->next(std::chrono::milliseconds(200));
      // A client that went away does not keep a slot busy until its reply is complete (the jobs
      // are cancelled on the way out).
      if (Clock::now() - checked >= std::chrono::milliseconds(200)) {
        checked = Clock::now();
        if (client_disconnected()) throw ApiError(499, "request_cancelled", "the client closed the connection");
      }
      if (!e) continue;  // the engine always ends a job (done, failed or cancelled at shutdown)
      if (e->kind == Event::Kind::Failed) throw ApiError(500, "server_error", "generation failed: " + e->error);
      c.text += e->text;
      if (e->kind == Event::Kind::Done) {
        c.done = *e;
        c.stats = jobs[i]->stats();
        break;
      }
      c.tokens.push_back(e->token);
      if (options.logprobs) c.entries.push_back(token_entry(*model_->tokenizer, *e, dialect));
    }
  }
  reply(res, 200, final_response(dialect, id, choices, options));
}

namespace {

std::string system_fingerprint() { return "b-bitnet-cpp"; }

}  // namespace

json Api::final_response(Dialect dialect, const std::string& id, const std::vector<Choice>& choices,
                         const ResponseOptions& options) const {
  const EngineConfig& ec = engine_->config();
  auto finish_of = [](const Event& done) { return done.finish_reason == "cancelled" ? "length" : done.finish_reason; };
  if (dialect == Dialect::Native) {
    const Choice& c = choices.front();
    json j = {{"index", 0},
              {"content", c.text},
              {"tokens", options.return_tokens ? json(c.tokens) : json::array()},
              {"id_slot", c.stats.slot},
              {"stop", true},
              {"model", model_name_},
              {"tokens_predicted", c.stats.generated},
              {"tokens_evaluated", c.stats.prompt_tokens},
              {"tokens_cached", c.stats.cached_tokens},
              {"stop_type", stop_type(c.done)},
              {"stopping_word", c.done.stopping_word},
              {"has_new_line", c.text.find('\n') != std::string::npos},
              // the slot's context filled before generation ended
              {"truncated", c.stats.prompt_tokens + c.stats.generated >= ec.n_ctx_slot},
              {"generation_settings", generation_settings()},
              {"timings", timings(c.stats)}};
    if (options.logprobs) j["completion_probabilities"] = c.entries;
    return j;
  }
  const bool chat = dialect == Dialect::OpenAiChat;
  json out_choices = json::array();
  JobStats total;
  for (size_t i = 0; i < choices.size(); ++i) {
    const Choice& c = choices[i];
    json choice = {{"index", i}, {"finish_reason", finish_of(c.done)},
                   {"logprobs", choice_logprobs(dialect, options.logprobs, c.entries, options.echo_text.size())}};
    if (chat)
      choice["message"] = {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}};
    else
      choice["text"] = options.echo_text + c.text;
    out_choices.push_back(std::move(choice));
    total.prompt_tokens = c.stats.prompt_tokens;  // one prompt for all choices
    total.cached_tokens = i == 0 ? c.stats.cached_tokens : total.cached_tokens;
    total.generated += c.stats.generated;
    total.prompt_ms += c.stats.prompt_ms;
    total.generation_ms += c.stats.generation_ms;
  }
  return {{"id", id},
          {"object", chat ? "chat.completion" : "text_completion"},
          {"created", unix_now()},
          {"model", model_name_},
          {"system_fingerprint", system_fingerprint()},
          {"choices", std::move(out_choices)},
          {"usage", usage(total)},
          {"timings", timings(total)}};
}

// One SSE response for several jobs (the n choices of one request).
struct Api::Stream {
  struct Part {
    std::shared_ptr<Job> job;
    bool role_sent = false, finished = false;
    size_t text_offset = 0;  // completions logprobs: bytes of text sent so far
  };
  std::vector<Part> parts;
  Dialect dialect;
  std::string id;
  ResponseOptions options;
  int64_t created = unix_now();
  bool finished = false;  // every part done and the closing events written
  size_t next_part = 0;   // round-robin position
  JobStats total;
};

// The SSE text for one event of choice `index`: OpenAI chunks (a role chunk first for chat; a final
// chunk with finish_reason; after the last choice ends, a usage chunk if asked for and [DONE]) or
// llama.cpp's native {"content", "stop"} objects.
std::string Api::sse_for(Stream& st, size_t index, const Event& e) const {
  Stream::Part& part = st.parts[index];
  if (e.kind == Event::Kind::Failed)
    return sse(error_body(500, "server_error", "generation failed: " + e.error));
  const bool done = e.kind == Event::Kind::Done;
  if (st.dialect == Dialect::Native) {
    if (done) {
      Choice c;
      c.text = e.text;
      c.done = e;
      c.stats = part.job->stats();
      json j = final_response(Dialect::Native, st.id, {c}, st.options);
      j.erase("completion_probabilities");
      j["content"] = e.text;
      return sse(j);
    }
    json j = {{"index", 0}, {"content", e.text}, {"tokens", st.options.return_tokens ? json::array({e.token}) : json::array()},
              {"stop", false}, {"id_slot", -1}};
    if (st.options.logprobs) j["completion_probabilities"] = json::array({token_entry(*model_->tokenizer, e, st.dialect)});
    return sse(j);
  }
  const bool chat = st.dialect == Dialect::OpenAiChat;
  auto chunk = [&](json choice) {
    json c = {{"id", st.id},
              {"object", chat ? "chat.completion.chunk" : "text_completion"},
              {"created", st.created},
              {"model", model_name_},
              {"system_fingerprint", system_fingerprint()},
              {"choices", json::array({std::move(choice)})}};
    if (st.options.include_usage) c["usage"] = nullptr;
    return c;
  };
  std::string out;
  if (!part.role_sent) {
    part.role_sent = true;
    if (chat)
      out += sse(chunk({{"index", index}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"logprobs", nullptr},
                        {"finish_reason", nullptr}}));
    else if (!st.options.echo_text.empty())
      out += sse(chunk({{"index", index}, {"text", st.options.echo_text}, {"logprobs", nullptr}, {"finish_reason", nullptr}}));
    part.text_offset = st.options.echo_text.size();
  }
  auto piece = [&](const std::string& text, json finish, const Event* token) {
    const bool final_chunk = !finish.is_null();
    json logprobs = nullptr;
    if (token && st.options.logprobs) {
      const json entries = json::array({token_entry(*model_->tokenizer, *token, st.dialect)});
      logprobs = choice_logprobs(st.dialect, true, entries, part.text_offset);
    }
    json choice = {{"index", index}, {"finish_reason", std::move(finish)}, {"logprobs", std::move(logprobs)}};
    if (chat) choice["delta"] = text.empty() && final_chunk ? json::object() : json{{"content", text}};
    if (!chat) choice["text"] = text;
    part.text_offset += text.size();
    return sse(chunk(std::move(choice)));
  };
  if (!done) return out + piece(e.text, nullptr, &e);
  if (!e.text.empty()) out += piece(e.text, nullptr, nullptr);
  out += piece("", e.finish_reason == "cancelled" ? "length" : e.finish_reason, nullptr);
  const JobStats s = part.job->stats();
  st.total.prompt_tokens = s.prompt_tokens;
  if (index == 0) st.total.cached_tokens = s.cached_tokens;
  st.total.generated += s.generated;
  st.total.prompt_ms += s.prompt_ms;
  st.total.generation_ms += s.generation_ms;
  return out;
}

// Streams the jobs as Server-Sent Events. A client that goes away makes a write fail, which
// cancels the jobs so their slots are freed at the engine's next step; while no token is ready a
// comment line is written each second, so a vanished client is noticed even then.
void Api::stream_response(httplib::Response& res, std::vector<std::shared_ptr<Job>> jobs, Dialect dialect,
                          std::string id, ResponseOptions options, bool chunked) {
  auto st = std::make_shared<Stream>();
  for (auto& j : jobs) st->parts.push_back({std::move(j)});
  st->dialect = dialect;
  st->id = std::move(id);
  st->options = std::move(options);
  ++in_flight_;
  res.set_header("Cache-Control", "no-cache");
  httplib::ContentProviderWithoutLength provide =
      [this, st](size_t, httplib::DataSink& sink) {
        if (st->finished) {
          sink.done();
          return true;
        }
        std::string out;
        // One unfinished part: wait on it (a token is sent the moment it is ready). Several: take
        // what each has ready, round-robin, with a short wait on one at a time.
        size_t unfinished = 0;
        for (const auto& p : st->parts) unfinished += !p.finished;
        const size_t n = st->parts.size();
        bool any = false;
        for (size_t k = 0; k < n && !any; ++k) {
          const size_t i = (st->next_part + k) % n;
          Stream::Part& p = st->parts[i];
          if (p.finished) continue;
          const auto wait = std::chrono::milliseconds(unfinished == 1 ? 1000 : k + 1 == n ? 20 : 0);
          auto e = p.job->next(wait);
          while (e) {
            any = true;
            out += sse_for(*st, i, *e);
            if (e->kind != Event::Kind::Token) {
              p.finished = true;
              break;
            }
            e = p.job->next(std::chrono::milliseconds(0));
          }
          if (any) st->next_part = (i + 1) % n;
        }
        if (!any && unfinished == 1) out = ": keep-alive\n\n";
        bool all_done = true;
        for (const auto& p : st->parts) all_done = all_done && p.finished;
        if (all_done) {
          st->finished = true;
          if (st->dialect != Dialect::Native) {
            if (st->options.include_usage) {
              json last = {{"id", st->id},
                           {"object", st->dialect == Dialect::OpenAiChat ? "chat.completion.chunk" : "text_completion"},
                           {"created", st->created},
                           {"model", model_name_},
                           {"system_fingerprint", system_fingerprint()},
                           {"choices", json::array()},
                           {"usage", usage(st->total)},
                           {"timings", timings(st->total)}};
              out += sse(last);
            }
            out += "data: [DONE]\n\n";
          }
        }
        if (!out.empty() && !sink.write(out.data(), out.size())) {
          for (auto& p : st->parts) p.job->cancel();
          return false;
        }
        if (st->finished) sink.done();
        return true;
      };
  httplib::ContentProviderResourceReleaser release = [this, st](bool success) {
    if (!success || !st->finished)
      for (auto& p : st->parts) p.job->cancel();
    --in_flight_;
  };
  if (chunked)
    res.set_chunked_content_provider("text/event-stream", std::move(provide), std::move(release));
  else
    res.set_content_provider("text/event-stream", std::move(provide), std::move(release));
}

}  // namespace bitnet::server
