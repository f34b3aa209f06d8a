// SentencePiece-style BPE with the LLaMA vocabulary read from ggml-vocab-llama-spm.gguf.
#include <gtest/gtest.h>

#include "formats/gguf.h"
#include "tok_test_util.h"

using namespace bitnet;

namespace {

using Ids = std::vector<int32_t>;

const VocabData& spm_vocab() {
  static const VocabData v = [] {
    const GgufFile f = GgufFile::open(bitnet::test::data_dir() + "/ggml-vocab-llama-spm.gguf");
    return read_vocab(f);
  }();
  return v;
}

const Tokenizer& spm() {
  static const Tokenizer t(spm_vocab());
  return t;
}

}  // namespace

TEST(Spm, VocabFromGguf) {
  const VocabData& v = spm_vocab();
  EXPECT_EQ(v.model, "llama");
  ASSERT_EQ(v.tokens.size(), 32000u);
  EXPECT_EQ(v.scores.size(), 32000u);
  EXPECT_EQ(v.types[0], TokenType::UNKNOWN);
  EXPECT_EQ(v.types[1], TokenType::CONTROL);
  EXPECT_EQ(v.types[3], TokenType::BYTE);
  EXPECT_EQ(v.tokens[3], "<0x00>");
  EXPECT_EQ(v.bos, 1);
  EXPECT_EQ(v.eos, 2);
  EXPECT_EQ(v.unk, 0);
  EXPECT_TRUE(v.add_bos);
  EXPECT_FALSE(v.add_eos);
}

TEST(Spm, TestVectors) {
  const Tokenizer& tok = spm();
  const auto vectors = bitnet::test::load_vectors("ggml-vocab-llama-spm.gguf");
  ASSERT_EQ(vectors.size(), 46u);
  for (const auto& t : vectors) {
    const Ids ids = tok.encode(t.text, false, false);
    EXPECT_EQ(ids, t.ids) << "text: '" << t.text << "'";
    EXPECT_EQ(tok.decode(ids), t.text);
  }
}

TEST(Spm, Examples) {
  const Tokenizer& tok = spm();
  EXPECT_EQ(tok.encode("Hello world", false, false), (Ids{15043, 3186}));
  EXPECT_EQ(tok.encode(" Hello world", false, false), (Ids{29871, 15043, 3186}));
  EXPECT_EQ(tok.encode("\t", false, false), (Ids{29871, 12}));
  EXPECT_TRUE(tok.encode("", false, false).empty());
  EXPECT_EQ(tok.encode("Hello world", true, false), (Ids{1, 15043, 3186}));
  EXPECT_EQ(tok.decode(Ids{1, 15043, 3186}), "Hello world");
  EXPECT_EQ(tok.decode(Ids{1, 15043, 3186}, true), "<s> Hello world");
  EXPECT_EQ(tok.token_to_piece(15043), " Hello");
  EXPECT_EQ(tok.token_to_piece(12), "\t");
  EXPECT_TRUE(tok.is_end_of_generation(2));
  EXPECT_FALSE(tok.is_end_of_generation(1));
}

TEST(Spm, SpecialsOnlyWithParseSpecial) {
  const Tokenizer& tok = spm();
  const Ids parsed = tok.encode("Hi</s>there", false, true);
  EXPECT_NE(std::find(parsed.begin(), parsed.end(), 2), parsed.end());
  // The fragment after a special token gets the space prefix.
  EXPECT_EQ(parsed, (Ids{tok.encode("Hi", false, false)[0], 2, tok.encode("there", false, false)[0]}));
  const Ids plain = tok.encode("Hi</s>there", false, false);
  EXPECT_EQ(std::find(plain.begin(), plain.end(), 2), plain.end());
  EXPECT_EQ(tok.decode(plain), "Hi</s>there");
}

TEST(Spm, ByteFallbackForUnknownCharacters) {
  const Tokenizer& tok = spm();
  const std::string text = "\xF0\x9F\xA6\x99";  // a character the LLaMA vocab lacks
  const Ids ids = tok.encode(text, false, false);
  ASSERT_EQ(ids.size(), 5u);  // "▁" + four byte tokens
  EXPECT_EQ(ids[0], 29871);
  EXPECT_EQ(ids[1], 3 + 0xF0);
  EXPECT_EQ(tok.decode(ids), text);
}

TEST(Spm, AddSpacePrefixFalse) {
  VocabData v = spm_vocab();
  v.add_space_prefix = false;
  const Tokenizer tok(std::move(v));
  EXPECT_EQ(tok.encode("Hello", false, false), (Ids{10994}));  // "Hello" without ▁
  EXPECT_EQ(tok.decode(Ids{15043}), " Hello");
}
