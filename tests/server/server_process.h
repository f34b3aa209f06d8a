#pragma once
// Test helpers: the real `bitnet serve` binary started with fork/exec on a free loopback port
// (--port 0; the port is read from its start-up line), a real HTTP client (cpp-httplib), an SSE
// reader, and `bitnet run` for reference output.
#include <gtest/gtest.h>
#include <httplib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_data.h"

namespace bitnet::testing {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::string tiny_model() { return dummy_model("bitnet-b1.58", "tiny", GgmlType::I2_S); }
inline std::string bitnet_bin() { return bin_dir() + "/bitnet"; }

// fork + execv with an argument list (no shell); stdout/stderr go to files. `env` entries are
// NAME=VALUE pairs added to the child's environment.
inline pid_t spawn(const std::vector<std::string>& args, const std::string& out_path, const std::string& err_path,
                   const std::vector<std::string>& env = {}) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (!freopen(out_path.c_str(), "w", stdout) || !freopen(err_path.c_str(), "w", stderr)) _exit(126);
    for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Exit code of `pid`, waiting at most `limit` (then SIGKILL and -1).
inline int wait_exit(pid_t pid, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  int status = 0;
  while (Clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

// Stdout of `bitnet run` with the given arguments (the reference the server must match).
inline std::string run_cli(const std::vector<std::string>& args) {
  static int n = 0;
  const std::string base = (temp_dir() / ("run-" + std::to_string(getpid()) + "-" + std::to_string(n++))).string();
  std::vector<std::string> full = {bitnet_bin(), "run"};
  full.insert(full.end(), args.begin(), args.end());
  const pid_t pid = spawn(full, base + ".out", base + ".err");
  EXPECT_EQ(wait_exit(pid, std::chrono::seconds(120)), 0) << slurp(base + ".err");
  return slurp(base + ".out");
}

class ServerProcess {
 public:
  // Starts `bitnet serve -m tiny --port 0 -t 1 ARGS…` (or the `llama-server` alias);
  // `wait_ready` waits for /health to say 200.
  explicit ServerProcess(std::vector<std::string> args, std::vector<std::string> env = {}, bool wait_ready = true,
                         bool llama_alias = false)
      : env_(std::move(env)) {
    static int n = 0;
    base_ = (temp_dir() / ("server-" + std::to_string(getpid()) + "-" + std::to_string(n++))).string();
    std::vector<std::string> full = {bitnet_bin(), "serve", "-m", tiny_model(), "--port", "0", "-t", "1"};
    if (llama_alias) {
      full[0] = bin_dir() + "/llama-server";
      full.erase(full.begin() + 1);
    }
    full.insert(full.end(), args.begin(), args.end());
    pid_ = spawn(full, base_ + ".out", base_ + ".err", env_);
    const std::regex listening("server listening on http://127\\.0\\.0\\.1:([0-9]+)");
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    std::smatch m;
    std::string err;
    while (Clock::now() < deadline) {
      err = slurp(base_ + ".err");
      if (std::regex_search(err, m, listening)) break;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "server exited at start-up: " << err;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (m.empty()) {
      ADD_FAILURE() << "server did not start listening: " << err;
      return;
    }
    port_ = std::stoi(m[1].str());
    if (wait_ready) this->wait_ready();
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  void wait_ready() {
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < deadline) {
      auto cli = client();
      if (auto r = cli.Get("/health"); r && r->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "server never became ready: " << log();
  }

  // SIGTERM, then the exit code (bounded wait).
  int terminate(std::chrono::seconds limit = std::chrono::seconds(60)) {
    kill(pid_, SIGTERM);
    const int rc = wait_exit(pid_, limit);
    pid_ = -1;
    return rc;
  }

  httplib::Client client(const std::string& key = "") const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120, 0);
    if (!key.empty()) c.set_bearer_token_auth(key.c_str());
    return c;
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const { return slurp(base_ + ".err"); }

 private:
  std::vector<std::string> env_;  // putenv keeps pointers into these strings
  std::string base_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Sends `bytes` on a fresh loopback connection and returns everything the server writes until it
// closes the connection (or `limit` passes): for requests no HTTP client library would send.
inline std::string raw_exchange(int port, const std::string& bytes, std::chrono::seconds limit = std::chrono::seconds(20)) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ADD_FAILURE() << "cannot connect to port " << port;
    if (fd >= 0) ::close(fd);
    return "";
  }
  for (size_t sent = 0; sent < bytes.size();) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early (that is what some tests check)
    sent += size_t(n);
  }
  std::string out;
  const auto deadline = Clock::now() + limit;
  char buf[4096];
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  ::close(fd);
  return out;
}

inline json post_json(httplib::Client& cli, const std::string& path, const json& body, int* status = nullptr) {
  auto r = cli.Post(path.c_str(), body.dump(), "application/json");
  if (!r) {
    ADD_FAILURE() << "POST " << path << " failed: " << httplib::to_string(r.error());
    return json();
  }
  if (status) *status = r->status;
  return json::parse(r->body, nullptr, false);
}

// The value of an unlabelled sample on /metrics; -1 if absent or the request failed.
inline double metric(httplib::Client& cli, const std::string& name) {
  auto r = cli.Get("/metrics");
  if (!r || r->status != 200) return -1;
  const std::regex re("\n" + name + " ([0-9.e+-]+)\n");
  std::smatch m;
  return std::regex_search(r->body, m, re) ? std::stod(m[1].str()) : -1;
}

// Waits (bounded) until `pred` holds; returns whether it did.
inline bool eventually(const std::function<bool()>& pred, std::chrono::seconds limit = std::chrono::seconds(60)) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

inline json get_json(httplib::Client& cli, const std::string& path) {
  auto r = cli.Get(path.c_str());
  if (!r) {
    ADD_FAILURE() << "GET " << path << " failed";
    return json();
  }
  return json::parse(r->body, nullptr, false);
}

struct StreamResult {
  int status = 0;
  std::vector<std::string> data;  // payloads of the `data:` lines, in order
  std::string body;               // raw body
  bool completed = false;         // the connection ended normally (not cancelled by us)
};

// POSTs `body` and reads the response as Server-Sent Events. `on_data` may return false to drop
// the connection (a client that goes away).
inline StreamResult stream_post(int port, const std::string& path, const json& body,
                                const std::function<bool(const std::string&)>& on_data = nullptr,
                                const httplib::Headers& headers = {}) {
  StreamResult out;
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(120, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.headers = headers;
  req.headers.emplace("Content-Type", "application/json");
  req.body = body.dump();
  std::string pending;
  bool keep = true;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    out.body.append(data, n);
    pending.append(data, n);
    for (size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
      const std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0) continue;  // comments (keep-alive)
      out.data.push_back(event.substr(6));
      if (on_data && !on_data(out.data.back())) keep = false;
    }
    return keep;
  };
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  out.completed = cli.send(req, res, error);
  out.status = res.status;
  return out;
}

}  // namespace bitnet::testing
