// `bitnet batched-bench` / `llama-batched-bench` on the shipped model: the rows (one per PP, TG, B
// in llama-batched-bench's order), N_KV with and without a shared prompt, speeds that follow from
// the times, llama-batched-bench's table, and clear errors for bad flags and a too-small -c.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "process_runner.h"
#include "test_data.h"

namespace bitnet {
namespace {

using testing::ProcessResult;
using testing::run_process;

std::string bitnet() { return testing::bin_dir() + "/bitnet"; }
const std::string kModel = std::string(BITNET_SOURCE_DIR) + "/models/bitnet-kjv-13M-i2_s.gguf";

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> rows;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

TEST(BatchedBench, OneJsonRowPerCaseWithTimesAndSpeedsThatAgree) {
  const ProcessResult r = run_process({bitnet(), "batched-bench", "-m", kModel, "-npp", "16,24", "-ntg", "4",
                                       "-npl", "1,2,3", "-t", "2", "-r", "3", "-ub", "20", "--output-format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json rows = nlohmann::json::parse(r.out);
  ASSERT_TRUE(rows.is_array());
  ASSERT_EQ(rows.size(), 6u);
  const int64_t pps[] = {16, 16, 16, 24, 24, 24}, pls[] = {1, 2, 3, 1, 2, 3};
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    SCOPED_TRACE(row.dump());
    const int64_t pp = row["pp"], tg = row["tg"], pl = row["pl"];
    EXPECT_EQ(pp, pps[i]);
    EXPECT_EQ(tg, 4);
    EXPECT_EQ(pl, pls[i]);
    EXPECT_EQ(row["n_kv"].get<int64_t>(), pl * (pp + tg));
    EXPECT_EQ(row["n_kv_max"].get<int64_t>(), pl * (pp + tg)) << "each case gets the cache it needs";
    EXPECT_EQ(row["is_pp_shared"].get<int>(), 0);
    EXPECT_EQ(row["n_threads"].get<int>(), 2);
    EXPECT_EQ(row["n_ubatch"].get<int>(), 20);
    EXPECT_EQ(row["repetitions"].get<int>(), 3);
    const double t_pp = row["t_pp"], t_tg = row["t_tg"], t = row["t"];
    EXPECT_GT(t_pp, 0);
    EXPECT_GT(t_tg, 0);
    EXPECT_DOUBLE_EQ(t, t_pp + t_tg);
    ASSERT_EQ(row["samples_t_pp"].size(), 3u);
    ASSERT_EQ(row["samples_t_tg"].size(), 3u);
    EXPECT_DOUBLE_EQ(t_pp, median(row["samples_t_pp"].get<std::vector<double>>()));
    EXPECT_DOUBLE_EQ(t_tg, median(row["samples_t_tg"].get<std::vector<double>>()));
    EXPECT_NEAR(row["speed_pp"].get<double>(), double(pl * pp) / t_pp, 1e-6 * double(pl * pp) / t_pp);
    EXPECT_NEAR(row["speed_tg"].get<double>(), double(pl * tg) / t_tg, 1e-6 * double(pl * tg) / t_tg);
    EXPECT_NEAR(row["speed"].get<double>(), double(pl * (pp + tg)) / t, 1e-6 * double(pl * (pp + tg)) / t);
    EXPECT_EQ(row["model"].get<std::string>(), kModel);
    EXPECT_FALSE(row["cpu_isa"].get<std::string>().empty());
  }
  EXPECT_NE(r.err.find("isa "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("threads 2"), std::string::npos) << r.err;
}

TEST(BatchedBench, SharedPromptCountsItOnce) {
  const ProcessResult r = run_process({bitnet(), "batched-bench", "-m", kModel, "-npp", "24", "-ntg", "3", "-npl",
                                       "1,4", "-pps", "-t", "1", "-c", "40", "--output-format", "jsonl"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto rows = json_lines(r.out);
  ASSERT_EQ(rows.size(), 2u) << r.out;
  for (const auto& row : rows) {
    SCOPED_TRACE(row.dump());
    const int64_t pl = row["pl"];
    EXPECT_EQ(row["n_kv"].get<int64_t>(), 24 + pl * 3);
    EXPECT_EQ(row["n_kv_max"].get<int64_t>(), 40) << "-c as given";
    EXPECT_EQ(row["is_pp_shared"].get<int>(), 1);
    const double t_pp = row["t_pp"];
    EXPECT_NEAR(row["speed_pp"].get<double>(), 24 / t_pp, 1e-6 * 24 / t_pp) << "the prompt is processed once";
    EXPECT_GT(row["speed_tg"].get<double>(), 0);
  }
  // Without -pps the same cases need B*(PP+TG) = 108 cells: -c 40 is refused before anything runs.
  const ProcessResult small = run_process({bitnet(), "batched-bench", "-m", kModel, "-npp", "24", "-ntg", "3",
                                           "-npl", "1,4", "-t", "1", "-c", "40"});
  EXPECT_EQ(small.code, 2);
  EXPECT_EQ(small.out, "");
  EXPECT_NE(small.err.find("-c 40 is too small for PP 24, TG 3, B 4: it needs N_KV = 108"), std::string::npos)
      << small.err;
}

TEST(BatchedBench, LlamaBatchedBenchPrintsItsTable) {
  const ProcessResult r = run_process({testing::bin_dir() + "/llama-batched-bench", "-m", kModel, "-npp", "8", "-ntg",
                                       "2", "-npl", "1,2", "-t", "1", "-fa", "on", "-b", "2048", "-ub", "512"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream in(r.out);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_EQ(lines[0], "|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |");
  EXPECT_EQ(lines[1], "|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|");
  EXPECT_EQ(lines[2].rfind("|     8 |      2 |    1 |     10 | ", 0), 0u) << lines[2];
  EXPECT_EQ(lines[3].rfind("|     8 |      2 |    2 |     20 | ", 0), 0u) << lines[3];
  EXPECT_EQ(std::count(lines[3].begin(), lines[3].end(), '|'), 11);
  EXPECT_NE(r.err.find("note: -fa has no effect"), std::string::npos) << r.err;
}

TEST(BatchedBench, BadFlagsAreOneLineErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  } cases[] = {
      {{"--bogus"}, "unknown argument: --bogus"},
      {{"-npl", "0"}, "-npl values must be between 1 and 4096"},
      {{"-npp", "8,x"}, "-npp expects a comma-separated list"},
      {{"-npp", "0", "-ntg", "0"}, "-npp 0 with -ntg 0 runs nothing"},
      {{"--output-format", "csv"}, "--output-format must be md, json or jsonl"},
      {{"-r", "0"}, "-r must be between 1 and 1000"},
      {{"-ub", "0"}, "-ub must be between 1 and 65536"},
      {{"-npp", "600", "-ntg", "1"}, "PP 600, TG 1, B 1 needs 601 positions per sequence but the model has a context of 512"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {bitnet(), "batched-bench", "-m", kModel, "-t", "1"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const ProcessResult r = run_process(args);
    EXPECT_EQ(r.code, 2) << c.needle;
    EXPECT_EQ(r.out, "") << c.needle;
    const size_t at = r.err.find("error: " + c.needle);
    ASSERT_NE(at, std::string::npos) << "stderr: " << r.err;
    EXPECT_EQ(r.err.find('\n', at) + 1, r.err.size()) << "the error is the last line, and one line: " << r.err;
  }
}

}  // namespace
}  // namespace bitnet
