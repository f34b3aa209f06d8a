// Generation endpoints: POST /completion (llama.cpp's native format), /v1/completions and
// /v1/chat/completions (OpenAI), as one JSON response or as Server-Sent Events.
#include <httplib.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <optional>

#include "grammar/grammar.h"
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
// post_sampling (llama-server's post_sampling_probs): "prob" and "top_probs" instead, the
// probabilities after the sampler chain.
json token_entry(const Tokenizer& tok, const Event& e, Dialect dialect, bool post_sampling) {
  const bool native = dialect == Dialect::Native;
  const char* value_key = post_sampling ? "prob" : "logprob";
  auto one = [&](int32_t id, float value) {
    const std::string piece = tok.token_to_piece(id, true);
    json j = {{"token", piece}, {value_key, value}, {"bytes", bytes_of(piece)}};
    if (native) j["id"] = id;
    return j;
  };
  json top = json::array();
  for (const TokenProb& p : e.probs) top.push_back(one(p.id, post_sampling ? p.prob : p.logprob));
  json entry = one(e.token, post_sampling ? e.prob : e.logprob);
  entry[post_sampling ? "top_probs" : "top_logprobs"] = std::move(top);
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
// Completions with post_sampling_probs: llama-server's {"content": entries} (OpenAI's legacy arrays
// hold log-probabilities only).
json choice_logprobs(Dialect dialect, const ResponseOptions& o, const json& entries, size_t text_offset) {
  if (!o.logprobs) return nullptr;
  if (dialect == Dialect::OpenAiChat) return {{"content", entries}, {"refusal", nullptr}};
  if (o.post_sampling) return {{"content", entries}};
  return text_logprobs(entries, text_offset);
}

json progress_json(const PromptProgress& p) {
  return {{"total", p.total}, {"cache", p.cache}, {"processed", p.processed}, {"time_ms", p.time_ms}};
}

// A /completion stream object for a token or progress event (also `__verbose` of a completions
// chunk under --verbose).
json native_chunk(size_t index, const Event& e) {
  json j = {{"index", index}, {"content", e.text}, {"stop", false}, {"id_slot", -1}};
  if (e.kind == Event::Kind::Progress) {
    j["tokens"] = json::array();
    j["prompt_progress"] = progress_json(e.progress);
  } else {
    j["tokens"] = json::array({e.token});
  }
  return j;
}

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

// llama-server's generation_settings of a finished /completion: what this request ran with.
json request_settings(const GenerationRequest& r, int64_t n_ctx) {
  const SamplingParams& p = r.sampling;
  return {{"n_ctx", n_ctx},          {"n_predict", r.n_predict},       {"seed", p.seed},
          {"temperature", p.temperature}, {"top_k", p.top_k},          {"top_p", p.top_p},
          {"min_p", p.min_p},        {"repeat_penalty", p.repeat_penalty}, {"repeat_last_n", p.repeat_last_n},
          {"ignore_eos", r.ignore_eos}, {"stop", r.stop},             {"n_probs", r.n_probs},
          {"cache_prompt", r.cache_prompt}, {"post_sampling_probs", r.post_sampling_probs},
          {"n_keep", r.n_keep},      {"n_discard", r.n_discard}};
}

// "n": choices per request (each a job of its own; more than the slots wait in the queue).
constexpr int64_t kMaxChoices = 16;

// OpenAI's {"token id": bias} or llama.cpp's [[id, bias], …]; bias in [−100, 100], or false to ban
// the token (−∞), as llama-server accepts. A key (or pair) that is text biases every token of it.
std::vector<std::pair<int32_t, float>> get_logit_bias(const json& body, const Tokenizer& tok) {
  const auto it = body.find("logit_bias");
  if (it == body.end() || it->is_null()) return {};
  const int64_t n_tokens = tok.n_tokens();
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
  auto add_text = [&](const std::string& text, const json& bias) {
    const std::vector<int32_t> ids = tok.encode(text, false, false);
    if (ids.empty()) throw bad_request("'logit_bias' text keys must not be empty");
    for (int32_t id : ids) add(id, bias);
  };
  if (it->is_object()) {
    for (const auto& [key, bias] : it->items()) {
      int64_t id = -1;
      const auto [ptr, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
      if (ec == std::errc() && ptr == key.data() + key.size())
        add(id, bias);
      else
        add_text(key, bias);
    }
  } else if (it->is_array()) {
    for (const json& pair : *it) {
      if (!pair.is_array() || pair.size() != 2 || !(pair[0].is_number_integer() || pair[0].is_string()))
        throw bad_request("'logit_bias' as an array must hold [token id or text, bias] pairs");
      if (pair[0].is_string())
        add_text(pair[0].get<std::string>(), pair[1]);
      else
        add(pair[0].get<int64_t>(), pair[1]);
    }
  } else {
    throw bad_request("'logit_bias' must be an object {\"token id or text\": bias} or an array of [token id or text, bias] pairs");
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
    if (!role || (*role != "system" && *role != "user" && *role != "assistant" && *role != "tool"))
      throw bad_request("message 'role' must be \"system\", \"user\", \"assistant\" or \"tool\"");
    std::string content;
    const auto c = m.find("content");
    if (c != m.end() && c->is_string()) {
      content = c->get<std::string>();
    } else if (c != m.end() && c->is_array()) {  // content parts: only text is supported
      for (const json& part : *c) {
        if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") || !part["text"].is_string())
          throw bad_request("message content parts must be {\"type\": \"text\", \"text\": string}");
        content += part["text"].get<std::string>();
      }
    } else if (c != m.end() && !c->is_null()) {
      throw bad_request("message 'content' must be a string or an array of text parts");
    }
    if (*role == "tool") {  // a function's result, for the model to read: <tool_response>…</tool_response>
      if (const auto id = m.find("tool_call_id"); id != m.end() && !id->is_null() && !id->is_string())
        throw bad_request("a tool message's 'tool_call_id' must be a string");
      content = "<tool_response>" + content + "</tool_response>";
    }
    if (const auto calls = m.find("tool_calls"); calls != m.end() && !calls->is_null()) {
      // The assistant's earlier calls, rendered as it would have written them.
      if (*role != "assistant" || !calls->is_array()) throw bad_request("'tool_calls' must be an array on an assistant message");
      for (const json& c : *calls) {
        const json* f = c.is_object() && c.contains("function") ? &c["function"] : nullptr;
        if (!f || !f->is_object() || !f->contains("name") || !(*f)["name"].is_string())
          throw bad_request("each of 'tool_calls' must be {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}");
        std::string args = "{}";
        if (const auto a = f->find("arguments"); a != f->end() && !a->is_null()) {
          if (a->is_string()) {
            if (!json::accept(a->get<std::string>())) throw bad_request("a tool call's 'arguments' must be JSON text");
            args = a->get<std::string>();
          } else if (a->is_object()) {
            args = dump(*a);
          } else {
            throw bad_request("a tool call's 'arguments' must be a JSON string or an object");
          }
        }
        content += tool_call_text((*f)["name"].get<std::string>(), args);
      }
    }
    out.push_back({*role, content});
  }
  // A last assistant message is a prefill the reply continues; two at the end have no reading.
  if (out.size() >= 2 && out.back().role == "assistant" && out[out.size() - 2].role == "assistant")
    throw bad_request("the last two messages are both from the assistant (one at the end is a prefill to continue)");
  return out;
}

// The prompts of `prompt`: one (a string, token ids, ids mixed with strings, a {"prompt_string"}
// object, a one-string array) or several (an array of such prompts, as OpenAI and llama-server take).
std::vector<const json*> Api::split_prompts(const json& prompt) const {
  if (!prompt.is_array()) return {&prompt};
  if (prompt.empty()) throw bad_request("the prompt is empty");
  bool nested = false, all_strings = true;
  for (const json& e : prompt) {
    nested = nested || e.is_array() || e.is_object();
    all_strings = all_strings && e.is_string();
  }
  if (!nested && !(all_strings && prompt.size() > 1)) return {prompt.size() == 1 && prompt[0].is_string() ? &prompt[0] : &prompt};
  std::vector<const json*> out;
  for (const json& e : prompt) out.push_back(&e);
  return out;
}

std::vector<int32_t> Api::prompt_tokens(const json& prompt) const {
  const Tokenizer& tok = *model_->tokenizer;
  // Text is tokenized as `bitnet run` does: BOS per the vocabulary, special tokens parsed, after
  // the system prompt's tokens when there is one.
  auto text = [&](const std::string& s) {
    std::vector<int32_t> ids = system_prefix(*model_);
    const auto t = tok.encode(s, ids.empty(), true);
    ids.insert(ids.end(), t.begin(), t.end());
    return ids;
  };
  if (prompt.is_string()) return text(prompt.get<std::string>());
  if (prompt.is_object()) {
    if (prompt.contains("multimodal_data")) throw bad_request("multimodal prompts are not supported");
    const auto s = get_string(prompt, "prompt_string");
    if (!s) throw bad_request("a prompt object needs 'prompt_string' (a string)");
    return text(*s);
  }
  if (!prompt.is_array()) throw bad_request("'prompt' must be a string, token ids (mixed with strings), or an array of prompts");
  // Token ids, possibly mixed with strings: the strings tokenized in place (BOS only for a first one).
  std::vector<int32_t> ids;
  for (size_t i = 0; i < prompt.size(); ++i) {
    const json& e = prompt[i];
    if (e.is_string()) {
      const auto t = i == 0 ? text(e.get<std::string>()) : tok.encode(e.get<std::string>(), false, true);
      ids.insert(ids.end(), t.begin(), t.end());
    } else {
      const auto one = get_tokens(json::array({e}), "prompt", tok.n_tokens());
      ids.insert(ids.end(), one.begin(), one.end());
    }
  }
  return ids;
}

// Every field that reaches the engine is checked here: types, ranges and anything that could
// index a buffer (token ids, slot id, n_probs, n_keep).
GenerationRequest Api::parse_generation(const json& body, Dialect dialect, ResponseOptions* options,
                                          const nlohmann::ordered_json* ordered) const {
  const Tokenizer& tok = *model_->tokenizer;
  const EngineConfig& ec = engine_->config();
  GenerationRequest r;
  ResponseOptions unused;
  ResponseOptions& o = options ? *options : unused;
  if (body.contains("model") && !body["model"].is_string() && !body["model"].is_null())
    throw bad_request("'model' must be a string");
  o.n = int(get_int(body, "n", 1, dialect == Dialect::Native ? 1 : kMaxChoices).value_or(1));
  // grammar / json_schema / response_format / tools: read from the body with its key order kept
  // (a schema's properties are produced in the order it declares them).
  Structured structured;
  if (ordered) structured = read_structured(*ordered, dialect == Dialect::OpenAiChat);
  o.tool_mode = structured.tool_mode;
  if (dialect == Dialect::OpenAiChat) {
    std::vector<ChatMessage> messages = chat_messages(body);
    if (!config_.system_prompt.empty() && messages.front().role != "system")
      messages.insert(messages.begin(), {"system", config_.system_prompt});
    add_tools_prompt(messages, structured);
    r.prompt = tok.encode(render_chat(*model_, messages), true, true);
    o.prompts = {r.prompt};
  } else {
    const auto it = body.find("prompt");
    if (it == body.end()) throw bad_request("'prompt' is required");
    const std::vector<const json*> prompts = split_prompts(*it);
    if (prompts.size() > size_t(kMaxChoices))
      throw bad_request("at most " + std::to_string(kMaxChoices) + " prompts per request");
    for (const json* one : prompts) {
      o.prompts.push_back(prompt_tokens(*one));
      o.echo_texts.push_back(one->is_string() ? one->get<std::string>()
                             : one->is_object() ? one->value("prompt_string", std::string())
                                                : tok.decode(o.prompts.back()));
    }
    r.prompt = o.prompts.front();
  }
  for (const auto& prompt : o.prompts) {
    if (prompt.empty()) throw bad_request("the prompt is empty");
    if (int64_t(prompt.size()) > ec.n_ctx_slot)
      throw ApiError(400, "exceed_context_size_error",
                     "the request exceeds the available context size: the prompt is " + std::to_string(prompt.size()) +
                         " tokens, the slot context " + std::to_string(ec.n_ctx_slot) + " tokens",
                     {{"n_prompt_tokens", prompt.size()}, {"n_ctx", ec.n_ctx_slot}});
  }
  if (o.prompts.size() * size_t(o.n) > size_t(kMaxChoices))
    throw bad_request("prompts × n must be at most " + std::to_string(kMaxChoices));

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
  r.post_sampling_probs = o.post_sampling = get_bool(body, "post_sampling_probs").value_or(false);
  r.return_progress = get_bool(body, "return_progress").value_or(false);  // streams only (completion())
  // Context shift (--context-shift): what stays and what goes when the slot fills; without it
  // n_keep and n_discard matter only with --context-shift (engine.cpp's shift_context).
  r.n_keep = get_int(body, "n_keep", -1, ec.n_ctx_slot).value_or(0);
  r.n_discard = get_int(body, "n_discard", 0, ec.n_ctx_slot).value_or(0);
  if (r.n_discard != 0 && !ec.context_shift)
    throw bad_request("'n_discard' must be 0: this server was started without --context-shift (a full slot ends the reply)");
  p.logit_bias = get_logit_bias(body, tok);
  if (!structured.grammar.empty()) {
    try {
      r.grammar = Grammar::parse(structured.grammar);
    } catch (const GrammarError& e) {
      throw bad_request("'" + structured.source + "': " + e.what());
    }
  } else if (structured.tool_mode == ToolMode::None && default_grammar_) {
    r.grammar = default_grammar_;  // bitnet serve --grammar / -j
  }

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
    const auto suffix = get_string(body, "suffix");
    if (suffix && !suffix->empty()) throw bad_request("'suffix' is not supported: this server does no insertion (infill)");
  } else {
    o.logprobs = r.n_probs > 0;
    o.return_tokens = get_bool(body, "return_tokens").value_or(false);
    if (const auto rf = body.find("response_fields"); rf != body.end() && !rf->is_null()) {
      if (!rf->is_array() || rf->size() > 64) throw bad_request("'response_fields' must be an array of at most 64 strings");
      for (const json& f : *rf) {
        if (!f.is_string()) throw bad_request("'response_fields' must be an array of at most 64 strings");
        o.response_fields.push_back(f.get<std::string>());
      }
    }
  }
  r.logprobs = o.logprobs;
  return r;
}

void Api::completion(const httplib::Request& req, httplib::Response& res, Dialect dialect) {
  if (!engine_->config().generation)
    throw bad_request("the model " + model_name_ + " is an embedding model: it does not generate text (use /v1/embeddings)");
  if (shutting_down_) throw ApiError(503, "unavailable_error", "server is shutting down");
  const json body = parse_object(req.body);
  const bool stream = get_bool(body, "stream").value_or(false);
  ResponseOptions options;
  if (const auto so = body.find("stream_options"); so != body.end() && !so->is_null()) {
    if (!so->is_object()) throw bad_request("'stream_options' must be an object");
    options.include_usage = get_bool(*so, "include_usage").value_or(false);
  }
  std::optional<nlohmann::ordered_json> ordered;
  for (const char* key : {"grammar", "json_schema", "response_format", "tools", "tool_choice", "parallel_tool_calls"})
    if (body.contains(key)) {
      ordered = nlohmann::ordered_json::parse(req.body);  // parse_object already checked it
      break;
    }
  GenerationRequest request = parse_generation(body, dialect, &options, ordered ? &*ordered : nullptr);
  request.return_progress = request.return_progress && stream;  // as llama-server: progress is streamed
  // n choices of each prompt: a job each, choice i seeded seed + i so they differ when sampling;
  // job p·n + i is choice i of prompt p.
  std::vector<std::shared_ptr<Job>> jobs;
  try {
    for (size_t p = 0; p < options.prompts.size(); ++p)
      for (int i = 0; i < options.n; ++i) {
        GenerationRequest r = request;
        r.prompt = options.prompts[p];
        r.sampling.seed = request.sampling.seed + uint64_t(i);
        if (p > 0 || i > 0) r.slot_id = -1;
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
    if (options.echo) c.echo = options.echo_texts[i / size_t(options.n)];
    for (;;) {
      const auto e = jobs[i]->next(std::chrono::milliseconds(200));
      // A client that went away does not keep a slot busy until its reply is complete (the jobs
      // are cancelled on the way out).
      if (Clock::now() - checked >= std::chrono::milliseconds(200)) {
        checked = Clock::now();
        if (client_disconnected()) throw ApiError(499, "request_cancelled", "the client closed the connection");
      }
      // The engine always ends a job (done, failed or cancelled at shutdown); progress is streamed only.
      if (!e || e->kind == Event::Kind::Progress) continue;
      if (e->kind == Event::Kind::Failed) throw ApiError(500, "server_error", "generation failed: " + e->error);
      c.text += e->text;
      if (e->kind == Event::Kind::Done) {
        c.done = *e;
        c.stats = jobs[i]->stats();
        c.settings = request_settings(jobs[i]->request, engine_->config().n_ctx_slot);
        c.prompt = model_->tokenizer->decode(jobs[i]->request.prompt, /*render_special=*/true);
        break;
      }
      c.tokens.push_back(e->token);
      if (options.logprobs) c.entries.push_back(token_entry(*model_->tokenizer, *e, dialect, options.post_sampling));
    }
  }
  if (dialect == Dialect::Native && choices.size() > 1) {  // several prompts: llama-server answers a list
    json list = json::array();
    for (size_t i = 0; i < choices.size(); ++i) {
      json one = final_response(dialect, id, {choices[i]}, options);
      one["index"] = i;
      list.push_back(std::move(one));
    }
    return reply(res, 200, list);
  }
  reply(res, 200, final_response(dialect, id, choices, options));
}

namespace {

std::string system_fingerprint() { return "b-bitnet-cpp"; }

}  // namespace

json Api::final_response(Dialect dialect, const std::string& id, const std::vector<Choice>& choices,
                         const ResponseOptions& options) const {
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
              // the slot's context filled: generation stopped there, or the context was shifted
              {"truncated", c.stats.truncated},
              {"generation_settings", c.settings},
              // llama-server's processed prompt: its tokens as text, special tokens included
              {"prompt", c.prompt},
              {"timings", timings(c.stats)}};
    if (options.logprobs) j["completion_probabilities"] = c.entries;
    if (options.response_fields.empty()) return j;
    // llama-server's response_fields: only those fields, nested ones named by their path ("a/b").
    json picked = json::object();
    for (const std::string& path : options.response_fields) {
      const json* at = &j;
      for (size_t start = 0; at && start <= path.size();) {
        const size_t slash = std::min(path.find('/', start), path.size());
        const std::string key = path.substr(start, slash - start);
        at = at->is_object() && at->contains(key) ? &(*at)[key] : nullptr;
        start = slash + 1;
      }
      if (at) picked[path] = *at;
    }
    return picked;
  }
  const bool chat = dialect == Dialect::OpenAiChat;
  json out_choices = json::array();
  JobStats total;
  for (size_t i = 0; i < choices.size(); ++i) {
    const Choice& c = choices[i];
    json choice = {{"index", i}, {"finish_reason", finish_of(c.done)},
                   {"logprobs", choice_logprobs(dialect, options, c.entries, c.echo.size())}};
    std::optional<ToolCall> call;
    if (chat && options.tool_mode != ToolMode::None) call = parse_tool_call(c.text);
    if (call) {
      json tc = {{"id", new_tool_call_id()}, {"type", "function"}, {"function", {{"name", call->name}, {"arguments", call->arguments}}}};
      choice["message"] = {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", json::array({tc})}, {"refusal", nullptr}};
      if (c.done.finish_reason == "stop") choice["finish_reason"] = "tool_calls";
    } else if (chat)
      choice["message"] = {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}};
    else
      choice["text"] = c.echo + c.text;
    out_choices.push_back(std::move(choice));
    if (i % size_t(options.n) == 0) {  // each prompt counted once, however many choices it has
      total.prompt_tokens += c.stats.prompt_tokens;
      total.cached_tokens += c.stats.cached_tokens;
    }
    total.generated += c.stats.generated;
    total.prompt_ms += c.stats.prompt_ms;
    total.generation_ms += c.stats.generation_ms;
  }
  json out = {{"id", id},
              {"object", chat ? "chat.completion" : "text_completion"},
              {"created", unix_now()},
              {"model", model_name_},
              {"system_fingerprint", system_fingerprint()},
              {"choices", std::move(out_choices)},
              {"usage", usage(total)},
              {"timings", timings(total)}};
  if (config_.verbose) out["__verbose"] = verbose_result(id, choices.front(), options);
  return out;
}

