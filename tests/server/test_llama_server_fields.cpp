// llama-server's response features beyond OpenAI's (the drop-in issue): post_sampling_probs (the
// sampler chain's distribution instead of the model's log-probabilities), prompt_progress chunks
// while a prompt is evaluated (return_progress), `__verbose` under --verbose, and the `prompt`
// field of /completion (the prompt's tokens as text, special tokens included).
#include <cmath>

#include "formats/gguf.h"
#include "server_process.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::testing {
namespace {

std::vector<json> chunks_of(const StreamResult& s) {
  std::vector<json> out;
  for (const std::string& d : s.data)
    if (d != "[DONE]") out.push_back(json::parse(d));
  return out;
}

// The tiny model's BOS as the server writes it in prompt texts.
std::string bos_text() {
  const Tokenizer tok(read_vocab(GgufFile::open(tiny_model())));
  return tok.add_bos() ? tok.token_to_piece(tok.bos(), /*render_special=*/true) : "";
}

json ids_of(httplib::Client& cli, const std::string& text, bool add_special) {
  return post_json(cli, "/tokenize", {{"content", text}, {"add_special", add_special}})["tokens"];
}

TEST(LlamaServerFields, PostSamplingProbsAreTheChainsDistribution) {
  ServerProcess server({"-c", "256"});
  auto cli = server.client();
  const json ids = ids_of(cli, "Hello world", true);
  // The model's log-probabilities of the first token: l_i, ranked.
  const json raw = post_json(cli, "/completion", {{"prompt", ids}, {"n_predict", 1}, {"temperature", 0}, {"n_probs", 5}});
  const json& top = raw["completion_probabilities"][0]["top_logprobs"];
  ASSERT_EQ(top.size(), 5u) << raw.dump();

  // top_k 3 at temperature 0.7 (top-p and min-p off): p_i = e^(l_i/0.7) / Σ_{j<3} e^(l_j/0.7) for
  // the three survivors, 0 for the two the chain removed.
  const json body = {{"prompt", ids}, {"n_predict", 1}, {"temperature", 0.7}, {"top_k", 3}, {"top_p", 1.0},
                     {"min_p", 0.0}, {"seed", 3}, {"n_probs", 5}, {"post_sampling_probs", true}};
  const json r = post_json(cli, "/completion", body);
  ASSERT_EQ(r["completion_probabilities"].size(), 1u) << r.dump();
  const json& e = r["completion_probabilities"][0];
  EXPECT_FALSE(e.contains("logprob"));
  EXPECT_FALSE(e.contains("top_logprobs"));
  const json& probs = e["top_probs"];
  ASSERT_EQ(probs.size(), 5u) << e.dump();
  double z = 0;
  for (size_t i = 0; i < 3; ++i) z += std::exp(top[i]["logprob"].get<double>() / 0.7);
  double sum = 0;
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(probs[i]["id"], top[i]["id"]) << i << ": the chain keeps the model's ranking";
    EXPECT_EQ(probs[i]["token"], top[i]["token"]);
    const double want = i < 3 ? std::exp(top[i]["logprob"].get<double>() / 0.7) / z : 0.0;
    EXPECT_NEAR(probs[i]["prob"].get<double>(), want, 1e-5) << i;
    EXPECT_FALSE(probs[i].contains("logprob"));
    if (i < 3) sum += probs[i]["prob"].get<double>();
  }
  EXPECT_NEAR(sum, 1.0, 1e-5) << "the survivors' probabilities are renormalized";
  bool chosen_listed = false;
  for (size_t i = 0; i < 3; ++i)
    if (probs[i]["id"] == e["id"]) {
      chosen_listed = true;
      EXPECT_EQ(e["prob"], probs[i]["prob"]) << "the drawn token's own probability";
    }
  EXPECT_TRUE(chosen_listed) << "only a survivor can be drawn: " << e.dump();
  EXPECT_EQ(r["generation_settings"]["post_sampling_probs"], true);

