// `bitnet serve --context-shift`: a reply that fills its slot keeps the request's n_keep first
// tokens, drops half of the rest (or n_discard) and goes on. After the shift the slot continues
// exactly as a fresh evaluation of the kept tokens would (same tokens, bit-identical
// log-probabilities, f16 and q8_0 caches); a request for more tokens than the slot holds gets
// them all with `truncated: true`; other slots are not affected.
#include <future>

#include "process_runner.h"
#include "server_process.h"

namespace bitnet::testing {
namespace {

std::vector<int32_t> tokenize(httplib::Client& cli, const std::string& text, bool special) {
  return post_json(cli, "/tokenize", {{"content", text}, {"add_special", special}})["tokens"].get<std::vector<int32_t>>();
}

constexpr int kSlot = 64;      // -c 64 -np 1
constexpr int kFull = kSlot - 1;  // cached tokens when the slot is full: with the sampled token they fill it

struct ShiftCase {
  const char* name;
  int n_keep, n_discard;
  std::vector<std::string> args;
};

void PrintTo(const ShiftCase& c, std::ostream* os) { *os << c.name; }

class ServerContextShift : public ::testing::TestWithParam<ShiftCase> {};

// The reply's tokens after the first shift, and their log-probabilities, equal those of a second
// request whose prompt is the kept sequence (evaluated from scratch: cache_prompt false).
TEST_P(ServerContextShift, TheSlotGoesOnLikeAFreshEvaluationOfTheKeptTokens) {
  const ShiftCase c = GetParam();
  std::vector<std::string> args = {"-c", std::to_string(kSlot), "-np", "1", "--context-shift", "--metrics"};
  args.insert(args.end(), c.args.begin(), c.args.end());
  ServerProcess server(args);
  auto cli = server.client();
  const std::vector<int32_t> prompt =
      tokenize(cli, "In the beginning God created the heaven and the earth. And the earth was without form", true);
  const std::vector<int32_t> plain =
      tokenize(cli, "In the beginning God created the heaven and the earth. And the earth was without form", false);
  ASSERT_EQ(prompt.size(), plain.size() + 1) << "the prompt starts with the BOS";
  const int p = int(prompt.size());
  ASSERT_LT(p, 30);
  json body = {{"prompt", prompt}, {"n_predict", 80}, {"temperature", 0}, {"ignore_eos", true},
               {"return_tokens", true}, {"n_probs", 2}, {"n_keep", c.n_keep}, {"cache_prompt", false}};
  if (c.n_discard) body["n_discard"] = c.n_discard;
  const json a = post_json(cli, "/completion", body);
  ASSERT_EQ(a["tokens_predicted"], 80) << a.dump().substr(0, 400);
  EXPECT_EQ(a["truncated"], true);
  EXPECT_EQ(a["stop_type"], "limit");
  EXPECT_EQ(a["generation_settings"]["n_keep"], c.n_keep) << "the request's settings, as llama-server echoes them";
  EXPECT_EQ(a["generation_settings"]["n_discard"], c.n_discard);
  const std::vector<int32_t> t = a["tokens"].get<std::vector<int32_t>>();
  ASSERT_EQ(t.size(), 80u);

  // The slot is full when token number kFull − p (0-based) is sampled: it holds the prompt and
  // the tokens before it (kFull), and that token would fill it. Then it keeps n_keep tokens after
  // the BOS (-1: the prompt), drops half of the rest (or n_discard), and evaluates the rest and
  // that token again.
  std::vector<int32_t> full = prompt;
  full.insert(full.end(), t.begin(), t.begin() + (kFull - p));
  ASSERT_EQ(int(full.size()), kFull);
  const int keep = std::min(c.n_keep < 0 ? p : c.n_keep + 1, kFull - 4);
  const int discard = c.n_discard ? std::min(c.n_discard, kFull - keep) : (kFull - keep) / 2;
  std::vector<int32_t> kept(full.begin(), full.begin() + keep);
  kept.insert(kept.end(), full.begin() + keep + discard, full.end());
  kept.push_back(t[size_t(kFull - p)]);
  const int next = kFull - p + 1;  // index in `t` of the first token sampled after the shift
  // What the fresh request generates before its slot is full (prompt + generated = kSlot).
  const int m = std::min(kSlot - int(kept.size()), 80 - next);
  ASSERT_GT(m, 4);

  const json b = post_json(cli, "/completion", {{"prompt", kept}, {"n_predict", m}, {"temperature", 0},
                                                {"ignore_eos", true}, {"return_tokens", true}, {"n_probs", 2},
                                                {"cache_prompt", false}});
  ASSERT_EQ(b["tokens_predicted"], m) << b.dump().substr(0, 400);
  EXPECT_EQ(b["truncated"], false);
  const std::vector<int32_t> u = b["tokens"].get<std::vector<int32_t>>();
  EXPECT_EQ(std::vector<int32_t>(t.begin() + next, t.begin() + next + m), u) << c.name;
  for (int i = 0; i < m; ++i) {
    const json& x = a["completion_probabilities"][size_t(next + i)];
    const json& y = b["completion_probabilities"][size_t(i)];
    EXPECT_EQ(x["logprob"].get<double>(), y["logprob"].get<double>()) << c.name << " token " << i;
    EXPECT_EQ(x["top_logprobs"], y["top_logprobs"]) << c.name << " token " << i;
  }
  EXPECT_GE(metric(cli, "bitnet_context_shifts_total"), 2) << "80 tokens in a 64-token slot shift it at least twice";
}

INSTANTIATE_TEST_SUITE_P(KeepDiscardCache, ServerContextShift,
                         ::testing::Values(ShiftCase{"n_keep 0", 0, 0, {}},
                                           ShiftCase{"n_keep 5", 5, 0, {}},
                                           ShiftCase{"n_keep -1 (the prompt)", -1, 0, {}},
                                           ShiftCase{"n_keep 3, n_discard 10", 3, 10, {}},
                                           ShiftCase{"n_keep 2, q8_0 cache", 2, 0, {"-ctk", "q8_0", "-ctv", "q8_0"}}),
                         [](const auto& info) { return "case" + std::to_string(info.index); });

// llama.cpp's test_ctx_shift_enabled with this model's tokens: n_predict past the end of the slot
// generates every token, and the reply says it was truncated.
TEST(ServerContextShiftRequests, NPredictLargerThanTheSlotGeneratesEveryToken) {
  ServerProcess server({"-c", "256", "-np", "2", "--context-shift"});
  auto cli = server.client();
  const json r = post_json(cli, "/completion", {{"prompt", "Once upon a time"}, {"n_predict", 300}, {"ignore_eos", true},
                                                {"temperature", 0}});
  EXPECT_EQ(r["tokens_predicted"], 300) << r.dump().substr(0, 400);
  EXPECT_EQ(r["timings"]["predicted_n"], 300);
  EXPECT_EQ(r["truncated"], true);
  const json o = post_json(cli, "/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 200},
                                                    {"ignore_eos", true}, {"temperature", 0}});
  EXPECT_EQ(o["usage"]["completion_tokens"], 200);
  EXPECT_EQ(o["choices"][0]["finish_reason"], "length");
  // A request that fits is not truncated.
  const json small = post_json(cli, "/completion", {{"prompt", "Once upon a time"}, {"n_predict", 8}});
  EXPECT_EQ(small["truncated"], false);
  // The prompt itself must still fit the slot, as with llama-server.
  std::string long_prompt;
  for (int i = 0; i < 200; ++i) long_prompt += "word ";
  int status = 0;
  const json e = post_json(cli, "/completion", {{"prompt", long_prompt}}, &status);
  EXPECT_EQ(status, 400);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("exceeds the available context size"), std::string::npos);
}

