// read_vocab / write_vocab: round trip and rejection of malicious vocabularies.
#include <gtest/gtest.h>

#include <functional>

#include "errors.h"
#include "formats/gguf.h"
#include "tok_test_util.h"

using namespace bitnet;

namespace {

VocabData tiny_bpe() {
  VocabData v = bitnet::test::tiny_bpe_vocab();
  v.chat_template = chat_template_text(ChatFormat::BitNet);
  return v;
}

std::vector<uint8_t> to_gguf(const VocabData& v, const std::function<void(GgufWriter&)>& extra = {}) {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  write_vocab(w, v);
  if (extra) extra(w);
  return w.write_to_memory();
}

// Writes a GGUF with the given tokenizer keys only (bypassing write_vocab's validation).
std::vector<uint8_t> raw_gguf(const std::function<void(GgufWriter&)>& fill) {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  fill(w);
  return w.write_to_memory();
}

void base_keys(GgufWriter& w, std::vector<std::string> tokens, std::vector<int32_t> types) {
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_f32_array("tokenizer.ggml.scores", std::vector<float>(tokens.size(), 0.0f));
  w.add_string_array("tokenizer.ggml.tokens", std::move(tokens));
  w.add_i32_array("tokenizer.ggml.token_type", types);
}

void expect_rejected(const std::vector<uint8_t>& bytes, const std::string& needle) {
  const GgufFile f = GgufFile::parse(bytes);
  try {
    read_vocab(f);
    ADD_FAILURE() << "accepted; expected error containing '" << needle << "'";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(VocabGguf, RoundTrip) {
  VocabData v = tiny_bpe();
  v.add_space_prefix = false;
  v.eot = 262;
  const auto bytes = to_gguf(v);
  const GgufFile f = GgufFile::parse(bytes);
  const VocabData r = read_vocab(f);
  EXPECT_EQ(r.model, v.model);
  EXPECT_EQ(r.pre, v.pre);
  EXPECT_EQ(r.tokens, v.tokens);
  EXPECT_EQ(r.scores, v.scores);
  EXPECT_EQ(r.types, v.types);
  EXPECT_EQ(r.merges, v.merges);
  EXPECT_EQ(r.bos, 261);
  EXPECT_EQ(r.eos, 262);
  EXPECT_EQ(r.eot, 262);
  EXPECT_EQ(r.pad, 262);
  EXPECT_EQ(r.unk, -1);
  EXPECT_TRUE(r.add_bos);
  EXPECT_FALSE(r.add_eos);
  EXPECT_EQ(r.add_space_prefix, std::optional<bool>(false));
  EXPECT_EQ(r.chat_template, v.chat_template);
  const Tokenizer tok(r);
  EXPECT_EQ(tok.encode(" world", true, false), (std::vector<int32_t>{261, 260}));
  EXPECT_EQ(tok.encode(" word", false, false), (std::vector<int32_t>{259, 67}));
  EXPECT_EQ(tok.decode(tok.encode(" world wide", false, false)), " world wide");
  EXPECT_TRUE(tok.is_end_of_generation(262));
}

TEST(VocabGguf, RoundTripSpm) {
  const GgufFile orig = GgufFile::open(bitnet::test::data_dir() + "/ggml-vocab-llama-spm.gguf");
  const VocabData v = read_vocab(orig);
  const auto bytes = to_gguf(v);
  const VocabData r = read_vocab(GgufFile::parse(bytes));
  EXPECT_EQ(r.tokens, v.tokens);
  EXPECT_EQ(r.scores, v.scores);
  EXPECT_EQ(r.types, v.types);
  EXPECT_EQ(r.bos, 1);
  EXPECT_EQ(r.eos, 2);
  EXPECT_EQ(r.unk, 0);
}

TEST(VocabGguf, MissingKeysAndDefaults) {
  expect_rejected(raw_gguf([](GgufWriter& w) { w.add_string_array("tokenizer.ggml.tokens", {"a"}); }),
                  "missing tokenizer.ggml.model");
  expect_rejected(raw_gguf([](GgufWriter& w) { w.add_string("tokenizer.ggml.model", "llama"); }),
                  "missing tokenizer.ggml.tokens");
  expect_rejected(raw_gguf([](GgufWriter& w) { base_keys(w, {}, {}); }), "tokenizer.ggml.tokens is empty");
  // SPM defaults: BOS 1, EOS 2, UNK 0.
  const auto bytes = raw_gguf([](GgufWriter& w) { base_keys(w, {"<unk>", "<s>", "</s>", "a"}, {2, 3, 3, 1}); });
  const VocabData v = read_vocab(GgufFile::parse(bytes));
  EXPECT_EQ(v.bos, 1);
  EXPECT_EQ(v.eos, 2);
  EXPECT_EQ(v.unk, 0);
  EXPECT_TRUE(v.add_bos);
}

TEST(VocabGguf, RejectsSpecialIdsOutOfRange) {
  for (const char* key : {"bos_token_id", "eos_token_id", "eot_token_id", "unknown_token_id",
                          "padding_token_id"}) {
    const std::string k = std::string("tokenizer.ggml.") + key;
    expect_rejected(raw_gguf([&](GgufWriter& w) {
                      base_keys(w, {"<unk>", "<s>", "</s>"}, {2, 3, 3});
                      w.add_u32(k, 3);
                    }),
                    k + " = 3 is out of range");
    expect_rejected(raw_gguf([&](GgufWriter& w) {
                      base_keys(w, {"<unk>", "<s>", "</s>"}, {2, 3, 3});
                      w.add_u32(k, 0xFFFFFFF0u);
                    }),
                    k + " = 4294967280 is out of range");
    expect_rejected(raw_gguf([&](GgufWriter& w) {
                      base_keys(w, {"<unk>", "<s>", "</s>"}, {2, 3, 3});
                      w.add_i32(k, -7);
                    }),
                    k);
  }
}

TEST(VocabGguf, RejectsArrayLengthMismatch) {
  expect_rejected(raw_gguf([](GgufWriter& w) {
                    w.add_string("tokenizer.ggml.model", "llama");
                    w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "c"});
                    w.add_f32_array("tokenizer.ggml.scores", {0.0f, 1.0f});
                  }),
                  "tokenizer.ggml.scores has 2 entries but tokenizer.ggml.tokens has 3");
  expect_rejected(raw_gguf([](GgufWriter& w) {
                    w.add_string("tokenizer.ggml.model", "llama");
                    w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "c"});
                    w.add_i32_array("tokenizer.ggml.token_type", {1, 1, 1, 1});
                  }),
                  "tokenizer.ggml.token_type has 4 entries but tokenizer.ggml.tokens has 3");
}

