#include "server/http_api.h"

#include <httplib.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <chrono>
#include <filesystem>

#include "base/untrusted_text.h"
#include "server/api_error.h"
#include "server/web_page.h"

namespace bitnet::server {

using nlohmann::json;

Api::Api(ApiConfig config, Metrics& metrics)
    : config_(std::move(config)),
      metrics_(metrics),
      created_(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                   .count()) {
  if (!config_.default_grammar.empty()) default_grammar_ = Grammar::parse(config_.default_grammar);
  // llama-server's --alias a,b,c: every name is listed, the id is the first in sorted order.
  const auto split = [](const std::string& list) {
    std::set<std::string> out;
    std::stringstream ss(list);
    for (std::string item; std::getline(ss, item, ',');)
      if (!item.empty()) out.insert(item);
    return std::vector<std::string>(out.begin(), out.end());
  };
  aliases_ = split(config_.alias);
  tags_ = split(config_.tags);
  model_name_ = aliases_.empty() ? std::filesystem::path(config_.model_path).filename().string() : aliases_.front();
}

ChatFormat Api::chat_format(const Model& model) const {
  if (config_.chat_format) return *config_.chat_format;
  return detect_chat_format(model.tokenizer->data().chat_template, model.hp.arch.name);
}

std::string Api::render_chat(const Model& model, const std::vector<ChatMessage>& messages) const {
  const ChatFormat format = chat_format(model);
  if (!messages.empty() && messages.back().role == "assistant") {
    const std::vector<ChatMessage> before(messages.begin(), messages.end() - 1);
    return apply_chat_template(format, before, true) + messages.back().content;
  }
  return apply_chat_template(format, messages, true);
}

void Api::set_ready(const Model& model, Engine& engine) {
  model_ = &model;
  engine_ = &engine;
  ready_ = true;  // publishes model_/engine_ to the handler threads (sequentially consistent)
}

std::vector<int32_t> Api::system_prefix(const Model& model) const {
  if (config_.system_prompt.empty()) return {};
  const Tokenizer& tok = *model.tokenizer;
  const std::vector<ChatMessage> system = {{"system", config_.system_prompt}};
  return tok.encode(apply_chat_template(chat_format(model), system, false), true, true);
}

namespace {

// Comparison whose time does not depend on where the strings differ.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= uint8_t(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

// What llama-server answers without a key: health, the page, and the model list.
bool is_public(const std::string& path) {
  return path == "/health" || path == "/" || path == "/index.html" || path == "/models" || path == "/v1/models";
}

const char* error_type(int status) {
  switch (status) {
    case 400: case 413: return "invalid_request_error";
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 501: return "not_supported_error";
    case 503: return "unavailable_error";
    default: return "server_error";
  }
}

}  // namespace

// The credential headers reach this point as the client sent them: the connection layer refuses
// any with a '%' (check_framing_headers), the only byte the HTTP library would decode.
bool Api::authorized(const httplib::Request& req) const {
  if (config_.api_key.empty()) return true;
  const std::string auth = req.get_header_value("Authorization");
  // The scheme name is case-insensitive (RFC 9110 §11.1): "bearer KEY" is accepted too.
  const bool bearer = auth.size() > 7 && std::equal(auth.begin(), auth.begin() + 7, "bearer ", [](char a, char b) {
                        return std::tolower(static_cast<unsigned char>(a)) == b;
                      });
  if (bearer && same_secret(auth.substr(7), config_.api_key)) return true;
  return req.has_header("X-Api-Key") && same_secret(req.get_header_value("X-Api-Key"), config_.api_key);
}

void Api::add_cors_headers(const httplib::Request& req, httplib::Response& res) const {
  const std::string origin = req.get_header_value("Origin");
  if (config_.cors_origins.empty()) {
    if (!config_.api_key.empty()) return;
    // No key: any page may call the server anyway, so its origin is echoed (llama-server's answer).
    if (origin.empty()) {
      res.set_header("Access-Control-Allow-Origin", "*");
    } else {
      res.set_header("Access-Control-Allow-Origin", origin);
      res.set_header("Access-Control-Allow-Credentials", "true");
      res.set_header("Vary", "Origin");
    }
    return;
  }
  res.set_header("Vary", "Origin");
  for (const std::string& allowed : config_.cors_origins) {
    if (allowed == "*") {
      res.set_header("Access-Control-Allow-Origin", "*");
      return;
    }
    if (!origin.empty() && origin == allowed) {
      res.set_header("Access-Control-Allow-Origin", origin);
      res.set_header("Access-Control-Allow-Credentials", "true");
      return;
    }
  }
}

void Api::reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json; charset=utf-8");
}

