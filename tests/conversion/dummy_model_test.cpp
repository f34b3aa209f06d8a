// The model generator: deterministic per seed, standard metadata, the real shapes and tokenizers.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "formats/gguf.h"
#include "model/model.h"
#include "tensor/quants.h"
#include "test_data.h"

namespace bitnet {
namespace {

std::vector<char> bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string generate(const std::string& name, uint64_t seed, const std::string& arch = "bitnet",
                     GgmlType type = GgmlType::TQ2_0) {
  DummyModelSpec spec;
  spec.arch = arch;
  spec.preset = "tiny";
  spec.type = type;
  spec.seed = seed;
  spec.vocab_dir = testing::shared_data_dir();
  const std::string path = (testing::temp_dir() / name).string();
  generate_dummy_model(spec, path);
  return path;
}

TEST(DummyModel, SameSeedSameBytesOtherSeedOtherWeights) {
  const auto a = bytes_of(generate("a.gguf", 11)), b = bytes_of(generate("b.gguf", 11)),
             c = bytes_of(generate("c.gguf", 12));
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.size(), c.size());
  EXPECT_NE(a, c);
}

TEST(DummyModel, StandardMetadataAndShapes) {
  const GgufFile f = GgufFile::open(generate("meta.gguf", 1, "bitnet-b1.58", GgmlType::I2_S));
  EXPECT_EQ(f.metadata().front().key, "general.architecture");
  EXPECT_EQ(f.get_string("general.architecture"), "bitnet-b1.58");
  EXPECT_EQ(f.get_uint("general.file_type"), 40u);  // MOSTLY_I2_S in bitnet.cpp's numbering
  EXPECT_EQ(f.get_uint("bitnet-b1.58.embedding_length"), 256u);
  EXPECT_EQ(f.get_uint("bitnet-b1.58.attention.head_count_kv"), 2u);
  EXPECT_EQ(f.get_uint("bitnet-b1.58.vocab_size"), 128256u);
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "llama-bpe");
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.merges")->size(), 280147u);
  EXPECT_EQ(f.alignment(), 32u);
  const auto* k = f.find_tensor("blk.1.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->type, GgmlType::I2_S);
  EXPECT_EQ(k->ne[0], 256);
  EXPECT_EQ(k->ne[1], 128);  // 2 kv heads × 64
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr) << "bitnet-b1.58 ties the head to token_embd";
  for (const auto& t : f.tensors()) EXPECT_EQ(t.offset % 32, 0u) << t.name;
}

TEST(DummyModel, SpmVocabularyForBitnetAndUntiedHeadForLlama) {
  const GgufFile spm = GgufFile::open(generate("spm.gguf", 1, "bitnet", GgmlType::I2_S));
  EXPECT_EQ(spm.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(spm.get_string_array("tokenizer.ggml.tokens")->size(), 32000u);
  const GgufFile llama = GgufFile::open(generate("llama.gguf", 1, "llama", GgmlType::I2_S));
  EXPECT_NE(llama.find_tensor("output.weight"), nullptr);
  EXPECT_EQ(llama.find_tensor("blk.0.attn_sub_norm.weight"), nullptr);
}

TEST(DummyModel, TernaryWeightsHaveThreeValuesInBalancedProportions) {
  const auto m = load_model(generate("balance.gguf", 3, "bitnet", GgmlType::I2_S));
  const TernaryRow row = unpack_ternary_row(m->layers[0].w_up, 5);
  int counts[3] = {0, 0, 0};
  for (int8_t t : row.t) counts[t + 1]++;
  for (int c : counts) EXPECT_NEAR(c, 256 / 3.0, 40) << "each of -1, 0, +1 about a third";
}

TEST(DummyModel, UnknownPresetAndTileLayoutAreClearErrors) {
  DummyModelSpec spec;
  spec.preset = "huge";
  spec.vocab_dir = testing::shared_data_dir();
  EXPECT_THROW(generate_dummy_model(spec, (testing::temp_dir() / "x.gguf").string()), Error);
  spec.preset = "tiny";
  spec.type = GgmlType::TL2;
  try {
    generate_dummy_model(spec, (testing::temp_dir() / "y.gguf").string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no tile layout"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(testing::temp_dir() / "y.gguf"));
}

}  // namespace
}  // namespace bitnet
