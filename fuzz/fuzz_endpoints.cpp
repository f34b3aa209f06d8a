// The server's endpoint handlers past validation, in process against a tiny generated model (the
// `tiny` shapes with a 512-piece SentencePiece vocabulary: ~0.6M parameters, so a request that
// generates a whole 64-token slot costs little more than one that is refused): the fuzz input becomes one HTTP
// request — a JSON body for an endpoint the first byte picks, or (odd first byte) raw request bytes
// that pass the connection layer's header checks — and goes through the same routing, auth and
// handlers as `bitnet serve`, streamed responses included. A 500 (an exception the handlers did not
// expect) is a finding; 4xx and 503 are the expected answers to bad requests.
#include <httplib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "conversion/dummy_model.h"
#include "fuzz_common.h"
#include "model/model.h"
#include "server/connection_guard.h"
#include "server/engine.h"
#include "server/http_api.h"
#include "server/metrics.h"

namespace {

// A connection that delivers the request bytes and keeps (a bounded amount of) the response.
class MemoryStream : public httplib::Stream {
 public:
  explicit MemoryStream(std::string_view in) : in_(in) {}
  bool is_readable() const override { return pos_ < in_.size(); }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, in_.size() - pos_);
    std::copy_n(in_.data() + pos_, n, ptr);
    pos_ += n;
    return ssize_t(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (out.size() < (1u << 20)) out.append(ptr, std::min(size, (size_t(1) << 20) - out.size()));
    return ssize_t(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 40000;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 8080;
  }
  socket_t socket() const override { return -1; }
  std::string out;

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

class InProcessServer : public httplib::Server {
 public:
  std::string handle(std::string_view request) {
    MemoryStream stream(request);
    bool closed = false;
    process_request(stream, /*close_connection=*/true, closed, nullptr);
    return std::move(stream.out);
  }
};

struct World {
  bitnet::server::Metrics metrics;
  std::unique_ptr<bitnet::Model> model;
  std::unique_ptr<bitnet::server::Api> api;
  std::unique_ptr<bitnet::server::Engine> engine;
  InProcessServer server;
  World() {
    bitnet::DummyModelSpec spec;
    spec.arch = "bitnet";
    spec.preset = "tiny";
    spec.vocab_size = 512;
    spec.vocab_dir = bitnet::fuzz::data_dir();
    const std::string path = bitnet::fuzz::scratch_path(".gguf");
    bitnet::generate_dummy_model(spec, path);
    model = bitnet::load_model(path);
    std::remove(path.c_str());  // the mapping keeps the data
    bitnet::server::ApiConfig c;
    c.metrics = true;
    c.n_predict = 4;
    c.random_seed = false;
    c.max_body = 1 << 16;
    api = std::make_unique<bitnet::server::Api>(c, metrics);
    bitnet::server::EngineConfig e;
    e.n_slots = 2;
    e.n_ctx_slot = 64;
    e.n_batch = 32;
    e.queue_limit = 4;
    engine = std::make_unique<bitnet::server::Engine>(*model, e, metrics);
    server.set_payload_max_length(c.max_body);
    server.set_keep_alive_max_count(1);
    api->install(server);
    api->set_ready(*model, *engine);
  }
};

const char* const kPaths[] = {"/completion", "/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize",
                              "/apply-template", "/v1/models", "/props", "/slots", "/health", "/metrics",
                              "/infill", "/v1/embeddings", "/slots/0?action=erase"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World();  // lives for the process: the engine thread keeps running
  if (size < 1) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string request;
  if (data[0] & 1) {
    if (bitnet::server::check_request_head(rest, bitnet::server::ConnectionLimits{}) !=
            bitnet::server::HeadStatus::Complete ||
        !bitnet::server::check_framing_headers(rest).empty())
      return 0;  // the connection layer answers these itself
    request.assign(rest);
  } else {
    const char* path = kPaths[(data[0] >> 1) % (sizeof(kPaths) / sizeof(kPaths[0]))];
    const bool get = (data[0] >> 5) & 1;
    request = std::string(get ? "GET " : "POST ") + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    if (!get) request += "Content-Length: " + std::to_string(rest.size()) + "\r\n";
    request += "\r\n";
    if (!get) request.append(rest);
  }
  const std::string response = world->server.handle(request);
  if (response.rfind("HTTP/1.1 500", 0) == 0) {
    std::fprintf(stderr, "500 for:\n%s\n→ %s\n", request.c_str(), response.substr(0, 400).c_str());
    __builtin_trap();
  }
  return 0;
}