// --verbose: llama-server's `__verbose`, the native /completion result of the (first) choice.
json Api::verbose_result(const std::string& id, const Choice& c, const ResponseOptions& options) const {
  ResponseOptions native = options;
  native.response_fields.clear();
  native.return_tokens = true;
  json j = final_response(Dialect::Native, id, {c}, native);
  if (c.entries.empty()) j.erase("completion_probabilities");
  return j;
}

// One SSE response for several jobs (the n choices of one request).
struct Api::Stream {
  struct Part {
    std::shared_ptr<Job> job;
    bool role_sent = false, finished = false;
    size_t text_offset = 0;  // completions logprobs: bytes of text sent so far
    std::unique_ptr<ToolCallStream> tools;  // chat with tools: the reply, split into content or a call
    std::string call_id;
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
  // The finished choice as the native result sees it (in a stream its content is the last piece).
  auto finished_choice = [&] {
    Choice c;
    c.text = e.text;
    c.done = e;
    c.stats = part.job->stats();
    c.settings = request_settings(part.job->request, engine_->config().n_ctx_slot);
    c.prompt = model_->tokenizer->decode(part.job->request.prompt, /*render_special=*/true);
    return c;
  };
  if (st.dialect == Dialect::Native) {
    if (done) {
      json j = final_response(Dialect::Native, st.id, {finished_choice()}, st.options);
      j.erase("completion_probabilities");
      j["content"] = e.text;
      return sse(j);
    }
    json j = native_chunk(index, e);
    if (st.options.logprobs && e.kind == Event::Kind::Token)
      j["completion_probabilities"] = json::array({token_entry(*model_->tokenizer, e, st.dialect, st.options.post_sampling)});
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
  const bool progress = e.kind == Event::Kind::Progress;
  std::string out;
  if (!part.role_sent) {
    part.role_sent = true;
    if (chat && !progress)  // a progress chunk carries the role itself
      out += sse(chunk({{"index", index}, {"delta", {{"role", "assistant"}, {"content", nullptr}}}, {"logprobs", nullptr},
                        {"finish_reason", nullptr}}));
    const std::string echo = st.options.echo ? st.options.echo_texts[index / size_t(st.options.n)] : "";
    if (!chat && !echo.empty())
      out += sse(chunk({{"index", index}, {"text", echo}, {"logprobs", nullptr}, {"finish_reason", nullptr}}));
    part.text_offset = echo.size();
  }
  if (progress) {
    // llama-server's prompt_progress chunk: for chat a role delta, for completions empty text.
    json choice = {{"index", index}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
    if (chat)
      choice["delta"] = {{"role", "assistant"}, {"content", nullptr}};
    else
      choice["text"] = "";
    json c = chunk(std::move(choice));
    c["prompt_progress"] = progress_json(e.progress);
    if (config_.verbose && !chat) c["__verbose"] = native_chunk(index, e);
    return out + sse(c);
  }
  auto piece = [&](const std::string& text, json finish, const Event* token) {
    const bool final_chunk = !finish.is_null();
    json logprobs = nullptr;
    if (token && st.options.logprobs) {
      const json entries = json::array({token_entry(*model_->tokenizer, *token, st.dialect, st.options.post_sampling)});
      logprobs = choice_logprobs(st.dialect, st.options, entries, part.text_offset);
    }
    json choice = {{"index", index}, {"finish_reason", std::move(finish)}, {"logprobs", std::move(logprobs)}};
    if (chat) choice["delta"] = text.empty() && final_chunk ? json::object() : json{{"content", text}};
    if (!chat) choice["text"] = text;
    part.text_offset += text.size();
    json c = chunk(std::move(choice));
    // --verbose, as llama-server: completions chunks carry the native chunk of their token; the
    // last chunk of a choice (chat or completions) the native result.
    if (config_.verbose && final_chunk) c["__verbose"] = verbose_result(st.id, finished_choice(), st.options);
    else if (config_.verbose && !chat && token) c["__verbose"] = native_chunk(index, *token);
    return sse(c);
  };
  std::string finish_reason = e.finish_reason == "cancelled" ? "length" : e.finish_reason;
  if (chat && st.options.tool_mode != ToolMode::None) {
    // Tool calls: a delta with the call's id, type and name, then its arguments in pieces.
    if (!part.tools) part.tools = std::make_unique<ToolCallStream>();
    ToolCallStream::Delta d = part.tools->push(e.text);
    auto emit = [&](const ToolCallStream::Delta& d, const Event* token) {
      if (!d.content.empty()) out += piece(d.content, nullptr, token);
      if (d.call_started) {
        part.call_id = new_tool_call_id();
        json call = {{"index", 0}, {"id", part.call_id}, {"type", "function"}, {"function", {{"name", d.name}, {"arguments", ""}}}};
        out += sse(chunk({{"index", index}, {"delta", {{"content", nullptr}, {"tool_calls", json::array({call})}}},
                          {"logprobs", nullptr}, {"finish_reason", nullptr}}));
      }
      if (!d.arguments.empty())
        out += sse(chunk({{"index", index}, {"delta", {{"tool_calls", json::array({{{"index", 0}, {"function", {{"arguments", d.arguments}}}}})}}},
                          {"logprobs", nullptr}, {"finish_reason", nullptr}}));
    };
    emit(d, &e);
    if (!done) return out;
    emit(part.tools->finish(), nullptr);
    if (part.tools->in_call() && finish_reason == "stop") finish_reason = "tool_calls";
  } else {
    if (!done) return out + piece(e.text, nullptr, &e);
    if (!e.text.empty()) out += piece(e.text, nullptr, nullptr);
  }
  out += piece("", finish_reason, nullptr);
  const JobStats s = part.job->stats();
  if (index % size_t(st.options.n) == 0) {
    st.total.prompt_tokens += s.prompt_tokens;
    st.total.cached_tokens += s.cached_tokens;
  }
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
  for (auto& j : jobs) {
    Stream::Part part;
    part.job = std::move(j);
    st->parts.push_back(std::move(part));
  }
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
            if (e->kind == Event::Kind::Done || e->kind == Event::Kind::Failed) {
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
