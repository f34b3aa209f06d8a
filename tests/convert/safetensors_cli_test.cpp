// The safetensors reader on its own, and `bitnet convert` / `bitnet quantize` as processes.
#include <gtest/gtest.h>

#include "hf_fixture.h"
#include "process_runner.h"

namespace bitnet {
namespace {

namespace fs = std::filesystem;

TEST(Safetensors, ReadsTensorsAndMetadata) {
  std::vector<float> v = {1.5f, -2.0f, 0.25f};
  const auto bytes = testing::safetensors_bytes({{"a", "BF16", {3}, testing::to_bf16(v)}, {"b", "U8", {2, 2}, {1, 2, 3, 4}}});
  const SafetensorsFile f = SafetensorsFile::parse(bytes, "t.safetensors");
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const StTensor* a = f.find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, StDtype::BF16);
  float out[3];
  st_to_f32(*a, 0, 3, out);
  EXPECT_EQ(std::vector<float>(out, out + 3), v);
  EXPECT_EQ(f.find("b")->shape_string(), "[2, 2]");
  EXPECT_THROW(st_to_f32(*f.find("b"), 0, 1, out), FormatError);
}

TEST(Safetensors, RejectsTruncatedFilesAndBadMetadata) {
  const std::vector<uint8_t> tiny = {1, 2, 3};
  EXPECT_THROW(SafetensorsFile::parse(tiny, "x"), FormatError);
  const auto meta = testing::safetensors_bytes({}, "{\"__metadata__\":{\"k\":1}}");
  try {
    SafetensorsFile::parse(meta, "m.safetensors");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("__metadata__ value 'k' is not a string"), std::string::npos);
  }
  const auto neg = testing::safetensors_bytes({}, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}");
  EXPECT_THROW(SafetensorsFile::parse(neg, "n"), FormatError);
}

using Result = testing::ProcessResult;
using testing::run_process;

TEST(ConvertCli, ConvertThenQuantizeAndErrors) {
  testing::HfModel m;
  m.L = 1;
  const fs::path dir = testing::temp_dir() / "cli-ckpt";
  fs::remove_all(dir);
  testing::write_checkpoint(dir, m);
  const std::string bin = testing::bin_dir() + "/bitnet", f32 = dir.string() + "-f32.gguf",
                    i2s = dir.string() + "-i2s.gguf", q = dir.string() + "-q.gguf";
  Result r = run_process({bin, "convert", dir.string(), "-o", f32, "--outtype", "f32"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("GB/s of input"), std::string::npos) << r.err;
  ASSERT_EQ(run_process({bin, "convert", dir.string(), "-o", i2s}).code, 0);
  r = run_process({testing::bin_dir() + "/llama-quantize", f32, q, "i2_s"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(testing::read_bytes(q), testing::read_bytes(i2s));

  r = run_process({bin, "convert", dir.string(), "-o", q + "2", "--outtype", "q4_0"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("error: unsupported --outtype 'q4_0'"), std::string::npos) << r.err;
  fs::remove(dir / "config.json");
  r = run_process({bin, "convert", dir.string(), "-o", q + "3"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("config.json: cannot open"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(q + "3"));
}

}  // namespace
}  // namespace bitnet
