#include "server/connection_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "server/api_error.h"

namespace bitnet::server {

namespace {

using Clock = std::chrono::steady_clock;

int millis_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return int(std::clamp<int64_t>(left, 0, 1 << 30));
}

Clock::time_point after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// poll() for one event, retried on EINTR: > 0 ready, 0 timed out, < 0 error.
int wait_for(int sock, short events, int timeout_ms) {
  pollfd p{sock, events, 0};
  for (;;) {
    const int r = ::poll(&p, 1, timeout_ms);
    if (r >= 0 || errno != EINTR) return r;
  }
}

void address_of(int sock, bool peer, std::string& ip, int& port) {
  sockaddr_storage a{};
  socklen_t len = sizeof(a);
  if ((peer ? getpeername(sock, reinterpret_cast<sockaddr*>(&a), &len) : getsockname(sock, reinterpret_cast<sockaddr*>(&a), &len)) != 0)
    return;
  char text[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
    port = ntohs(v4->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    port = ntohs(v6->sin6_port);
  }
  ip = text;
}

// The library's view of a connection: first the bytes the guard already read (the head and
// perhaps some body), then the socket, with every read ending at the request's deadline.
class ReplayStream : public httplib::Stream {
 public:
  ReplayStream(int sock, std::string head, Clock::time_point read_deadline, int read_timeout_ms, int write_timeout_ms)
      : sock_(sock), buffered_(std::move(head)), deadline_(read_deadline), read_ms_(read_timeout_ms),
        write_ms_(write_timeout_ms) {}

  bool is_readable() const override {
    return offset_ < buffered_.size() || wait_for(sock_, POLLIN, std::min(read_ms_, millis_until(deadline_))) > 0;
  }
  bool is_writable() const override {
    if (wait_for(sock_, POLLOUT, write_ms_) <= 0) return false;
    // Alive unless the peer has closed: readable with nothing to read.
    if (wait_for(sock_, POLLIN, 0) <= 0) return true;
    char c;
    return ::recv(sock_, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
  }
  ssize_t read(char* ptr, size_t size) override {
    if (offset_ < buffered_.size()) {
      const size_t n = std::min(size, buffered_.size() - offset_);
      std::copy_n(buffered_.data() + offset_, n, ptr);
      offset_ += n;
      return ssize_t(n);
    }
    if (wait_for(sock_, POLLIN, std::min(read_ms_, millis_until(deadline_))) <= 0) return -1;
    for (;;) {
      const ssize_t n = ::recv(sock_, ptr, size, 0);
      if (n >= 0 || errno != EINTR) return n;
    }
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (wait_for(sock_, POLLOUT, write_ms_) <= 0) return -1;
    for (;;) {
      const ssize_t n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
      if (n >= 0 || errno != EINTR) return n;
    }
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address_of(sock_, true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address_of(sock_, false, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  int sock_;
  std::string buffered_;
  size_t offset_ = 0;
  Clock::time_point deadline_;
  int read_ms_, write_ms_;
};

const char* reason(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    default: return "Service Unavailable";
  }
}

// Answers a request the library never sees, then closes: the write side first, then what the
// client is still sending is drained for a moment, so that the reply is not lost to a reset.
void reply_and_close(int sock, int status, const std::string& type, const std::string& message) {
  const std::string body = dump(error_body(status, type, message));
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) +
                    "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n";
  if (status == 503) out += "Retry-After: 1\r\n";
  out += "\r\n" + body;
  size_t sent = 0;
  while (sent < out.size() && wait_for(sock, POLLOUT, 2000) > 0) {
    const ssize_t n = ::send(sock, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += size_t(n);
  }
  ::shutdown(sock, SHUT_WR);
  const auto until = after(0.2);
  char sink[4096];
  size_t drained = 0;
  while (drained < (size_t(1) << 20) && wait_for(sock, POLLIN, millis_until(until)) > 0) {
    const ssize_t n = ::recv(sock, sink, sizeof(sink), 0);
    if (n <= 0) break;
    drained += size_t(n);
  }
  ::close(sock);
}

bool is_health_probe(std::string_view head) {
  for (std::string_view m : {"GET /health", "HEAD /health"})
    if (head.substr(0, m.size()) == m && head.size() > m.size() && (head[m.size()] == ' ' || head[m.size()] == '?'))
      return true;
  return false;
}

// One thread per connection, so that a slow client never holds up another; beyond `limit`
// threads, connections wait for one to finish (GuardedServer answers most of those with 503
// long before the limit: it is max_connections plus room for the 503s and /health).
class ConnectionThreads : public httplib::TaskQueue {
 public:
  explicit ConnectionThreads(int limit) : limit_(limit) {}
  void enqueue(std::function<void()> fn) override {
    std::lock_guard lock(mutex_);
    if (running_ >= limit_) {
      waiting_.push_back(std::move(fn));
      return;
    }
    ++running_;
    std::thread([this, fn = std::move(fn)]() mutable { run(std::move(fn)); }).detach();
  }
  void shutdown() override {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return running_ == 0; });
  }

 private:
  void run(std::function<void()> fn) {
    for (;;) {
      fn();
      std::lock_guard lock(mutex_);
      if (waiting_.empty()) {
        --running_;
        done_.notify_all();
        return;
      }
      fn = std::move(waiting_.front());
      waiting_.pop_front();
    }
  }
  const int limit_;
  std::mutex mutex_;
  std::condition_variable done_;
  std::deque<std::function<void()>> waiting_;
  int running_ = 0;
};

// Extra threads past max_connections: the over-limit connections that are answered 503 (or
// /health) after reading their head for at most kOverLimitHeadSeconds.
constexpr int kOverLimitThreads = 64;
constexpr double kOverLimitHeadSeconds = 2;

}  // namespace

std::string check_framing_headers(std::string_view head) {
  const auto lower = [](std::string_view v) {
    std::string out(v);
    for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  const auto trim = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
  };
  int content_lengths = 0, transfer_encodings = 0;
  size_t pos = head.find('\n');
  while (pos != std::string_view::npos && pos + 1 < head.size()) {
    const size_t start = pos + 1;
    size_t end = head.find('\n', start);
    if (end == std::string_view::npos) end = head.size();
    std::string_view line = head.substr(start, end - start);
    pos = end;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // the blank line ends the head
    if (line.front() == ' ' || line.front() == '\t') return "obsolete header line folding is not accepted";
    const size_t colon = line.find(':');
    const std::string_view raw_name = line.substr(0, colon);
    if (colon == std::string_view::npos || colon == 0 ||
        raw_name.find_first_of(" \t") != std::string_view::npos)
      return "malformed header line (a header is NAME: VALUE, the name without spaces)";
    const std::string name = lower(raw_name);
    const std::string_view value = trim(line.substr(colon + 1));
    if (name == "content-length") {
      ++content_lengths;
      if (value.empty() || value.size() > 18 ||
          value.find_first_not_of("0123456789") != std::string_view::npos)
        return "Content-Length must be a decimal number";
    } else if (name == "transfer-encoding") {
      ++transfer_encodings;
      if (lower(value) != "chunked") return "Transfer-Encoding must be exactly 'chunked'";
    } else if ((name == "authorization" || name == "x-api-key") && value.find('%') != std::string_view::npos) {
      return "the " + std::string(name == "authorization" ? "Authorization" : "X-Api-Key") +
             " header may not contain '%'";
    }
  }
  if (content_lengths > 1) return "more than one Content-Length header";
  if (transfer_encodings > 1) return "more than one Transfer-Encoding header";
  if (content_lengths && transfer_encodings) return "both Content-Length and Transfer-Encoding";
  return "";
}

namespace {
thread_local int current_client = -1;  // the socket whose request this thread is processing
}  // namespace

bool client_disconnected() {
  if (current_client < 0) return false;
  if (wait_for(current_client, POLLIN, 0) <= 0) return false;
  char c;
  const ssize_t n = ::recv(current_client, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

HeadStatus check_request_head(std::string_view bytes, const ConnectionLimits& limits) {
  const size_t first = bytes.find('\n');
  const size_t line = first == std::string_view::npos ? bytes.size() : first;
  if (line - (line > 0 && first != std::string_view::npos && bytes[line - 1] == '\r' ? 1 : 0) > limits.max_request_line)
    return HeadStatus::LineTooLong;
  size_t pos = first == std::string_view::npos ? bytes.size() : first + 1;
  while (pos < bytes.size()) {
    const size_t nl = bytes.find('\n', pos);
    if (nl == std::string_view::npos) break;
    if (nl == pos || (nl == pos + 1 && bytes[pos] == '\r'))  // the blank line
      return nl + 1 <= limits.max_head ? HeadStatus::Complete : HeadStatus::HeadTooLarge;
    pos = nl + 1;
  }
  return bytes.size() > limits.max_head ? HeadStatus::HeadTooLarge : HeadStatus::Incomplete;
}

GuardedServer::GuardedServer(ConnectionLimits limits) : limits_(limits) {
  const int threads = limits_.max_connections + kOverLimitThreads;
  new_task_queue = [threads] { return new ConnectionThreads(threads); };
}

bool GuardedServer::process_and_close_socket(socket_t sock) {
  struct Count {
    std::atomic<int>& n;
    int now;
    explicit Count(std::atomic<int>& c) : n(c), now(++c) {}
    ~Count() { --n; }
  } count(active_);
  const bool over_limit = count.now > limits_.max_connections;
  const auto head_deadline = after(over_limit ? std::min(kOverLimitHeadSeconds, limits_.head_timeout_s) : limits_.head_timeout_s);
  const auto request_deadline = after(limits_.request_timeout_s);

  std::string head;
  HeadStatus status = HeadStatus::Incomplete;
  char chunk[4096];
  while (status == HeadStatus::Incomplete) {
    const int ready = wait_for(sock, POLLIN, millis_until(head_deadline));
    if (ready == 0) {
      char seconds[32];
      std::snprintf(seconds, sizeof(seconds), "%g", limits_.head_timeout_s);
      if (head.empty()) {  // an idle connection: nothing to answer
        ::close(sock);
        return false;
      }
      reply_and_close(sock, 408, "invalid_request_error",
                      std::string("the request head did not arrive within ") + seconds + " s");
      return false;
    }
    const ssize_t n = ready > 0 ? ::recv(sock, chunk, sizeof(chunk), 0) : -1;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // the client went away (or the socket failed)
      ::close(sock);
      return false;
    }
    head.append(chunk, size_t(n));
    status = check_request_head(head, limits_);
  }
  if (status == HeadStatus::LineTooLong) {
    reply_and_close(sock, 414, "invalid_request_error",
                    "request line longer than " + std::to_string(limits_.max_request_line) + " bytes");
    return false;
  }
  if (status == HeadStatus::HeadTooLarge) {
    reply_and_close(sock, 431, "invalid_request_error",
                    "request head (request line and headers) larger than " + std::to_string(limits_.max_head) + " bytes");
    return false;
  }
  if (const std::string bad = check_framing_headers(head); !bad.empty()) {
    reply_and_close(sock, 400, "invalid_request_error", bad);
    return false;
  }
  if (over_limit && !is_health_probe(head)) {
    reply_and_close(sock, 503, "unavailable_error",
                    "too many open connections (" + std::to_string(limits_.max_connections) +
                        " being served, --max-connections); try again later");
    return false;
  }
  ReplayStream stream(sock, std::move(head), request_deadline,
                      int(read_timeout_sec_ * 1000 + read_timeout_usec_ / 1000),
                      int(write_timeout_sec_ * 1000 + write_timeout_usec_ / 1000));
  bool closed = false;
  current_client = sock;
  const bool ok = process_request(stream, /*close_connection=*/true, closed, nullptr);
  current_client = -1;
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

}  // namespace bitnet::server
