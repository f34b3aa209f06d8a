// The fused one-token step (model/decode_step.h) against the batch path it replaces for decode:
// logits and cache cells bit for bit, on every kernel level this CPU runs, several thread counts,
// architectures, head types and odd widths.
#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <random>
#include <tuple>
#include <utility>

#include "kernels/cpu_features.h"
#include "model/decode_step.h"
#include "model/forward.h"
#include "test_data.h"

namespace bitnet {
namespace {

struct Case {
  const char* arch;
  const char* preset;
  GgmlType type;
  GgmlType head;
  KvType kv_k = KvType::F16, kv_v = KvType::F16;  // -ctk / -ctv
};

std::string case_name(const Case& c) {
  std::string s = std::string(c.arch) + "_" + c.preset + "_" + std::string(ggml_type_name(c.type)) + "_head_" +
                  std::string(ggml_type_name(c.head));
  if (c.kv_k != KvType::F16 || c.kv_v != KvType::F16)
    s += std::string("_kv_") + kv_type_name(c.kv_k) + "_" + kv_type_name(c.kv_v);
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

// Restores the process-wide switches a test changes.
struct Switches {
  kernels::Isa isa = kernels::active_isa();
  ~Switches() {
    set_decode_step_enabled(true);
    kernels::set_active_isa(isa);
  }
};

// Decodes `n` tokens one at a time into sequence 1 of a two-sequence cache (so a sequence offset is
// exercised), every third token without logits. Returns the logits of all steps, then the cache.
struct Decoded {
  std::vector<float> logits;
  std::vector<uint32_t> cells;  // the bits of each cell as attention reads it (f16 or code·scale)
};
void add_cell(Decoded& r, float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  r.cells.push_back(bits);
}
Decoded decode(const Model& m, int threads, int n, const Case& c) {
  ThreadPool pool(threads);
  KvCache cache(m.hp.n_layer, 2, 32, m.hp.n_head_kv, m.hp.head_dim, c.kv_k, c.kv_v);
  Decoded r;
  for (int i = 0; i < n; ++i) {
    Batch b;
    b.add(int32_t((i * 97 + 5) % m.hp.n_vocab), i, 1, i % 3 != 2);
    const std::vector<float> l = forward(m, cache, b, pool);
    EXPECT_EQ(l.size(), b.want_logits[0] ? size_t(m.hp.n_vocab) : 0u);
    r.logits.insert(r.logits.end(), l.begin(), l.end());
  }
  for (int64_t l = 0; l < m.hp.n_layer; ++l)
    for (int64_t p = 0; p < n; ++p)
      for (int64_t d = 0; d < cache.kv_dim(); ++d) {
        add_cell(r, cache.key_f32(l, 1, p, d));
        add_cell(r, cache.value_f32(l, 1, p, d));
      }
  return r;
}

class DecodeStep : public ::testing::TestWithParam<Case> {};

TEST_P(DecodeStep, EqualsTheBatchPathBitForBit) {
  const Case c = GetParam();
  const auto m = load_model(testing::dummy_model(c.arch, c.preset, c.type, c.head));
  Switches restore;
  for (kernels::Isa isa : kernels::kAllIsas) {
    if (isa == kernels::Isa::Generic || !kernels::isa_supported(isa)) continue;
    kernels::set_active_isa(isa);
    set_decode_step_enabled(true);
    ASSERT_TRUE(decode_step_applies(*m)) << "the fused step must cover this model on " << kernels::isa_name(isa);
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE(std::string(kernels::isa_name(isa)) + ", " + std::to_string(threads) + " threads");
      set_decode_step_enabled(false);
      const Decoded batch = decode(*m, threads, 7, c);
      set_decode_step_enabled(true);
      const Decoded fused = decode(*m, threads, 7, c);
      ASSERT_EQ(batch.logits.size(), fused.logits.size());
      ASSERT_EQ(0, std::memcmp(batch.logits.data(), fused.logits.data(), batch.logits.size() * sizeof(float)));
      ASSERT_EQ(batch.cells, fused.cells);
      // Not a comparison of two empty or constant runs.
      ASSERT_GT(batch.logits.size(), size_t(m->hp.n_vocab));
      ASSERT_NE(batch.logits[0], batch.logits[1]);
    }
  }
}

// Several sequences decoding together: each step holds one token of several sequences (in a
// shuffled order, some without logits), and one step also a 3-token run of one sequence (the
// verification step of speculative decoding). Token t of sequence s is (s·31 + t·7 + 3) mod vocab.
constexpr int kSeqs = 4;
int32_t token_of(const Model& m, int seq, int pos) { return int32_t((seq * 31 + pos * 7 + 3) % m.hp.n_vocab); }

struct Step {
  std::vector<std::pair<int, int>> tokens;  // (sequence, how many consecutive tokens)
};
const std::vector<Step>& multi_stream_script() {
  static const std::vector<Step> script = {
      {{{0, 1}, {1, 1}, {2, 1}, {3, 1}}}, {{{2, 1}, {0, 1}, {3, 1}, {1, 1}}}, {{{1, 3}, {0, 1}, {2, 1}}},
      {{{3, 1}, {2, 1}}},                 {{{0, 1}, {1, 1}, {2, 1}, {3, 1}}}, {{{3, 2}, {1, 1}}},
  };
  return script;
}

// Runs the script; returns every step's logits (batch order) and then every cache cell.
Decoded decode_streams(const Model& m, int threads, const Case& c) {
  ThreadPool pool(threads);
  KvCache cache(m.hp.n_layer, kSeqs, 32, m.hp.n_head_kv, m.hp.head_dim, c.kv_k, c.kv_v);
  std::vector<int> length(kSeqs, 0);
  Decoded r;
  int k = 0;
  for (const Step& step : multi_stream_script()) {
    Batch b;
    for (auto [seq, count] : step.tokens)
      for (int i = 0; i < count; ++i, ++k) {
        const int pos = length[seq]++;
        b.add(token_of(m, seq, pos), pos, seq, k % 5 != 3);
      }
    const std::vector<float> l = forward(m, cache, b, pool);
    EXPECT_EQ(l.size(), size_t(b.n_logits() * m.hp.n_vocab));
    r.logits.insert(r.logits.end(), l.begin(), l.end());
  }
  for (int64_t l = 0; l < m.hp.n_layer; ++l)
    for (int s = 0; s < kSeqs; ++s)
      for (int64_t p = 0; p < length[s]; ++p)
        for (int64_t d = 0; d < cache.kv_dim(); ++d) {
          add_cell(r, cache.key_f32(l, s, p, d));
          add_cell(r, cache.value_f32(l, s, p, d));
        }
  return r;
}

TEST_P(DecodeStep, SeveralSequencesEqualTheBatchPathAndDecodingAlone) {
  const Case c = GetParam();
  const auto m = load_model(testing::dummy_model(c.arch, c.preset, c.type, c.head));
  const int64_t V = m->hp.n_vocab;
  Switches restore;
  for (kernels::Isa isa : kernels::kAllIsas) {
    if (isa == kernels::Isa::Generic || !kernels::isa_supported(isa)) continue;
    kernels::set_active_isa(isa);
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE(std::string(kernels::isa_name(isa)) + ", " + std::to_string(threads) + " threads");
      set_decode_step_enabled(false);
      const Decoded batch = decode_streams(*m, threads, c);
      set_decode_step_enabled(true);
      const Decoded fused = decode_streams(*m, threads, c);
      ASSERT_EQ(batch.logits.size(), fused.logits.size());
      ASSERT_EQ(0, std::memcmp(batch.logits.data(), fused.logits.data(), batch.logits.size() * sizeof(float)));
      ASSERT_EQ(batch.cells, fused.cells);
      ASSERT_NE(fused.logits[0], fused.logits[1]);

      // Each sequence decoded alone, one token per step, gives the same logits for its tokens.
      ThreadPool pool(threads);
      std::vector<std::vector<float>> alone(kSeqs);
      for (int s = 0; s < kSeqs; ++s) {
        KvCache cache(m->hp.n_layer, 1, 32, m->hp.n_head_kv, m->hp.head_dim, c.kv_k, c.kv_v);
        for (int p = 0; p < 8; ++p) {
          Batch b;
          b.add(token_of(*m, s, p), p, 0, true);
          const std::vector<float> l = forward(*m, cache, b, pool);
          alone[size_t(s)].insert(alone[size_t(s)].end(), l.begin(), l.end());
        }
      }
      std::vector<int> length(kSeqs, 0);
      int k = 0;
      size_t at = 0, compared = 0;
      for (const Step& step : multi_stream_script())
        for (auto [seq, count] : step.tokens)
          for (int i = 0; i < count; ++i, ++k) {
            const int pos = length[seq]++;
            if (k % 5 == 3) continue;
            for (int64_t v = 0; v < V; ++v)
              ASSERT_EQ(fused.logits[at + size_t(v)], alone[size_t(seq)][size_t(pos * V + v)])
                  << "sequence " << seq << " position " << pos << " logit " << v;
            at += size_t(V), ++compared;
          }
      ASSERT_EQ(at, fused.logits.size());
      ASSERT_GT(compared, 10u);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, DecodeStep,
                         ::testing::Values(Case{"bitnet-b1.58", "tiny", GgmlType::I2_S, GgmlType::F16},
                                           Case{"bitnet", "tiny-odd", GgmlType::I2_S, GgmlType::Q6_K},
                                           Case{"bitnet", "tiny", GgmlType::TQ1_0, GgmlType::Q8_0},
                                           Case{"llama", "tiny", GgmlType::TQ2_0, GgmlType::F16},
                                           Case{"bitnet-b1.58", "tiny-odd", GgmlType::I2_S, GgmlType::Q8_0},
                                           // -ctk/-ctv q8_0 (head size 64), both sides and each alone
                                           Case{"bitnet-b1.58", "tiny", GgmlType::I2_S, GgmlType::F16, KvType::Q8_0,
                                                KvType::Q8_0},
                                           Case{"llama", "tiny", GgmlType::TQ2_0, GgmlType::Q6_K, KvType::Q8_0,
                                                KvType::F16},
                                           Case{"bitnet", "tiny", GgmlType::I2_S, GgmlType::Q8_0, KvType::F16,
                                                KvType::Q8_0}),
                         [](const auto& info) { return case_name(info.param); });

// Deep in a context (1,030 positions: five attention spans, the last partial): the decode step
// splits each kv head's attention into spans claimed by the threads and merged by the last; the
// batch path runs them one after another. Random tokens are prefilled (batch path, chunks of 300
// tokens), then a few decoded one at a time. Returns the decoded steps' logits and cells.
Decoded decode_deep(const Model& m, int threads, int64_t prefill, int n) {
  ThreadPool pool(threads);
  KvCache cache(m.hp.n_layer, 2, prefill + n, m.hp.n_head_kv, m.hp.head_dim);
  std::mt19937 rng(11);
  auto token = [&] { return int32_t(rng() % uint32_t(m.hp.n_vocab)); };
  for (int64_t p0 = 0; p0 < prefill; p0 += 300) {
    Batch b;
    for (int64_t p = p0; p < std::min(prefill, p0 + 300); ++p) b.add(token(), int32_t(p), 1, p == prefill - 1);
    forward(m, cache, b, pool);
  }
  Decoded r;
  for (int i = 0; i < n; ++i) {
    Batch b;
    b.add(token(), int32_t(prefill + i), 1, true);
    const std::vector<float> l = forward(m, cache, b, pool);
    r.logits.insert(r.logits.end(), l.begin(), l.end());
  }
  for (int64_t l = 0; l < m.hp.n_layer; ++l)
    for (int64_t p = prefill; p < prefill + n; ++p)
      for (int64_t d = 0; d < cache.kv_dim(); ++d) {
        r.cells.push_back(cache.key(l, 1, p, d));
        r.cells.push_back(cache.value(l, 1, p, d));
      }
  return r;
}

TEST(DecodeStep, DeepInAContextEqualsTheBatchPathForAnyThreadCount) {
  for (const char* preset : {"tiny", "tiny-odd"}) {  // head sizes 64 and 100
    const auto m = load_model(testing::dummy_model("bitnet-b1.58", preset, GgmlType::I2_S, GgmlType::F16));
    Switches restore;
    for (kernels::Isa isa : kernels::kAllIsas) {
      if (isa == kernels::Isa::Generic || !kernels::isa_supported(isa)) continue;
      kernels::set_active_isa(isa);
      std::vector<float> first;
      for (int threads : {1, 2, 3}) {
        SCOPED_TRACE(std::string(preset) + ", " + std::string(kernels::isa_name(isa)) + ", " +
                     std::to_string(threads) + " threads");
        set_decode_step_enabled(false);
        const Decoded batch = decode_deep(*m, threads, 1030, 3);
        set_decode_step_enabled(true);
        const Decoded fused = decode_deep(*m, threads, 1030, 3);
        ASSERT_EQ(batch.logits.size(), size_t(3 * m->hp.n_vocab));
        ASSERT_EQ(0, std::memcmp(batch.logits.data(), fused.logits.data(), batch.logits.size() * sizeof(float)));
        ASSERT_EQ(batch.cells, fused.cells);
        ASSERT_NE(fused.logits[0], fused.logits[1]);
        if (first.empty()) first = fused.logits;
        ASSERT_EQ(0, std::memcmp(first.data(), fused.logits.data(), first.size() * sizeof(float)));
      }
    }
  }
}

TEST(DecodeStep, TheReferenceKernelsKeepTheBatchPath) {
  const auto m = load_model(testing::dummy_model("bitnet-b1.58", "tiny", GgmlType::I2_S));
  EXPECT_TRUE(decode_step_applies(*m));
  kernels::set_reference_kernels(true);
  EXPECT_FALSE(decode_step_applies(*m));  // the reference must stay reachable for one token
  kernels::set_reference_kernels(false);
  set_decode_step_enabled(false);
  EXPECT_FALSE(decode_step_applies(*m));
  set_decode_step_enabled(true);
}

}  // namespace
}  // namespace bitnet
