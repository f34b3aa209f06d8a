// `bitnet doctor`, `run --dry-run` and `run --telemetry-out` as a user runs them: real processes.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "process_runner.h"
#include "test_data.h"

namespace bitnet {
namespace {

using Result = testing::ProcessResult;

Result run(const std::vector<std::string>& args, const std::string& stdin_text = "") {
  return testing::run_process(args, stdin_text);
}

std::string bitnet() { return testing::bin_dir() + "/bitnet"; }

// The doctor's JSON report, and the one check named `name` in it.
nlohmann::json doctor(std::vector<std::string> extra, int expect_code) {
  std::vector<std::string> args = {bitnet(), "doctor", "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  const Result r = run(args);
  EXPECT_EQ(r.code, expect_code) << r.out << r.err;
  return nlohmann::json::parse(r.out);
}

nlohmann::json check(const nlohmann::json& report, const std::string& name) {
  for (const auto& c : report["checks"])
    if (c["name"] == name) return c;
  ADD_FAILURE() << "no check " << name;
  return {};
}

std::string tiny() { return testing::dummy_model("bitnet-b1.58", "tiny", GgmlType::I2_S); }

TEST(Doctor, HealthyModelIsReadyWithTheDocumentedSchema) {
  const auto d = doctor({"-m", tiny(), "-c", "256"}, 0);
  EXPECT_EQ(d["schema"], "bitnet.doctor");
  EXPECT_EQ(d["schema_version"], 1);
  EXPECT_TRUE(d["ready"]);
  for (const char* name : {"binaries", "cpu", "threads", "model", "memory", "gpu", "port"})
    EXPECT_NE(check(d, name)["status"], "fail") << name;
  EXPECT_EQ(d["model"]["architecture"], "bitnet-b1.58");
  EXPECT_EQ(d["memory"]["ctx"], 256);
  EXPECT_EQ(d["memory"]["kv_cache_bytes"], 2 * 2 * 256 * 128 * 2);  // tiny: 2 layers, kv_dim 128, f16
  EXPECT_TRUE(d["cpu"]["features"].contains("avx512_vnni"));
  EXPECT_TRUE(d["cpu"]["features"].contains("dotprod"));
  EXPECT_FALSE(d["cpu"]["kernel"].get<std::string>().empty());
}

// `-np` as `serve` takes it: the KV cache per slot (ctx / np positions, stored in whole 8-position
// key blocks, as the server's /slots reports it) and in total.
TEST(Doctor, ParallelSlotsStateTheKvCachePerSlotAndInTotal) {
  const auto d = doctor({"-m", tiny(), "-c", "300", "-np", "3"}, 0);
  const uint64_t per_slot = 2 * 2 * 104 * 128 * 2;  // tiny: 2 layers, kv_dim 128; 100 positions stored as 104
  EXPECT_EQ(d["memory"]["parallel"], 3);
  EXPECT_EQ(d["memory"]["n_ctx_slot"], 100);
  EXPECT_EQ(d["memory"]["kv_cache_bytes_per_slot"], per_slot);
  EXPECT_EQ(d["memory"]["kv_cache_bytes"], 3 * per_slot);
  const std::string detail = check(d, "memory")["detail"];
  EXPECT_NE(detail.find("KV cache 0.3 MiB at ctx 300 (3 slots of 100 tokens, 0.1 MiB each)"), std::string::npos)
      << detail;
  const auto one = doctor({"-m", tiny(), "-c", "300"}, 0);
  EXPECT_EQ(one["memory"]["parallel"], 1);
  EXPECT_EQ(one["memory"]["kv_cache_bytes_per_slot"], 2 * 2 * 304 * 128 * 2);
  EXPECT_EQ(one["memory"]["kv_cache_bytes"], one["memory"]["kv_cache_bytes_per_slot"]);
  const Result text = run({bitnet(), "doctor", "-m", tiny(), "-c", "256", "-np", "2"});
  EXPECT_NE(text.out.find("KV cache 0.2 MiB at ctx 256 (2 slots of 128 tokens, 0.1 MiB each)"), std::string::npos) << text.out;

  const auto tight = doctor({"-m", tiny(), "-c", "16", "-np", "4"}, 1);
  const auto c = check(tight, "memory");
  EXPECT_EQ(c["status"], "fail");
  EXPECT_NE(c["detail"].get<std::string>().find("leaves 4 tokens per slot"), std::string::npos) << c;
  EXPECT_EQ(c["hint"], "raise -c or lower -np");
  for (const char* bad : {"0", "257", "x"}) {
    const Result r = run({bitnet(), "doctor", "-m", tiny(), "-np", bad});
    EXPECT_EQ(r.code, 2) << bad;
    EXPECT_NE(r.err.find("-np"), std::string::npos) << r.err;
  }
}

// `-kvu` as `serve --kv-unified` takes it: the slots share one cache of -c positions, and a slot may
// use all of it; the memory needed is that one cache.
TEST(Doctor, KvUnifiedSlotsShareOneCache) {
  const auto d = doctor({"-m", tiny(), "-c", "300", "-np", "3", "-kvu"}, 0);
  const uint64_t pool = 2 * 2 * 304 * 128 * 2;  // tiny: 2 layers, kv_dim 128; 300 positions stored as 304
  EXPECT_EQ(d["memory"]["kv_unified"], true);
  EXPECT_EQ(d["memory"]["parallel"], 3);
  EXPECT_EQ(d["memory"]["n_ctx_slot"], 300);
  EXPECT_EQ(d["memory"]["kv_cache_bytes_per_slot"], pool);
  EXPECT_EQ(d["memory"]["kv_cache_bytes"], pool);
  const std::string detail = check(d, "memory")["detail"];
  EXPECT_NE(detail.find("KV cache 0.3 MiB at ctx 300 (unified: shared by 3 slots, each may use all of it)"),
            std::string::npos)
      << detail;
  EXPECT_EQ(doctor({"-m", tiny(), "-c", "300", "-np", "3"}, 0)["memory"]["kv_unified"], false);
  // 16 positions for 4 slots is too little for slot shares, not for one shared cache.
  EXPECT_EQ(check(doctor({"-m", tiny(), "-c", "16", "-np", "4", "-kvu"}, 0), "memory")["status"], "ok");
}

TEST(Doctor, MissingModelFileHasItsOwnHint) {
  const auto d = doctor({"-m", "/nonexistent/model.gguf"}, 1);
  EXPECT_FALSE(d["ready"]);
  const auto c = check(d, "model");
  EXPECT_EQ(c["status"], "fail");
  EXPECT_NE(c["detail"].get<std::string>().find("model file not found"), std::string::npos);
  EXPECT_NE(c["hint"].get<std::string>().find("check the -m path"), std::string::npos);
}

TEST(Doctor, CorruptModelFileHasItsOwnHint) {
  std::ifstream in(tiny(), std::ios::binary);
  std::string bytes(6000, '\0');
  in.read(bytes.data(), std::streamsize(bytes.size()));
  const auto path = testing::temp_dir() / "truncated.gguf";
  std::ofstream(path, std::ios::binary) << bytes;
  const auto c = check(doctor({"-m", path.string()}, 1), "model");
  EXPECT_EQ(c["status"], "fail");
  EXPECT_NE(c["detail"].get<std::string>().find("not a valid GGUF model"), std::string::npos) << c;
  EXPECT_NE(c["hint"].get<std::string>().find("damaged or truncated"), std::string::npos);
}

TEST(Doctor, TooLittleMemoryForTheContextHasItsOwnHint) {
  // A billion positions of KV cache need about a terabyte, far beyond any test machine.
  const auto d = doctor({"-m", tiny(), "-c", "1000000000"}, 1);
  const auto c = check(d, "memory");
  EXPECT_EQ(c["status"], "fail");
  EXPECT_GT(d["memory"]["required_bytes"].get<uint64_t>(), d["memory"]["available_bytes"].get<uint64_t>());
  const std::string hint = c["hint"];
  EXPECT_NE(hint.find("lower the context: -c "), std::string::npos) << hint;
  EXPECT_EQ(check(d, "model")["status"], "ok");
}

TEST(Doctor, MissingBinaryHasItsOwnHint) {
  const auto empty = testing::temp_dir() / "empty-bin";
  std::filesystem::create_directories(empty);
  const auto c = check(doctor({"-m", tiny(), "--bin-dir", empty.string()}, 1), "binaries");
  EXPECT_EQ(c["status"], "fail");
  EXPECT_NE(c["detail"].get<std::string>().find("not found: " + empty.string() + "/bitnet"), std::string::npos);
  EXPECT_NE(c["hint"].get<std::string>().find("setup_env.py"), std::string::npos);
}

TEST(Doctor, BusyRequestedPortFails) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string port = std::to_string(ntohs(addr.sin_port));
  const auto c = check(doctor({"-m", tiny(), "--port", port}, 1), "port");
  close(fd);
  EXPECT_EQ(c["status"], "fail");
  EXPECT_NE(c["hint"].get<std::string>().find("another --port"), std::string::npos);
}

TEST(Doctor, TextReportAndBadFlags) {
  const Result r = run({bitnet(), "doctor", "-m", "/nonexistent/model.gguf"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("[FAIL] model"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("hint: "), std::string::npos);
  EXPECT_NE(r.out.find("not ready"), std::string::npos);
  const Result bad = run({bitnet(), "doctor", "-t", "-4"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("-t must be"), std::string::npos);
}

TEST(DryRun, PrintsResolvedConfigAndExactArgumentsWithoutLoading) {
  const Result r = run({bitnet(), "run", "--dry-run", "--json", "-m", tiny(), "-p", "Hi", "-n", "3", "-t", "1", "--temp", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "") << "a dry run loads nothing, so it logs nothing";
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["resolved"]["ctx_size"], 512);  // tiny's training context, read from the header
  EXPECT_EQ(j["resolved"]["threads"], 1);
  const std::vector<std::string> argv = j["argv"];
  ASSERT_GE(argv.size(), 8u);
  EXPECT_EQ(std::vector<std::string>(argv.begin() + 1, argv.begin() + 12),
            (std::vector<std::string>{"run", "-m", tiny(), "-p", "Hi", "-n", "3", "-c", "512", "-t", "1"}));
  // The printed argument list runs, and gives what the original command line gives.
  std::vector<std::string> again = argv;
  again[0] = bitnet();
  const Result a = run(again);
  ASSERT_EQ(a.code, 0) << a.err;
  const Result b = run({bitnet(), "run", "-m", tiny(), "-p", "Hi", "-n", "3", "-t", "1", "--temp", "0"});
  EXPECT_EQ(a.out, b.out);
  const Result text = run({bitnet(), "run", "--dry-run", "-m", tiny(), "-p", "two words"});
  EXPECT_NE(text.out.find("would run:"), std::string::npos);
  EXPECT_NE(text.out.find("'two words'"), std::string::npos) << text.out;
  const Result bad = run({bitnet(), "run", "--dry-run", "-m", tiny(), "-p", "x", "-b", "0"});
  EXPECT_EQ(bad.code, 2) << "a dry run validates like a run";
}

TEST(Telemetry, RunStreamsEveryPhase) {
  const auto path = (testing::temp_dir() / "run-telemetry.jsonl").string();
  std::filesystem::remove(path);
  const Result r = run({bitnet(), "run", "-m", tiny(), "-p", "Hello", "-n", "4", "--temp", "0", "-t", "1",
                        "--telemetry-out", path});
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream in(path);
  std::vector<std::string> events;
  std::string run_id;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    events.push_back(j["event"]);
    if (run_id.empty()) run_id = j["run_id"];
    EXPECT_EQ(j["run_id"], run_id);
    if (j["event"] == "tokens_generated") {
      EXPECT_EQ(j["tokens"], 4);
      EXPECT_GT(j["tokens_per_s"].get<double>(), 0);
    }
  }
  EXPECT_EQ(events, (std::vector<std::string>{"run_started", "model_loaded", "prompt_processed", "tokens_generated",
                                              "run_totals", "run_finished"}));
  const Result fail = run({bitnet(), "run", "-m", tiny(), "-p", "x", "-c", "1000000000", "--telemetry-out", path});
  EXPECT_EQ(fail.code, 1);
  EXPECT_NE(fail.err.find("not enough memory for -c 1000000000"), std::string::npos) << fail.err;
  std::ifstream again(path);
  std::string last;
  for (std::string line; std::getline(again, line);) last = line;
  const auto j = nlohmann::json::parse(last);
  EXPECT_EQ(j["event"], "run_failed");
  EXPECT_NE(j["error"].get<std::string>().find("not enough memory"), std::string::npos);
}

}  // namespace
}  // namespace bitnet
