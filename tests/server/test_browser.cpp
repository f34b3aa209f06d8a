// The built-in web page in a real browser: headless Chromium loads it from the server, sends one
// chat message (the page's ?autotest hook) and the DOM it leaves shows the streamed reply.
#include <filesystem>

#include "server_process.h"

namespace bitnet::testing {
namespace {

std::string find_chromium() {
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (std::filesystem::exists(path)) return path;
  return "";
}

TEST(ServerBrowser, WebPageCompletesOneChatExchange) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (scripts/setup.sh --asan installs it): web page not tested";
  ServerProcess server({"-np", "2", "-c", "512", "--metrics"});
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) +
                          "/?autotest=Hello%20there&max_tokens=6&temperature=0";
  const std::string profile = (temp_dir() / "chromium-profile").string();
  const std::string base = (temp_dir() / "chromium").string();
  // --virtual-time-budget: the DOM is dumped once the page is idle (network included) or after
  // 20 s of virtual time, whichever is first.
  const pid_t pid = spawn({chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--user-data-dir=" + profile, "--virtual-time-budget=20000",
                           "--dump-dom", url},
                          base + ".out", base + ".err");
  ASSERT_EQ(wait_exit(pid, std::chrono::seconds(120)), 0) << slurp(base + ".err");
  const std::string dom = slurp(base + ".out");
  EXPECT_NE(dom.find("data-state=\"done\""), std::string::npos) << dom;
  EXPECT_NE(dom.find("Hello there"), std::string::npos) << "the user's message is shown";
  // The assistant's reply is the same text the API gives for this conversation.
  auto cli = server.client();
  const json r = post_json(cli, "/v1/chat/completions",
                           {{"messages", {{{"role", "user"}, {"content", "Hello there"}}}}, {"max_tokens", 6}, {"temperature", 0}});
  const std::string reply = r["choices"][0]["message"]["content"];
  ASSERT_FALSE(reply.empty());
  std::string escaped;  // as the DOM serializer writes text
  for (char c : reply) {
    if (c == '&') escaped += "&amp;";
    else if (c == '<') escaped += "&lt;";
    else if (c == '>') escaped += "&gt;";
    else escaped += c;
  }
  EXPECT_NE(dom.find(escaped), std::string::npos) << "reply '" << reply << "' not in the page:\n" << dom;
  EXPECT_GE(get_json(cli, "/slots").size(), 2u);
}

}  // namespace
}  // namespace bitnet::testing
