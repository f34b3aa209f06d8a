// The server's request parsing without a model: the request-head limits of the connection layer
// (server/connection_guard.h) on arbitrary bytes, and the JSON body layer every endpoint uses —
// parse_object and the strict typed field readers (api_error.h) over the fields the endpoints read.
// An ApiError (the 4xx the client gets) is the expected outcome for bad input.
#include <cstdint>
#include <string>
#include <string_view>

#include "server/api_error.h"
#include "server/connection_guard.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  bitnet::server::ConnectionLimits limits;
  limits.max_request_line = 64;
  limits.max_head = 256;
  (void)bitnet::server::check_request_head(in, limits);
  (void)bitnet::server::check_request_head(in, bitnet::server::ConnectionLimits{});
  (void)bitnet::server::check_framing_headers(in);
  using namespace bitnet::server;
  try {
    const nlohmann::json body = parse_object(std::string(in));
    (void)get_int(body, "n_predict", -1, 1 << 20);
    (void)get_int(body, "max_tokens", 0, 1 << 20);
    (void)get_int(body, "id_slot", -1, 255);
    (void)get_number(body, "temperature", 0, 100);
    (void)get_number(body, "top_p", 0, 1);
    (void)get_bool(body, "stream");
    (void)get_string(body, "content");
    (void)get_stop(body);
    if (body.contains("tokens")) (void)get_tokens(body["tokens"], "tokens", 32000);
    if (body.contains("prompt") && body["prompt"].is_array()) (void)get_tokens(body["prompt"], "prompt", 32000);
    (void)dump(body);
  } catch (const ApiError&) {
  }
  return 0;
}