// Runs a handler, turning every failure into the OpenAI error envelope: no exception reaches the
// HTTP library and no request can take the server down.
void Api::guard(const httplib::Request& req, httplib::Response& res, const std::function<void()>& body) {
  (void)req;
  try {
    body();
  } catch (const ApiError& e) {
    json body = error_body(e.status, e.type, e.what());
    body["error"].update(e.extra);
    reply(res, e.status, body);
  } catch (const Busy& e) {
    metrics_.requests_rejected += 1;
    reply(res, 503, error_body(503, "unavailable_error", e.what()));
  } catch (const Error& e) {  // library validation (tokens, lengths): the request was wrong
    reply(res, 400, error_body(400, "invalid_request_error", e.what()));
  } catch (const std::exception& e) {
    reply(res, 500, error_body(500, "server_error", e.what()));
  }
}

void Api::install(httplib::Server& srv) {
  srv.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    add_cors_headers(req, res);
    if (req.method == "OPTIONS") return httplib::Server::HandlerResponse::Unhandled;
    if (!is_public(req.path) && !authorized(req)) {
      reply(res, 401, error_body(401, "authentication_error", "invalid or missing API key"));
      return httplib::Server::HandlerResponse::Handled;
    }
    // Refused before the body is read: the HTTP library would otherwise read and discard it all.
    if (req.has_header("Content-Length") &&
        req.get_header_value<uint64_t>("Content-Length") > config_.max_body) {
      res.set_header("Connection", "close");
      reply(res, 413, error_body(413, "invalid_request_error", "request body is larger than the server's limit (--max-body)"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!is_public(req.path) && !ready_) {
      reply(res, 503, error_body(503, "unavailable_error", "Loading model"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Statuses the HTTP library produces itself (404, 413, 400 on bad framing) get the envelope too.
  srv.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
    metrics_.http_errors += 1;
    if (!res.body.empty() || res.is_chunked_content_provider_) return httplib::Server::HandlerResponse::Unhandled;
    std::string message = "request failed";
    if (res.status == 404) message = "no such endpoint: " + req.method + " " + req.path;
    if (res.status == 413) message = "request body is larger than the server's limit (--max-body)";
    reply(res, res.status, error_body(res.status, error_type(res.status), message));
    return httplib::Server::HandlerResponse::Handled;
  }));
  srv.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    reply(res, 500, error_body(500, "server_error", "internal error"));
  });
  // CORS preflight (llama-server's answer: 200, GET and POST, any header); whether the origin is
  // allowed is add_cors_headers' decision.
  srv.Options(".*", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Access-Control-Allow-Headers", "*");
    res.set_header("Access-Control-Allow-Methods", "GET, POST");
    res.set_header("Access-Control-Max-Age", "600");
    res.status = 200;
  });

  using Req = httplib::Request;
  using Res = httplib::Response;
  auto route = [this](auto fn) {
    return [this, fn](const Req& req, Res& res) { guard(req, res, [&] { fn(req, res); }); };
  };
  // POST bodies are read here, through the library's content reader, and at most --max-body bytes
  // of them: the library itself checks only a declared Content-Length, so a chunked body or a
  // small gzip body that inflates to gigabytes was read whole. Reading stops at the limit.
  auto route_body = [this](auto fn) {
    return [this, fn](const Req& req, Res& res, const httplib::ContentReader& reader) {
      Req with_body = req;
      bool too_big = false;
      const bool read = reader([&](const char* data, size_t n) {
        if (with_body.body.size() + n > config_.max_body) {
          too_big = true;
          return false;  // stops reading (and inflating) here
        }
        with_body.body.append(data, n);
        return true;
      });
      if (too_big) {
        metrics_.http_errors += 1;
        return reply(res, 413, error_body(413, "invalid_request_error",
                                          "request body is larger than the server's limit (--max-body)"));
      }
      if (!read) {
        metrics_.http_errors += 1;
        return reply(res, 400, error_body(400, "invalid_request_error",
                                          "the request body could not be read (bad chunked or compressed framing)"));
      }
      guard(with_body, res, [&] { fn(with_body, res); });
    };
  };
  if (config_.web_ui) {
    srv.Get("/", [](const Req&, Res& res) { res.set_content(kIndexHtml, "text/html; charset=utf-8"); });
    srv.Get("/index.html", [](const Req&, Res& res) { res.set_content(kIndexHtml, "text/html; charset=utf-8"); });
  }
  srv.Get("/health", route([this](const Req& q, Res& s) { health(q, s); }));
  srv.Get("/v1/models", route([this](const Req&, Res& s) { models(s); }));
  srv.Get("/models", route([this](const Req&, Res& s) { models(s); }));
  srv.Get(R"(/v1/models/(.+))", route([this](const Req& q, Res& s) { model_by_id(q.matches[1], s); }));
  srv.Get(R"(/models/(.+))", route([this](const Req& q, Res& s) { model_by_id(q.matches[1], s); }));
  srv.Get("/props", route([this](const Req&, Res& s) { props(s); }));
  srv.Get("/slots", route([this](const Req& q, Res& s) { slots(q, s); }));
  srv.Get("/metrics", route([this](const Req&, Res& s) { metrics(s); }));
  srv.Post("/tokenize", route_body([this](const Req& q, Res& s) { tokenize(q, s); }));
  srv.Post("/detokenize", route_body([this](const Req& q, Res& s) { detokenize(q, s); }));
  srv.Post("/apply-template", route_body([this](const Req& q, Res& s) { apply_template(q, s); }));
  srv.Post("/completion", route_body([this](const Req& q, Res& s) { completion(q, s, Dialect::Native); }));
  srv.Post("/completions", route_body([this](const Req& q, Res& s) { completion(q, s, Dialect::Native); }));
  srv.Post("/v1/completions", route_body([this](const Req& q, Res& s) { completion(q, s, Dialect::OpenAiText); }));
  srv.Post("/v1/chat/completions", route_body([this](const Req& q, Res& s) { completion(q, s, Dialect::OpenAiChat); }));
  srv.Post("/chat/completions", route_body([this](const Req& q, Res& s) { completion(q, s, Dialect::OpenAiChat); }));
  srv.Post("/v1/embeddings", route_body([this](const Req& q, Res& s) { embeddings(q, s, true); }));
  srv.Post("/embeddings", route_body([this](const Req& q, Res& s) { embeddings(q, s, false); }));
  srv.Post("/embedding", route_body([this](const Req& q, Res& s) { embeddings(q, s, false); }));
}

