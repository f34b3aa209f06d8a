#pragma once
// A small table-driven flag parser for llama.cpp-style command lines (single-dash long flags such
// as -ngl and -cnv, which general-purpose parsers like CLI11 do not accept). Values are parsed
// strictly: "12abc" is an error, not 12.
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace bitnet::cli {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The values of a comma-separated list of non-negative integers ("128,256,512", llama-bench's -p and
// llama-batched-bench's -npp); a UsageError naming `flag` for an empty list or a bad entry.
std::vector<int64_t> parse_list(const std::string& flag, const std::string& text);

class ArgParser {
 public:
  ArgParser(std::string program, std::string summary);

  void flag(std::vector<std::string> names, std::string help, bool* target);
  void option(std::vector<std::string> names, std::string value_name, std::string help,
              std::string* target);
  void option(std::vector<std::string> names, std::string value_name, std::string help,
              int64_t* target);
  void option(std::vector<std::string> names, std::string value_name, std::string help,
              int32_t* target);
  void option(std::vector<std::string> names, std::string value_name, std::string help,
              uint64_t* target);
  void option(std::vector<std::string> names, std::string value_name, std::string help,
              float* target);
  // A repeatable comma-separated list (llama-bench's -m/-p/-n/-t/-b): each occurrence appends its
  // values; the first one replaces the default.
  void list_option(std::vector<std::string> names, std::string value_name, std::string help,
                   std::string* target);
  // A repeatable option: each occurrence appends its whole value (which may hold commas).
  void multi_option(std::vector<std::string> names, std::string value_name, std::string help,
                    std::vector<std::string>* target);
  void positional(std::string name, std::string help, std::string* target, bool required);
  // A flag of llama.cpp's tools that has no effect in this engine: accepted (with a value when
  // value_name is set) so existing launch scripts run, and named on stderr with `why` when used.
  void compat_noop(std::vector<std::string> names, std::string value_name, std::string why);
  // A flag of llama.cpp's tools for a feature this engine does not have: a UsageError saying `why`
  // (rather than "unknown argument").
  void unsupported(std::vector<std::string> names, std::string value_name, std::string why);

  // Throws UsageError with a one-line message. Returns false if --help was given (usage printed).
  bool parse(int argc, char** argv);
  std::string usage() const;
  // True if the user gave this option explicitly (any of its names).
  bool given(const std::string& name) const;

 private:
  struct Spec {
    std::vector<std::string> names;
    std::string value_name;  // empty for boolean flags
    std::string help;
    std::function<void(const std::string&)> apply;
  };
  struct Positional {
    std::string name, help;
    std::string* target;
    bool required;
  };
  void add(std::vector<std::string> names, std::string value_name, std::string help,
           std::function<void(const std::string&)> apply);

  std::string program_, summary_;
  std::vector<Spec> specs_;
  std::vector<Positional> positionals_;
  std::vector<std::string> given_;
};

}  // namespace bitnet::cli
