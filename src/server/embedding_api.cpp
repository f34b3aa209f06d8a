// Embedding endpoints: POST /v1/embeddings (OpenAI) and llama-server's /embedding and /embeddings.
// The inputs are tokenized here and computed on the engine thread (Engine::submit_embedding);
// pooling happens there, normalization, truncation to `dimensions` and encoding here.
#include <httplib.h>

#include <chrono>
#include <cstring>

#include "server/api_error.h"
#include "server/connection_guard.h"
#include "server/http_api.h"

namespace bitnet::server {

using nlohmann::json;

namespace {

// OpenAI's limit on the inputs of one request.
constexpr size_t kMaxEmbeddingInputs = 2048;

// The vector's float32 values as little-endian bytes, in standard base64 with padding.
std::string base64_floats(std::span<const float> v) {
  std::string bytes;
  bytes.reserve(v.size() * 4);
  for (float f : v) {
    uint32_t u = 0;
    std::memcpy(&u, &f, 4);
    for (int b = 0; b < 4; ++b) bytes.push_back(char((u >> (8 * b)) & 0xff));
  }
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t chunk = uint32_t(uint8_t(bytes[i])) << 16;
    if (n > 1) chunk |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    if (n > 2) chunk |= uint32_t(uint8_t(bytes[i + 2]));
    out.push_back(kAlphabet[(chunk >> 18) & 63]);
    out.push_back(kAlphabet[(chunk >> 12) & 63]);
    out.push_back(n > 1 ? kAlphabet[(chunk >> 6) & 63] : '=');
    out.push_back(n > 2 ? kAlphabet[chunk & 63] : '=');
  }
  return out;
}

const char* kInputShapes =
    "a string, an array of strings, an array of token ids, or an array of such arrays (strings and ids may be mixed)";

}  // namespace

// One input of token ids, possibly mixed with strings (tokenized in place, without special tokens
// added): ids are used as given, each checked against the vocabulary.
std::vector<int32_t> Api::embedding_tokens(const json& ids, const char* key) const {
  const Tokenizer& tok = *model_->tokenizer;
  const int64_t n_vocab = std::min<int64_t>(model_->hp.n_vocab, tok.n_tokens());
  std::vector<int32_t> out;
  for (const json& e : ids) {
    if (e.is_string()) {
      const auto t = tok.encode(e.get<std::string>(), false, true);
      out.insert(out.end(), t.begin(), t.end());
    } else if (e.is_number_integer()) {
      const int64_t id = e.is_number_unsigned() && e.get<uint64_t>() > uint64_t(INT64_MAX) ? -1 : e.get<int64_t>();
      if (id < 0 || id >= n_vocab)
        throw bad_request("token id " + e.dump() + " in '" + key + "' is outside the vocabulary [0, " +
                          std::to_string(n_vocab) + ")");
      out.push_back(int32_t(id));
    } else {
      throw bad_request(std::string("'") + key + "' must be " + kInputShapes);
    }
  }
  return out;
}

// The inputs of an embedding request as token lists, the way llama-server splits `input` /
// `content`: a string or one array of ids (mixed with strings) is one input; an array holding
// arrays, or only strings, is one input per element. Text gets the model's BOS / EOS.
std::vector<std::vector<int32_t>> Api::embedding_inputs(const json& input, const char* key) const {
  const Tokenizer& tok = *model_->tokenizer;
  auto text = [&](const std::string& s, size_t index) {
    if (s.empty()) throw bad_request(std::string("'") + key + "' " + std::to_string(index) + " is an empty string");
    return tokenize_for_embedding(tok, s);
  };
  std::vector<std::vector<int32_t>> out;
  if (input.is_string()) {
    out.push_back(text(input.get<std::string>(), 0));
  } else if (input.is_array()) {
    if (input.empty()) throw bad_request(std::string("'") + key + "' must not be empty");
    bool nested = false, all_strings = true;
    for (const json& e : input) {
      nested = nested || e.is_array();
      all_strings = all_strings && e.is_string();
    }
    if (nested || all_strings) {
      if (input.size() > kMaxEmbeddingInputs)
        throw bad_request("at most " + std::to_string(kMaxEmbeddingInputs) + " inputs per request, got " +
                          std::to_string(input.size()));
      for (size_t i = 0; i < input.size(); ++i) {
        const json& e = input[i];
        if (e.is_string())
          out.push_back(text(e.get<std::string>(), i));
        else if (e.is_array())
          out.push_back(embedding_tokens(e, key));
        else
          throw bad_request(std::string("'") + key + "' must be " + kInputShapes);
      }
    } else {
      out.push_back(embedding_tokens(input, key));
    }
  } else {
    throw bad_request(std::string("'") + key + "' must be " + kInputShapes);
  }
  const int64_t n_ctx = engine_->embedding_n_ctx();
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].empty()) throw bad_request(std::string("'") + key + "' " + std::to_string(i) + " is empty");
    if (int64_t(out[i].size()) > n_ctx)
      throw ApiError(400, "exceed_context_size_error",
                     "input " + std::to_string(i) + " is " + std::to_string(out[i].size()) +
                         " tokens: too large for the embedding context of " + std::to_string(n_ctx) +
                         " tokens (each input must fit one slot's context, -c / -np)",
                     {{"n_prompt_tokens", out[i].size()}, {"n_ctx", n_ctx}});
  }
  return out;
}