void Api::health(const httplib::Request&, httplib::Response& res) {
  if (!ready_) throw ApiError(503, "unavailable_error", "Loading model");
  reply(res, 200, {{"status", "ok"}});
}

json Api::model_object() const {
  const HParams& hp = model_->hp;
  return {{"id", model_name_},
          {"aliases", aliases_.empty() ? std::vector<std::string>{model_name_} : aliases_},
          {"tags", tags_},
          {"object", "model"},
          {"created", created_},
          {"owned_by", "bitnet.cpp"},
          {"meta",
           {{"architecture", hp.arch.name},
            {"n_vocab", hp.n_vocab},
            {"n_ctx_train", hp.n_ctx_train},
            {"n_embd", hp.n_embd},
            {"n_layer", hp.n_layer}}}};
}

void Api::models(httplib::Response& res) { reply(res, 200, {{"object", "list"}, {"data", json::array({model_object()})}}); }

// GET /v1/models/{id}: the one model this server runs, under its name.
void Api::model_by_id(const std::string& id, httplib::Response& res) {
  if (id != model_name_ && std::find(aliases_.begin(), aliases_.end(), id) == aliases_.end())
    throw ApiError(404, "not_found_error", "the model " + quote_untrusted(id, 200) + " does not exist (this server runs " +
                                               model_name_ + ")");
  reply(res, 200, model_object());
}

json Api::generation_settings() const {
  const SamplingParams& p = config_.sampling;
  return {{"n_ctx", engine_->config().n_ctx_slot},
          {"params",
           {{"n_predict", config_.n_predict},
            {"seed", config_.random_seed ? json(-1) : json(p.seed)},
            {"temperature", p.temperature},
            {"top_k", p.top_k},
            {"top_p", p.top_p},
            {"min_p", p.min_p},
            {"repeat_penalty", p.repeat_penalty},
            {"repeat_last_n", p.repeat_last_n},
            {"n_keep", 0},
            {"n_discard", 0}}}};
}

