// Context shift (runtime/context_shift.h): the plan's arithmetic (llama.cpp's n_keep / n_discard,
// the BOS that stays, the clamp that always drops something), and Session::shift_context, whose
// cache afterwards must equal a fresh evaluation of the remaining tokens: the next token's logits
// are compared bit for bit, with f16 and q8_0 caches, and generate() goes on past a full context.
#include <gtest/gtest.h>

#include <cstring>

#include "errors.h"
#include "model/model.h"
#include "test_data.h"
#include "runtime/context_shift.h"
#include "runtime/generate.h"
#include "runtime/session.h"

namespace bitnet {
namespace {

const Model& model() { return testing::shipped_model(); }

TEST(ContextShiftPlan, DropsHalfOfWhatFollowsTheKeptTokens) {
  ContextShift s = plan_context_shift(256, 0);
  EXPECT_EQ(s.n_keep, 0);
  EXPECT_EQ(s.n_discard, 128);
  s = plan_context_shift(256, 11);
  EXPECT_EQ(s.n_keep, 11);
  EXPECT_EQ(s.n_discard, (256 - 11) / 2);
}

TEST(ContextShiftPlan, KeepsAtMostAllButFourSoSomethingIsDropped) {
  ContextShift s = plan_context_shift(64, 64);  // n_keep = the whole context
  EXPECT_EQ(s.n_keep, 60);
  EXPECT_EQ(s.n_discard, 2);
  s = plan_context_shift(64, 1000);
  EXPECT_EQ(s.n_keep, 60);
  // Tiny sequences still drop at least one token.
  for (int64_t n_past = 1; n_past <= 5; ++n_past) {
    s = plan_context_shift(n_past, 3);
    EXPECT_GE(s.n_discard, 1) << n_past;
    EXPECT_LE(s.n_keep + s.n_discard, n_past) << n_past;
  }
  EXPECT_THROW(plan_context_shift(0, 0), Error);
}

TEST(ContextShiftPlan, RequestedDiscardIsTakenUpToWhatFollows) {
  EXPECT_EQ(plan_context_shift(100, 10, 30).n_discard, 30);
  EXPECT_EQ(plan_context_shift(100, 10, 500).n_discard, 90);
  EXPECT_EQ(plan_context_shift(100, 10, 0).n_discard, 45);
}

TEST(ContextShiftPlan, NKeepCountsAfterTheBosAndMinusOneKeepsThePrompt) {
  EXPECT_EQ(resolve_n_keep(0, 20, true), 1) << "the BOS always stays";
  EXPECT_EQ(resolve_n_keep(0, 20, false), 0);
  EXPECT_EQ(resolve_n_keep(5, 20, true), 6);
  EXPECT_EQ(resolve_n_keep(5, 20, false), 5);
  EXPECT_EQ(resolve_n_keep(-1, 20, true), 20) << "the prompt already holds its BOS";
  EXPECT_EQ(resolve_n_keep(-1, 20, false), 20);
}

TEST(ContextShiftApply, KeepsThePrefixAndReturnsWhatFollowsTheDroppedRun) {
  KvCache cache(1, 2, 16, 1, 32);
  std::vector<int32_t> tokens = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
  cache.set_length(1, 10);
  const std::vector<int32_t> tail = apply_context_shift(cache, 1, tokens, {2, 3});
  EXPECT_EQ(tokens, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(tail, (std::vector<int32_t>{10, 11, 12, 13, 14}));
  EXPECT_EQ(cache.length(1), 2);
  EXPECT_EQ(cache.length(0), 0) << "other sequences are untouched";
  std::vector<int32_t> more = {1, 2, 3};
  EXPECT_THROW(apply_context_shift(cache, 0, more, {0, 1}), Error) << "the cache holds 0 positions, not 3";
  cache.set_length(0, 3);
  EXPECT_THROW(apply_context_shift(cache, 0, more, {2, 2}), Error) << "keep + discard beyond the tokens";
  EXPECT_THROW(apply_context_shift(cache, 0, more, {1, 0}), Error) << "nothing dropped";
}

// Tokens of a real text (never all one id): the prompt, then a continuation to fill the context.
std::vector<int32_t> text_tokens(const std::string& text) { return model().tokenizer->encode(text, true, true); }

struct CacheCase {
  KvType k, v;
  const char* name;
};

class SessionShift : public ::testing::TestWithParam<CacheCase> {};

// A session filled to its context, shifted, then one token appended gives exactly the logits of a
// fresh session given the remaining tokens and that token.
TEST_P(SessionShift, EqualsAFreshEvaluationOfTheKeptTokens) {
  const CacheCase c = GetParam();
  constexpr int64_t kCtx = 48;
  const std::vector<int32_t> text =
      text_tokens("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
                  "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the "
                  "waters. And God said, Let there be light: and there was light.");
  ASSERT_GT(int64_t(text.size()), kCtx + 1);
  for (const auto& [n_keep, n_discard] : std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {1, 0}, {7, 0}, {5, 13}}) {
    Session shifted(model(), kCtx, 2, 16, c.k, c.v);
    shifted.set_tokens(std::span(text).first(20));  // prompt in chunks of 16
    for (size_t i = 20; i < size_t(kCtx); ++i) shifted.append(text[i]);  // decode steps up to a full context
    ASSERT_EQ(int64_t(shifted.tokens().size()), kCtx);
    const std::vector<int32_t> before = shifted.tokens();
    const ContextShift s = shifted.shift_context(n_keep, n_discard);
    EXPECT_EQ(s.n_keep, n_keep);
    EXPECT_EQ(s.n_discard, n_discard ? n_discard : (kCtx - n_keep) / 2);
    std::vector<int32_t> kept(before.begin(), before.begin() + s.n_keep);
    kept.insert(kept.end(), before.begin() + s.n_keep + s.n_discard, before.end());
    ASSERT_EQ(shifted.tokens(), kept);
    EXPECT_EQ(shifted.timings.shifts, 1);
    EXPECT_EQ(shifted.timings.shift_tokens, kCtx - s.n_keep - s.n_discard);
    const auto got = shifted.append(text[size_t(kCtx)]);
    const std::vector<float> logits(got.begin(), got.end());

    Session fresh(model(), kCtx, 2, 16, c.k, c.v);
    kept.push_back(text[size_t(kCtx)]);
    const auto want = fresh.set_tokens(kept);
    ASSERT_EQ(logits.size(), want.size());
    EXPECT_EQ(std::memcmp(logits.data(), want.data(), logits.size() * sizeof(float)), 0)
        << c.name << ": n_keep " << n_keep << ", n_discard " << n_discard;
  }
}

INSTANTIATE_TEST_SUITE_P(CacheTypes, SessionShift,
                         ::testing::Values(CacheCase{KvType::F16, KvType::F16, "f16"},
                                           CacheCase{KvType::Q8_0, KvType::Q8_0, "q8_0"},
                                           CacheCase{KvType::F16, KvType::Q8_0, "f16 K, q8_0 V"}),
                         [](const auto& info) {
                           return std::string(info.param.k == KvType::F16 ? "K_f16" : "K_q8_0") +
                                  (info.param.v == KvType::F16 ? "_V_f16" : "_V_q8_0");
                         });

// generate() with context_shift runs to its token limit in a context far smaller than that, each
// token sampled from the same logits a fresh evaluation of the session's tokens gives.
TEST(GenerateWithContextShift, RunsPastAFullContextToTheTokenLimit) {
  constexpr int64_t kCtx = 32;
  Session session(model(), kCtx, 2, 64);
  const std::vector<int32_t> prompt = text_tokens("And God said");
  const auto logits = session.set_tokens(prompt);
  SamplingParams p;
  p.temperature = 0;
  Sampler sampler(p);
  GenerateOptions options;
  options.n_predict = 100;
  options.ignore_eos = true;
  options.context_shift = true;
  options.n_keep = resolve_n_keep(-1, int64_t(prompt.size()), true);
  int64_t n = 0;
  const StopReason r = generate(session, logits, sampler, options, [&](int32_t) {
    ++n;
    EXPECT_LE(int64_t(session.tokens().size()), kCtx);
    return true;
  });
  EXPECT_EQ(r, StopReason::TokenLimit);
  EXPECT_EQ(n, 100);
  EXPECT_GE(session.timings.shifts, 3);
  EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), session.tokens().begin())) << "n_keep -1 keeps the prompt";

  // Without it the same run stops at the full context.
  Session plain(model(), kCtx, 2, 64);
  Sampler again(p);
  options.context_shift = false;
  n = 0;
  EXPECT_EQ(generate(plain, plain.set_tokens(prompt), again, options, [&](int32_t) { return ++n, true; }),
            StopReason::ContextFull);
  EXPECT_EQ(n, kCtx - int64_t(prompt.size())) << "prompt + generated = n_ctx";
}

}  // namespace
}  // namespace bitnet