  // Fewer survivors than n_probs (top_k 2): the list still has n_probs entries, the rest at 0.
  json two = body;
  two["top_k"] = 2;
  two["n_probs"] = 4;
  const json p2 = post_json(cli, "/completion", two)["completion_probabilities"][0]["top_probs"];
  ASSERT_EQ(p2.size(), 4u);
  EXPECT_NEAR(p2[0]["prob"].get<double>() + p2[1]["prob"].get<double>(), 1.0, 1e-5);
  EXPECT_GT(p2[1]["prob"].get<double>(), 0.0);
  EXPECT_EQ(p2[2]["prob"], 0.0);
  EXPECT_EQ(p2[3]["prob"], 0.0);

  // Greedy (llama.cpp's suite at temperature 0): the chosen token 1, every other 0, n_probs entries
  // in the model's ranking; the same streamed.
  const json greedy_body = {{"prompt", ids}, {"n_predict", 3}, {"temperature", 0}, {"n_probs", 4}, {"post_sampling_probs", true}};
  const json greedy = post_json(cli, "/completion", greedy_body);
  json plain_body = greedy_body;
  plain_body.erase("post_sampling_probs");
  const json plain = post_json(cli, "/completion", plain_body);
  EXPECT_EQ(greedy["content"], plain["content"]) << "reporting the distribution does not change the draw";
  ASSERT_EQ(greedy["completion_probabilities"].size(), 3u);
  for (size_t t = 0; t < 3; ++t) {
    const json& g = greedy["completion_probabilities"][t];
    EXPECT_EQ(g["prob"], 1.0);
    ASSERT_EQ(g["top_probs"].size(), 4u);
    EXPECT_EQ(g["top_probs"][0]["id"], g["id"]);
    EXPECT_EQ(g["top_probs"][0]["prob"], 1.0);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(g["top_probs"][i]["id"], plain["completion_probabilities"][t]["top_logprobs"][i]["id"]);
      if (i > 0) {
        EXPECT_EQ(g["top_probs"][i]["prob"], 0.0);
      }
    }
  }
  json streamed_body = greedy_body;
  streamed_body["stream"] = true;
  size_t n = 0;
  for (const json& c : chunks_of(stream_post(server.port(), "/completion", streamed_body))) {
    if (c["stop"] == true) continue;
    ASSERT_LT(n, 3u);
    EXPECT_EQ(c["completion_probabilities"][0], greedy["completion_probabilities"][n]) << n;
    ++n;
  }
  EXPECT_EQ(n, 3u);

  // The OpenAI endpoints take it too (llama-server does): chat's logprobs.content entries, and
  // llama-server's {"content": [...]} on /v1/completions (OpenAI's legacy arrays hold log-probabilities).
  const json ch = post_json(cli, "/v1/chat/completions",
                            {{"messages", {{{"role", "user"}, {"content", "Hello"}}}}, {"max_tokens", 2}, {"temperature", 0},
                             {"logprobs", true}, {"top_logprobs", 3}, {"post_sampling_probs", true}});
  const json& content = ch["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 2u) << ch.dump();
  for (const json& c : content) {
    EXPECT_EQ(c["prob"], 1.0);
    EXPECT_FALSE(c.contains("logprob"));
    ASSERT_EQ(c["top_probs"].size(), 3u);
    EXPECT_EQ(c["top_probs"][0]["token"], c["token"]);
  }
  const json tc = post_json(cli, "/v1/completions", {{"prompt", "Hello"}, {"max_tokens", 2}, {"temperature", 0},
                                                     {"logprobs", 2}, {"post_sampling_probs", true}});
  const json& tl = tc["choices"][0]["logprobs"];
  ASSERT_EQ(tl["content"].size(), 2u) << tc.dump();
  EXPECT_EQ(tl["content"][0]["prob"], 1.0);
  EXPECT_EQ(tl["content"][0]["top_probs"].size(), 2u);
}

// (total, cache, processed) of each prompt_progress chunk; checks the chunks' shape on the way.
struct Progress {
  int64_t total, cache, processed;
  bool operator==(const Progress&) const = default;
};
std::ostream& operator<<(std::ostream& o, const Progress& p) {
  return o << "(" << p.total << ", " << p.cache << ", " << p.processed << ")";
}

