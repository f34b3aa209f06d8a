#pragma once
// Subcommands of the `bitnet` binary. Each returns the process exit code; library errors
// propagate as exceptions and are turned into one-line messages by main().
namespace bitnet::cli {

int cmd_run(int argc, char** argv);
int cmd_gen_model(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_perplexity(int argc, char** argv);

}  // namespace bitnet::cli