void Api::embeddings(const httplib::Request& req, httplib::Response& res, bool openai) {
  if (!engine_->config().embeddings)
    throw ApiError(501, "not_supported_error", "This server does not support embeddings. Start it with `--embeddings`");
  if (shutting_down_) throw ApiError(503, "unavailable_error", "server is shutting down");
  const Pooling pooling = engine_->embedding_pooling();
  const json body = parse_object(req.body);
  // llama-server: "content" (not OpenAI's) answers in the native format on either path.
  const char* key = "input";
  if (!body.contains("input") || body["input"].is_null()) {
    if (!body.contains("content") || body["content"].is_null()) throw bad_request("'input' or 'content' is required");
    key = "content";
    openai = false;
  }
  if (openai && pooling == Pooling::None)
    throw bad_request("pooling type 'none' is not OpenAI-compatible (one vector per token): use /embeddings, or start "
                      "the server with --pooling mean, cls or last");
  if (body.contains("model") && !body["model"].is_string() && !body["model"].is_null())
    throw bad_request("'model' must be a string");
  bool base64 = false;
  if (const auto format = get_string(body, "encoding_format")) {
    if (*format != "float" && *format != "base64")
      throw bad_request("'encoding_format' must be \"float\" or \"base64\", got " + json(*format).dump());
    base64 = *format == "base64";
  }
  const int64_t n_embd = model_->hp.n_embd;
  const auto dimensions = get_int(body, "dimensions", 1, n_embd);
  if (dimensions && pooling == Pooling::None)
    throw bad_request("'dimensions' needs pooled embeddings (the server runs with --pooling none)");
  const int norm = int(get_int(body, "embd_normalize", -1, 100).value_or(2));
  std::vector<std::vector<int32_t>> inputs = embedding_inputs(body[key], key);

  std::shared_ptr<EmbeddingJob> job = engine_->submit_embedding(std::move(inputs));
  ++in_flight_;
  struct Release {
    std::atomic<int>& n;
    EmbeddingJob& job;
    ~Release() {
      job.cancel();  // no-op once it ended; drops the inputs of an abandoned one
      --n;
    }
  } release{in_flight_, *job};
  // The engine always ends a job; a client that went away cancels it.
  while (!job->wait(std::chrono::milliseconds(200)))
    if (client_disconnected()) throw ApiError(499, "request_cancelled", "the client closed the connection");
  if (!job->error.empty()) {
    const int status = job->error_status;
    throw ApiError(status, status == 400 ? "invalid_request_error" : status == 503 ? "unavailable_error"
                                         : status == 499 ? "request_cancelled" : "server_error",
                   job->error);
  }

  int64_t tokens = 0;
  json data = json::array();
  for (size_t i = 0; i < job->results.size(); ++i) {
    Embedding& e = job->results[i];
    tokens += int64_t(job->inputs[i].size());
    if (pooling == Pooling::None) {  // one raw row per token (llama-server normalizes only pooled vectors)
      const size_t rows = size_t(std::max<int64_t>(e.n_tokens, 1)), width = e.values.size() / rows;
      json matrix = json::array();
      for (size_t r = 0; r < rows; ++r)
        matrix.push_back(std::vector<float>(e.values.begin() + ptrdiff_t(r * width),
                                            e.values.begin() + ptrdiff_t((r + 1) * width)));
      data.push_back({{"index", i}, {"embedding", std::move(matrix)}});
      continue;
    }
    std::vector<float>& v = e.values;
    if (dimensions && size_t(*dimensions) < v.size()) v.resize(size_t(*dimensions));  // then normalized
    normalize_embedding(v, norm);
    if (!openai)
      data.push_back({{"index", i}, {"embedding", json::array({v})}});
    else if (base64)
      data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", base64_floats(v)}});
    else
      data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", v}});
  }
  if (!openai) return reply(res, 200, data);
  const json model = body.contains("model") && body["model"].is_string() ? body["model"] : json(model_name_);
  reply(res, 200,
        {{"object", "list"},
         {"data", std::move(data)},
         {"model", model},
         {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
}

}  // namespace bitnet::server