std::vector<Progress> progress_of(const std::vector<json>& chunks, bool* before_tokens = nullptr) {
  std::vector<Progress> out;
  bool token_seen = false, ordered = true;
  int64_t last_ms = -1;
  for (const json& c : chunks) {
    if (!c.contains("prompt_progress")) {
      const bool native_token = c.contains("content") && c["stop"] == false;
      const bool openai_token = c.contains("choices") && !c["choices"].empty() &&
                                ((c["choices"][0].contains("text") && c["choices"][0]["text"] != "") ||
                                 (c["choices"][0].contains("delta") && c["choices"][0]["delta"].contains("content") &&
                                  c["choices"][0]["delta"]["content"].is_string()));
      token_seen = token_seen || native_token || openai_token;
      continue;
    }
    ordered = ordered && !token_seen;
    const json& p = c["prompt_progress"];
    EXPECT_GE(p["time_ms"].get<int64_t>(), last_ms);
    last_ms = p["time_ms"].get<int64_t>();
    out.push_back({p["total"].get<int64_t>(), p["cache"].get<int64_t>(), p["processed"].get<int64_t>()});
  }
  if (before_tokens) *before_tokens = ordered;
  return out;
}

TEST(LlamaServerFields, PromptProgressAfterEveryBatch) {
  ServerProcess server({"-c", "256", "-b", "16", "-np", "1"});
  auto cli = server.client();
  std::string text;
  for (int i = 0; i < 30; ++i) text += "Hello world ";
  json ids = ids_of(cli, text, false);
  ASSERT_GE(ids.size(), 41u);
  ids.erase(ids.begin() + 40, ids.end());  // a prompt of exactly 40 tokens (ids: no BOS added)
  const json body = {{"prompt", ids}, {"n_predict", 2}, {"stream", true}, {"return_progress", true}};

  // Nothing cached: one report before evaluation (processed == cache), then one per -b chunk.
  bool ordered = false;
  const std::vector<json> first = chunks_of(stream_post(server.port(), "/completion", body));
  EXPECT_EQ(progress_of(first, &ordered), (std::vector<Progress>{{40, 0, 0}, {40, 0, 16}, {40, 0, 32}, {40, 0, 40}}));
  EXPECT_TRUE(ordered) << "progress comes before the first token";
  for (const json& c : first)
    if (c.contains("prompt_progress")) {
      EXPECT_EQ(c["content"], "");
      EXPECT_EQ(c["tokens"], json::array()) << "a progress chunk carries no token";
      EXPECT_EQ(c["stop"], false);
    }
  // The same prompt again: all but its last token come from the cache (llama-server re-evaluates
  // that one for its logits too).
  EXPECT_EQ(progress_of(chunks_of(stream_post(server.port(), "/completion", body))),
            (std::vector<Progress>{{40, 39, 39}, {40, 39, 40}}));
  // 20 tokens in common: the other 20 in two chunks.
  json other = body;
  for (size_t i = 20; i < 40; ++i) other["prompt"][i] = ids[59 - i];
  ASSERT_NE(other["prompt"][20], ids[20]);
  EXPECT_EQ(progress_of(chunks_of(stream_post(server.port(), "/completion", other))),
            (std::vector<Progress>{{40, 20, 20}, {40, 20, 36}, {40, 20, 40}}));
  // Not streamed, or not asked for: no progress.
  json quiet = body;
  quiet.erase("return_progress");
  EXPECT_TRUE(progress_of(chunks_of(stream_post(server.port(), "/completion", quiet))).empty());
  json unstreamed = body;
  unstreamed["stream"] = false;
  const json r = post_json(cli, "/completion", unstreamed);
  EXPECT_EQ(r["tokens_predicted"], 2);
  EXPECT_FALSE(r.contains("prompt_progress"));

  // Chat (the suite's endpoint): each progress chunk is a role delta, 1 + ceil(prompt / -b) of
  // them; the prompt length is the usage's.
  const json chat = {{"messages", {{{"role", "user"}, {"content", text}}}}, {"max_tokens", 2}, {"stream", true},
                     {"return_progress", true}, {"stream_options", {{"include_usage", true}}}};
  const std::vector<json> cc = chunks_of(stream_post(server.port(), "/v1/chat/completions", chat));
  ASSERT_FALSE(cc.empty());
  const int64_t total = cc.back()["usage"]["prompt_tokens"].get<int64_t>();
  const std::vector<Progress> cp = progress_of(cc, &ordered);
  EXPECT_TRUE(ordered);
  ASSERT_EQ(int64_t(cp.size()), 1 + (total + 15) / 16) << "prompt of " << total << " tokens";
  for (size_t i = 0; i < cp.size(); ++i)
    EXPECT_EQ(cp[i], (Progress{total, 0, std::min<int64_t>(total, int64_t(i) * 16)})) << i;
  int roles = 0;
  for (const json& c : cc) {
    if (c["choices"].empty()) continue;
    const json& delta = c["choices"][0]["delta"];
    if (delta.contains("role")) {
      ++roles;
      EXPECT_TRUE(c.contains("prompt_progress")) << "no separate role chunk: " << c.dump();
      EXPECT_TRUE(delta["content"].is_null());
    }
  }
  EXPECT_EQ(roles, int(cp.size()));
  // Completions: an empty-text chunk.
  const std::vector<json> tc = chunks_of(stream_post(
      server.port(), "/v1/completions", {{"prompt", ids}, {"max_tokens", 1}, {"stream", true}, {"return_progress", true}}));
  ASSERT_FALSE(tc.empty());
  EXPECT_EQ(tc[0]["prompt_progress"]["total"], 40);
  EXPECT_EQ(tc[0]["prompt_progress"]["processed"], tc[0]["prompt_progress"]["cache"]);
  EXPECT_EQ(tc[0]["choices"][0]["text"], "");
  EXPECT_TRUE(tc[0]["choices"][0]["finish_reason"].is_null());
}

