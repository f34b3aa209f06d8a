// --kv-unified (EngineConfig::kv_unified; docs/server.md): every slot may use the whole -c, the
// slots sharing one pool of -c positions. The engine tests run an Engine in this process on the
// generated tiny model; the last ones start `bitnet serve` for the HTTP side (status, error event,
// /slots, /props).
#include <gtest/gtest.h>

#include <random>

#include "model/model.h"
#include "server/engine.h"
#include "server_process.h"

namespace bitnet::testing {
namespace {

using server::Engine;
using server::EngineConfig;
using server::Event;
using server::GenerationRequest;
using server::Job;

const Model& tiny() {
  static const std::unique_ptr<Model> m = load_model(tiny_model());
  return *m;
}

std::vector<int32_t> prompt_of(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> id(100, int32_t(tiny().hp.n_vocab) - 1);
  std::vector<int32_t> p(n);
  for (auto& t : p) t = id(rng);
  return p;
}

GenerationRequest request(std::vector<int32_t> prompt, int64_t n_predict, int32_t slot = -1, float temperature = 0) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.n_predict = n_predict;
  r.ignore_eos = true;
  r.slot_id = slot;
  r.sampling.temperature = temperature;
  r.sampling.seed = 1234;
  return r;
}

struct Outcome {
  std::vector<int32_t> tokens;
  std::string finish_reason, error;  // error: a Failed event's message
};

// Every event of a job until it ends.
Outcome collect(Job& job) {
  Outcome o;
  for (;;) {
    const auto e = job.next(std::chrono::seconds(120));
    if (!e) {
      ADD_FAILURE() << "the job did not end";
      return o;
    }
    if (e->kind == Event::Kind::Token) o.tokens.push_back(e->token);
    if (e->kind == Event::Kind::Done) {
      o.finish_reason = e->finish_reason;
      return o;
    }
    if (e->kind == Event::Kind::Failed) {
      o.error = e->error;
      return o;
    }
  }
}

struct TestEngine {
  server::Metrics metrics;
  std::unique_ptr<Engine> engine;
  TestEngine(int slots, int64_t n_ctx_slot, bool unified, int64_t n_batch = 64) {
    EngineConfig c;
    c.n_slots = slots;
    c.n_ctx_slot = n_ctx_slot;
    c.n_batch = n_batch;
    c.threads = 2;
    c.kv_unified = unified;
    engine = std::make_unique<Engine>(tiny(), c, metrics);
  }
  Outcome run(GenerationRequest r) { return collect(*engine->submit(std::move(r))); }
  int64_t cached(int slot) const { return engine->slots()[size_t(slot)].cached_tokens; }
  int64_t held() const {
    int64_t n = 0;
    for (const auto& s : engine->slots()) n += s.cached_tokens;
    return n;
  }
};

// One request may run past n_ctx / n_slots: 4 slots sharing 256 positions, one request of 20 + 200
// tokens. It generates what a one-slot engine with the whole context generates.
TEST(KvUnified, OneSlotMayUseTheWholeContext) {
  TestEngine unified(4, 256, true);
  const Outcome o = unified.run(request(prompt_of(20, 1), 200));
  EXPECT_EQ(o.error, "");
  EXPECT_EQ(o.finish_reason, "length");
  ASSERT_EQ(o.tokens.size(), 200u);
  int64_t most = 0;
  for (const auto& s : unified.engine->slots()) {
    EXPECT_EQ(s.n_ctx, 256);
    most = std::max(most, s.cached_tokens);
  }
  EXPECT_EQ(most, 20 + 199) << "the last token is sampled, not evaluated";

  TestEngine one(1, 256, false);
  EXPECT_EQ(one.run(request(prompt_of(20, 1), 200)).tokens, o.tokens);
  // Without --kv-unified the same request stops at its slot's 64 positions.
  TestEngine shares(4, 64, false);
  const Outcome cut = shares.run(request(prompt_of(20, 1), 200));
  EXPECT_EQ(cut.finish_reason, "length");
  EXPECT_EQ(cut.tokens.size(), 64u - 20u) << "prompt + generated = the slot's n_ctx, as llama-server counts";
}

// Two requests whose sum exceeds the pool: the one that came second fails with the specific error,
// the first completes with every token it asked for, the same tokens as alone.
TEST(KvUnified, WhenRunningRequestsFillThePoolTheNewestFails) {
  TestEngine e(2, 128, true, 16);
  auto first = e.engine->submit(request(prompt_of(8, 2), 100));
  // The first is running (it has produced a token) before the second arrives.
  std::vector<int32_t> first_tokens;
  for (;;) {
    const auto ev = first->next(std::chrono::seconds(60));
    ASSERT_TRUE(ev);
    ASSERT_EQ(ev->kind, Event::Kind::Token);
    first_tokens.push_back(ev->token);
    break;
  }
  auto second = e.engine->submit(request(prompt_of(8, 3), 100));
  const Outcome b = collect(*second);
  EXPECT_NE(b.error.find("Context size has been exceeded"), std::string::npos) << b.error;
  EXPECT_NE(b.error.find("128 positions of the unified KV cache"), std::string::npos) << b.error;
  EXPECT_EQ(b.finish_reason, "");
  EXPECT_LT(b.tokens.size(), 100u);
  const Outcome a = collect(*first);
  EXPECT_EQ(a.error, "");
  EXPECT_EQ(a.finish_reason, "length");
  first_tokens.insert(first_tokens.end(), a.tokens.begin(), a.tokens.end());
  ASSERT_EQ(first_tokens.size(), 100u);
  EXPECT_LE(e.held(), 128);

  TestEngine alone(2, 128, true, 16);
  EXPECT_EQ(alone.run(request(prompt_of(8, 2), 100)).tokens, first_tokens);
}

// Idle slots' cached prefixes make room, least recently used first (not by slot number), each cut
// from its end; the prefix the most recently used slot holds survives and is reused.
TEST(KvUnified, IdleCachesAreCutLeastRecentlyUsedFirst) {
  TestEngine e(3, 1024, true);
  const auto p1 = prompt_of(300, 4), p0 = prompt_of(300, 5), p2 = prompt_of(500, 6);
  ASSERT_EQ(e.run(request(p1, 10, /*slot=*/1)).tokens.size(), 10u);  // slot 1 used first
  ASSERT_EQ(e.run(request(p0, 10, /*slot=*/0)).tokens.size(), 10u);  // then slot 0
  EXPECT_EQ(e.cached(1), 309);
  EXPECT_EQ(e.cached(0), 309);
  // 618 held + 509 needed > 1024: slot 1's cache (least recently used) is cut, slot 0's kept.
  const Outcome z = e.run(request(p2, 10, /*slot=*/2));
  EXPECT_EQ(z.error, "");
  EXPECT_EQ(z.tokens.size(), 10u);
  EXPECT_LT(e.cached(1), 309);
  EXPECT_EQ(e.cached(0), 309);
  EXPECT_EQ(e.cached(2), 509);
  EXPECT_LE(e.held(), 1024);
  // Slot 0's prefix is still there: the same prompt again reuses all but its last token.
  auto again = e.engine->submit(request(p0, 4, 0));
  EXPECT_EQ(collect(*again).tokens.size(), 4u);
  EXPECT_EQ(again->stats().cached_tokens, 299);

  // A request that needs the whole pool takes everything the idle slots hold.
  const Outcome big = e.run(request(prompt_of(1000, 7), 20, /*slot=*/1));
  EXPECT_EQ(big.error, "");
  EXPECT_EQ(big.tokens.size(), 20u);
  EXPECT_EQ(e.cached(1), 1019);
  EXPECT_LE(e.held(), 1024);
}

// Requests that fit get exactly what the engine without --kv-unified gives them (greedy and
// sampled, three at once).
TEST(KvUnified, OutputsMatchTheEngineWithSlotShares) {
  std::vector<GenerationRequest> reqs = {request(prompt_of(10, 8), 60), request(prompt_of(30, 9), 60, -1, 0.8f),
                                         request(prompt_of(17, 10), 60)};
  auto run_all = [&](TestEngine& e) {
    std::vector<std::shared_ptr<Job>> jobs;
    for (const auto& r : reqs) jobs.push_back(e.engine->submit(r));
    std::vector<Outcome> out;
    for (auto& j : jobs) out.push_back(collect(*j));
    return out;
  };
  TestEngine shares(3, 128, false), unified(3, 384, true);
  const auto a = run_all(shares), b = run_all(unified);
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(a[i].error, "");
    EXPECT_EQ(b[i].error, "");
    EXPECT_EQ(a[i].tokens.size(), 60u);
    EXPECT_EQ(a[i].tokens, b[i].tokens) << "request " << i;
  }
}

