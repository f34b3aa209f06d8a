// Faults from outside (issue 16 item 3): the model file changing under a running server.
#include <unistd.h>

#include <filesystem>

#include "process_runner.h"
#include "server_process.h"

namespace bitnet::testing {
namespace {

TEST(ServerFaults, ModelFileTruncatedWhileServingIsAClearErrorNotASigbus) {
  // A `llama` model has its own output matrix, so the token embedding stays on the file mapping
  // (only the streamed matrices are copied): a truncated file used to kill the server with SIGBUS
  // at the next request.
  const std::string copy = (temp_dir() / ("truncated-" + std::to_string(getpid()) + ".gguf")).string();
  const ProcessResult gen = run_process({bitnet_bin(), "gen-model", "--arch", "llama", "--preset", "tiny", "-o", copy});
  ASSERT_EQ(gen.code, 0) << gen.err;
  ServerProcess server({"-m", copy, "-c", "256"});
  auto cli = server.client();
  EXPECT_EQ(post_json(cli, "/completion", {{"prompt", "Hello"}, {"n_predict", 2}})["tokens_predicted"], 2);
  ASSERT_EQ(::truncate(copy.c_str(), 4096), 0);
  cli.set_read_timeout(20, 0);
  auto r = cli.Post("/completion", json{{"prompt", "Another prompt with other words"}, {"n_predict", 2}}.dump(),
                    "application/json");
  EXPECT_FALSE(r && r->status == 200) << "the model's bytes are gone: no successful answer";
  const int rc = wait_exit(server.pid(), std::chrono::seconds(20));
  EXPECT_EQ(rc, 1) << "exit status 1, not death by SIGBUS (128 + 7): " << server.log();
  EXPECT_NE(server.log().find("changed while in use"), std::string::npos) << server.log();
  std::filesystem::remove(copy);
}

}  // namespace
}  // namespace bitnet::testing
