#pragma once
// The one HTTP client of the project (OTLP export, `bitnet top`, anything else that fetches):
// plain HTTP/1.1 over POSIX sockets, one request per connection, and bounded in every way a
// hostile or broken peer could exploit — the URL is validated before anything is resolved, the
// whole exchange (name lookup, connect, send, the complete response) has one deadline, the
// response has a size cap, and a cancel flag ends it at once (shutdown). A peer that trickles
// bytes, sends an endless body or never answers costs at most the deadline and the cap.
#include <atomic>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "errors.h"
#include "net/http_response.h"

namespace bitnet::net {

struct Url {
  std::string host;  // a DNS name, an IPv4 address or an IPv6 address (without brackets)
  int port = 80;
  std::string path;  // "" when the URL has none
  std::string host_port() const;  // for messages and the Host header ("[::1]:8080")
};

// Parses http://HOST[:PORT][/PATH]: HOST a DNS name (letters, digits, '-' and '.', at most 253
// characters, labels of at most 63), an IPv4 address or a bracketed IPv6 address; PORT 1–65535;
// PATH printable ASCII without spaces, at most 2048 bytes. `what` names the URL in the message of
// the Error thrown for anything else (e.g. "--url").
Url parse_http_url(std::string_view text, const std::string& what);

struct HttpLimits {
  double deadline_s = 5;                    // the whole exchange
  size_t max_response_bytes = 1 << 20;      // head and body together
  const std::atomic<bool>* cancel = nullptr;  // when it becomes true the exchange ends (HttpError)
};

// Every failure of an exchange: the message says what happened ("timed out after 5 s", "response
// larger than 1048576 bytes", "connection refused", …).
struct HttpError : Error {
  using Error::Error;
};

// One request. `headers` must not contain CR or LF; the client adds Host, Connection: close and
// Content-Length (when there is a body). Throws HttpError.
HttpResponse http_request(const Url& url, std::string_view method, std::string_view path,
                          const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body,
                          const HttpLimits& limits);

}  // namespace bitnet::net
