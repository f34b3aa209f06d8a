// `bitnet embed` / `llama-embedding` as a user runs them: output formats, inputs, flags, errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "process_runner.h"
#include "synthetic_embedding_model.h"
#include "test_data.h"

namespace bitnet {
namespace {

using Result = testing::ProcessResult;
Result run(const std::vector<std::string>& args) { return testing::run_process(args, "", ""); }
std::string bitnet() { return testing::bin_dir() + "/bitnet"; }

// A qwen3 embedding model (pooling last) on disk, written once per test process.
const std::string& model_path() {
  static const std::string path = [] {
    testing::Spec s;
    s.pooling = 3;
    const auto bytes = testing::synthetic_model(s);
    const std::string p = (testing::temp_dir() / "qwen3-embed.gguf").string();
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    return p;
  }();
  return path;
}

nlohmann::json embed_json(std::vector<std::string> extra) {
  std::vector<std::string> args = {bitnet(), "embed", "-m", model_path(), "-t", "2", "--embd-output-format", "json"};
  args.insert(args.end(), extra.begin(), extra.end());
  const Result r = run(args);
  EXPECT_EQ(r.code, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

double norm2(const nlohmann::json& v) {
  double s = 0;
  for (const auto& x : v) s += x.get<double>() * x.get<double>();
  return std::sqrt(s);
}

TEST(EmbedCli, JsonHasOneNormalizedVectorPerInput) {
  const auto j = embed_json({"-p", "hello world\\nsecond line", "-p", "third"});
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 3u) << "the separator (newline, escapes processed) splits -p";
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(j["data"][i]["object"], "embedding");
    EXPECT_EQ(j["data"][i]["index"], i);
    ASSERT_EQ(j["data"][i]["embedding"].size(), 256u);
    EXPECT_NEAR(norm2(j["data"][i]["embedding"]), 1.0, 1e-5);
  }
  EXPECT_NE(j["data"][0]["embedding"], j["data"][1]["embedding"]);
}

TEST(EmbedCli, SameTextSameVectorWhateverItsCompany) {
  const auto alone = embed_json({"-p", "the same text"});
  const auto together = embed_json({"-p", "first|the same text|a third, longer input than the others", "--embd-separator", "|"});
  ASSERT_EQ(together["data"].size(), 3u);
  EXPECT_EQ(alone["data"][0]["embedding"], together["data"][1]["embedding"]);
}

TEST(EmbedCli, TokenIdsPoolingAndNormalizeFlags) {
  const auto none = embed_json({"--token-ids", "-p", "5, 6, 7", "--pooling", "none", "--embd-normalize", "-1"});
  ASSERT_EQ(none["data"].size(), 3u) << "pooling none: one row per token";
  const auto last = embed_json({"--token-ids", "-p", "5,6,7", "--pooling", "last", "--embd-normalize", "-1"});
  ASSERT_EQ(last["data"].size(), 1u);
  EXPECT_EQ(last["data"][0]["embedding"], none["data"][2]["embedding"]);
  const auto cls = embed_json({"--token-ids", "-p", "5,6,7", "--pooling", "cls", "--embd-normalize", "-1"});
  EXPECT_EQ(cls["data"][0]["embedding"], none["data"][0]["embedding"]);
  const auto maxabs = embed_json({"--token-ids", "-p", "5,6,7", "--embd-normalize", "0"});
  double m = 0;
  for (const auto& x : maxabs["data"][0]["embedding"]) m = std::max(m, std::fabs(x.get<double>()));
  EXPECT_NEAR(m, 32760.0, 1e-3);
}

TEST(EmbedCli, ArrayJsonPlusAndDefaultFormats) {
  const Result a = run({bitnet(), "embed", "-m", model_path(), "-p", "a\\nb", "--embd-output-format", "array"});
  ASSERT_EQ(a.code, 0) << a.err;
  const auto arr = nlohmann::json::parse(a.out);
  ASSERT_EQ(arr.size(), 2u);
  EXPECT_EQ(arr[0].size(), 256u);
  const Result jp = run({bitnet(), "embed", "-m", model_path(), "-p", "a\\nb", "--embd-output-format", "json+"});
  ASSERT_EQ(jp.code, 0) << jp.err;
  const auto j = nlohmann::json::parse(jp.out);
  ASSERT_EQ(j["cosineSimilarity"].size(), 2u);
  EXPECT_NEAR(j["cosineSimilarity"][0][0].get<double>(), 1.0, 1e-6);
  EXPECT_NEAR(j["cosineSimilarity"][0][1].get<double>(), j["cosineSimilarity"][1][0].get<double>(), 1e-7);
  const Result text = run({bitnet(), "embed", "-m", model_path(), "-p", "a\\nb"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("embedding 0: "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("cosine similarity matrix"), std::string::npos) << text.out;
  EXPECT_NE(text.err.find("embedded 2 inputs"), std::string::npos) << text.err;
}

TEST(EmbedCli, FileInputAndLlamaEmbeddingAlias) {
  const std::string file = (testing::temp_dir() / "inputs.txt").string();
  std::ofstream(file) << "one\ntwo\nthree\n";
  const Result r = run({testing::bin_dir() + "/llama-embedding", "-m", model_path(), "-f", file,
                        "--embd-output-format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["data"].size(), 3u) << "a file's last newline adds no input";
}

TEST(EmbedCli, BadUseIsAOneLineError) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"-p", "x", "--embd-output-format", "yaml"}, "--embd-output-format"},
      {{"-p", "x", "--pooling", "rank"}, "rank"},
      {{"-p", "x", "--pooling", "max"}, "--pooling"},
      {{"-p", "x", "--embd-normalize", "-2"}, "--embd-normalize"},
      {{}, "no input"},
      {{"--token-ids", "-p", "1,x"}, "not a token id"},
      {{"--token-ids", "-p", "1,999999"}, "outside the vocabulary"},
      {{"-c", "8", "--token-ids", "-p", "1,2,3,4,5,6,7,8,9,10"}, "context of 8"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {bitnet(), "embed", "-m", model_path()};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const Result r = run(args);
    EXPECT_NE(r.code, 0) << c.says;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

TEST(EmbedCli, GenerationRefusesAnEmbeddingModel) {
  const Result r = run({bitnet(), "run", "-m", model_path(), "-p", "hello", "-n", "4"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("is an embedding model"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bitnet embed"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace bitnet