TEST(VocabGguf, RejectsBadTokenTypes) {
  expect_rejected(raw_gguf([](GgufWriter& w) { base_keys(w, {"a", "b"}, {1, 9}); }),
                  "tokenizer.ggml.token_type[1] = 9 is not a valid token type");
  expect_rejected(raw_gguf([](GgufWriter& w) { base_keys(w, {"a", "b"}, {-1, 1}); }),
                  "tokenizer.ggml.token_type[0] = -1 is not a valid token type");
}

TEST(VocabGguf, RejectsMalformedByteTokens) {
  for (const char* bad : {"<0x-1>", "<0xZZ>", "<0x100>", "<0x1>", "0x41", "<0X41>"}) {
    expect_rejected(raw_gguf([&](GgufWriter& w) { base_keys(w, {"a", bad}, {1, 6}); }),
                    std::string("byte token 1 has malformed text '") + bad + "'");
  }
  // Well-formed byte tokens are accepted.
  const auto ok = raw_gguf([](GgufWriter& w) { base_keys(w, {"<0x41>", "<0xff>"}, {6, 6}); });
  EXPECT_NO_THROW(read_vocab(GgufFile::parse(ok)));
}

TEST(VocabGguf, RejectsBadMerges) {
  auto with_merges = [](std::vector<std::string> merges) {
    return raw_gguf([&](GgufWriter& w) {
      w.add_string("tokenizer.ggml.model", "gpt2");
      w.add_string("tokenizer.ggml.pre", "llama-bpe");
      w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"});
      w.add_string_array("tokenizer.ggml.merges", merges);
    });
  };
  EXPECT_NO_THROW(read_vocab(GgufFile::parse(with_merges({"a b"}))));
  expect_rejected(with_merges({"a b", "ab"}), "tokenizer.ggml.merges[1] ('ab') has no separator");
  expect_rejected(with_merges({" "}), "tokenizer.ggml.merges[0] (' ') has no separator");
  expect_rejected(with_merges({"a zz"}), "tokenizer.ggml.merges[0] ('a zz') names unknown token 'zz'");
  expect_rejected(with_merges({"q b"}), "names unknown token 'q'");
  expect_rejected(with_merges({"a "}), "names unknown token ''");
}

TEST(VocabGguf, TokenizerRejectsInvalidVocabData) {
  VocabData v = tiny_bpe();
  v.bos = 100000;
  EXPECT_THROW(Tokenizer{v}, FormatError);
  v = tiny_bpe();
  v.merges.push_back("Ġ nope");
  EXPECT_THROW(Tokenizer{v}, FormatError);
  v = tiny_bpe();
  v.scores.pop_back();
  EXPECT_THROW(Tokenizer{v}, FormatError);
  v = tiny_bpe();
  v.types[5] = static_cast<TokenType>(42);
  EXPECT_THROW(Tokenizer{v}, FormatError);
  v = tiny_bpe();
  v.tokens.clear();
  EXPECT_THROW(Tokenizer{v}, FormatError);
  GgufWriter w;
  v = tiny_bpe();
  v.eos = -5;
  EXPECT_THROW(write_vocab(w, v), FormatError);
}
