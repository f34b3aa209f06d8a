// The connection layer (server/connection_guard.h): bounded request heads (414 / 431 / 408),
// slow clients that cannot hold up anyone else, and the connection cap with /health still answered
// (issue 16, defects 3 and 4).
#include "server/connection_guard.h"

#include "process_runner.h"
#include "server_process.h"

namespace bitnet::testing {
namespace {

using server::check_request_head;
using server::ConnectionLimits;
using server::HeadStatus;

TEST(RequestHead, LimitsAndCompletion) {
  ConnectionLimits l;
  l.max_request_line = 16;
  l.max_head = 64;
  EXPECT_EQ(check_request_head("", l), HeadStatus::Incomplete);
  EXPECT_EQ(check_request_head("GET / HTTP/1.1\r\n", l), HeadStatus::Incomplete);
  EXPECT_EQ(check_request_head("GET / HTTP/1.1\r\nHost: a\r\n\r\n", l), HeadStatus::Complete);
  EXPECT_EQ(check_request_head("GET / HTTP/1.1\nHost: a\n\nbody", l), HeadStatus::Complete);
  EXPECT_EQ(check_request_head("GET / HTTP/1.1\r\n\r\n", l), HeadStatus::Complete);
  // 16 bytes of request line pass (the CR does not count), 17 do not — with or without a newline yet.
  EXPECT_EQ(check_request_head("GET /abcd HTTP/1\r\n\r\n", l), HeadStatus::Complete);
  EXPECT_EQ(check_request_head("GET /abcde HTTP/1\r\n\r\n", l), HeadStatus::LineTooLong);
  EXPECT_EQ(check_request_head(std::string(17, 'G'), l), HeadStatus::LineTooLong);
  EXPECT_EQ(check_request_head(std::string(16, 'G'), l), HeadStatus::Incomplete);
  const std::string line = "GET / HTTP/1.1\r\n", header = "X-Pad: 0123456789\r\n";  // 16 + 19 bytes
  EXPECT_EQ(check_request_head(line + header + header, l), HeadStatus::Incomplete);       // 54
  EXPECT_EQ(check_request_head(line + header + header + "\r\n", l), HeadStatus::Complete);  // 56
  EXPECT_EQ(check_request_head(line + header + header + header, l), HeadStatus::HeadTooLarge);  // 73, no end yet
  EXPECT_EQ(check_request_head(line + header + header + header + "\r\n", l), HeadStatus::HeadTooLarge);
}

// Status code and error type of a raw HTTP reply.
void expect_reply(const std::string& reply, int status, const std::string& type, const std::string& what) {
  ASSERT_FALSE(reply.empty()) << what << ": no reply";
  EXPECT_EQ(reply.substr(0, 12), "HTTP/1.1 " + std::to_string(status)) << what << ": " << reply.substr(0, 200);
  const size_t body = reply.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos) << what;
  const json j = json::parse(reply.substr(body + 4), nullptr, false);
  ASSERT_TRUE(j.is_object()) << what << ": " << reply;
  EXPECT_EQ(j["error"]["code"], status) << what;
  EXPECT_EQ(j["error"]["type"], type) << what;
}

// A connected socket that has sent `bytes` and stays open (a slow client) until destroyed.
struct OpenConnection {
  int fd = -1;
  OpenConnection(int port, const std::string& bytes) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ADD_FAILURE() << "connect";
    if (!bytes.empty()) ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  }
  ~OpenConnection() { ::close(fd); }
};

TEST(ServerConnections, OversizedRequestLineAndHeadAreRefused) {
  ServerProcess server({});
  // No newline ever: the server stops reading at the limit instead of buffering the whole line.
  expect_reply(raw_exchange(server.port(), "GET /" + std::string(1 << 20, 'a')), 414, "invalid_request_error",
               "1 MB request line");
  expect_reply(raw_exchange(server.port(), "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n"), 414,
               "invalid_request_error", "9000-byte target");
  std::string head = "GET /health HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 40; ++i) head += "X-Pad-" + std::to_string(i) + ": " + std::string(1000, 'p') + "\r\n";
  expect_reply(raw_exchange(server.port(), head + "\r\n"), 431, "invalid_request_error", "40 KB of headers");
  expect_reply(raw_exchange(server.port(), head), 431, "invalid_request_error", "40 KB of headers, unterminated");
  // Within the limits everything still works.
  auto cli = server.client();
  auto r = cli.Get("/health", {{"X-Pad", std::string(4000, 'p')}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(ServerConnections, SlowHeadGets408) {
  ServerProcess server({"--header-timeout", "1"});
  const auto start = Clock::now();
  const std::string reply = raw_exchange(server.port(), "POST /completion HTTP/1.1\r\nHost: x\r\n", std::chrono::seconds(10));
  const double took = std::chrono::duration<double>(Clock::now() - start).count();
  expect_reply(reply, 408, "invalid_request_error", "head never finished");
  EXPECT_GE(took, 0.9);
  EXPECT_LT(took, 5.0);
}

TEST(ServerConnections, SlowClientsDoNotHoldUpOthers) {
  // Before: 25 clients sending their heads slowly made every request wait (a fixed pool of
  // np + queue-limit + 8 handler threads). Now each connection has its own thread.
  ServerProcess server({"-np", "1", "--queue-limit", "0"});
  std::vector<std::unique_ptr<OpenConnection>> slow;
  for (int i = 0; i < 40; ++i) slow.push_back(std::make_unique<OpenConnection>(server.port(), "POST /completion HTTP/1.1\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto cli = server.client();
  cli.set_read_timeout(3, 0);
  const auto start = Clock::now();
  auto h = cli.Get("/health");
  ASSERT_TRUE(h) << "no /health reply with 40 slow clients";
  EXPECT_EQ(h->status, 200);
  auto t = cli.Post("/tokenize", R"({"content": "hello"})", "application/json");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->status, 200);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 2.0);
}

TEST(ServerConnections, ConnectionCapAnswers503ButHealthStillWorks) {
  ServerProcess server({"--max-connections", "4"});
  std::vector<std::unique_ptr<OpenConnection>> held;
  for (int i = 0; i < 4; ++i) held.push_back(std::make_unique<OpenConnection>(server.port(), "POST /tokenize HTTP/1.1\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::string busy = raw_exchange(server.port(), "POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                                       "Content-Length: 17\r\n\r\n{\"content\": \"a\"}");
  expect_reply(busy, 503, "unavailable_error", "past --max-connections");
  EXPECT_NE(busy.find("Retry-After"), std::string::npos);
  EXPECT_NE(busy.find("too many open connections"), std::string::npos);
  const std::string health = raw_exchange(server.port(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(health.substr(0, 12), "HTTP/1.1 200") << health;
  held.clear();  // the held connections close: requests are served again
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto cli = server.client();
  auto r = cli.Post("/tokenize", R"({"content": "hello"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(ServerConnections, BadLimitFlagsAreRefused) {
  for (const std::vector<std::string>& bad : {std::vector<std::string>{"--max-connections", "0"},
                                              std::vector<std::string>{"--header-timeout", "0"}}) {
    const ProcessResult r = run_process({bitnet_bin(), "serve", "-m", tiny_model(), "--port", "0", bad[0], bad[1]});
    EXPECT_EQ(r.code, 2) << bad[0];
    EXPECT_NE(r.err.find(bad[0]), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace bitnet::testing
