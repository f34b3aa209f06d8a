// llama-cli's flags that scripts use: reverse prompts, escapes, raw interactive mode, single-turn
// chat, and the flags accepted as no-ops or refused by name (never "unknown argument").
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "process_runner.h"
#include "test_data.h"

namespace bitnet {
namespace {

using testing::ProcessResult;
using testing::run_process;

std::string bitnet() { return testing::bin_dir() + "/bitnet"; }
const std::string kModel = std::string(BITNET_SOURCE_DIR) + "/models/bitnet-kjv-13M-i2_s.gguf";

int count_events(const std::string& path, const std::string& event) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += line.find("\"event\":\"" + event + "\"") != std::string::npos;
  return n;
}

TEST(LlamaCliFlags, AReversePromptEndsTheReplyRightAfterIt) {
  const ProcessResult full = run_process({bitnet(), "run", "-m", kModel, "-p", "And it came to pass", "-n", "24", "--temp", "0"});
  ASSERT_EQ(full.code, 0) << full.err;
  const size_t comma = full.out.find(',', std::string("And it came to pass").size());
  ASSERT_NE(comma, std::string::npos) << "the greedy text has a comma: " << full.out;
  const ProcessResult cut = run_process({bitnet(), "run", "-m", kModel, "-p", "And it came to pass", "-n", "24", "--temp", "0", "-r", ","});
  ASSERT_EQ(cut.code, 0) << cut.err;
  EXPECT_EQ(cut.out, full.out.substr(0, comma + 1) + "\n");
}

TEST(LlamaCliFlags, EscapesInThePromptUnlessNoEscape) {
  const ProcessResult e = run_process({bitnet(), "run", "-m", kModel, "-p", "And\\x20it\\tcame", "-n", "1", "--temp", "0"});
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_EQ(e.out.rfind("And it\tcame", 0), 0u) << e.out;
  const ProcessResult literal =
      run_process({bitnet(), "run", "-m", kModel, "-p", "And\\x20it", "-n", "1", "--temp", "0", "--no-escape"});
  ASSERT_EQ(literal.code, 0) << literal.err;
  EXPECT_EQ(literal.out.rfind("And\\x20it", 0), 0u) << literal.out;
}

TEST(LlamaCliFlags, InteractiveModeContinuesWithEachLineUntilEndOfInput) {
  const std::string events = (testing::temp_dir() / "interactive.jsonl").string();
  const ProcessResult r = run_process({bitnet(), "run", "-m", kModel, "-i", "-p", "In the beginning", "-n", "6", "--temp",
                                       "0", "--telemetry-out", events},
                                      "And the LORD said\nunto Moses\n");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("In the beginning", 0), 0u);
  EXPECT_EQ(count_events(events, "tokens_generated"), 3) << "the prompt's reply and one per line";
  // -if: the user's line comes first; without input nothing is generated.
  const std::string first = (testing::temp_dir() / "interactive-first.jsonl").string();
  const ProcessResult f = run_process({bitnet(), "run", "-m", kModel, "-if", "-n", "4", "--temp", "0", "--telemetry-out", first}, "");
  ASSERT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(count_events(first, "tokens_generated"), 0);
}

TEST(LlamaCliFlags, SingleTurnChatAnswersOnceAndExits) {
  const std::string events = (testing::temp_dir() / "single.jsonl").string();
  const ProcessResult r = run_process({bitnet(), "run", "-m", kModel, "-cnv", "-st", "-n", "4", "--temp", "0",
                                       "--telemetry-out", events},
                                      "first question\nsecond question\n");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_events(events, "tokens_generated"), 1);
}

TEST(LlamaCliFlags, ConflictsAreUsageErrors) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"-cnv", "-no-cnv"},
                                               std::vector<std::string>{"-cnv", "-i"}, std::vector<std::string>{"-st"},
                                               std::vector<std::string>{"-e", "--no-escape"}}) {
    std::vector<std::string> full = {bitnet(), "run", "-m", kModel, "-p", "x", "-n", "1"};
    full.insert(full.end(), args.begin(), args.end());
    const ProcessResult r = run_process(full);
    EXPECT_EQ(r.code, 2) << args.front() << ": " << r.err;
  }
}

