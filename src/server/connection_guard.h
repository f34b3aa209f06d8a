#pragma once
// The server's connection layer in front of cpp-httplib. The library (0.11) reads the request line
// and headers with a timeout per read only — a client sending a byte every few seconds holds a
// handler thread for as long as it likes — and grows the request-line buffer until a newline comes
// (300 MB without one grew the process by 340 MB). Its thread pool is fixed, so a handful of such
// clients made every other request wait, /health included.
//
// GuardedServer takes over each accepted connection (cpp-httplib's virtual process_and_close_socket):
// it reads the request head itself, bounded in size (request line → 414, head → 431) and in time
// (the whole head within head_timeout_s → 408), and bounds the time to receive the whole request
// (request_timeout_s); only then does the library parse and route the request, from a stream that
// replays the bytes already read. Every connection runs on its own thread (ConnectionThreads), up to
// max_connections being processed; past that, requests get 503 at once — except GET /health, which
// is always answered, so that probes and load balancers see the truth.
#include <httplib.h>

#include <atomic>
#include <cstddef>
#include <string>

namespace bitnet::server {

struct ConnectionLimits {
  size_t max_request_line = 8192;  // bytes of "METHOD TARGET VERSION"
  size_t max_head = 32768;         // request line + headers + the blank line
  double head_timeout_s = 10;      // to receive the whole head
  double request_timeout_s = 60;   // to receive the whole request, body included
  int max_connections = 256;       // processed at once; more get 503 (GET /health still answered)
};

// The outcome of reading a request head from a byte stream (pure, for tests and the fuzzer).
enum class HeadStatus { Incomplete, Complete, LineTooLong, HeadTooLarge };
// `bytes` holds what has arrived so far. Complete when the head's terminating blank line is in it
// (CRLF or bare LF line ends), within the limits.
HeadStatus check_request_head(std::string_view bytes, const ConnectionLimits& limits);

// The headers that decide how a request is framed or who sent it, checked on the raw bytes of a
// complete head before the HTTP library (which percent-decodes header values) sees them:
// Content-Length digits only and at most once, Transfer-Encoding exactly "chunked" and never with
// Content-Length, no '%' in Authorization / X-Api-Key, no obsolete line folding, header names
// without spaces. Returns "" when the head is fine, else why not (the client gets 400).
std::string check_framing_headers(std::string_view head);

// For a handler that waits on a long computation: true when the client of the request this thread
// is serving has closed its connection (always false outside GuardedServer's handler threads).
bool client_disconnected();

class GuardedServer : public httplib::Server {
 public:
  explicit GuardedServer(ConnectionLimits limits);
  int active_connections() const { return active_.load(); }
  const ConnectionLimits& limits() const { return limits_; }

 private:
  bool process_and_close_socket(socket_t sock) override;
  ConnectionLimits limits_;
  std::atomic<int> active_{0};
};

}  // namespace bitnet::server
