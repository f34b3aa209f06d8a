#include "args.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>

namespace bitnet::cli {
namespace {

// A file, directory, address or key is never the empty string: `-m ''` (often an unset shell
// variable) must not quietly mean "the default model", nor `--api-key ''` "no authentication".
bool needs_value(const std::string& value_name) {
  return value_name.find("FILE") != std::string::npos || value_name == "DIR" || value_name == "KEY" ||
         value_name == "ADDR";
}

void check_not_empty(const std::string& flag, const std::string& value_name, const std::string& v) {
  if (v.empty() && needs_value(value_name)) throw UsageError(flag + " needs a non-empty " + value_name);
}

template <typename T>
T parse_number(const std::string& flag, const std::string& text, const char* what) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec == std::errc::result_out_of_range)
    throw UsageError(flag + ": value '" + text + "' is out of range");
  if (ec != std::errc() || ptr != end || text.empty())
    throw UsageError(flag + " expects " + what + ", got '" + text + "'");
  return value;
}

}  // namespace

std::vector<int64_t> parse_list(const std::string& flag, const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size() || v < 0) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::exception&) {
      throw UsageError(flag + " expects a comma-separated list of non-negative integers, got '" + text + "'");
    }
  }
  if (out.empty()) throw UsageError(flag + " expects at least one value");
  return out;
}