TEST(LlamaServerFields, CompletionPromptIsTheDetokenizedPrompt) {
  ServerProcess server({"-c", "256"});
  auto cli = server.client();
  const std::string bos = bos_text();
  ASSERT_FALSE(bos.empty()) << "the tiny model adds a BOS";
  const json r = post_json(cli, "/completion", {{"prompt", "Hello world"}, {"n_predict", 2}});
  EXPECT_EQ(r["prompt"], bos + "Hello world") << "BOS as the vocabulary spells it, then the text";
  const json ids = ids_of(cli, "Hello world", true);
  EXPECT_EQ(post_json(cli, "/completion", {{"prompt", ids}, {"n_predict", 1}})["prompt"], bos + "Hello world");
  // The suite's response_fields request: exactly those fields.
  const json picked = post_json(cli, "/completion", {{"prompt", "Hello world"}, {"n_predict", 2},
                                                     {"response_fields", {"content", "generation_settings/n_predict", "prompt"}}});
  EXPECT_EQ(picked.size(), 3u) << picked.dump();
  EXPECT_EQ(picked["prompt"], bos + "Hello world");
  EXPECT_EQ(picked["generation_settings/n_predict"], 2);
  // Streamed: the final object has it.
  const std::vector<json> s =
      chunks_of(stream_post(server.port(), "/completion", {{"prompt", "Hello world"}, {"n_predict", 2}, {"stream", true}}));
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s.back()["stop"], true);
  EXPECT_EQ(s.back()["prompt"], bos + "Hello world");
}

