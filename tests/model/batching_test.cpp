// Batching, multi-sequence caches, thread-count independence and context limits.
#include <gtest/gtest.h>

#include <random>

#include "model/decode_step.h"
#include "model/forward.h"
#include "runtime/generate.h"
#include "test_data.h"

namespace bitnet {
namespace {

std::unique_ptr<Model> tiny(GgmlType type = GgmlType::I2_S, const std::string& arch = "bitnet-b1.58") {
  return load_model(testing::dummy_model(arch, "tiny", type));
}

TEST(Batching, WholePromptEqualsTokenByToken) {
  const auto m = tiny();
  const auto tokens = m->tokenizer->encode("Batching must not change the numbers", true, false);
  ThreadPool pool(2);
  KvCache a(m->hp.n_layer, 1, 64, m->hp.n_head_kv, m->hp.head_dim), b(m->hp.n_layer, 1, 64, m->hp.n_head_kv, m->hp.head_dim);
  Batch whole;
  for (size_t i = 0; i < tokens.size(); ++i) whole.add(tokens[i], int32_t(i), 0, true);
  const auto all = forward(*m, a, whole, pool);
  const int64_t V = m->hp.n_vocab;
  for (size_t i = 0; i < tokens.size(); ++i) {
    Batch one;
    one.add(tokens[i], int32_t(i), 0, true);
    const auto l = forward(*m, b, one, pool);
    for (int64_t v = 0; v < V; ++v) ASSERT_EQ(l[v], all[i * V + v]) << "token " << i << " vocab " << v;
  }
}

TEST(Batching, InterleavedSequencesEqualSeparateRuns) {
  const auto m = tiny(GgmlType::TQ2_0, "llama");
  const auto s0 = m->tokenizer->encode("first sequence here", true, false);
  const auto s1 = m->tokenizer->encode("and a second, longer one", true, false);
  ThreadPool pool(2);
  const int64_t V = m->hp.n_vocab;
  auto run_alone = [&](const std::vector<int32_t>& s) {
    KvCache c(m->hp.n_layer, 1, 64, m->hp.n_head_kv, m->hp.head_dim);
    Batch b;
    for (size_t i = 0; i < s.size(); ++i) b.add(s[i], int32_t(i), 0, true);
    return forward(*m, c, b, pool);
  };
  const auto alone0 = run_alone(s0), alone1 = run_alone(s1);
  // Both sequences in shared batches: each step holds one token of each (continuous batching).
  KvCache c(m->hp.n_layer, 2, 64, m->hp.n_head_kv, m->hp.head_dim);
  for (size_t i = 0; i < std::max(s0.size(), s1.size()); ++i) {
    Batch b;
    if (i < s1.size()) b.add(s1[i], int32_t(i), 1, true);
    if (i < s0.size()) b.add(s0[i], int32_t(i), 0, true);
    const auto l = forward(*m, c, b, pool);
    size_t row = 0;
    if (i < s1.size()) {
      for (int64_t v = 0; v < V; ++v) ASSERT_EQ(l[row * V + v], alone1[i * V + v]);
      ++row;
    }
    if (i < s0.size()) {
      for (int64_t v = 0; v < V; ++v) ASSERT_EQ(l[row * V + v], alone0[i * V + v]);
    }
  }
}

std::vector<int32_t> random_tokens(const Model& m, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = int32_t(rng() % uint32_t(m.hp.n_vocab));
  return t;
}

// Past several attention spans (1,400 positions): a whole prompt in one batch (tiles of
// consecutive tokens sharing the cache reads; too many partial results to split: whole (tile,
// kv head) items running attend()) equals feeding it token by token (the decode step, its spans
// split over the threads), for every 97th token and the last.
TEST(Batching, LongPromptWholeEqualsTokenByToken) {
  const auto m = tiny();
  const std::vector<int32_t> tokens = random_tokens(*m, 1400, 3);
  const int64_t V = m->hp.n_vocab;
  auto wanted = [&](size_t i) { return i % 97 == 0 || i + 1 == tokens.size(); };
  ThreadPool pool(3);
  KvCache a(m->hp.n_layer, 1, 1400, m->hp.n_head_kv, m->hp.head_dim), b(m->hp.n_layer, 1, 1400, m->hp.n_head_kv, m->hp.head_dim);
  Batch whole;
  for (size_t i = 0; i < tokens.size(); ++i) whole.add(tokens[i], int32_t(i), 0, wanted(i));
  const auto all = forward(*m, a, whole, pool);
  int64_t row = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    Batch one;
    one.add(tokens[i], int32_t(i), 0, wanted(i));
    const auto l = forward(*m, b, one, pool);
    if (!wanted(i)) continue;
    for (int64_t v = 0; v < V; ++v) ASSERT_EQ(l[v], all[row * V + v]) << "token " << i << " vocab " << v;
    ++row;
  }
  ASSERT_EQ(row * V, int64_t(all.size()));
}

// Sequences at different depths (300, 700 and 1,030 positions) decoded together, one token of each
// per batch — through the decode step (its attention split into (sequence, kv head, span) items)
// and through the batch path (split the same way: a small batch) — equal each sequence decoded
// alone, for 1 and 3 threads.
TEST(Batching, DeepSequencesDecodedTogetherEqualSeparateRuns) {
  const auto m = tiny(GgmlType::TQ2_0, "llama");
  const int64_t V = m->hp.n_vocab, depths[3] = {300, 700, 1030}, steps = 3;
  auto prefill = [&](KvCache& c, int32_t seq, int64_t depth, ThreadPool& pool) {
    const std::vector<int32_t> t = random_tokens(*m, size_t(depth), uint32_t(depth));
    Batch b;
    for (int64_t p = 0; p < depth; ++p) b.add(t[size_t(p)], int32_t(p), seq, false);
    forward(*m, c, b, pool);
  };
  auto next_token = [](int64_t s, int64_t i) { return int32_t(17 + 31 * s + 7 * i); };
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    std::vector<std::vector<float>> alone(3);
    for (int64_t s = 0; s < 3; ++s) {
      KvCache c(m->hp.n_layer, 1, 1100, m->hp.n_head_kv, m->hp.head_dim);
      prefill(c, 0, depths[s], pool);
      for (int64_t i = 0; i < steps; ++i) {
        Batch b;
        b.add(next_token(s, i), int32_t(depths[s] + i), 0, true);
        const auto l = forward(*m, c, b, pool);
        alone[size_t(s)].insert(alone[size_t(s)].end(), l.begin(), l.end());
      }
    }
    for (bool step : {true, false}) {
      set_decode_step_enabled(step);
      KvCache c(m->hp.n_layer, 3, 1100, m->hp.n_head_kv, m->hp.head_dim);
      for (int32_t s = 0; s < 3; ++s) prefill(c, s, depths[s], pool);
      for (int64_t i = 0; i < steps; ++i) {
        Batch b;
        for (int32_t s = 2; s >= 0; --s) b.add(next_token(s, i), int32_t(depths[s] + i), s, true);
        const auto l = forward(*m, c, b, pool);
        for (int64_t r = 0; r < 3; ++r)
          for (int64_t v = 0; v < V; ++v)
            ASSERT_EQ(l[size_t(r * V + v)], alone[size_t(2 - r)][size_t(i * V + v)])
                << threads << " threads, decode step " << step << ", sequence " << 2 - r << " step " << i
                << " vocab " << v;
      }
    }
    set_decode_step_enabled(true);
  }
}