// Memory: the cache reserves 4 slots × 4096 positions of address space, but commits only the
// positions in use (mincore: pages written or even read count), and positions a slot gives up go
// back to the system, so slots taking turns never hold more than one pool's worth.
TEST(KvUnified, CommitsMemoryOnlyForThePositionsInUse) {
  const HParams& hp = tiny().hp;
  auto bytes = [&](int64_t n) { return KvCache::bytes_for(hp.n_layer, 1, n, hp.n_head_kv, hp.head_dim, KvType::F16, KvType::F16); };
  // A partly used page at the end of every (layer, kv head) region of K and V, and one at its start.
  const uint64_t slack = uint64_t(hp.n_layer * hp.n_head_kv * 2 * 2 * 4096);
  TestEngine e(4, 4096, true, 256);
  EXPECT_EQ(e.engine->kv_cache_bytes_total(), bytes(4096));
  EXPECT_EQ(e.engine->kv_cache_resident_bytes(), 0u);

  ASSERT_EQ(e.run(request(prompt_of(900, 11), 101, 0)).tokens.size(), 101u);  // 1000 positions
  const uint64_t one = e.engine->kv_cache_resident_bytes();
  EXPECT_GE(one + slack, bytes(1000));
  EXPECT_LE(one, bytes(1000) + slack);

  // Slot 1 then slot 2 fill most of the pool; slot 0's and 1's caches are cut to make room.
  ASSERT_EQ(e.run(request(prompt_of(3000, 12), 51, 1)).tokens.size(), 51u);
  ASSERT_EQ(e.run(request(prompt_of(3500, 13), 51, 2)).tokens.size(), 51u);
  EXPECT_LE(e.held(), 4096);
  const uint64_t after = e.engine->kv_cache_resident_bytes();
  EXPECT_LE(after, bytes(4096) + 3 * slack) << "three slots have used 1000 + 3050 + 3550 positions in turn";
  EXPECT_GE(after + slack, bytes(3550));

  // Without --kv-unified the whole cache is committed at start-up.
  TestEngine shares(4, 1024, false, 256);
  EXPECT_GE(shares.engine->kv_cache_resident_bytes(), shares.engine->kv_cache_bytes_total());
}

