// The command-line parser (tools/bitnet/args.h) with options of every value type, on argument
// vectors taken from the input (NUL-separated). UsageError is the expected outcome for bad input.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "args.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args = {"bitnet"};
  for (size_t pos = 0; pos < in.size();) {
    const size_t end = std::min(in.find('\0', pos), in.size());
    args.emplace_back(in.substr(pos, end - pos));
    pos = end + 1;
  }
  if (args.size() > 64) return 0;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  bool flag = false;
  std::string text, list, positional;
  int64_t i64 = 0;
  int32_t i32 = 0;
  uint64_t u64 = 0;
  float f = 0;
  bitnet::cli::ArgParser p("bitnet fuzz", "argument parser fuzz target");
  p.flag({"-cnv", "--conversation"}, "a flag", &flag);
  p.option({"-m", "--model"}, "FILE", "a string", &text);
  p.option({"-n", "--n-predict"}, "N", "an int64", &i64);
  p.option({"-t", "--threads"}, "N", "an int32", &i32);
  p.option({"-s", "--seed"}, "N", "a uint64", &u64);
  p.option({"--temp"}, "T", "a float", &f);
  p.list_option({"-p", "--n-prompt"}, "LIST", "a list", &list);
  p.positional("INPUT", "a positional", &positional, false);
  try {
    if (p.parse(int(args.size()), argv.data())) (void)p.given("--model");
  } catch (const bitnet::cli::UsageError&) {
  }
  return 0;
}
