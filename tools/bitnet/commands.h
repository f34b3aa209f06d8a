#pragma once
// Subcommands of the `bitnet` binary. Each command file registers itself with a static
// CommandRegistration, so adding a command touches no shared file. A command returns the process
// exit code; library errors propagate as exceptions and main() turns them into one-line messages.
#include <vector>

namespace bitnet::cli {

struct Command {
  const char* name;     // `bitnet NAME`
  const char* alias;    // llama.cpp tool name (argv[0] of a symlink), or nullptr
  int (*run)(int argc, char** argv);
  const char* summary;  // one line for `bitnet --help`
  int order;            // position in the help listing
};

std::vector<Command>& command_registry();

struct CommandRegistration {
  explicit CommandRegistration(Command c) { command_registry().push_back(c); }
};

}  // namespace bitnet::cli