// Two slots shifting at the same time (one replaying while the other decodes) give what each
// gives alone.
TEST(ServerContextShiftRequests, ConcurrentShiftingSlotsMatchTheirSeparateRuns) {
  ServerProcess server({"-c", "96", "-np", "2", "--context-shift"});
  const std::vector<json> bodies = {
      {{"prompt", "In the beginning"}, {"n_predict", 120}, {"ignore_eos", true}, {"temperature", 0},
       {"return_tokens", true}, {"cache_prompt", false}},
      {{"prompt", "The quick brown fox jumps over"}, {"n_predict", 150}, {"ignore_eos", true}, {"temperature", 0},
       {"return_tokens", true}, {"n_keep", 3}, {"cache_prompt", false}}};
  std::vector<json> alone;
  for (const json& b : bodies) {
    auto cli = server.client();
    alone.push_back(post_json(cli, "/completion", b)["tokens"]);
  }
  std::vector<std::future<json>> together;
  for (const json& b : bodies)
    together.push_back(std::async(std::launch::async, [&server, b] {
      auto cli = server.client();
      return post_json(cli, "/completion", b);
    }));
  for (size_t i = 0; i < bodies.size(); ++i) {
    const json r = together[i].get();
    EXPECT_EQ(r["truncated"], true);
    EXPECT_EQ(r["tokens"], alone[i]) << "request " << i;
    EXPECT_EQ(r["tokens"].size(), bodies[i]["n_predict"].get<size_t>());
  }
}

