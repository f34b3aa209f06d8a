// Reliability round 3 on the command line: bytes from a model file never reach the terminal raw
// (N7), line-by-line input is bounded (N8), help into a full disk is a failure (N16), and a chat
// whose context fills ends with a non-zero exit.
#include <gtest/gtest.h>

#include <fstream>

#include "gguf_edit.h"
#include "process_runner.h"
#include "test_data.h"

namespace bitnet {
namespace {

using testing::ProcessResult;
using testing::run_process;

std::string bitnet() { return testing::bin_dir() + "/bitnet"; }
std::string tiny() { return testing::dummy_model("bitnet-b1.58", "tiny", GgmlType::I2_S); }

std::string with_string_value(const std::string& key, const std::string& value, const std::string& name) {
  const std::vector<uint8_t> bytes = testing::edited_gguf(tiny(), [&](auto& kvs, auto&) {
    for (auto& kv : kvs)
      if (kv.key == key) kv.value = GgufValue{GgufValueType::STRING, value};
  });
  const std::string path = (testing::temp_dir() / name).string();
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  return path;
}

void expect_no_raw_controls(const std::string& text) {
  for (char c : {'\x1b', '\x07', '\x08', '\r', '\x9b'}) EXPECT_EQ(text.find(c), std::string::npos) << "raw byte " << int(c) << " in: " << text;
}

TEST(HostileInput, MetadataQuotedInErrorsIsEscaped) {
  const std::string evil = "x\x1b]0;owned\x07\r\b\x9b" "2J";
  const std::pair<const char*, const char*> fields[] = {{"general.architecture", "unsupported architecture"},
                                                        {"tokenizer.ggml.model", "unsupported tokenizer model"},
                                                        {"tokenizer.ggml.pre", "unsupported pre-tokenizer"}};
  int n = 0;
  for (const auto& [key, message] : fields) {
    const std::string path = with_string_value(key, evil, "evil-" + std::to_string(n++) + ".gguf");
    const ProcessResult r = run_process({bitnet(), "run", "-m", path, "-p", "x", "-n", "1"});
    EXPECT_EQ(r.code, 1) << key << ": " << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << key << ": " << r.err;
    EXPECT_NE(r.err.find("\\x1b]0;owned\\x07"), std::string::npos) << key << ": " << r.err;
    expect_no_raw_controls(r.err);
    const ProcessResult doctor = run_process({bitnet(), "doctor", "-m", path});
    expect_no_raw_controls(doctor.out + doctor.err);
  }
}

TEST(HostileInput, InspectEscapesALoneCsiByteInNamesAndValues) {
  GgufWriter w;
  w.add_string("evil\x9b" "2J.key", "value\x9b" "31m");
  w.add_tensor_bytes("t\x9b" "0m", GgmlType::F32, {4}, std::vector<uint8_t>(16, 1));
  const std::string path = (testing::temp_dir() / "csi.gguf").string();
  w.write(path);
  const ProcessResult r = run_process({bitnet(), "inspect", path});
  ASSERT_EQ(r.code, 0) << r.err;
  expect_no_raw_controls(r.out);
  EXPECT_NE(r.out.find("evil\\x9b2J.key"), std::string::npos) << r.out;
}

TEST(HostileInput, ChatInputWithoutNewlinesIsBounded) {
  const ProcessResult r = run_process({bitnet(), "run", "-m", tiny(), "-cnv", "-n", "1", "--temp", "0"},
                                      std::string(3 << 20, '\0'));
  EXPECT_EQ(r.code, 1) << r.err.substr(0, 300);
  EXPECT_NE(r.err.find("a chat line is longer than 1048576 bytes"), std::string::npos) << r.err.substr(0, 300);
}

TEST(HostileInput, AChatWhoseContextFillsExitsNonZero) {
  std::string turns;
  for (int i = 0; i < 20; ++i) turns += "Tell me more about the weather today, please.\n";
  const ProcessResult r = run_process({bitnet(), "run", "-m", tiny(), "-cnv", "-n", "16", "--temp", "0", "-c", "64"}, turns);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("is full"), std::string::npos) << r.err;
}

TEST(HostileInput, HelpIntoAFullDiskIsAFailure) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{bitnet(), "--help"},
                                               std::vector<std::string>{bitnet(), "run", "--help"}}) {
    const ProcessResult r = run_process(args, "", "/dev/full");
    EXPECT_EQ(r.code, 1) << args.back() << ": " << r.err;
    EXPECT_NE(r.err.find("cannot write standard output"), std::string::npos) << r.err;
  }
}

TEST(HostileInput, UnknownCommandsAreQuotedEscaped) {
  const ProcessResult r = run_process({bitnet(), "\x1b[2Jrun"});
  EXPECT_EQ(r.code, 2);
  expect_no_raw_controls(r.err);
  EXPECT_NE(r.err.find("\\x1b[2Jrun"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace bitnet