std::vector<int32_t> greedy(const Model& m, int threads, const std::string& prompt, int n) {
  Session s(m, 128, threads, 4);
  SamplingParams sp;
  sp.temperature = 0;
  Sampler sampler(sp);
  std::vector<int32_t> out;
  generate(s, s.set_tokens(m.tokenizer->encode(prompt, true, false)), sampler, {n, true},
           [&](int32_t t) {
             out.push_back(t);
             return true;
           });
  return out;
}

TEST(Determinism, GreedyTokensIdenticalForOneAndTwoThreadsAndRepeats) {
  for (const char* arch : {"bitnet-b1.58", "bitnet", "llama"}) {
    const auto m = tiny(GgmlType::I2_S, arch);
    const auto one = greedy(*m, 1, "Once upon a time", 12);
    const auto two = greedy(*m, 2, "Once upon a time", 12);
    const auto again = greedy(*m, 2, "Once upon a time", 12);
    ASSERT_EQ(one.size(), 12u);
    EXPECT_EQ(one, two) << arch;
    EXPECT_EQ(two, again) << arch;
  }
}

TEST(Determinism, SeededSamplingIsRepeatable) {
  const auto m = tiny();
  auto sample = [&](uint64_t seed, int threads) {
    Session s(*m, 64, threads, 8);
    SamplingParams sp;
    sp.temperature = 1.0f;
    sp.seed = seed;
    Sampler sampler(sp);
    std::vector<int32_t> out;
    generate(s, s.set_tokens(m->tokenizer->encode("Hello", true, false)), sampler, {16, true},
             [&](int32_t t) {
               out.push_back(t);
               return true;
             });
    return out;
  };
  EXPECT_EQ(sample(5, 1), sample(5, 2));
  EXPECT_NE(sample(5, 2), sample(6, 2));
}

