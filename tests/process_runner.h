#pragma once
// Runs a binary the way a user does (argument list, no shell), capturing exit code, stdout and
// stderr. Used by the command-line tests.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_data.h"

namespace bitnet::testing {

struct ProcessResult {
  int code;
  std::string out, err;
};

// `stdout_to`: a file for stdout instead of the captured one (e.g. /dev/full); out is then empty.
// `env`: NAME=VALUE entries added to the child's environment.
inline ProcessResult run_process(const std::vector<std::string>& args, const std::string& stdin_text = "",
                                 const std::string& stdout_to = "", const std::vector<std::string>& env = {}) {
  static std::atomic<int> counter = 0;
  const std::string base = (temp_dir() / ("proc-" + std::to_string(counter++))).string();
  const std::string out_path = stdout_to.empty() ? base + ".out" : stdout_to, err_path = base + ".err",
                    in_path = base + ".in";
  std::ofstream(in_path) << stdin_text;
  const pid_t pid = fork();
  if (pid == 0) {
    if (!freopen(in_path.c_str(), "r", stdin) || !freopen(out_path.c_str(), "w", stdout) ||
        !freopen(err_path.c_str(), "w", stderr))
      _exit(126);
    for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), stdout_to.empty() ? slurp(out_path) : "",
          slurp(err_path)};
}

}  // namespace bitnet::testing
