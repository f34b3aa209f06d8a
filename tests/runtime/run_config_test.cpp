// The run configuration: every guard names its flag, thread planning honours the ceiling, and
// the argument list a dry run prints parses back to the same configuration.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "model/kv_cache.h"
#include "runtime/diagnostics.h"
#include "runtime/run_config.h"
#include "runtime/telemetry.h"
#include "test_data.h"

namespace bitnet {
namespace {

RunConfig valid() {
  RunConfig c;
  c.prompt = "hello";
  return c;
}

std::string first_error(const RunConfig& c) {
  try {
    validate(c);
  } catch (const ConfigError& e) {
    return e.field + ": " + e.what();
  }
  return "";
}

TEST(RunConfig, DefaultsWithAPromptAreValid) { EXPECT_EQ(first_error(valid()), ""); }

TEST(RunConfig, EveryGuardNamesItsFlagAndValue) {
  struct Case {
    void (*mutate)(RunConfig&);
    std::string needle;
  } cases[] = {
      {[](RunConfig& c) { c.threads = -1; }, "-t: -t must be between 1 and 1024, or 0 for automatic (got -1)"},
      {[](RunConfig& c) { c.threads = 1025; }, "(got 1025)"},
      {[](RunConfig& c) { c.ctx_size = -5; }, "-c: -c must be positive"},
      {[](RunConfig& c) { c.ctx_size = kMaxCtx + 1; }, "at most 2147483647"},
      {[](RunConfig& c) { c.batch_size = 0; }, "-b: -b must be between 1 and 65536 (got 0)"},
      {[](RunConfig& c) { c.batch_size = 70000; }, "(got 70000)"},
      {[](RunConfig& c) { c.gpu_layers = -2; }, "-ngl: -ngl must be ≥ 0 (got -2)"},
      {[](RunConfig& c) { c.model = "/nonexistent/m.gguf"; }, "-m: model file not found: /nonexistent/m.gguf"},
      {[](RunConfig& c) { c.model = "/tmp"; }, "model path is a directory"},
      {[](RunConfig& c) { c.prompt.clear(); }, "-p: no prompt"},
      {[](RunConfig& c) { c.prompt_file = "/nonexistent/p.txt"; }, "-f: give either -p or -f"},
      {[](RunConfig& c) { c.prompt.clear(), c.prompt_file = "/nonexistent/p.txt"; }, "cannot read prompt file"},
      {[](RunConfig& c) { c.n_predict = -2; }, "-n: -n must be -1 or ≥ 0 (got -2)"},
      {[](RunConfig& c) { c.sampling.temperature = -1; }, "temperature"},
  };
  for (const auto& k : cases) {
    RunConfig c = valid();
    k.mutate(c);
    const std::string err = first_error(c);
    EXPECT_NE(err.find(k.needle), std::string::npos) << "got: " << err << "\nwant: " << k.needle;
  }
}

TEST(RunConfig, CheckAllListsEveryProblem) {
  RunConfig c;
  c.threads = -1;
  c.batch_size = 0;
  const auto all = check_all(c);
  ASSERT_EQ(all.size(), 3u);  // -t, -b, no prompt
  EXPECT_EQ(all[0].field, "-t");
  EXPECT_EQ(all[1].field, "-b");
  EXPECT_EQ(all[2].field, "-p");
  c.prompt = "x";
  EXPECT_NO_THROW(validate_model_settings(RunConfig{}));  // the shared checks need no prompt
}

TEST(RunConfig, ConversationNeedsNoPrompt) {
  RunConfig c;
  c.conversation = true;
  EXPECT_EQ(first_error(c), "");
}

TEST(ThreadPlan, AutomaticUsesHardwareAndObeysTheCeiling) {
  EXPECT_EQ(plan_threads(0, 8, std::nullopt).threads, 8);
  EXPECT_TRUE(plan_threads(0, 8, std::nullopt).automatic);
  EXPECT_EQ(plan_threads(0, 512, std::nullopt).threads, 256);
  const ThreadPlan capped = plan_threads(0, 8, 3);
  EXPECT_EQ(capped.threads, 3);
  EXPECT_NE(capped.note.find("ceiling 3"), std::string::npos);
  const ThreadPlan explicit_capped = plan_threads(6, 8, 4);
  EXPECT_EQ(explicit_capped.threads, 4);
  EXPECT_FALSE(explicit_capped.automatic);
  const ThreadPlan over = plan_threads(16, 8, std::nullopt);
  EXPECT_EQ(over.threads, 16);
  EXPECT_NE(over.note.find("exceeds"), std::string::npos);
  EXPECT_EQ(plan_threads(2, 8, std::nullopt).note, "");
}

TEST(ThreadPlan, CeilingComesFromTheEnvironment) {
  setenv("BITNET_MAX_THREADS", "3", 1);
  EXPECT_EQ(thread_ceiling(), 3);
  EXPECT_LE(plan_threads(0).threads, 3);
  for (const char* bad : {"0", "abc", "12x", "5000", "-1"}) {
    setenv("BITNET_MAX_THREADS", bad, 1);
    try {
      (void)thread_ceiling();
      ADD_FAILURE() << bad << " accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("got '") + bad + "'"), std::string::npos) << e.what();
    }
  }
  unsetenv("BITNET_MAX_THREADS");
  EXPECT_EQ(thread_ceiling(), std::nullopt);
  EXPECT_GE(hardware_threads(), 1);
}

TEST(RunConfig, ContextResolution) {
  EXPECT_EQ(resolve_ctx(0, 2048), 2048);
  EXPECT_EQ(resolve_ctx(0, 131072), kDefaultCtxCap);
  EXPECT_EQ(resolve_ctx(100, 2048), 100);
}

TEST(RunConfig, ArgumentListIsExact) {
  RunConfig c = valid();
  c.model = "m.gguf";
  c.n_predict = 8;
  c.threads = 2;
  c.sampling.temperature = 0.7f;
  c.seed = 5;
  c.conversation = true;
  const std::vector<std::string> want = {"bin", "run", "-m", "m.gguf", "-p", "hello", "-n", "8", "-c", "0", "-t", "2",
                                         "-b", "512", "-ngl", "0", "--temp", "0.7", "--top-k", "40", "--top-p", "0.95",
                                         "--min-p", "0.05", "--repeat-penalty", "1", "--repeat-last-n", "64", "-s", "5",
                                         "-cnv", "--no-escape"};
  EXPECT_EQ(run_arguments(c, "bin"), want);
  EXPECT_EQ(to_json(c)["temperature"], 0.7);
  EXPECT_EQ(to_json(c)["seed"], 5);
}

// The doctor's and the server's KV sizes without allocating: exactly what KvCache allocates.
TEST(MemoryEstimate, KvCacheBytesMatchesTheCache) {
  HParams hp;
  hp.n_layer = 3, hp.n_head = 4, hp.n_head_kv = 2, hp.head_dim = 24;
  for (int64_t n_seq : {1, 3})
    for (int64_t n_ctx : {1, 7, 8, 9, 100, 257})
      EXPECT_EQ(kv_cache_bytes(hp, n_ctx, n_seq), KvCache(hp.n_layer, n_seq, n_ctx, hp.n_head_kv, hp.head_dim).bytes())
          << n_seq << " × " << n_ctx;
}

TEST(MemoryEstimate, KvCacheGrowsWithContextAndMaxCtxFits) {
  HParams hp;
  hp.n_layer = 2, hp.n_head = 4, hp.n_head_kv = 2, hp.head_dim = 64, hp.n_embd = 256, hp.n_ff = 512, hp.n_vocab = 1000;
  const MemoryEstimate a = estimate_memory(hp, 1000, 100, 8);
  EXPECT_EQ(a.kv_cache, uint64_t(2 * 2 * 100 * 128 * 2));  // K and V, 2 layers, f16
  EXPECT_EQ(a.weights, 1000u);
  const uint64_t budget = estimate_memory(hp, 1000, 5000, 8).total();
  const int64_t fits = max_ctx_that_fits(hp, 1000, 8, budget);
  EXPECT_GE(fits, 5000);
  EXPECT_LE(estimate_memory(hp, 1000, fits, 8).total(), budget);
  EXPECT_GT(estimate_memory(hp, 1000, fits + 1, 8).total(), budget);
  EXPECT_EQ(max_ctx_that_fits(hp, 1ull << 40, 8, 1 << 20), 0);
}

TEST(Telemetry, WritesOneVersionedJsonObjectPerLine) {
  const auto path = (testing::temp_dir() / "telemetry.jsonl").string();
  setenv("BITNET_RUN_ID", "queue-7", 1);
  {
    Telemetry t(path, "run");
    t.emit("run_started", {{"threads", 2}});
    t.emit("run_finished", {{"exit_code", 0}});
  }
  unsetenv("BITNET_RUN_ID");
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["event"], "run_started");
  EXPECT_EQ(lines[0]["threads"], 2);
  EXPECT_EQ(lines[1]["schema_version"], kTelemetrySchemaVersion);
  for (const auto& l : lines) {
    EXPECT_EQ(l["run_id"], "queue-7");
    EXPECT_EQ(l["schema"], "bitnet.telemetry");
    for (const char* key : {"ts", "elapsed_ms", "pid", "rss_mib", "peak_rss_mib"}) EXPECT_TRUE(l.contains(key)) << key;
  }
  EXPECT_THROW(Telemetry("/nonexistent/dir/t.jsonl", "run"), Error);
  Telemetry disabled;
  EXPECT_FALSE(disabled.enabled());
  disabled.emit("ignored");
}

TEST(HostProbes, PortAndBinaryProblemsAreExplained) {
  EXPECT_NE(port_problem("127.0.0.1", 0).find("outside"), std::string::npos);
  EXPECT_NE(port_problem("not-an-ip", 8080).find("not an IPv4"), std::string::npos);
  EXPECT_NE(binary_problem("/nonexistent/bitnet").find("not found"), std::string::npos);
  EXPECT_EQ(binary_problem(testing::bin_dir() + "/bitnet"), "");
  const MemoryInfo m = probe_memory();
  EXPECT_GT(m.total, 0u);
  EXPECT_LE(m.available, m.total);
  EXPECT_FALSE(probe_cpu().kernel.empty());
}

}  // namespace
}  // namespace bitnet
