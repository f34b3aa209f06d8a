// Token masks: the trie walk must give exactly what feeding each token's bytes to a copy of the
// matcher gives, for every token of the Llama-3 vocabulary (128,256 tokens), in states that
// include partial UTF-8, escapes, a finished grammar and the start.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "grammar/constraint.h"
#include "grammar/json_schema.h"
#include <cstdlib>
#include "tokenizer/tokenizer.h"

namespace bitnet {
namespace {

// data/ of this tree, or $BITNET_SHARED_DATA (data/README.md).
std::string data_dir() {
  if (const char* env = std::getenv("BITNET_SHARED_DATA"); env && *env) return env;
  return std::string(BITNET_SOURCE_DIR) + "/data";
}

const Tokenizer& llama3() {
  static const Tokenizer t(vocab_from_tiktoken(data_dir() + "/llama3-tokenizer.tiktoken"));
  return t;
}

std::shared_ptr<const GrammarVocab> llama3_vocab() {
  static const auto v = std::make_shared<const GrammarVocab>(llama3());
  return v;
}

// The single-byte token of each byte value (byte-level BPE has one for every byte).
int32_t byte_token(uint8_t b) {
  static const std::map<uint8_t, int32_t> by_byte = [] {
    std::map<uint8_t, int32_t> m;
    const GrammarVocab& v = *llama3_vocab();
    for (int32_t id = 0; id < v.n_tokens(); ++id)
      if (v.is_text(id) && v.bytes(id).size() == 1) m.emplace(uint8_t(v.bytes(id)[0]), id);
    return m;
  }();
  return by_byte.at(b);
}

// Brute force: every token checked on its own against a fresh copy of the matcher.
std::vector<bool> reference_mask(const GrammarConstraint& c) {
  const GrammarVocab& v = c.vocab();
  std::vector<bool> out(size_t(v.n_tokens()));
  for (int32_t id = 0; id < v.n_tokens(); ++id) {
    if (v.is_eog(id)) {
      out[size_t(id)] = c.matcher().can_end();
    } else if (v.is_text(id)) {
      GrammarMatcher copy = c.matcher();
      out[size_t(id)] = copy.accept_bytes(v.bytes(id));
    }
  }
  return out;
}

void expect_mask_matches_reference(const std::string& gbnf, const std::string& prefix, int64_t min_allowed) {
  SCOPED_TRACE("prefix '" + prefix + "'");
  GrammarConstraint c(Grammar::parse(gbnf), llama3_vocab());
  for (char ch : prefix) c.accept(byte_token(uint8_t(ch)));
  const std::vector<uint64_t>& mask = c.mask();
  const std::vector<bool> ref = reference_mask(c);
  int64_t allowed = 0, mismatches = 0;
  for (size_t id = 0; id < ref.size(); ++id) {
    const bool got = (mask[id >> 6] >> (id & 63)) & 1;
    allowed += got;
    if (got != ref[id] && ++mismatches <= 5)
      ADD_FAILURE() << "token " << id << " '" << c.vocab().bytes(int32_t(id)) << "': mask " << got << ", reference "
                    << ref[id];
    EXPECT_EQ(c.allows(int32_t(id)), ref[id]) << id;
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GE(allowed, min_allowed);
  // Never a control token (Llama-3: <|begin_of_text|> and the reserved specials).
  for (int32_t id : {128000, 128002, 128010, 128255}) EXPECT_FALSE(ref[size_t(id)]) << id;
}

TEST(GrammarMask, EqualsBruteForceOnTheLlama3Vocabulary) {
  const std::string json = json_value_gbnf(false);
  expect_mask_matches_reference(json, "", 100);
  expect_mask_matches_reference(json, "{\"", 50000);
  expect_mask_matches_reference(json, "{\"key\": \"va", 50000);
  expect_mask_matches_reference(json, "{\"a\": \"\xC3", 1);  // inside a UTF-8 sequence
  expect_mask_matches_reference(json, "[\"\\u00", 10);       // inside an escape
  expect_mask_matches_reference(json, "{\"a\": 1", 10);
  expect_mask_matches_reference(json, "[1, 2.", 10);
  expect_mask_matches_reference(json, "{\"a\": [true]}", 2);  // complete: EOG and whitespace
  expect_mask_matches_reference("root ::= expr\nexpr ::= [0-9]+ | \"(\" expr (\"+\" expr)* \")\"", "(1+", 10);
  expect_mask_matches_reference(R"(root ::= [^a-c\n]+ "\n")", "d", 50000);
  expect_mask_matches_reference(R"(root ::= "yes")", "yes", 1);  // finished: only EOG
  expect_mask_matches_reference(R"(root ::= [ぁ-ゟ]{1,5})", "\xE3\x81", 1);
}

TEST(GrammarMask, EndOfGenerationOnlyWhereTheGrammarCanEnd) {
  const GrammarVocab& v = *llama3_vocab();
  ASSERT_FALSE(v.eog_ids().empty());
  GrammarConstraint c(Grammar::parse(R"(root ::= "a" "b"?)"), llama3_vocab());
  for (int32_t eog : v.eog_ids()) EXPECT_FALSE(c.allows(eog));
  EXPECT_THROW(c.accept(v.eog_ids()[0]), GrammarError);
  c.accept(byte_token('a'));
  for (int32_t eog : v.eog_ids()) EXPECT_TRUE(c.allows(eog));
  c.accept(v.eog_ids()[0]);
  EXPECT_TRUE(c.ended());
  EXPECT_FALSE(c.allows(byte_token('b')));
  std::vector<float> logits(size_t(v.n_tokens()), 0.0f);
  EXPECT_THROW(c.apply(logits), GrammarError);  // nothing may follow the end
}

TEST(GrammarMask, ApplySetsMinusInfinityExactlyOnRefusedTokens) {
  GrammarConstraint c(Grammar::parse(R"(root ::= [0-9]+)"), llama3_vocab());
  std::vector<float> logits(size_t(llama3_vocab()->n_tokens()), 1.0f);
  c.apply(logits);
  for (size_t id = 0; id < logits.size(); ++id) {
    const std::string& b = c.vocab().bytes(int32_t(id));
    const bool digits = c.vocab().is_text(int32_t(id)) && b.find_first_not_of("0123456789") == std::string::npos;
    EXPECT_EQ(std::isinf(logits[id]), !digits) << id;
  }
}

TEST(GrammarMask, RepeatedStatesComeFromTheCache) {
  GrammarConstraint c(Grammar::parse(R"(root ::= "\"" [a-z]* "\"")"), llama3_vocab());
  c.accept(byte_token('"'));
  const std::vector<uint64_t> first = c.mask();
  EXPECT_EQ(c.stats().masks, 1);
  EXPECT_EQ(c.stats().cached, 0);
  c.accept(byte_token('x'));  // back in the same state: inside the string
  EXPECT_EQ(c.mask(), first);
  EXPECT_EQ(c.stats().masks, 2);
  EXPECT_EQ(c.stats().cached, 1);
}

TEST(GrammarMask, SmallVocabularyWithControlAndByteTokens) {
  VocabData v;
  v.model = "gpt2";
  v.pre = "default";
  // The byte-level alphabet: "Ā" stands for byte 0 and so on; only some are needed here.
  v.tokens = {"a", "b", "ab", "ba", "<|end|>", "<|ctl|>", "aa", "Ġ"};
  v.types.assign(v.tokens.size(), TokenType::NORMAL);
  v.types[4] = v.types[5] = TokenType::CONTROL;
  v.scores.assign(v.tokens.size(), 0.0f);
  v.eos = 4;
  const Tokenizer tok(v);
  auto vocab = std::make_shared<const GrammarVocab>(tok);
  GrammarConstraint c(Grammar::parse(R"(root ::= ("a" | "b")* " ")"), vocab);
  const std::vector<uint64_t>& m = c.mask();
  EXPECT_EQ(m[0], 0b11001111u);  // a b ab ba aa and " "; no <|end|> (cannot end yet), no <|ctl|>
  c.accept(7);
  EXPECT_EQ(c.mask()[0], 0b00010000u);  // finished: only the end token
}

}  // namespace
}  // namespace bitnet