// --kv-unified: a slot's context is the whole -c, and it shifts when it alone fills it.
TEST(ServerContextShiftRequests, WithAUnifiedCacheASlotShiftsAtTheWholeContext) {
  ServerProcess server({"-c", "64", "-np", "2", "--kv-unified", "--context-shift", "--metrics"});
  auto cli = server.client();
  const json r = post_json(cli, "/completion", {{"prompt", "Once upon a time"}, {"n_predict", 150},
                                                {"ignore_eos", true}, {"temperature", 0}});
  EXPECT_EQ(r["tokens_predicted"], 150) << r.dump().substr(0, 400);
  EXPECT_EQ(r["truncated"], true);
  EXPECT_GE(metric(cli, "bitnet_context_shifts_total"), 2);
  const json again = post_json(cli, "/completion", {{"prompt", "Once upon a time"}, {"n_predict", 8}});
  EXPECT_EQ(again["tokens_predicted"], 8) << "the pool has room after the shifted reply";
}

// Off by default (a full slot ends the reply); LLAMA_ARG_CONTEXT_SHIFT turns it on, and
// --no-context-shift on the command line wins over the environment.
TEST(ServerContextShiftRequests, FlagEnvironmentAndDefault) {
  const json body = {{"prompt", "Once upon a time"}, {"n_predict", 100}, {"ignore_eos", true}, {"temperature", 0}};
  {
    ServerProcess server({"-c", "64"});
    auto cli = server.client();
    const json r = post_json(cli, "/completion", body);
    EXPECT_LT(r["tokens_predicted"].get<int>(), 100);
    EXPECT_EQ(r["truncated"], true);
    EXPECT_EQ(r["stop_type"], "limit");
    int status = 0;
    post_json(cli, "/completion", {{"prompt", "a"}, {"n_discard", 4}}, &status);
    EXPECT_EQ(status, 400) << "n_discard needs --context-shift";
  }
  {
    ServerProcess server({"-c", "64"}, {"LLAMA_ARG_CONTEXT_SHIFT=1"});
    auto cli = server.client();
    EXPECT_EQ(post_json(cli, "/completion", body)["tokens_predicted"], 100);
  }
  {
    ServerProcess server({"-c", "64", "--no-context-shift"}, {"LLAMA_ARG_CONTEXT_SHIFT=1"});
    auto cli = server.client();
    EXPECT_LT(post_json(cli, "/completion", body)["tokens_predicted"].get<int>(), 100);
  }
  const ProcessResult dry = run_process({bitnet_bin(), "serve", "-m", tiny_model(), "--context-shift", "--dry-run", "--json"});
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_EQ(json::parse(dry.out)["config"]["context_shift"], true) << dry.out;
}

}  // namespace
}  // namespace bitnet::testing
