// Byte-level BPE with the Llama-3 vocabulary built from the tiktoken file.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>

#include "errors.h"
#include "tok_test_util.h"

using namespace bitnet;
using bitnet::test::llama3_tokenizer;
using bitnet::test::llama3_vocab;

namespace {

using Ids = std::vector<int32_t>;

std::string join_merges(const std::vector<std::string>& m) {
  std::string s;
  for (size_t i = 0; i < m.size(); ++i) {
    if (i) s += '\n';
    s += m[i];
  }
  return s;
}

}  // namespace

TEST(Tiktoken, DerivedVocabulary) {
  const VocabData& v = llama3_vocab();
  ASSERT_EQ(v.tokens.size(), 128256u);
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "llama-bpe");
  EXPECT_EQ(v.tokens[0], "!");
  EXPECT_EQ(v.tokens[128000], "<|begin_of_text|>");
  EXPECT_EQ(v.tokens[128001], "<|end_of_text|>");
  EXPECT_EQ(v.tokens[128002], "<|reserved_special_token_0|>");
  EXPECT_EQ(v.tokens[128006], "<|start_header_id|>");
  EXPECT_EQ(v.tokens[128007], "<|end_header_id|>");
  EXPECT_EQ(v.tokens[128008], "<|reserved_special_token_4|>");
  EXPECT_EQ(v.tokens[128009], "<|eot_id|>");
  EXPECT_EQ(v.tokens[128010], "<|reserved_special_token_5|>");
  EXPECT_EQ(v.tokens[128255], "<|reserved_special_token_250|>");
  EXPECT_EQ(v.types[127999], TokenType::NORMAL);
  EXPECT_EQ(v.types[128000], TokenType::CONTROL);
  EXPECT_EQ(v.bos, 128000);
  EXPECT_EQ(v.eos, 128001);
  ASSERT_EQ(v.merges.size(), 280147u);
  const char* head[] = {"Ġ Ġ", "Ġ ĠĠĠ", "ĠĠ ĠĠ", "ĠĠĠ Ġ", "i n"};
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(v.merges[i], head[i]);
  EXPECT_EQ(v.merges[280144], "ãĥ¼ ãĥ¼");
  EXPECT_EQ(v.merges[280145], "ãĥ¼ãĥ ¼");
  EXPECT_EQ(v.merges[280146], "éĶ ¦");
}

TEST(Tiktoken, MergesSha256) {
  if (std::system("test -x /usr/bin/sha256sum") != 0) GTEST_SKIP() << "no sha256sum";
  const std::string tmp = testing::TempDir() + "/bitnet_merges.txt";
  {
    std::ofstream f(tmp, std::ios::binary);
    f << join_merges(llama3_vocab().merges);
  }
  const std::string cmd = "/usr/bin/sha256sum '" + tmp + "' > '" + tmp + ".sha'";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string sha = bitnet::test::read_file(tmp + ".sha").substr(0, 64);
  EXPECT_EQ(sha, "0cd100e0ab7dbd83c3b668a7cfb2aed1f63f2aec66dae6ec4b63de2c552bb82d");
  std::remove(tmp.c_str());
  std::remove((tmp + ".sha").c_str());
}

