// The project's one HTTP client (net/http_client.h): URL validation, the strict response parser,
// and every bound against peers that misbehave (endless body, trickled reply, silence, cancel).
#include "net/http_client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "base/untrusted_text.h"
#include "raw_server.h"

namespace bitnet::net {
namespace {

using bitnet::testing::RawServer;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string error_of(const std::string& url) {
  try {
    parse_http_url(url, "--url");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(HttpUrl, ValidUrls) {
  Url u = parse_http_url("http://127.0.0.1:4318", "x");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 4318);
  EXPECT_EQ(u.path, "");
  u = parse_http_url("http://collector.example-1.internal/v1/logs", "x");
  EXPECT_EQ(u.host, "collector.example-1.internal");
  EXPECT_EQ(u.port, 80);
  EXPECT_EQ(u.path, "/v1/logs");
  u = parse_http_url("http://[::1]:8080", "x");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.host_port(), "[::1]:8080");
  EXPECT_EQ(parse_http_url("http://h:65535", "x").port, 65535);
}

TEST(HttpUrl, BadUrlsAreErrorsThatSayWhy) {
  EXPECT_NE(error_of("http://127.0.0.1:99999999999").find("port must be a number from 1 to 65535"), std::string::npos);
  EXPECT_NE(error_of("http://127.0.0.1:65536").find("port"), std::string::npos);
  EXPECT_NE(error_of("http://127.0.0.1:0").find("port"), std::string::npos);
  EXPECT_NE(error_of("http://127.0.0.1:-1").find("port"), std::string::npos);
  EXPECT_NE(error_of("http://127.0.0.1:").find("port is empty"), std::string::npos);
  EXPECT_NE(error_of("http://" + std::string(20000, 'a') + ":80").find("longer than"), std::string::npos);
  EXPECT_NE(error_of("http://" + std::string(254, 'a')).find("longer than 253"), std::string::npos);
  EXPECT_NE(error_of("http://" + std::string(64, 'a') + ".com").find("letters, digits"), std::string::npos);
  EXPECT_NE(error_of("https://127.0.0.1").find("https is not supported"), std::string::npos);
  EXPECT_NE(error_of("ftp://x").find("http://"), std::string::npos);
  EXPECT_NE(error_of("http://").find("host is empty"), std::string::npos);
  EXPECT_NE(error_of("http://user:pw@host").find("user names"), std::string::npos);
  EXPECT_NE(error_of("http://ho st").find("letters"), std::string::npos);
  EXPECT_NE(error_of("http://h\x1b[2J").find("\\x1b"), std::string::npos) << "quoted, not raw";
  EXPECT_EQ(error_of("http://h\x1b[2J").find('\x1b'), std::string::npos);
  EXPECT_NE(error_of("http://[::1").find("closing"), std::string::npos);
  EXPECT_NE(error_of("http://h/a b").find("path"), std::string::npos);
  EXPECT_EQ(error_of("http://h:80").rfind("--url must be http://HOST[:PORT]", 0), std::string::npos) << "valid";
  EXPECT_EQ(error_of("http://h:80x").rfind("--url must be http://HOST[:PORT]", 0), 0u);
}

// The parser gives the same result however the bytes are split.
HttpResponse parse_in_pieces(const std::string& bytes, size_t cap, std::mt19937& rng, std::string* error = nullptr) {
  ResponseParser p(cap);
  for (size_t i = 0; i < bytes.size() && p.state() == ResponseParser::State::NeedMore;) {
    const size_t n = std::min(bytes.size() - i, size_t(1 + rng() % 7));
    p.feed(std::string_view(bytes).substr(i, n));
    i += n;
  }
  if (p.state() == ResponseParser::State::NeedMore) p.finish();
  if (error) *error = p.error();
  return p.state() == ResponseParser::State::Done ? p.take() : HttpResponse{};
}

TEST(HttpResponse, FramingByLengthChunksAndClose) {
  std::mt19937 rng(5);
  for (int round = 0; round < 50; ++round) {
    HttpResponse r = parse_in_pieces("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhelloEXTRA", 1024, rng);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "hello");
    EXPECT_EQ(r.header("x-a"), "1, 2");
    r = parse_in_pieces("HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nT: x\r\n\r\n", 1024, rng);
    EXPECT_EQ(r.status, 202);
    EXPECT_EQ(r.body, "hello0123456789");
    r = parse_in_pieces("HTTP/1.0 200 OK\nServer: x\n\nuntil the end", 1024, rng);
    EXPECT_EQ(r.body, "until the end");
    r = parse_in_pieces("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 1024, rng);
    EXPECT_EQ(r.status, 204);
    EXPECT_EQ(r.body, "");
  }
}

TEST(HttpResponse, MalformedAndOversizedResponsesFail) {
  std::mt19937 rng(6);
  const std::pair<std::string, std::string> cases[] = {
      {"SSH-2.0-OpenSSH\r\n\r\n", "malformed status line"},
      {"HTTP/1.1 2000 OK\r\n\r\n", "malformed status line"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 2%38\r\n\r\n", "malformed Content-Length"},
      {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "malformed Content-Length"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "conflicting Content-Length"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunke%64\r\n\r\n", "unsupported Transfer-Encoding"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "both Transfer-Encoding"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "not followed by CRLF"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", "chunk size too large"},
      {"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", "malformed header line"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", "response larger than 1024 bytes"},
      {"HTTP/1.1 200 OK\r\n\r\n" + std::string(2000, 'x'), "response larger than 1024 bytes"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n300\r\n" + std::string(768, 'x') + "\r\n300\r\n", "response larger"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed before the response was complete"},
      {"", "closed without a response"},
  };
  for (const auto& [bytes, message] : cases) {
    std::string error;
    parse_in_pieces(bytes, 1024, rng, &error);
    EXPECT_NE(error.find(message), std::string::npos) << bitnet::printable(bytes) << " → " << error;
  }
  // A head that never ends is cut at 64 KiB even when the cap is larger.
  ResponseParser q(1 << 20);
  q.feed("HTTP/1.1 200 OK\r\n");
  for (int i = 0; i < 100 && q.state() == ResponseParser::State::NeedMore; ++i) q.feed("X-Long: " + std::string(1000, 'y') + "\r\n");
  EXPECT_EQ(q.state(), ResponseParser::State::Failed);
  EXPECT_NE(q.error().find("head larger than 65536"), std::string::npos) << q.error();
}

TEST(HttpClient, GetsAndPostsToAWellBehavedServer) {
  std::string seen;
  std::mutex m;
  RawServer server([&](int fd, const std::atomic<bool>&) {
    const std::string req = RawServer::read_request(fd);
    {
      std::lock_guard lock(m);
      seen = req;
    }
    RawServer::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
  });
  const HttpResponse r = http_request(parse_http_url(server.url(), "x"), "POST", "/v1/logs",
                                      {{"Content-Type", "application/json"}}, "{\"a\":1}", HttpLimits{});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{}");
  std::lock_guard lock(m);
  EXPECT_EQ(seen.rfind("POST /v1/logs HTTP/1.1\r\n", 0), 0u) << seen;
  EXPECT_NE(seen.find("Host: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"), std::string::npos);
  EXPECT_NE(seen.find("Content-Length: 7\r\n"), std::string::npos);
  EXPECT_NE(seen.find("\r\n\r\n{\"a\":1}"), std::string::npos);
}

TEST(HttpClient, AnEndlessBodyStopsAtTheCap) {
  RawServer server(bitnet::testing::endless_body);
  HttpLimits limits;
  limits.max_response_bytes = 256 * 1024;
  const auto start = Clock::now();
  try {
    http_request(parse_http_url(server.url(), "x"), "GET", "/metrics", {}, "", limits);
    FAIL() << "an endless body was accepted";
  } catch (const HttpError& e) {
    EXPECT_NE(std::string(e.what()).find("response larger than 262144 bytes"), std::string::npos) << e.what();
  }
  EXPECT_LT(seconds_since(start), 3.0);
}

TEST(HttpClient, ATrickledReplyEndsAtTheDeadline) {
  RawServer server([](int fd, const std::atomic<bool>& stopping) { bitnet::testing::trickle(fd, stopping); });
  HttpLimits limits;
  limits.deadline_s = 1.0;
  const auto start = Clock::now();
  try {
    http_request(parse_http_url(server.url(), "x"), "GET", "/", {}, "", limits);
    FAIL() << "a trickled reply completed";
  } catch (const HttpError& e) {
    EXPECT_NE(std::string(e.what()).find("no complete answer within 1 s"), std::string::npos) << e.what();
  }
  const double took = seconds_since(start);
  EXPECT_GE(took, 0.9);
  EXPECT_LT(took, 2.0);
}

TEST(HttpClient, SilenceEndsAtTheDeadlineAndCancelEndsAtOnce) {
  RawServer server([](int fd, const std::atomic<bool>& stopping) {
    RawServer::read_request(fd);
    while (!stopping) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    (void)fd;
  });
  HttpLimits limits;
  limits.deadline_s = 0.5;
  auto start = Clock::now();
  EXPECT_THROW(http_request(parse_http_url(server.url(), "x"), "GET", "/", {}, "", limits), HttpError);
  EXPECT_LT(seconds_since(start), 1.5);

  std::atomic<bool> cancel{false};
  limits.deadline_s = 60;
  limits.cancel = &cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  start = Clock::now();
  try {
    http_request(parse_http_url(server.url(), "x"), "GET", "/", {}, "", limits);
    ADD_FAILURE() << "not cancelled";
  } catch (const HttpError& e) {
    EXPECT_NE(std::string(e.what()).find("cancelled"), std::string::npos) << e.what();
  }
  canceller.join();
  EXPECT_LT(seconds_since(start), 1.5);
}

TEST(HttpClient, APeerThatIsNotSpeakingHttpIsRefusedAtItsFirstLine) {
  RawServer server([](int fd, const std::atomic<bool>& stopping) {
    RawServer::read_request(fd);
    RawServer::send_all(fd, "\x1b]0;garbage\x07 no status line\r\n");
    while (!stopping) std::this_thread::sleep_for(std::chrono::milliseconds(10));  // and no blank line, ever
  });
  HttpLimits limits;
  limits.deadline_s = 5;
  const auto start = Clock::now();
  try {
    http_request(parse_http_url(server.url(), "x"), "GET", "/", {}, "", limits);
    FAIL() << "garbage accepted";
  } catch (const HttpError& e) {
    EXPECT_NE(std::string(e.what()).find("malformed status line"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\x1b'), std::string::npos);
  }
  EXPECT_LT(seconds_since(start), 1.0);
}

TEST(HttpClient, ConnectionRefusedAndBadHeadersAreErrors) {
  int dead_port = 0;
  {
    RawServer gone([](int, const std::atomic<bool>&) {});
    dead_port = gone.port();
  }
  try {
    http_request(parse_http_url("http://127.0.0.1:" + std::to_string(dead_port), "x"), "GET", "/", {}, "", HttpLimits{});
    ADD_FAILURE() << "connected to a closed port";
  } catch (const HttpError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot connect"), std::string::npos) << e.what();
  }
  EXPECT_THROW(http_request(parse_http_url("http://127.0.0.1:1", "x"), "GET", "/", {{"X", "a\r\nInjected: 1"}}, "",
                            HttpLimits{}),
               HttpError);
}

}  // namespace
}  // namespace bitnet::net