TEST(LlamaServerFields, VerboseAddsTheNativeResult) {
  const json chat = {{"messages", {{{"role", "system"}, {"content", "Book"}}, {{"role", "user"}, {"content", "What is the best book"}}}},
                     {"max_tokens", 3}, {"temperature", 0}};
  {
    ServerProcess quiet({"-c", "256"});
    auto cli = quiet.client();
    EXPECT_FALSE(post_json(cli, "/v1/chat/completions", chat).contains("__verbose")) << "only with --verbose";
  }
  ServerProcess server({"-c", "256", "--verbose", "--chat-template", "llama3"});
  auto cli = server.client();
  const std::string bos = bos_text();
  const std::string rendered = post_json(cli, "/apply-template", chat)["prompt"];
  ASSERT_EQ(rendered.rfind("<|start_header_id|>system<|end_header_id|>\n\nBook<|eot_id|>", 0), 0u) << rendered;
  const json r = post_json(cli, "/v1/chat/completions", chat);
  ASSERT_TRUE(r.contains("__verbose")) << r.dump();
  const json& v = r["__verbose"];
  EXPECT_EQ(v["prompt"], bos + rendered) << "the prompt's tokens as text, special tokens included";
  EXPECT_EQ(v["content"], r["choices"][0]["message"]["content"]);
  EXPECT_EQ(v["tokens_predicted"], r["usage"]["completion_tokens"]);
  EXPECT_EQ(v["tokens_evaluated"], r["usage"]["prompt_tokens"]);
  EXPECT_EQ(v["tokens"].size(), r["usage"]["completion_tokens"].get<size_t>()) << "the generated ids";
  EXPECT_EQ(v["stop"], true);
  EXPECT_EQ(v["generation_settings"]["n_predict"], 3);
  EXPECT_TRUE(v.contains("timings"));
  // An assistant prefill is part of the prompt.
  json prefill = chat;
  prefill["messages"].push_back({{"role", "assistant"}, {"content", "Whill"}});
  EXPECT_EQ(post_json(cli, "/v1/chat/completions", prefill)["__verbose"]["prompt"], bos + rendered + "Whill");

  // Streamed chat: the last chunk of the choice carries it.
  json streamed = chat;
  streamed["stream"] = true;
  const std::vector<json> cs = chunks_of(stream_post(server.port(), "/v1/chat/completions", streamed));
  int with = 0;
  for (const json& c : cs)
    if (c.contains("__verbose")) {
      ++with;
      EXPECT_FALSE(c["choices"][0]["finish_reason"].is_null());
      EXPECT_EQ(c["__verbose"]["prompt"], bos + rendered);
    }
  EXPECT_EQ(with, 1);
  // Completions: the result, and while streaming each token's native chunk.
  const json t = post_json(cli, "/v1/completions", {{"prompt", "Hello"}, {"max_tokens", 2}, {"temperature", 0}});
  EXPECT_EQ(t["__verbose"]["prompt"], bos + "Hello");
  EXPECT_EQ(t["__verbose"]["content"], t["choices"][0]["text"]);
  int token_chunks = 0, final_chunks = 0;
  for (const json& c : chunks_of(stream_post(server.port(), "/v1/completions",
                                             {{"prompt", "Hello"}, {"max_tokens", 2}, {"temperature", 0}, {"stream", true}}))) {
    if (!c["choices"][0]["finish_reason"].is_null()) {
      ++final_chunks;
      ASSERT_TRUE(c.contains("__verbose")) << c.dump();
      EXPECT_EQ(c["__verbose"]["stop"], true);
      EXPECT_EQ(c["__verbose"]["prompt"], bos + "Hello");
    } else if (c.contains("__verbose")) {  // a token's chunk (held-back text flushed at the end has none)
      ++token_chunks;
      EXPECT_EQ(c["__verbose"]["content"], c["choices"][0]["text"]);
      EXPECT_EQ(c["__verbose"]["tokens"].size(), 1u);
      EXPECT_EQ(c["__verbose"]["stop"], false);
    }
  }
  EXPECT_EQ(final_chunks, 1);
  EXPECT_EQ(token_chunks, t["usage"]["completion_tokens"].get<int>());
  // The native endpoint is the result itself: no __verbose there.
  EXPECT_FALSE(post_json(cli, "/completion", {{"prompt", "Hello"}, {"n_predict", 1}}).contains("__verbose"));
}

}  // namespace
}  // namespace bitnet::testing
