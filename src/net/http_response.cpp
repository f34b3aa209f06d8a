#include "net/http_response.h"

#include <algorithm>
#include <vector>

#include "base/untrusted_text.h"

namespace bitnet::net {

namespace {

constexpr size_t kMaxHead = 64 * 1024;
constexpr size_t kMaxLine = 1024;  // a chunk-size line
constexpr size_t kMaxTrailers = 8 * 1024;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return out;
}

bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string HttpResponse::header(const std::string& lower_case_name) const {
  const auto it = headers.find(lower_case_name);
  return it == headers.end() ? "" : it->second;
}

ResponseParser::ResponseParser(size_t max_bytes, bool head_only_request)
    : max_bytes_(max_bytes), head_only_(head_only_request) {}

ResponseParser::State ResponseParser::fail(std::string message) {
  state_ = State::Failed;
  error_ = std::move(message);
  pending_.clear();
  return state_;
}

bool ResponseParser::next_line(std::string& line) {
  const size_t nl = pending_.find('\n');
  if (nl == std::string::npos) return false;
  line.assign(pending_, 0, nl);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  pending_.erase(0, nl + 1);
  return true;
}

ResponseParser::State ResponseParser::parse_head(std::string_view head) {
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos <= head.size();) {
    size_t nl = head.find('\n', pos);
    if (nl == std::string_view::npos) nl = head.size();
    std::string_view line = head.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    pos = nl + 1;
  }
  const std::string_view status_line = lines[0];
  // "HTTP/1.x SSS[ reason]"
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || status_line[7] < '0' ||
      status_line[7] > '9' || status_line[8] != ' ' ||
      !std::all_of(status_line.begin() + 9, status_line.begin() + 12, [](char c) { return c >= '0' && c <= '9'; }) ||
      (status_line.size() > 12 && status_line[12] != ' '))
    return fail("malformed status line " + quote_untrusted(status_line, 60));
  response_.status = (status_line[9] - '0') * 100 + (status_line[10] - '0') * 10 + (status_line[11] - '0');
  if (response_.status < 100 || response_.status > 599)
    return fail("status " + std::to_string(response_.status) + " out of range");
  response_.headers.clear();
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    if (line.empty()) continue;  // the terminating blank line
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0 ||
        !std::all_of(line.begin(), line.begin() + long(colon), is_token_char))
      return fail("malformed header line " + quote_untrusted(line, 60));
    const std::string name = lower(line.substr(0, colon));
    const std::string value(trim(line.substr(colon + 1)));
    auto [it, fresh] = response_.headers.emplace(name, value);
    if (fresh) continue;
    if (name == "content-length" && it->second != value) return fail("conflicting Content-Length headers");
    if (name != "content-length") it->second += ", " + value;
  }
  if (response_.status < 200) {
    if (response_.status == 101) return fail("unexpected 101 Switching Protocols");
    return state_;  // an interim response: the real one follows
  }
  const auto te = response_.headers.find("transfer-encoding");
  const auto cl = response_.headers.find("content-length");
  if (head_only_ || response_.status == 204 || response_.status == 304) {
    phase_ = Phase::End;
  } else if (te != response_.headers.end()) {
    if (cl != response_.headers.end()) return fail("both Transfer-Encoding and Content-Length");
    if (lower(te->second) != "chunked") return fail("unsupported Transfer-Encoding " + quote_untrusted(te->second, 40));
    phase_ = Phase::ChunkSize;
  } else if (cl != response_.headers.end()) {
    const std::string& v = cl->second;
    if (v.empty() || v.size() > 18 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return fail("malformed Content-Length " + quote_untrusted(v, 40));
    remaining_ = std::stoull(v);
    if (remaining_ > max_bytes_) return fail("response larger than " + std::to_string(max_bytes_) + " bytes");
    phase_ = remaining_ == 0 ? Phase::End : Phase::FixedBody;
  } else {
    phase_ = Phase::UntilClose;
  }
  return state_;
}

