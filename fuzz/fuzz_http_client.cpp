// The project's HTTP client on what a hostile peer controls: the URL of --url / --otlp-endpoint
// (net::parse_http_url) and every byte of a response (net::ResponseParser), split into reads at
// places the input chooses, under a small size cap. Errors must be bounded and terminal-safe.
#include <cstdint>
#include <string>
#include <string_view>

#include "errors.h"
#include "fuzz_common.h"
#include "net/http_client.h"
#include "net/http_response.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t mode = data[0], split = data[1];
  const std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);
  if (mode & 1) {
    try {
      const bitnet::net::Url url = bitnet::net::parse_http_url(in, "--url");
      if (url.port < 1 || url.port > 65535 || url.host.empty() || url.host.size() > 253) __builtin_trap();
      (void)url.host_port();
    } catch (const bitnet::Error& e) {
      bitnet::fuzz::require_terminal_inert(e.what());
      if (std::string_view(e.what()).size() > 1000) __builtin_trap();  // the URL is quoted, bounded
    }
    return 0;
  }
  const size_t cap = size_t(64) << ((mode >> 1) & 7);  // 64 B … 8 KiB
  bitnet::net::ResponseParser parser(cap, (mode & 0x10) != 0);
  const size_t step = 1 + split % 17;
  for (size_t i = 0; i < in.size() && parser.state() == bitnet::net::ResponseParser::State::NeedMore; i += step)
    parser.feed(in.substr(i, step));
  if (parser.state() == bitnet::net::ResponseParser::State::NeedMore) parser.finish();
  if (parser.state() == bitnet::net::ResponseParser::State::NeedMore) __builtin_trap();  // finish always decides
  if (parser.state() == bitnet::net::ResponseParser::State::Done) {
    const bitnet::net::HttpResponse& r = parser.response();
    if (r.status < 200 || r.status > 599 || r.body.size() > cap) __builtin_trap();
  } else {
    bitnet::fuzz::require_terminal_inert(parser.error());
  }
  return 0;
}
