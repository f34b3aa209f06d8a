// llama-cli's flags that scripts use: reverse prompts, escapes, raw interactive mode, single-turn
// chat, and the flags accepted as no-ops or refused by name (never "unknown argument").
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

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

// The first turn's prompt tokens under `-cnv -st` with the given extra flags (telemetry).
int64_t chat_prompt_tokens(const std::vector<std::string>& extra, const std::string& name) {
  const std::string events = (testing::temp_dir() / (name + ".jsonl")).string();
  std::vector<std::string> args = {bitnet(), "run", "-m", kModel, "-cnv", "-st", "-n", "1", "--temp", "0",
                                   "--telemetry-out", events};
  args.insert(args.end(), extra.begin(), extra.end());
  const ProcessResult r = run_process(args, "In the beginning\n");
  EXPECT_EQ(r.code, 0) << r.err;
  std::ifstream in(events);
  for (std::string line; std::getline(in, line);) {
    const auto e = nlohmann::json::parse(line);
    if (e.value("event", "") == "prompt_processed") return e.at("prompt_tokens").get<int64_t>();
  }
  ADD_FAILURE() << "no prompt_processed event in " << events;
  return -1;
}

// --chat-template NAME|TEMPLATE (llama-cli's flag): the turn is rendered in that format instead of
// the model's; a name it does not know, or the flag without -cnv, is a usage error.
TEST(LlamaCliFlags, ChatTemplateChoosesTheChatFormat) {
  const int64_t own = chat_prompt_tokens({}, "chat-own");
  const int64_t plain = chat_prompt_tokens({"--chat-template", "plain"}, "chat-plain");
  const int64_t chatml = chat_prompt_tokens({"--chat-template", "chatml"}, "chat-chatml");
  const int64_t chatml_text = chat_prompt_tokens(
      {"--chat-template", "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"},
      "chat-chatml-text");
  ASSERT_GT(plain, 0);
  EXPECT_GT(chatml, plain) << "chatml wraps the turn in <|im_start|>/<|im_end|> markers";
  EXPECT_EQ(chatml_text, chatml) << "a template text is recognized as the format it spells";
  // The shipped model's template is BitNet's ("User: ...<|eot_id|>Assistant: ").
  EXPECT_EQ(own, chat_prompt_tokens({"--chat-template", "bitnet"}, "chat-bitnet"));
  EXPECT_NE(own, chatml);
  const ProcessResult bad = run_process({bitnet(), "run", "-m", kModel, "-cnv", "-st", "--chat-template", "command-r"}, "x\n");
  EXPECT_EQ(bad.code, 2) << bad.err;
  EXPECT_NE(bad.err.find("is neither a built-in format (bitnet, llama3"), std::string::npos) << bad.err;
  const ProcessResult no_cnv = run_process({bitnet(), "run", "-m", kModel, "-p", "x", "--chat-template", "chatml"});
  EXPECT_EQ(no_cnv.code, 2) << no_cnv.err;
  EXPECT_NE(no_cnv.err.find("--chat-template goes with -cnv"), std::string::npos) << no_cnv.err;
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

// -ctk / -ctv (llama.cpp's KV cache types): f16 and q8_0 on every model-running command; any other
// name, q8_0 with -ngl, and q8_0 with a head size that is not a multiple of 32 are usage errors.
TEST(LlamaCliFlags, KvCacheTypes) {
  const ProcessResult q8 = run_process({bitnet(), "run", "-m", kModel, "-p", "And it came to pass", "-n", "8",
                                        "--temp", "0", "-ctk", "q8_0", "--cache-type-v", "q8_0"});
  ASSERT_EQ(q8.code, 0) << q8.err;
  EXPECT_NE(q8.err.find("K/V cache q8_0/q8_0"), std::string::npos) << q8.err;
  EXPECT_GT(q8.out.size(), std::string("And it came to pass").size());
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"-ctk", "q4_0"}, std::vector<std::string>{"--cache-type-v", "bf16"},
        std::vector<std::string>{"-ctv", "q8_0", "-ngl", "1"}}) {
    for (const char* cmd : {"run", "perplexity", "bench", "batched-bench", "embed"}) {
      std::vector<std::string> full = {bitnet(), cmd, "-m", kModel, "-p", "x"};
      if (std::string(cmd) == "perplexity") full = {bitnet(), cmd, "-m", kModel, "-f", kModel};
      if (std::string(cmd) == "batched-bench") full = {bitnet(), cmd, "-m", kModel, "-npp", "8", "-ntg", "1", "-npl", "1"};
      if (std::string(cmd) == "bench") full = {bitnet(), cmd, "-m", kModel, "-p", "8", "-n", "0"};
      full.insert(full.end(), args.begin(), args.end());
      const ProcessResult r = run_process(full);
      EXPECT_EQ(r.code, 2) << cmd << " " << args.front() << ": " << r.err;
      const bool gpu = args.size() > 2;
      EXPECT_NE(r.err.find(gpu ? "run on the CPU only" : "accepted: f16, q8_0"), std::string::npos) << cmd << ": " << r.err;
    }
  }
  const std::string odd = testing::dummy_model("bitnet", "tiny-odd", GgmlType::I2_S);  // head size 100
  const ProcessResult r = run_process({bitnet(), "run", "-m", odd, "-p", "x", "-n", "1", "-ctk", "q8_0"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("q8_0 K/V cache needs a head size that is a multiple of 32; this model's is 100"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(run_process({bitnet(), "run", "-m", odd, "-p", "x", "-n", "1", "-ctk", "f16"}).code, 0);
}

TEST(LlamaCliFlags, KvCacheTypesInBenchRowsAndServerConfig) {
  const ProcessResult b = run_process({bitnet(), "bench", "-m", kModel, "-p", "16", "-n", "2", "-r", "1", "-t", "1",
                                       "--no-warmup", "-ctk", "f16,q8_0", "-ctv", "q8_0", "-o", "json"});
  ASSERT_EQ(b.code, 0) << b.err;
  const auto rows = nlohmann::json::parse(b.out);
  ASSERT_EQ(rows.size(), 4u);  // (f16, q8_0) and (q8_0, q8_0) × pp16, tg2
  std::vector<std::string> kinds;
  for (const auto& row : rows) kinds.push_back(row["type_k"].get<std::string>() + "/" + row["type_v"].get<std::string>());
  EXPECT_EQ(kinds, (std::vector<std::string>{"f16/q8_0", "f16/q8_0", "q8_0/q8_0", "q8_0/q8_0"}));
  // The K/V a generated token reads: 34 bytes per 32 q8_0 cells against 64 in f16.
  EXPECT_LT(rows[3]["kv_read_bytes_per_token"].get<double>(), rows[1]["kv_read_bytes_per_token"].get<double>());
  const ProcessResult md = run_process({bitnet(), "bench", "-m", kModel, "-p", "16", "-n", "0", "-r", "1", "-t", "1",
                                        "--no-warmup", "-ctk", "q8_0"});
  ASSERT_EQ(md.code, 0) << md.err;
  EXPECT_NE(md.out.find("| type_k | type_v |"), std::string::npos) << md.out;
  EXPECT_NE(md.out.find("| q8_0 | f16 |"), std::string::npos) << md.out;

  const ProcessResult bb = run_process({bitnet(), "batched-bench", "-m", kModel, "-npp", "8", "-ntg", "2", "-npl", "2",
                                        "-t", "1", "-ctk", "q8_0", "-ctv", "q8_0", "--output-format", "jsonl"});
  ASSERT_EQ(bb.code, 0) << bb.err;
  const auto row = nlohmann::json::parse(bb.out.substr(0, bb.out.find('\n')));
  EXPECT_EQ(row["type_k"], "q8_0");
  EXPECT_EQ(row["type_v"], "q8_0");

  // llama-server's environment variables.
  const ProcessResult s = run_process({bitnet(), "serve", "-m", kModel, "--dry-run", "--json"}, "", "",
                                      {"LLAMA_ARG_CACHE_TYPE_K=q8_0", "LLAMA_ARG_CACHE_TYPE_V=q8_0"});
  ASSERT_EQ(s.code, 0) << s.err;
  const auto cfg = nlohmann::json::parse(s.out)["config"];
  EXPECT_EQ(cfg["cache_type_k"], "q8_0");
  EXPECT_EQ(cfg["cache_type_v"], "q8_0");
  const ProcessResult bad = run_process({bitnet(), "serve", "-m", kModel, "--dry-run"}, "", "",
                                        {"LLAMA_ARG_CACHE_TYPE_V=q4_1"});
  EXPECT_EQ(bad.code, 2) << bad.err;
}

// llama-server's --kv-unified (-kvu): a setting of serve, also from LLAMA_ARG_KV_UNIFIED; refused with
// -ngl (the GPU's cache cannot be shared by the slots), --no-kv-unified turns it off.
TEST(LlamaCliFlags, KvUnifiedIsAServerSetting) {
  auto unified = [&](std::vector<std::string> args, std::vector<std::string> env = {}) {
    args.insert(args.begin(), {bitnet(), "serve", "-m", kModel, "--dry-run", "--json"});
    const ProcessResult r = run_process(args, "", "", env);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.err.find("has no effect"), std::string::npos) << r.err;
    return r.code == 0 && nlohmann::json::parse(r.out)["config"]["kv_unified"].get<bool>();
  };
  EXPECT_FALSE(unified({}));
  EXPECT_TRUE(unified({"-kvu"}));
  EXPECT_TRUE(unified({"--kv-unified"}));
  EXPECT_TRUE(unified({}, {"LLAMA_ARG_KV_UNIFIED=1"}));
  EXPECT_FALSE(unified({}, {"LLAMA_ARG_KV_UNIFIED=0"}));
  EXPECT_FALSE(unified({"--no-kv-unified"}, {"LLAMA_ARG_KV_UNIFIED=1"}));
  const ProcessResult gpu = run_process({bitnet(), "serve", "-m", kModel, "--kv-unified", "-ngl", "1"});
  EXPECT_EQ(gpu.code, 2) << gpu.err;
  EXPECT_NE(gpu.err.find("--kv-unified runs on the CPU only"), std::string::npos) << gpu.err;
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
