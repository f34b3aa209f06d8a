// `bitnet run --context-shift --keep N`: a chat (-cnv), an -i session or a completion that fills
// its context drops the oldest tokens and goes on; without the flag a chat or -i session that
// fills its context exits non-zero naming the flag, never 0 with turns unanswered.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "process_runner.h"
#include "test_data.h"

namespace bitnet {
namespace {

using nlohmann::json;
using testing::ProcessResult;
using testing::run_process;

std::string bitnet() { return testing::bin_dir() + "/bitnet"; }
const std::string kModel = std::string(BITNET_SOURCE_DIR) + "/models/bitnet-kjv-13M-i2_s.gguf";

std::vector<json> events(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  std::vector<json> out;
  for (std::string line; std::getline(in, line);) {
    const json e = json::parse(line, nullptr, false);
    if (e.is_object() && e.value("event", "") == name) out.push_back(e);
  }
  return out;
}

std::string telemetry_file(const std::string& name) { return (testing::temp_dir() / (name + ".jsonl")).string(); }

std::string turns(int n, const std::string& line) {
  std::string text;
  for (int i = 0; i < n; ++i) text += line + "\n";
  return text;
}

// Twenty turns of 16 tokens each in a 64-token context: every turn is answered in full.
TEST(RunContextShift, AChatAnswersEveryTurnInATinyContext) {
  const std::string file = telemetry_file("chat-shift");
  const ProcessResult r = run_process({bitnet(), "run", "-m", kModel, "-cnv", "-n", "16", "--temp", "0", "-c", "64",
                                       "--ignore-eos", "--context-shift", "--telemetry-out", file},
                                      turns(20, "Tell me more about the weather today, please."));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<json> replies = events(file, "tokens_generated");
  ASSERT_EQ(replies.size(), 20u) << r.err;
  for (const json& e : replies) {
    EXPECT_EQ(e["tokens"], 16) << e.dump();
    EXPECT_EQ(e["stop_reason"], "length") << e.dump();
  }
  EXPECT_NE(r.err.find("context shift"), std::string::npos) << "the timings name the shifts: " << r.err;
}

// The same chat without the flag stops at the full context with exit 1 and says how to go on.
TEST(RunContextShift, WithoutItAChatThatFillsTheContextExitsNonZero) {
  const std::string file = telemetry_file("chat-full");
  const ProcessResult r = run_process({bitnet(), "run", "-m", kModel, "-cnv", "-n", "16", "--temp", "0", "-c", "64",
                                       "--ignore-eos", "--telemetry-out", file},
                                      turns(20, "Tell me more about the weather today, please."));
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("is full"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--context-shift"), std::string::npos) << r.err;
  EXPECT_LT(events(file, "tokens_generated").size(), 20u);
}

// Replies cut by -n leave room, but the conversation grows each turn until the next turn's prompt
// no longer fits: exit 1 with the same message; with --context-shift every turn is answered.
TEST(RunContextShift, ATurnThatNoLongerFitsIsAFullContextToo) {
  const std::string line = "And the LORD spake unto Moses, saying, Speak unto the children of Israel.";
  const std::string full = telemetry_file("turn-full");
  const ProcessResult r = run_process({bitnet(), "run", "-m", kModel, "-cnv", "-n", "4", "--temp", "0", "-c", "64",
                                       "--telemetry-out", full},
                                      turns(6, line));
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("is full"), std::string::npos) << r.err;
  EXPECT_LT(events(full, "prompt_processed").size(), 6u);
  const std::string shifted = telemetry_file("turn-shift");
  const ProcessResult s = run_process({bitnet(), "run", "-m", kModel, "-cnv", "-n", "4", "--temp", "0", "-c", "64",
                                       "--context-shift", "--keep", "-1", "-sys", "Be brief.", "--telemetry-out", shifted},
                                      turns(6, line));
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(events(shifted, "prompt_processed").size(), 6u);
  // A turn that cannot fit even after the kept tokens is refused with the reason.
  const ProcessResult huge = run_process({bitnet(), "run", "-m", kModel, "-cnv", "-n", "4", "--temp", "0", "-c", "64",
                                          "--context-shift"},
                                         "Hello.\n" + turns(1, line + " " + line + " " + line));
  EXPECT_EQ(huge.code, 1) << huge.err;
  EXPECT_NE(huge.err.find("does not fit in the context of 64 tokens"), std::string::npos) << huge.err;
}

// -i: each line continues the text; with --context-shift the session never runs out.
TEST(RunContextShift, InteractiveModeGoesOnPastAFullContext) {
  const std::string file = telemetry_file("interactive-shift");
  const ProcessResult r = run_process({bitnet(), "run", "-m", kModel, "-i", "-p", "In the beginning", "-n", "12",
                                       "--temp", "0", "-c", "48", "--ignore-eos", "--context-shift", "--keep", "2",
                                       "--telemetry-out", file},
                                      turns(6, "And God said"));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<json> replies = events(file, "tokens_generated");
  ASSERT_EQ(replies.size(), 7u) << "the prompt's reply and one per line";
  for (const json& e : replies) EXPECT_EQ(e["tokens"], 12) << e.dump();
  const ProcessResult plain = run_process({bitnet(), "run", "-m", kModel, "-i", "-p", "In the beginning", "-n", "12",
                                           "--temp", "0", "-c", "48", "--ignore-eos"},
                                          turns(6, "And God said"));
  EXPECT_EQ(plain.code, 1) << plain.err;
  EXPECT_NE(plain.err.find("is full"), std::string::npos) << plain.err;
}

// A completion runs to -n through shifts; without the flag it stops at the full context (exit 0,
// as llama-cli: the reply is complete up to the context) and says so.
TEST(RunContextShift, ACompletionRunsToItsTokenLimit) {
  const std::string file = telemetry_file("completion-shift");
  const ProcessResult r = run_process({bitnet(), "run", "-m", kModel, "-p", "In the beginning", "-n", "100", "-c", "32",
                                       "--temp", "0", "--ignore-eos", "--context-shift", "--telemetry-out", file});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<json> totals = events(file, "run_totals");
  ASSERT_EQ(totals.size(), 1u);
  EXPECT_EQ(totals[0]["generated_tokens"], 100);
  const ProcessResult plain = run_process({bitnet(), "run", "-m", kModel, "-p", "In the beginning", "-n", "100", "-c",
                                           "32", "--temp", "0", "--ignore-eos"});
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_NE(plain.err.find("context full after 32 tokens"), std::string::npos) << plain.err;
  EXPECT_NE(plain.err.find("--context-shift"), std::string::npos) << plain.err;
  EXPECT_LT(plain.out.size(), r.out.size());
}

TEST(RunContextShift, FlagsAreValidatedAndShownByDryRun) {
  const ProcessResult bad = run_process({bitnet(), "run", "-m", kModel, "-p", "x", "--context-shift", "--keep", "-2"});
  EXPECT_EQ(bad.code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--keep must be -1"), std::string::npos) << bad.err;
  const ProcessResult dry = run_process({bitnet(), "run", "-m", kModel, "-p", "x", "--context-shift", "--keep", "5",
                                         "--dry-run", "--json"});
  ASSERT_EQ(dry.code, 0) << dry.err;
  const json j = json::parse(dry.out);
  EXPECT_EQ(j["config"]["context_shift"], true);
  EXPECT_EQ(j["config"]["keep"], 5);
  const std::vector<std::string> argv = j["argv"].get<std::vector<std::string>>();
  EXPECT_NE(std::find(argv.begin(), argv.end(), "--context-shift"), argv.end());
  EXPECT_NE(std::find(argv.begin(), argv.end(), "--keep"), argv.end());
  const ProcessResult off = run_process({bitnet(), "run", "-m", kModel, "-p", "x", "--context-shift",
                                         "--no-context-shift", "--dry-run", "--json"});
  ASSERT_EQ(off.code, 0) << off.err;
  EXPECT_EQ(json::parse(off.out)["config"]["context_shift"], false);
}

}  // namespace
}  // namespace bitnet
