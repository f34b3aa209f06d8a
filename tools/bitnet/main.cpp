// `bitnet` — one binary with subcommands; invoked as llama-cli / llama-perplexity / … (symlinks)
// it behaves like the corresponding llama.cpp tool.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <csignal>
#include <cstring>
#include <string>
#include <string_view>

#include "args.h"
#include "base/untrusted_text.h"
#include "commands.h"
#include "errors.h"
#include "runtime/telemetry.h"

namespace bitnet::cli {
std::vector<Command>& command_registry() {
  static std::vector<Command> registry;
  return registry;
}
}  // namespace bitnet::cli

namespace {

using bitnet::cli::Command;

const std::vector<Command>& commands() {
  auto& r = bitnet::cli::command_registry();
  std::sort(r.begin(), r.end(), [](const Command& a, const Command& b) { return a.order < b.order; });
  return r;
}

void print_help() {
  std::fputs("usage: bitnet <command> [options]\n\ncommands:\n", stdout);
  for (const auto& c : commands()) std::printf("  %-14s %s\n", c.name, c.summary);
  std::fputs("\nRun 'bitnet <command> --help' for the options of a command.\n", stdout);
}

// Output that did not arrive is a failure, not a success: `bitnet run … > /dev/full`.
bool stdout_written() {
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return true;
  std::fprintf(stderr, "error: cannot write standard output: %s\n", std::strerror(errno ? errno : EIO));
  return false;
}

// An error message may quote bytes from a file, a header or a flag; whatever a call site did not
// escape is escaped here (line breaks of multi-line messages kept).
std::string terminal_safe(const char* message) { return bitnet::printable(message, 1 << 16, bitnet::kKeepNewlines | bitnet::kKeepBackslashes); }

}  // namespace

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) a write fails with EFBIG, which the writers report and
  // clean up after, instead of SIGXFSZ killing the process with a partial temporary file.
  std::signal(SIGXFSZ, SIG_IGN);
  const char* slash = std::strrchr(argv[0], '/');
  const std::string_view invoked = slash ? slash + 1 : argv[0];
  const bitnet::cli::Command* command = nullptr;
  for (const auto& c : commands())
    if (c.alias && invoked == c.alias) command = &c;
  if (!command && invoked.rfind("llama-", 0) == 0) {
    std::fprintf(stderr, "error: %.*s is not available in this build yet\n", int(invoked.size()),
                 invoked.data());
    return 1;
  }
  if (!command) {
    if (argc < 2 || std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0) {
      print_help();
      if (!stdout_written()) return 1;
      return argc < 2 ? 2 : 0;
    }
    for (const auto& c : commands())
      if (std::strcmp(argv[1], c.name) == 0) command = &c;
    if (!command) {
      std::fprintf(stderr, "error: unknown command %s (see bitnet --help)\n", bitnet::quote_untrusted(argv[1]).c_str());
      return 2;
    }
    --argc;
    ++argv;
  }
  try {
    const int code = command->run(argc, argv);
    if (!stdout_written()) return 1;
    if (bitnet::telemetry_write_failed()) {
      std::fprintf(stderr, "error: telemetry events were lost (see the warning above)\n");
      return code == 0 ? 1 : code;
    }
    return code;
  } catch (const bitnet::cli::UsageError& e) {
    std::fprintf(stderr, "error: %s\n", terminal_safe(e.what()).c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", terminal_safe(e.what()).c_str());
    return 1;
  }
}