TEST(KvUnified, SystemPromptCopiesStopAtThePool) {
  server::Metrics metrics;
  EngineConfig c;
  c.n_slots = 4;
  c.n_ctx_slot = 100;
  c.n_batch = 64;
  c.kv_unified = true;
  c.system_prefix = prompt_of(40, 14);
  Engine e(tiny(), c, metrics);
  std::vector<int64_t> cached;
  for (const auto& s : e.slots()) cached.push_back(s.cached_tokens);
  EXPECT_EQ(cached, (std::vector<int64_t>{40, 40, 0, 0}));
}

// Over HTTP: the failing request gets llama-server's 500 "Context size has been exceeded" (streamed:
// an error event), never a 200 cut short; /props and /slots state the shared pool.
TEST(KvUnified, TheFailedRequestGetsA500OrAnErrorEvent) {
  ServerProcess server({"-c", "128", "-np", "2", "--kv-unified", "-b", "16"});
  auto cli = server.client();
  const HParams& hp = tiny().hp;
  const json props = get_json(cli, "/props");
  EXPECT_EQ(props["n_ctx"], 128);
  EXPECT_EQ(props["kv_unified"], true);
  EXPECT_EQ(props["kv_cache_bytes"].get<uint64_t>(),
            KvCache::bytes_for(hp.n_layer, 1, 128, hp.n_head_kv, hp.head_dim, KvType::F16, KvType::F16));
  for (const auto& s : get_json(cli, "/slots")) {
    EXPECT_EQ(s["n_ctx"], 128);
    EXPECT_EQ(s["kv_cache_bytes"], 0) << "a slot that holds nothing";
  }
  EXPECT_NE(server.log().find("server ready: 2 slots of 128 tokens sharing one unified KV cache"), std::string::npos)
      << server.log();

  const std::string prompt = "Hello world";
  const json body = {{"prompt", prompt}, {"n_predict", 100}, {"ignore_eos", true}, {"temperature", 0}};
  for (const bool stream : {false, true}) {
    // The first request streams; once its first token is out, the second arrives.
    std::atomic<bool> started{false};
    StreamResult first;
    std::thread t([&] {
      json b = body;
      b["stream"] = true;
      first = stream_post(server.port(), "/completion", b, [&](const std::string&) {
        started = true;
        return true;
      });
    });
    ASSERT_TRUE(eventually([&] { return started.load(); }));
    json second = body;
    second["prompt"] = prompt + " and more";
    if (!stream) {
      int status = 0;
      const json r = post_json(cli, "/completion", second, &status);
      EXPECT_EQ(status, 500) << r;
      EXPECT_EQ(r["error"]["type"], "server_error") << r;
      EXPECT_NE(r["error"]["message"].get<std::string>().find("Context size has been exceeded"), std::string::npos)
          << r;
    } else {
      second["stream"] = true;
      const StreamResult r = stream_post(server.port(), "/completion", second);
      EXPECT_EQ(r.status, 200);
      ASSERT_FALSE(r.data.empty());
      const json last = json::parse(r.data.back(), nullptr, false);
      EXPECT_NE(last["error"]["message"].get<std::string>().find("Context size has been exceeded"), std::string::npos)
          << r.body;
    }
    t.join();
    const json done = json::parse(first.data.back(), nullptr, false);
    EXPECT_EQ(done["stop"], true) << first.body;
    EXPECT_EQ(done["timings"]["predicted_n"], 100) << first.body;
  }
}

}  // namespace
}  // namespace bitnet::testing
