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

// --vocab-size 512: the SentencePiece vocabulary's first 512 pieces (specials, bytes, the most
// frequent merges), so texts take many more tokens, as with stories260K's 512-piece vocabulary.
TEST(DummyModel, SmallSentencePieceVocabulary) {
  DummyModelSpec spec;
  spec.arch = "bitnet";
  spec.vocab_dir = testing::shared_data_dir();
  spec.vocab_size = 512;
  const std::string path = (testing::temp_dir() / "spm512.gguf").string();
  generate_dummy_model(spec, path);
  const auto small = load_model(path);
  const auto full = load_model(generate("spm-full.gguf", 42, "bitnet", GgmlType::I2_S));
  EXPECT_EQ(small->hp.n_vocab, 512);
  const std::string text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.";
  const std::vector<int32_t> a = small->tokenizer->encode(text, true, true), b = full->tokenizer->encode(text, true, true);
  EXPECT_GT(a.size(), b.size() * 3 / 2) << "fewer pieces, more tokens";
  for (int32_t id : a) EXPECT_LT(id, 512);
  EXPECT_EQ(small->tokenizer->decode(a), full->tokenizer->decode(b)) << "the same text back";
  EXPECT_EQ(a.front(), full->tokenizer->bos());
  spec.vocab_size = 200;  // would drop byte tokens
  EXPECT_THROW(generate_dummy_model(spec, path + ".x"), Error);
  spec.vocab_size = 512;
  spec.arch = "bitnet-b1.58";  // Llama-3's BPE vocabulary: merges would name dropped tokens
  EXPECT_THROW(generate_dummy_model(spec, path + ".y"), Error);
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

namespace bitnet {
namespace {

// The BitNet-embedding presets: the real models' shapes (microsoft bitnet-embedding-0.6b / -270m
// config.json), and files with what `bitnet convert` writes for such checkpoints.
TEST(DummyEmbeddingModel, PresetsHaveTheRealShapes) {
  const EmbeddingPreset& q = *find_embedding_preset("embed-0.6B");
  EXPECT_EQ(q.arch, "qwen3");
  EXPECT_EQ(std::vector<int64_t>({q.n_embd, q.n_layer, q.n_head, q.n_head_kv, q.head_dim, q.n_ff, q.n_vocab, q.n_ctx}),
            std::vector<int64_t>({1024, 28, 16, 8, 128, 3072, 151936, 32768}));
  EXPECT_EQ(q.rope_theta, 1e6f);
  const EmbeddingPreset& g = *find_embedding_preset("embed-270M");
  EXPECT_EQ(g.arch, "gemma3");
  EXPECT_EQ(std::vector<int64_t>({g.n_embd, g.n_layer, g.n_head, g.n_head_kv, g.head_dim, g.n_ff, g.n_vocab, g.n_ctx,
                                  g.sliding_window, g.swa_pattern}),
            std::vector<int64_t>({640, 18, 4, 1, 256, 2048, 262144, 32768, 512, 6}));
  EXPECT_EQ(g.rope_theta, 10000.0f);
  EXPECT_EQ(g.rope_theta_swa, 10000.0f);
  EXPECT_EQ(g.query_pre_attn_scalar, 256.0f);
}

TEST(DummyEmbeddingModel, TinyPresetsWithRealTokenizers) {
  for (const std::string preset : {"embed-tiny-qwen3", "embed-tiny-gemma3"}) {
    const EmbeddingPreset& p = *find_embedding_preset(preset);
    DummyModelSpec spec;
    spec.arch = p.arch;
    spec.preset = preset;
    spec.vocab_dir = testing::shared_data_dir();
    const std::string path = (testing::temp_dir() / (preset + ".gguf")).string();
    generate_dummy_model(spec, path);
    const GgufFile f = GgufFile::open(path);
    const std::string a = p.arch + ".";
    EXPECT_EQ(f.get_string("general.architecture"), p.arch);
    EXPECT_EQ(f.get_uint(a + "pooling_type"), 3u);
    EXPECT_EQ(f.get_uint(a + "attention.key_length"), uint64_t(p.head_dim));
    EXPECT_EQ(f.get_uint(a + "vocab_size"), uint64_t(p.n_vocab));
    EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens")->size(), size_t(p.n_vocab));
    EXPECT_EQ(f.get_bool("tokenizer.ggml.add_eos_token"), true);
    const auto toks = *f.get_string_array("tokenizer.ggml.tokens");
    EXPECT_EQ(toks[size_t(*f.get_uint("tokenizer.ggml.eos_token_id"))], p.arch == "qwen3" ? "<|endoftext|>" : "<eos>");
    EXPECT_FALSE(f.find_tensor("output.weight"));
    EXPECT_EQ(f.view("token_embd.weight").type, GgmlType::F16);
    for (const char* proj : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
      const std::string b = "blk." + std::to_string(p.n_layer - 1) + "." + proj;
      EXPECT_EQ(f.view(b + ".weight").type, GgmlType::I2_S) << b;
      ASSERT_TRUE(f.find_tensor(b + "_norm_in.weight")) << b;
    }
    EXPECT_EQ(f.find_tensor("blk.0.attn_q_norm.weight")->ne[0], p.head_dim);
    EXPECT_EQ(f.find_tensor("blk.0.post_ffw_norm.weight") != nullptr, p.arch == "gemma3");
    EXPECT_EQ(f.find("gemma3.attention.sliding_window") != nullptr, p.arch == "gemma3");
  }
}

}  // namespace
}  // namespace bitnet
