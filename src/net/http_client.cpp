#include "net/http_client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "base/untrusted_text.h"

namespace bitnet::net {

namespace {

using Clock = std::chrono::steady_clock;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool valid_dns_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i < host.size(); ++i) {
    const char c = host[i];
    if (c == '.') {
      if (label == 0 || host[i - 1] == '-') return false;
      label = 0;
    } else if (is_alnum(c) || (c == '-' && label > 0)) {
      if (++label > 63) return false;
    } else {
      return false;
    }
  }
  return label > 0 || host.back() == '.';
}

bool valid_ipv6(std::string_view host) {
  if (host.size() < 2 || host.size() > 45) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
  });
}

// An open socket, closed on scope exit.
struct Socket {
  int fd = -1;
  ~Socket() {
    if (fd >= 0) ::close(fd);
  }
};

// The parts of one exchange that every step checks: the deadline and the cancel flag.
struct Exchange {
  Clock::time_point deadline;
  const HttpLimits& limits;
  std::string where;  // "http://host:port" for messages
  double seconds;

  void check() const {
    if (limits.cancel && limits.cancel->load()) throw HttpError(where + ": cancelled");
    if (Clock::now() >= deadline) throw HttpError(where + ": no complete answer within " + format_seconds() + " s");
  }
  std::string format_seconds() const {
    std::string s = std::to_string(seconds);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  // Waits for `events` on fd in short slices (so a cancel is seen within ~50 ms). Throws on the
  // deadline, a cancel or a poll error.
  void wait(int fd, short events) const {
    for (;;) {
      check();
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd p{fd, events, 0};
      const int r = ::poll(&p, 1, int(std::clamp<int64_t>(left, 1, 50)));
      if (r > 0) return;
      if (r < 0 && errno != EINTR) throw HttpError(where + ": poll failed: " + std::strerror(errno));
    }
  }
};

// getaddrinfo has no timeout of its own (a dead DNS server can hold it for many seconds): it runs on
// a thread of its own, and the exchange stops waiting for it at its deadline.
struct Lookup {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  int error = 0;
  addrinfo* result = nullptr;
  ~Lookup() {
    if (result) freeaddrinfo(result);
  }
};

std::shared_ptr<Lookup> resolve(const Url& url, const Exchange& ex) {
  auto lookup = std::make_shared<Lookup>();
  std::thread([lookup, host = url.host, port = std::to_string(url.port)] {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* result = nullptr;
    const int error = getaddrinfo(host.c_str(), port.c_str(), &hints, &result);
    std::lock_guard lock(lookup->mutex);
    lookup->error = error;
    lookup->result = result;
    lookup->done = true;
    lookup->done_cv.notify_all();
  }).detach();
  std::unique_lock lock(lookup->mutex);
  while (!lookup->done) {
    ex.check();
    lookup->done_cv.wait_for(lock, std::chrono::milliseconds(50));
  }
  if (lookup->error != 0)
    throw HttpError(ex.where + ": cannot resolve " + quote_untrusted(url.host) + ": " + gai_strerror(lookup->error));
  return lookup;
}

int connect_any(const Url& url, const Exchange& ex) {
  const std::shared_ptr<Lookup> lookup = resolve(url, ex);
  std::string last_error = "no address";
  for (const addrinfo* a = lookup->result; a; a = a->ai_next) {
    Socket s;
    s.fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (s.fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    if (::connect(s.fd, a->ai_addr, a->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last_error = std::strerror(errno);
        continue;
      }
      ex.wait(s.fd, POLLOUT);
      int error = 0;
      socklen_t len = sizeof(error);
      if (getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) {
        last_error = std::strerror(error ? error : errno);
        continue;
      }
    }
    const int fd = s.fd;
    s.fd = -1;
    return fd;
  }
  throw HttpError(ex.where + ": cannot connect: " + last_error);
}

void check_header_text(std::string_view s) {
  if (s.find_first_of("\r\n") != std::string_view::npos || s.find('\0') != std::string_view::npos)
    throw HttpError("an HTTP header may not contain CR, LF or NUL");
}

}  // namespace

std::string Url::host_port() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Url parse_http_url(std::string_view text, const std::string& what) {
  const auto bad = [&](const std::string& why) {
    return Error(what + " must be http://HOST[:PORT]: " + why + " (got " + quote_untrusted(text, 100) + ")");
  };
  if (text.size() > 4096) throw bad("it is longer than 4096 characters");
  if (text.substr(0, 8) == "https://") throw bad("https is not supported by this build");
  if (text.substr(0, 7) != "http://") throw bad("it does not start with http://");
  std::string_view rest = text.substr(7);
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  const std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) throw bad("user names and passwords are not supported");
  Url url;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) throw bad("the IPv6 address has no closing ']'");
    url.host = std::string(authority.substr(1, close - 1));
    if (!valid_ipv6(url.host)) throw bad("not an IPv6 address");
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') throw bad("unexpected text after the IPv6 address");
    if (!after.empty()) port_text = after.substr(1);
    if (!after.empty() && port_text.empty()) throw bad("the port is empty");
  } else {
    const size_t colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) throw bad("the port is empty");
    }
    if (url.host.empty()) throw bad("the host is empty");
    if (url.host.size() > 253) throw bad("the host is longer than 253 characters");
    if (!valid_dns_name(url.host)) throw bad("the host may only hold letters, digits, '-' and '.'");
  }
  if (!port_text.empty()) {
    if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(), is_digit))
      throw bad("the port must be a number from 1 to 65535");
    url.port = std::stoi(std::string(port_text));
    if (url.port < 1 || url.port > 65535) throw bad("the port must be a number from 1 to 65535");
  }
  if (path.size() > 2048) throw bad("the path is longer than 2048 characters");
  for (char c : path)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
      throw bad("the path may only hold printable ASCII without spaces");
  url.path = std::string(path);
  return url;
}

HttpResponse http_request(const Url& url, std::string_view method, std::string_view path,
                          const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body,
                          const HttpLimits& limits) {
  const Exchange ex{Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limits.deadline_s)),
                    limits, "http://" + url.host_port(), limits.deadline_s};
  check_header_text(method);
  check_header_text(path);
  std::string request = std::string(method) + " " + std::string(path.empty() ? "/" : path) + " HTTP/1.1\r\nHost: " +
                        url.host_port() + "\r\nConnection: close\r\nUser-Agent: bitnet\r\n";
  for (const auto& [name, value] : headers) {
    check_header_text(name);
    check_header_text(value);
    request += name + ": " + value + "\r\n";
  }
  if (!body.empty() || method == "POST" || method == "PUT") request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  request += "\r\n";
  request += body;

  ex.check();
  Socket s;
  s.fd = connect_any(url, ex);
  for (size_t sent = 0; sent < request.size();) {
    ex.wait(s.fd, POLLOUT);
    const ssize_t n = ::send(s.fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      throw HttpError(ex.where + ": send failed: " + std::strerror(errno));
    }
    sent += size_t(n);
  }
  ResponseParser parser(limits.max_response_bytes, method == "HEAD");
  char buffer[16384];
  while (parser.state() == ResponseParser::State::NeedMore) {
    ex.wait(s.fd, POLLIN);
    const ssize_t n = ::recv(s.fd, buffer, sizeof(buffer), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      throw HttpError(ex.where + ": receive failed: " + std::strerror(errno));
    }
    if (n == 0) parser.finish();
    else parser.feed(std::string_view(buffer, size_t(n)));
  }
  if (parser.state() == ResponseParser::State::Failed) throw HttpError(ex.where + ": " + parser.error());
  return parser.take();
}

}  // namespace bitnet::net
