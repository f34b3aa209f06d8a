// Generation under a grammar (grammar/constraint.h through generate()) with the shipped model (models/bitnet-kjv-13M-i2_s.gguf) at
// temperature 1: 200 generations over 5 grammars, every text valid under its grammar (a valid
// prefix when cut by the token limit, a complete match when ended by the model), and the same
// tokens again for the same seed.
#include <gtest/gtest.h>

#include "grammar/constraint.h"
#include "grammar/json_schema.h"
#include "model/model.h"
#include "test_data.h"
#include "runtime/generate.h"
#include "runtime/session.h"

namespace bitnet {
namespace {

const Model& model() { return testing::shipped_model(); }

std::shared_ptr<const GrammarVocab> vocab() {
  static const auto v = std::make_shared<const GrammarVocab>(*model().tokenizer);
  return v;
}

struct Generated {
  std::vector<int32_t> tokens;
  std::string text;
  StopReason reason;
  int64_t masks;
};

Generated generate_with(const std::shared_ptr<const Grammar>& g, const std::string& prompt, uint64_t seed,
                        int64_t n_predict) {
  Session session(model(), 256, 1, 64);
  const auto logits = session.set_tokens(model().tokenizer->encode(prompt, true, false));
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = seed;
  Sampler sampler(p);
  GrammarConstraint constraint(g, vocab());
  GenerateOptions options;
  options.n_predict = n_predict;
  options.grammar = &constraint;
  Generated out;
  out.reason = generate(session, logits, sampler, options, [&](int32_t id) {
    out.tokens.push_back(id);
    out.text += model().tokenizer->token_to_piece(id);
    return true;
  });
  out.masks = session.timings.grammar_masks;
  return out;
}

TEST(GrammarGeneration, EveryTextIsValidUnderItsGrammar) {
  struct Case {
    std::string name, gbnf, prompt;
  };
  const std::vector<Case> cases = {
      {"sentence", R"(root ::= " " [A-Z] [a-z ,;]{0,60} [.!?])", "And God said,"},
      {"arithmetic", "root ::= expr\nexpr ::= term ((\"+\" | \"-\") term)*\nterm ::= [0-9]{1,3} | \"(\" expr \")\"",
       "Two and two:"},
      {"json", json_value_gbnf(false), "The record:"},
      {"answers", R"(root ::= ("yea" | "nay" | "verily") (", " ("yea" | "nay" | "verily")){0,4} "\n")",
       "And they answered"},
      {"unicode", R"(root ::= "«" [^»\n]{1,30} "»" | [^a-z\n]{1,8} "é")", "He spake"},
  };
  int generations = 0, ended = 0;
  int64_t masks = 0;
  for (const Case& c : cases) {
    const auto g = Grammar::parse(c.gbnf);
    for (uint64_t seed = 1; seed <= 40; ++seed) {
      SCOPED_TRACE(c.name + ", seed " + std::to_string(seed));
      const Generated out = generate_with(g, c.prompt, seed, 40);
      GrammarMatcher check(g);
      ASSERT_TRUE(check.accept_bytes(out.text)) << "not valid under the grammar: '" << out.text << "'";
      // The model may end only where the grammar can; cut by the limit, the text is a valid prefix.
      if (out.reason == StopReason::EndOfGeneration) {
        EXPECT_TRUE(check.can_end()) << "ended early: '" << out.text << "'";
        ++ended;
      } else {
        EXPECT_EQ(out.reason, StopReason::TokenLimit);
      }
      masks += out.masks;
      ++generations;
    }
  }
  EXPECT_EQ(generations, 200);
  EXPECT_GT(ended, 20);  // most short grammars do end
  EXPECT_GT(masks, 0);   // the first choice was refused sometimes (else the test tests little)
}

TEST(GrammarGeneration, SameSeedSameTokens) {
  const auto g = Grammar::parse(json_value_gbnf(true));
  const Generated a = generate_with(g, "The record:", 11, 30);
  const Generated b = generate_with(g, "The record:", 11, 30);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.text.substr(0, 1), "{");
}

}  // namespace
}  // namespace bitnet
