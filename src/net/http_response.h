#pragma once
// An HTTP/1.1 response read incrementally and strictly (pure: no I/O, so the fuzzer drives it):
// status line, headers, then a body framed by Content-Length, chunked transfer coding or the end of
// the connection. Sizes are capped; anything malformed is an error, never a guess.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace bitnet::net {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case; a repeated header's values joined by ", "
  std::string body;
  std::string header(const std::string& lower_case_name) const;  // "" when absent
};

class ResponseParser {
 public:
  enum class State { NeedMore, Done, Failed };
  // max_bytes: head and (decoded) body together; head_only_request: a HEAD request (no body).
  explicit ResponseParser(size_t max_bytes, bool head_only_request = false);
  // Takes the next bytes; returns the state after them. Bytes after a complete response are
  // ignored (the client sends Connection: close).
  State feed(std::string_view bytes);
  // The peer closed the connection: completes a body framed by the connection's end.
  State finish();
  State state() const { return state_; }
  const std::string& error() const { return error_; }  // set when Failed
  const HttpResponse& response() const { return response_; }
  HttpResponse take() { return std::move(response_); }

 private:
  enum class Phase { Head, FixedBody, ChunkSize, ChunkData, ChunkDataEnd, Trailers, UntilClose, End };
  State fail(std::string message);
  State parse_head(std::string_view head);
  bool next_line(std::string& line);  // one CRLF/LF-terminated line from pending_, if complete
  State step();
  size_t max_bytes_;
  bool head_only_;
  State state_ = State::NeedMore;
  Phase phase_ = Phase::Head;
  std::string pending_;  // bytes not yet consumed
  size_t received_ = 0;  // all bytes fed, for the cap
  uint64_t remaining_ = 0;  // of the fixed body or the current chunk
  size_t trailer_bytes_ = 0;
  std::string error_;
  HttpResponse response_;
};

}  // namespace bitnet::net