void Api::props(httplib::Response& res) {
  const EngineConfig& e = engine_->config();
  reply(res, 200,
        {{"default_generation_settings", generation_settings()},
         {"total_slots", e.n_slots},
         {"n_ctx", e.kv_unified ? e.n_ctx_slot : e.n_ctx_slot * e.n_slots},
         {"kv_unified", e.kv_unified},
         {"kv_cache_bytes", engine_->kv_cache_bytes_total()},
         {"continuous_batching", e.continuous_batching},
         {"queue_limit", e.queue_limit},
         {"model_path", config_.model_path},
         {"system_prompt", config_.system_prompt},
         {"chat_template", model_->tokenizer->data().chat_template}});
}

void Api::slots(const httplib::Request& req, httplib::Response& res) {
  if (!config_.slots_endpoint)
    throw ApiError(501, "not_supported_error", "This server does not support slots endpoint. Start it with `--slots`");
  json out = json::array();
  int idle = 0;
  for (const SlotInfo& s : engine_->slots()) {
    idle += s.busy ? 0 : 1;
    out.push_back({{"id", s.id},
                   {"is_processing", s.busy},
                   {"n_ctx", s.n_ctx},
                   {"n_cached", s.cached_tokens},
                   {"n_prompt_tokens", s.prompt_tokens},
                   {"n_decoded", s.generated},
                   {"kv_cache_bytes", s.kv_cache_bytes}});
  }
  if (req.has_param("fail_on_no_slot") && idle == 0) throw ApiError(503, "unavailable_error", "no slot available");
  reply(res, 200, out);
}

std::string Api::metrics_text() const {
  if (!ready_) return "";
  const auto slots = engine_->slots();
  int active = 0;
  for (const auto& s : slots) active += s.busy ? 1 : 0;
  return metrics_.render(int(slots.size()), active, engine_->queued());
}

void Api::metrics(httplib::Response& res) {
  if (!config_.metrics) throw ApiError(501, "not_supported_error", "metrics are disabled: start the server with --metrics");
  res.status = 200;
  res.set_content(metrics_text(), "text/plain; version=0.0.4");
}

void Api::tokenize(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_object(req.body);
  const auto content = get_string(body, "content");
  if (!content) throw bad_request("'content' is required");
  const bool add_special = get_bool(body, "add_special").value_or(false);
  const bool parse_special = get_bool(body, "parse_special").value_or(true);
  const bool with_pieces = get_bool(body, "with_pieces").value_or(false);
  const Tokenizer& tok = *model_->tokenizer;
  json tokens = json::array();
  for (int32_t id : tok.encode(*content, add_special, parse_special)) {
    if (with_pieces)
      tokens.push_back({{"id", id}, {"piece", tok.token_to_piece(id, true)}});
    else
      tokens.push_back(id);
  }
  reply(res, 200, {{"tokens", tokens}});
}

void Api::detokenize(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_object(req.body);
  if (!body.contains("tokens")) throw bad_request("'tokens' is required");
  const auto ids = get_tokens(body["tokens"], "tokens", model_->tokenizer->n_tokens());
  reply(res, 200, {{"content", model_->tokenizer->decode(ids)}});
}

void Api::apply_template(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_object(req.body);
  std::vector<ChatMessage> messages = chat_messages(body);
  if (body.contains("tools")) {  // the text a chat request with these tools is rendered from
    const Structured st = read_structured(nlohmann::ordered_json::parse(req.body), /*chat=*/true);
    add_tools_prompt(messages, st);
  }
  reply(res, 200, {{"prompt", render_chat(*model_, messages)}});
}

void Api::add_tools_prompt(std::vector<ChatMessage>& messages, const Structured& st) const {
  if (st.tool_mode == ToolMode::None) return;
  const std::string text = tools_prompt(st.tools);
  if (!messages.empty() && messages.front().role == "system")
    messages.front().content += (messages.front().content.empty() ? "" : "\n\n") + text;
  else
    messages.insert(messages.begin(), {"system", text});
}

}  // namespace bitnet::server