TEST(Tiktoken, RejectsMalformedFiles) {
  const std::string tmp = testing::TempDir() + "/bitnet_bad.tiktoken";
  auto expect_bad = [&](const std::string& content, const std::string& what) {
    {
      std::ofstream f(tmp, std::ios::binary);
      f << content;
    }
    try {
      vocab_from_tiktoken(tmp);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_bad("IQ== 0\nIg== 0\n", "duplicate rank");
  expect_bad("IQ== 0\nIg== 2\n", "rank 1 is missing");
  expect_bad("I*== 0\n", "invalid base64");
  expect_bad("IQ==0\n", "expected");
  expect_bad("IQ== x\n", "invalid rank");
  // Found by fuzz_tiktoken: a one-line file claiming rank 9,999,999 allocated 10M entries first.
  expect_bad("IQ== 9999999\n", "rank 9999999 is beyond the file's 2 lines");
  std::remove(tmp.c_str());
  EXPECT_THROW(vocab_from_tiktoken("/nonexistent/file.tiktoken"), Error);
}

TEST(BpeLlama3, TestVectors) {
  const Tokenizer& tok = llama3_tokenizer();
  EXPECT_EQ(tok.pre_tokenizer(), "llama-bpe");
  const auto vectors = bitnet::test::load_vectors("ggml-vocab-llama-bpe.gguf");
  ASSERT_EQ(vectors.size(), 46u);
  for (const auto& t : vectors) {
    EXPECT_EQ(tok.encode(t.text, false, false), t.ids) << "text: '" << t.text << "'";
    EXPECT_EQ(tok.decode(tok.encode(t.text, false, false)), t.text);
  }
}

TEST(BpeLlama3, SpecExamples) {
  const Tokenizer& tok = llama3_tokenizer();
  EXPECT_EQ(tok.encode("Hello world", false, false), (Ids{9906, 1917}));
  EXPECT_EQ(tok.encode(" Hello world", false, false), (Ids{22691, 1917}));
  EXPECT_EQ(tok.encode("\n\n", false, false), (Ids{271}));
  EXPECT_EQ(tok.encode("   ", false, false), (Ids{262}));
  EXPECT_EQ(tok.encode("Hello, world!", false, false), (Ids{9906, 11, 1917, 0}));
  EXPECT_EQ(tok.encode("3333", false, false), (Ids{8765, 18}));
  EXPECT_EQ(tok.encode("don't", false, false), (Ids{15357, 956}));
  EXPECT_EQ(tok.encode("", true, false), (Ids{128000}));
  EXPECT_TRUE(tok.encode("", false, false).empty());
}

TEST(BpeLlama3, MissingPreUsesLlamaBpe) {
  const Tokenizer& t = llama3_tokenizer();  // built with v.pre cleared
  EXPECT_TRUE(t.data().pre.empty());
  EXPECT_EQ(t.pre_tokenizer(), "llama-bpe");
  EXPECT_EQ(t.encode("don't", false, false), (Ids{15357, 956}));
}

// BITNET_TOKENIZER_PRE=default reproduces llama.cpp's `default` pre-tokenizer (§2.5 table).
TEST(BpeLlama3, DefaultPreTokenizerTableViaEnv) {
  ::setenv("BITNET_TOKENIZER_PRE", "default", 1);
  std::unique_ptr<Tokenizer> built;
  try {
    built = std::make_unique<Tokenizer>(llama3_vocab());  // pre = llama-bpe, overridden
  } catch (...) {
    ::unsetenv("BITNET_TOKENIZER_PRE");
    throw;
  }
  ::unsetenv("BITNET_TOKENIZER_PRE");
  const Tokenizer& def = *built;
  EXPECT_EQ(def.pre_tokenizer(), "default");
  const Tokenizer& l3 = llama3_tokenizer();
  EXPECT_EQ(def.encode("don't", false, false), (Ids{15357, 6, 83}));
  EXPECT_EQ(l3.encode("I've been 'told he's there", false, false),
            (Ids{40, 3077, 1027, 364, 83, 820, 568, 596, 1070}));
  EXPECT_EQ(def.encode("I've been 'told he's there", false, false),
            (Ids{40, 6, 588, 1027, 220, 6, 83, 820, 568, 6, 82, 1070}));
  EXPECT_EQ(l3.encode("x\n\ny", false, false), (Ids{87, 271, 88}));
  EXPECT_EQ(def.encode("x\n\ny", false, false), (Ids{87, 198, 198, 88}));
  for (const char* s : {"Hello, world!", "12345 apples", "User: Hey, are you conscious?"})
    EXPECT_EQ(def.encode(s, false, false), l3.encode(s, false, false)) << s;
  for (const auto& t : bitnet::test::load_vectors("ggml-vocab-llama-bpe.gguf"))
    EXPECT_EQ(def.decode(def.encode(t.text, false, false)), t.text);
}

TEST(BpeTiny, PreAliasesAndUnknownPre) {
  VocabData v = bitnet::test::tiny_bpe_vocab();
  for (const char* p : {"llama-bpe", "llama3", "llama-v3", "falcon3", "falcon_e", "qwen2", "default"}) {
    v.pre = p;
    const Tokenizer t(v);
    EXPECT_EQ(t.pre_tokenizer(), p);
    EXPECT_EQ(t.encode(" world", false, false), (Ids{260})) << p;
  }
  // Llama-3 groups digits by three ("333", "3"; "333" is not a token, so BPE gives "33" "3"),
  // qwen2 splits single digits.
  v.pre = "llama-bpe";
  EXPECT_EQ(Tokenizer(v).encode("3333", false, false), (Ids{263, 18, 18}));
  v.pre = "qwen2";
  EXPECT_EQ(Tokenizer(v).encode("3333", false, false), (Ids{18, 18, 18, 18}));
  v.pre.clear();  // not the Llama-3 vocab: llama.cpp's fallback "default"
  EXPECT_EQ(Tokenizer(v).pre_tokenizer(), "default");
  v.pre = "starcoder-xyz";
  try {
    Tokenizer bad(v);
    FAIL() << "unknown pre accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("starcoder-xyz"), std::string::npos);
  }
  v.pre = "llama-bpe";
  v.model = "bert";
  try {
    Tokenizer bad(v);
    FAIL() << "unknown model accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("bert"), std::string::npos);
  }
}

TEST(BpeTiny, UserDefinedTokensAlwaysMatched) {
  VocabData v = bitnet::test::tiny_bpe_vocab();
  v.types[264] = TokenType::USER_DEFINED;  // "<|user_def|>"
  const Tokenizer t(std::move(v));
  const Ids ids = t.encode("a<|user_def|>b", false, false);
  EXPECT_EQ(ids, (Ids{64, 264, 65}));
  EXPECT_EQ(t.decode(ids), "a<|user_def|>b");
  const Ids plain = t.encode("a<|eot_id|>b", false, false);  // CONTROL: plain text
  EXPECT_EQ(plain.size(), 12u);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 262), 0);
  EXPECT_EQ(t.encode("a<|eot_id|>b", false, true), (Ids{64, 262, 65}));
}

