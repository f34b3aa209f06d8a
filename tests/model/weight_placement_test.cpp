// Where the loader keeps the weights: the streamed matrices in huge-page memory (the default) or
// in the file mapping (LoadOptions::map_weights); the numbers are the same either way.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "model/forward.h"
#include "test_data.h"

namespace bitnet {
namespace {

const uint8_t* file_bytes(const Model& m, const std::string& name) {
  return m.file.view(*m.file.find_tensor(name)).data;
}

TEST(WeightPlacement, StreamedMatricesAreCopiedUnlessMapped) {
  const std::string path = testing::dummy_model("bitnet-b1.58", "tiny", GgmlType::I2_S);
  const auto copied = load_model(path);
  LoadOptions mapped_options;
  mapped_options.map_weights = true;
  const auto mapped = load_model(path, mapped_options);

  const TensorView& wq = copied->layers[0].wq;
  EXPECT_NE(wq.data, file_bytes(*copied, "blk.0.attn_q.weight"));
  EXPECT_EQ(std::memcmp(wq.data, file_bytes(*copied, "blk.0.attn_q.weight"), wq.nbytes), 0);
  EXPECT_EQ(mapped->layers[0].wq.data, file_bytes(*mapped, "blk.0.attn_q.weight"));
  EXPECT_EQ(mapped->arena.bytes(), 0u);
  EXPECT_GE(copied->arena.bytes(), copied->weight_bytes() - 4 * copied->output_norm.size());

  // The output matrix is the (tied) embedding table: copied once, and both names see the copy.
  EXPECT_EQ(copied->output.data, copied->tok_embd.data);
  EXPECT_NE(copied->tok_embd.data, file_bytes(*copied, "token_embd.weight"));
  bool noted = false;
  for (const auto& note : copied->load_notes) noted |= note.find("MiB in process memory") != std::string::npos;
  EXPECT_TRUE(noted);

  ThreadPool pool(2);
  const auto tokens = copied->tokenizer->encode("the same logits from either place", true, false);
  KvCache a(copied->hp.n_layer, 1, 64, copied->hp.n_head_kv, copied->hp.head_dim), b(copied->hp.n_layer, 1, 64, copied->hp.n_head_kv, copied->hp.head_dim);
  Batch batch;
  for (size_t i = 0; i < tokens.size(); ++i) batch.add(tokens[i], int32_t(i), 0, i + 1 == tokens.size());
  EXPECT_EQ(forward(*copied, a, batch, pool), forward(*mapped, b, batch, pool));
}

TEST(WeightPlacement, ACallersBufferIsLeftIntact) {
  // The loader drops the file mapping's pages of each copy; a parsed buffer must not be touched.
  std::ifstream in(testing::dummy_model("bitnet-b1.58", "tiny", GgmlType::I2_S), std::ios::binary);
  const std::vector<uint8_t> original((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(original.size(), 1u << 20);
  const std::vector<uint8_t> buffer = original;
  const auto m = load_model(GgufFile::parse(buffer));
  EXPECT_GT(m->arena.bytes(), 0u);
  EXPECT_FALSE(m->file.memory_mapped());
  EXPECT_TRUE(buffer == original);
}

TEST(WeightPlacement, AnUntiedEmbeddingTableStaysInTheFile) {
  // llama keeps a separate output matrix: the embedding table is only read one row per token.
  const auto m = load_model(testing::dummy_model("llama", "tiny", GgmlType::TQ2_0));
  ASSERT_NE(m->output.data, m->tok_embd.data);
  EXPECT_EQ(m->tok_embd.data, file_bytes(*m, "token_embd.weight"));
  EXPECT_NE(m->output.data, file_bytes(*m, "output.weight"));
}

}  // namespace
}  // namespace bitnet
