#pragma once
// A TCP server on 127.0.0.1 that hands every accepted connection to a function of the test's
// (a thread each): the hostile or broken peers of the reliability tests — endless bodies, replies
// trickled a byte at a time, malformed heads — are written byte for byte.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace bitnet::testing {

class RawServer {
 public:
  // handler(fd, stopping): write what the peer should see; return to close the connection.
  using Handler = std::function<void(int fd, const std::atomic<bool>& stopping)>;

  explicit RawServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(listen_fd_, 64) != 0) std::abort();
    socklen_t len = sizeof(a);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~RawServer() {
    stopping_ = true;
    acceptor_.join();
    ::close(listen_fd_);
    std::lock_guard lock(mutex_);
    for (auto& t : connections_) t.join();
  }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_; }

  // Reads the request head (up to the blank line) and, when it has a Content-Length, the body.
  static std::string read_request(int fd) {
    std::string in;
    char buf[4096];
    size_t need = std::string::npos;
    while (need == std::string::npos || in.size() < need) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 2000) <= 0) break;
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      in.append(buf, size_t(n));
      const size_t end = in.find("\r\n\r\n");
      if (need == std::string::npos && end != std::string::npos) {
        size_t length = 0;
        const size_t cl = in.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) length = std::strtoull(in.c_str() + cl + 16, nullptr, 10);
        need = end + 4 + length;
      }
    }
    return in;
  }
  // Writes all of `bytes`; false when the peer is gone.
  static bool send_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(size_t(n));
    }
    return true;
  }

 private:
  void accept_loop() {
    while (!stopping_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++accepted_;
      std::lock_guard lock(mutex_);
      connections_.emplace_back([this, fd] {
        handler_(fd, stopping_);
        ::close(fd);
      });
    }
  }
  Handler handler_;
  int listen_fd_ = -1, port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::mutex mutex_;
  std::vector<std::thread> connections_;
  std::thread acceptor_;
};

// Hostile peers shared by the tests: each reads the request, then misbehaves until `stopping`.
inline void endless_body(int fd, const std::atomic<bool>& stopping) {
  RawServer::read_request(fd);
  if (!RawServer::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")) return;
  const std::string block(64 * 1024, 'x');
  while (!stopping && RawServer::send_all(fd, block)) {
  }
}

inline void trickle(int fd, const std::atomic<bool>& stopping, std::string_view reply = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n") {
  RawServer::read_request(fd);
  for (size_t i = 0; !stopping; ++i) {
    if (!RawServer::send_all(fd, reply.substr(i % reply.size(), 1))) return;
    for (int k = 0; k < 10 && !stopping; ++k) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace bitnet::testing