TEST(BpeLlama3, SpecialTokens) {
  const Tokenizer& tok = llama3_tokenizer();
  const std::string text = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>";
  const Ids parsed = tok.encode(text, false, true);
  ASSERT_GE(parsed.size(), 5u);
  EXPECT_EQ(parsed.front(), 128006);
  EXPECT_EQ(parsed[1], 882);  // "user"
  EXPECT_EQ(parsed[2], 128007);
  EXPECT_EQ(parsed.back(), 128009);
  const Ids plain = tok.encode(text, false, false);
  for (int32_t id : plain) EXPECT_LT(id, 128000);
  EXPECT_EQ(tok.decode(plain), text);
  // Specials render nothing unless asked to.
  EXPECT_EQ(tok.decode(parsed), "user\n\nHi");
  EXPECT_EQ(tok.decode(parsed, true), text);
  EXPECT_EQ(tok.token_to_piece(128009), "");
  EXPECT_EQ(tok.token_to_piece(128009, true), "<|eot_id|>");
  EXPECT_EQ(tok.token_to_piece(1917), " world");
  // BOS added with add_special; no EOS.
  const Ids with_bos = tok.encode("Hello world", true, false);
  EXPECT_EQ(with_bos, (Ids{128000, 9906, 1917}));
  EXPECT_EQ(tok.encode("<|begin_of_text|>Hi", true, true), (Ids{128000, 128000, 13347}));
  EXPECT_EQ(tok.bos(), 128000);
  EXPECT_EQ(tok.eos(), 128001);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_EQ(tok.n_tokens(), 128256);
}

TEST(BpeLlama3, EndOfGeneration) {
  const Tokenizer& tok = llama3_tokenizer();
  EXPECT_TRUE(tok.is_end_of_generation(128001));
  EXPECT_TRUE(tok.is_end_of_generation(128009));
  EXPECT_FALSE(tok.is_end_of_generation(128000));
  EXPECT_FALSE(tok.is_end_of_generation(128008));
  EXPECT_FALSE(tok.is_end_of_generation(9906));
  EXPECT_EQ(tok.end_of_generation_ids(), (Ids{128001, 128009}));
  EXPECT_EQ(tok.eot(), 128009);
}

TEST(BpeLlama3, InvalidUtf8MapsToReplacementChar) {
  const Tokenizer& tok = llama3_tokenizer();
  const Ids bad = tok.encode("a\xff" "b\xe2\x82", false, false);
  // Each byte that does not start a complete sequence becomes one U+FFFD.
  const std::string fixed = "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD";
  EXPECT_EQ(tok.decode(bad), fixed);
  EXPECT_EQ(bad, tok.encode(fixed, false, false));
  EXPECT_EQ(tok.decode(tok.encode("\xC0\x80\xED\xA0\x80", false, false)),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(BpeLlama3, LongInputAndEmojiPieces) {
  const Tokenizer& tok = llama3_tokenizer();
  std::string big;
  for (int i = 0; i < 2000; ++i) big += "The quick brown fox jumps over 12345 lazy dogs! ";
  big += std::string(5000, 'a');
  const Ids ids = tok.encode(big, false, false);
  EXPECT_EQ(tok.decode(ids), big);
  const std::string emoji = "\xF0\x9F\xA6\x99\xF0\x9F\x98\x81";
  std::string joined;
  for (int32_t id : tok.encode(emoji, false, false)) joined += tok.token_to_piece(id);
  EXPECT_EQ(joined, emoji);
}

TEST(BpeLlama3, BuildTime) {
  llama3_tokenizer();
  std::printf("vocab_from_tiktoken: %.0f ms, Tokenizer build (Llama-3): %.0f ms\n",
              bitnet::test::tiktoken_ms(), bitnet::test::llama3_build_ms());
  EXPECT_GT(bitnet::test::tiktoken_ms(), 0.0);
  EXPECT_GT(bitnet::test::llama3_build_ms(), 0.0);
}