ResponseParser::State ResponseParser::step() {
  std::string line;
  for (;;) {
    switch (phase_) {
      case Phase::Head: {
        size_t end = std::string::npos, skip = 0;
        const size_t lf_lf = pending_.find("\n\n"), lf_crlf = pending_.find("\n\r\n");
        if (lf_lf != std::string::npos && (lf_crlf == std::string::npos || lf_lf < lf_crlf)) {
          end = lf_lf + 1;
          skip = 1;
        } else if (lf_crlf != std::string::npos) {
          end = lf_crlf + 1;
          skip = 2;
        }
        if (end == std::string::npos || end > kMaxHead) {
          if (pending_.size() > kMaxHead || end != std::string::npos)
            return fail("response head larger than " + std::to_string(kMaxHead) + " bytes");
          // A peer that is not speaking HTTP is refused at its first line, not at the deadline.
          if (const size_t nl = pending_.find('\n'); nl != std::string::npos) {
            std::string_view first(pending_.data(), nl);
            if (!first.empty() && first.back() == '\r') first.remove_suffix(1);
            if (first.size() < 12 || first.substr(0, 7) != "HTTP/1.")
              return fail("malformed status line " + quote_untrusted(first, 60));
          } else if (pending_.size() >= 7 && pending_.compare(0, 7, "HTTP/1.") != 0) {
            return fail("malformed status line " + quote_untrusted(pending_, 60));
          }
          return state_;
        }
        const std::string head = pending_.substr(0, end);
        pending_.erase(0, end + skip);
        if (parse_head(head) == State::Failed) return state_;
        break;  // the body's phase (or Head again after an interim response)
      }
      case Phase::FixedBody:
      case Phase::ChunkData: {
        const size_t n = size_t(std::min<uint64_t>(remaining_, pending_.size()));
        response_.body.append(pending_, 0, n);
        pending_.erase(0, n);
        remaining_ -= n;
        if (remaining_ > 0) return state_;
        phase_ = phase_ == Phase::FixedBody ? Phase::End : Phase::ChunkDataEnd;
        break;
      }
      case Phase::ChunkSize: {
        if (!next_line(line)) {
          if (pending_.size() > kMaxLine) return fail("chunk size line too long");
          return state_;
        }
        size_t digits = 0;
        uint64_t size = 0;
        for (; digits < line.size(); ++digits) {
          const char c = line[digits];
          const int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
          if (v < 0) break;
          if (digits == 15) return fail("chunk size too large");
          size = size * 16 + uint64_t(v);
        }
        const std::string_view rest = trim(std::string_view(line).substr(digits));
        if (digits == 0 || (!rest.empty() && rest.front() != ';')) return fail("malformed chunk size " + quote_untrusted(line, 40));
        if (size > max_bytes_ - std::min(max_bytes_, response_.body.size()))
          return fail("response larger than " + std::to_string(max_bytes_) + " bytes");
        remaining_ = size;
        phase_ = size == 0 ? Phase::Trailers : Phase::ChunkData;
        break;
      }
      case Phase::ChunkDataEnd:
        if (!next_line(line)) {
          if (pending_.size() >= 2) return fail("chunk data not followed by CRLF");
          return state_;
        }
        if (!line.empty()) return fail("chunk data not followed by CRLF");
        phase_ = Phase::ChunkSize;
        break;
      case Phase::Trailers:
        if (!next_line(line)) {
          if (trailer_bytes_ + pending_.size() > kMaxTrailers) return fail("trailers too large");
          return state_;
        }
        trailer_bytes_ += line.size() + 1;
        if (trailer_bytes_ > kMaxTrailers) return fail("trailers too large");
        if (line.empty()) phase_ = Phase::End;
        break;
      case Phase::UntilClose:
        response_.body += pending_;
        pending_.clear();
        return state_;
      case Phase::End:
        pending_.clear();
        return state_ = State::Done;
    }
  }
}

ResponseParser::State ResponseParser::feed(std::string_view bytes) {
  if (state_ != State::NeedMore) return state_;
  pending_.append(bytes);
  step();
  if (state_ == State::NeedMore && response_.body.size() + pending_.size() > max_bytes_)
    return fail("response larger than " + std::to_string(max_bytes_) + " bytes");
  return state_;
}

ResponseParser::State ResponseParser::finish() {
  if (state_ != State::NeedMore) return state_;
  if (phase_ == Phase::UntilClose) {
    response_.body += pending_;
    pending_.clear();
    return state_ = State::Done;
  }
  return fail(phase_ == Phase::Head && pending_.empty() ? "the connection closed without a response"
                                                         : "the connection closed before the response was complete");
}

}  // namespace bitnet::net