TEST(LlamaCliFlags, CompatibilityFlagsAreAcceptedOrRefusedByName) {
  const ProcessResult ok = run_process({bitnet(), "run", "-m", kModel, "-p", "x", "-n", "1", "-fa", "on", "-ub", "64",
                                        "-tb", "2", "--no-warmup", "--jinja", "-ctk", "f16", "-ctv", "f16", "-no-cnv",
                                        "--color", "--mlock"});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.err.find("note: -fa has no effect here"), std::string::npos) << "no-ops are named, not silent: " << ok.err;
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"-hf", "ggml-org/x"}, std::vector<std::string>{"--lora", "a.gguf"},
        std::vector<std::string>{"-ctk", "q4_0"}}) {
    std::vector<std::string> full = {bitnet(), "run", "-m", kModel, "-p", "x", "-n", "1"};
    full.insert(full.end(), args.begin(), args.end());
    const ProcessResult r = run_process(full);
    EXPECT_EQ(r.code, 2) << args.front() << ": " << r.err;
    EXPECT_NE(r.err.find("not supported"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("unknown argument"), std::string::npos) << r.err;
  }
}

// --grammar / --grammar-file (llama-cli's names): the text follows the grammar, the timings name
// its cost, and a bad grammar is a usage error with its position, before the model loads.
TEST(LlamaCliFlags, GrammarConstrainsTheText) {
  for (const char* seed : {"1", "2", "3"}) {
    const ProcessResult r = run_process({bitnet(), "run", "-m", kModel, "-p", "And he said", "-n", "16", "--temp", "1",
                                         "-s", seed, "--no-display-prompt", "--grammar",
                                         "root ::= (\" Yea\" | \" Nay\") [,.!]"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(r.out == " Yea,\n" || r.out == " Yea.\n" || r.out == " Yea!\n" || r.out == " Nay,\n" ||
                r.out == " Nay.\n" || r.out == " Nay!\n")
        << "'" << r.out << "'";
    EXPECT_NE(r.err.find("grammar: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(" masks, "), std::string::npos) << r.err;
  }
  const std::string file = testing::temp_dir() / "digits.gbnf";
  std::ofstream(file) << "# digits only\nroot ::= [0-9]{3}\n";
  const ProcessResult f = run_process({bitnet(), "run", "-m", kModel, "-p", "x", "-n", "8", "--temp", "1",
                                       "--no-display-prompt", "--grammar-file", file});
  ASSERT_EQ(f.code, 0) << f.err;
  ASSERT_EQ(f.out.size(), 4u) << f.out;
  EXPECT_EQ(f.out.find_first_not_of("0123456789"), 3u) << f.out;

  const ProcessResult bad = run_process({bitnet(), "run", "-m", kModel, "-p", "x", "--grammar",
                                         "root ::= \"a\"\nb ::= ( \"c\""});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("grammar:2:12: expected ')'"), std::string::npos) << bad.err;
  const ProcessResult two = run_process({bitnet(), "run", "-m", kModel, "-p", "x", "--grammar", "root ::= \"a\"", "-j", "{}"});
  EXPECT_EQ(two.code, 2);
  EXPECT_NE(two.err.find("give one of --grammar"), std::string::npos) << two.err;
  const ProcessResult missing = run_process({bitnet(), "run", "-m", kModel, "-p", "x", "--grammar-file", "/nonexistent.gbnf"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("cannot read grammar file"), std::string::npos) << missing.err;
  // Commands without grammar support refuse the flags by name.
  const ProcessResult ppl = run_process({bitnet(), "perplexity", "-m", kModel, "--grammar", "root ::= \"a\""});
  EXPECT_EQ(ppl.code, 2);
  EXPECT_NE(ppl.err.find("--grammar is not supported"), std::string::npos) << ppl.err;
}

}  // namespace
}  // namespace bitnet