ArgParser::ArgParser(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void ArgParser::add(std::vector<std::string> names, std::string value_name, std::string help,
                    std::function<void(const std::string&)> apply) {
  specs_.push_back({std::move(names), std::move(value_name), std::move(help), std::move(apply)});
}

void ArgParser::compat_noop(std::vector<std::string> names, std::string value_name, std::string why) {
  const std::string flag = names.front();
  add(std::move(names), std::move(value_name), "accepted for llama.cpp compatibility, no effect: " + why,
      [flag, why](const std::string&) { std::fprintf(stderr, "note: %s has no effect here (%s)\n", flag.c_str(), why.c_str()); });
}

void ArgParser::unsupported(std::vector<std::string> names, std::string value_name, std::string why) {
  const std::string flag = names.front();
  add(std::move(names), std::move(value_name), "not supported: " + why,
      [flag, why](const std::string&) { throw UsageError(flag + " is not supported: " + why); });
}

void ArgParser::multi_option(std::vector<std::string> names, std::string value_name, std::string help,
                             std::vector<std::string>* target) {
  const std::string flag = names.front(), kind = value_name;
  add(std::move(names), std::move(value_name), std::move(help), [target, flag, kind](const std::string& v) {
    check_not_empty(flag, kind, v);
    target->push_back(v);
  });
}

void ArgParser::flag(std::vector<std::string> names, std::string help, bool* target) {
  add(std::move(names), "", std::move(help), [target](const std::string&) { *target = true; });
}
void ArgParser::option(std::vector<std::string> names, std::string value_name, std::string help,
                       std::string* target) {
  const std::string flag = names.front(), kind = value_name;
  add(std::move(names), std::move(value_name), std::move(help), [target, flag, kind](const std::string& v) {
    check_not_empty(flag, kind, v);
    *target = v;
  });
}
void ArgParser::list_option(std::vector<std::string> names, std::string value_name, std::string help,
                            std::string* target) {
  auto seen = std::make_shared<bool>(false);
  const std::string flag = names.front(), kind = value_name;
  add(std::move(names), std::move(value_name), std::move(help), [target, seen, flag, kind](const std::string& v) {
    if (needs_value(kind))  // every entry of a comma-separated list of files
      for (size_t a = 0, b; a <= v.size(); a = b + 1) {
        b = std::min(v.find(',', a), v.size());
        if (b == a) throw UsageError(flag + " has an empty entry in '" + v + "'");
      }
    *target = *seen ? *target + "," + v : v;
    *seen = true;
  });
}
void ArgParser::option(std::vector<std::string> names, std::string value_name, std::string help,
                       int64_t* target) {
  const std::string flag = names.front();
  add(std::move(names), std::move(value_name), std::move(help), [target, flag](const std::string& v) {
    *target = parse_number<int64_t>(flag, v, "an integer");
  });
}
void ArgParser::option(std::vector<std::string> names, std::string value_name, std::string help,
                       int32_t* target) {
  const std::string flag = names.front();
  add(std::move(names), std::move(value_name), std::move(help), [target, flag](const std::string& v) {
    *target = parse_number<int32_t>(flag, v, "an integer");
  });
}
void ArgParser::option(std::vector<std::string> names, std::string value_name, std::string help,
                       uint64_t* target) {
  const std::string flag = names.front();
  add(std::move(names), std::move(value_name), std::move(help), [target, flag](const std::string& v) {
    // llama.cpp accepts -1 for "random seed"; map it to a time-based seed at the caller.
    if (v == "-1") {
      *target = UINT64_MAX;
      return;
    }
    *target = parse_number<uint64_t>(flag, v, "a non-negative integer");
  });
}
void ArgParser::option(std::vector<std::string> names, std::string value_name, std::string help,
                       float* target) {
  const std::string flag = names.front();
  add(std::move(names), std::move(value_name), std::move(help), [target, flag](const std::string& v) {
    const float x = parse_number<float>(flag, v, "a number");
    if (!std::isfinite(x)) throw UsageError(flag + " expects a finite number, got '" + v + "'");
    *target = x;
  });
}

void ArgParser::positional(std::string name, std::string help, std::string* target, bool required) {
  positionals_.push_back({std::move(name), std::move(help), target, required});
}

bool ArgParser::given(const std::string& name) const {
  for (const auto& spec : specs_) {
    bool match = false;
    for (const auto& n : spec.names) match |= n == name;
    if (!match) continue;
    for (const auto& g : given_)
      for (const auto& n : spec.names)
        if (g == n) return true;
  }
  return false;
}

bool ArgParser::parse(int argc, char** argv) {
  size_t next_positional = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(usage().c_str(), stdout);
      return false;
    }
    std::string inline_value;
    bool has_inline = false;
    if (arg.rfind("--", 0) == 0) {
      if (const auto eq = arg.find('='); eq != std::string::npos) {
        inline_value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        has_inline = true;
      }
    }
    const Spec* spec = nullptr;
    for (const auto& s : specs_)
      for (const auto& n : s.names)
        if (n == arg) spec = &s;
    if (!spec) {
      if (arg.size() > 1 && arg[0] == '-' && !(arg.size() > 1 && std::isdigit(uint8_t(arg[1]))))
        throw UsageError("unknown argument: " + arg + " (see " + program_ + " --help)");
      if (next_positional >= positionals_.size())
        throw UsageError("unexpected argument: " + arg);
      *positionals_[next_positional++].target = arg;
      continue;
    }
    given_.push_back(arg);
    if (spec->value_name.empty()) {
      if (has_inline) throw UsageError(arg + " takes no value");
      spec->apply("");
      continue;
    }
    if (!has_inline) {
      if (i + 1 >= argc) throw UsageError(arg + " expects a value (" + spec->value_name + ")");
      inline_value = argv[++i];
    }
    spec->apply(inline_value);
  }
  for (size_t p = next_positional; p < positionals_.size(); ++p)
    if (positionals_[p].required) throw UsageError("missing argument: " + positionals_[p].name);
  return true;
}

std::string ArgParser::usage() const {
  std::string s = "usage: " + program_;
  for (const auto& p : positionals_) s += p.required ? " " + p.name : " [" + p.name + "]";
  s += " [options]\n\n" + summary_ + "\n\n";
  for (const auto& p : positionals_) s += "  " + p.name + "\n      " + p.help + "\n";
  for (const auto& spec : specs_) {
    std::string names;
    for (const auto& n : spec.names) names += (names.empty() ? "" : ", ") + n;
    if (!spec.value_name.empty()) names += " " + spec.value_name;
    s += "  " + names + "\n      " + spec.help + "\n";
  }
  return s;
}

}  // namespace bitnet::cli