TEST(ContextLimit, FullContextIsAClearErrorNotAnOverflow) {
  const auto m = tiny();
  Session s(*m, 8, 2, 4);
  const auto prompt = m->tokenizer->encode("a b c d e f", true, false);
  ASSERT_LE(prompt.size(), 8u);
  s.set_tokens(prompt);
  while (int64_t(s.tokens().size()) < s.n_ctx()) s.append(42);
  try {
    s.append(42);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context is full"), std::string::npos) << e.what();
  }
  std::vector<int32_t> too_long(9, 42);
  EXPECT_THROW(s.set_tokens(too_long), Error);
}

TEST(ContextLimit, GenerateStopsWithContextFullReason) {
  const auto m = tiny();
  Session s(*m, 10, 1, 4);
  SamplingParams sp;
  sp.temperature = 0;
  Sampler sampler(sp);
  int n = 0;
  const auto prompt = m->tokenizer->encode("x", true, false);
  const auto r = generate(s, s.set_tokens(prompt), sampler, {-1, true}, [&](int32_t) { return ++n < 1000; });
  EXPECT_EQ(r, StopReason::ContextFull);
  // llama.cpp's rule: prompt + generated tokens = n_ctx, the last one not evaluated.
  EXPECT_EQ(int(prompt.size()) + n, 10);
  EXPECT_EQ(s.tokens().size(), 9u);
}

TEST(BatchValidation, RejectsBadTokensSequencesAndGaps) {
  const auto m = tiny();
  ThreadPool pool(1);
  KvCache c(m->hp.n_layer, 2, 16, m->hp.n_head_kv, m->hp.head_dim);
  auto expect_error = [&](Batch b, const char* needle) {
    try {
      forward(*m, c, b, pool);
      FAIL() << "expected error containing " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  Batch b1;
  b1.add(int32_t(m->hp.n_vocab), 0, 0, true);
  expect_error(b1, "outside the vocabulary");
  Batch b2;
  b2.add(1, 0, 2, true);
  expect_error(b2, "sequence id");
  Batch b3;
  b3.add(1, 3, 0, true);
  expect_error(b3, "gap");
  Batch b4;
  b4.add(1, 16, 0, true);
  expect_error(b4, "context is full");
}

}  // namespace
}  // namespace bitnet
