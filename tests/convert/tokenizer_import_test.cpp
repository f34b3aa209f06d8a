// Tokenizers of HF checkpoints → GGUF vocabularies: the converted GGUF encodes the shared test
// vectors like the source tokenizer; added tokens, padding, specials and templates carry over.
#include <gtest/gtest.h>

#include <sstream>

#include "conversion/hf_config.h"
#include "conversion/hf_tokenizer.h"
#include "hf_fixture.h"

namespace bitnet {
namespace {

namespace fs = std::filesystem;

struct Vector {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Vector> vectors(const std::string& name) {
  const auto slurp = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  const std::string inp = slurp(testing::shared_data_dir() + "/" + name + ".inp");
  const std::string out = slurp(testing::shared_data_dir() + "/" + name + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<Vector> v;
  for (size_t pos = 0, hit; (hit = inp.find(sep, pos)) != std::string::npos; pos = hit + sep.size())
    v.push_back({inp.substr(pos, hit - pos), {}});
  std::istringstream lines(out);
  std::string line;
  for (size_t i = 0; i < v.size() && std::getline(lines, line); ++i) {
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) v[i].ids.push_back(id);
  }
  return v;
}

// Tokenizer files only (no weights are needed to read a tokenizer).
VocabData import(testing::TokKind kind, bool pairs, int64_t pad, const std::string& name) {
  const fs::path dir = testing::temp_dir() / ("tok-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  testing::HfModel m;
  m.tok = kind;
  m.pairs_merges = pairs;
  HfConfig cfg;
  cfg.n_vocab = testing::write_tokenizer(dir, m) + pad;
  return read_hf_tokenizer(dir.string(), cfg);
}

void expect_vectors(const VocabData& v, const std::string& name) {
  const Tokenizer tok(v);
  const auto vs = vectors(name);
  ASSERT_EQ(vs.size(), 46u);
  for (const auto& t : vs) EXPECT_EQ(tok.encode(t.text, false, false), t.ids) << "text: '" << t.text << "'";
}

TEST(TokenizerImport, Llama3TokenizerJsonEncodesTheTestVectors) {
  const VocabData v = import(testing::TokKind::Llama3Json, false, 0, "l3");
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "llama-bpe");
  EXPECT_EQ(v.tokens.size(), 128256u);
  EXPECT_EQ(v.merges.size(), 280147u);
  EXPECT_EQ(v.bos, 128000);
  EXPECT_EQ(v.eos, 128001);
  EXPECT_EQ(v.types[128009], TokenType::CONTROL);
  expect_vectors(v, "ggml-vocab-llama-bpe.gguf");
  // Same vocabulary whether merges are "a b" strings, [a, b] pairs, or the tiktoken file.
  const VocabData pairs = import(testing::TokKind::Llama3Json, true, 0, "l3-pairs");
  EXPECT_EQ(pairs.merges, v.merges);
  EXPECT_EQ(pairs.tokens, v.tokens);
  const VocabData tk = import(testing::TokKind::Llama3Tiktoken, false, 0, "l3-tiktoken");
  EXPECT_EQ(tk.tokens, v.tokens);
  EXPECT_EQ(tk.merges, v.merges);
}

TEST(TokenizerImport, SentencePieceModelEncodesTheTestVectors) {
  const VocabData v = import(testing::TokKind::Spm, false, 2, "spm");
  EXPECT_EQ(v.model, "llama");
  EXPECT_EQ(v.tokens.size(), 32002u);
  EXPECT_EQ(v.tokens[32001], "[PAD32001]");
  EXPECT_EQ(v.types[32001], TokenType::UNUSED);
  EXPECT_EQ(v.types[0], TokenType::UNKNOWN);
  EXPECT_EQ(v.types[1], TokenType::CONTROL);
  EXPECT_EQ(v.types[3], TokenType::BYTE);
  EXPECT_EQ(v.unk, 0);
  EXPECT_EQ(v.bos, 1);
  EXPECT_EQ(v.eos, 2);
  const VocabData ref = read_vocab(GgufFile::open(testing::shared_data_dir() + "/ggml-vocab-llama-spm.gguf"));
  EXPECT_TRUE(std::equal(ref.scores.begin(), ref.scores.end(), v.scores.begin()));
  expect_vectors(v, "ggml-vocab-llama-spm.gguf");
}

TEST(TokenizerImport, AddedTokensPaddingSpecialsAndTemplate) {
  const VocabData v = import(testing::TokKind::SmallBpe, false, 3, "small");
  ASSERT_EQ(v.tokens.size(), 256u + 4 + 3 + 3);
  EXPECT_EQ(v.tokens[260], "<|begin_of_text|>");
  EXPECT_EQ(v.types[260], TokenType::CONTROL);
  EXPECT_EQ(v.types[262], TokenType::USER_DEFINED) << "non-special added token";
  EXPECT_EQ(v.types[263], TokenType::UNUSED);
  EXPECT_EQ(v.tokens[265], "[PAD265]");
  EXPECT_EQ(v.bos, 260) << "from tokenizer_config.json bos_token";
  EXPECT_EQ(v.eos, 261) << "from tokenizer_config.json eos_token {content}";
  EXPECT_EQ(v.chat_template, "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}");
  EXPECT_EQ(v.merges, (std::vector<std::string>{"Ġ t", "h e", "Ġt he", "i n"}));
  const Tokenizer tok(v);
  EXPECT_EQ(tok.encode(" the<|user|>", false, false), (std::vector<int32_t>{258, 262}));
}

TEST(TokenizerImport, FalconVocabulariesGetPreFalcon3) {
  const fs::path dir = testing::temp_dir() / "tok-falcon";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto j = testing::small_bpe_tokenizer_json(false);
  const int64_t n = int64_t(j["model"]["vocab"].size() + j["added_tokens"].size());
  j["added_tokens"].push_back({{"id", n}, {"content", ">>TITLE<<"}, {"special", true}});
  j["added_tokens"].push_back({{"id", n + 1}, {"content", ">>ABSTRACT<<"}, {"special", true}});
  testing::write_text(dir / "tokenizer.json", j.dump());
  HfConfig cfg;
  cfg.n_vocab = n + 2;
  EXPECT_EQ(read_hf_tokenizer(dir.string(), cfg).pre, "falcon3");
}

TEST(TokenizerImport, MalformedSentencePieceModelIsAnError) {
  SpmModel m;
  m.model_type = 2;
  m.pieces = {{"<unk>", 0, 2}, {"a", -1, 1}};
  auto bytes = serialize_sentencepiece_model(m);
  const SpmModel back = parse_sentencepiece_model(bytes, "x");
  ASSERT_EQ(back.pieces.size(), 2u);
  EXPECT_EQ(back.pieces[1].piece, "a");
  EXPECT_EQ(back.pieces[1].score, -1.0f);
  EXPECT_EQ(back.model_type, 2);
  bytes.resize(bytes.size() - 3);
  EXPECT_THROW(parse_sentencepiece_model(bytes, "x"), FormatError);
  std::vector<uint8_t> huge_len = {0x0a, 0xff, 0xff, 0xff, 0x0f, 0x00};
  try {
    parse_sentencepiece_model(huge_len, "tok.model");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("tok.model: malformed SentencePiece model at byte"), std::string::npos) << e.what();
  }
  m.model_type = 1;
  const fs::path dir = testing::temp_dir() / "tok-unigram";
  fs::create_directories(dir);
  testing::write_file(dir / "tokenizer.model", serialize_sentencepiece_model(m));
  HfConfig cfg;
  cfg.n_vocab = 2;
  EXPECT_THROW(read_hf_tokenizer(dir.string(), cfg), FormatError);
}

// The BitNet-embedding models' tokenizers (data/tokenizers/, scripts/fetch_tokenizers.sh) against
// their models' embedding rows: Qwen3 151669 tokens → 151936 rows, Gemma 3 262145 → 262144 rows.
// The GGUF vocabulary encodes the reference vectors like the tokenizer directory does.
void expect_embedding_tokenizer(const std::string& name, int64_t rows, size_t n_tokens) {
  // The vectors are checked against the tokenizer directory in tests/tokenizer/test_hf_vectors.cpp.
  const std::string dir = testing::shared_data_dir() + "/tokenizers/" + name;
  ASSERT_TRUE(fs::exists(dir + "/tokenizer.json")) << dir << "/tokenizer.json is missing: run scripts/fetch_tokenizers.sh";
  HfConfig cfg;
  cfg.n_vocab = rows;
  const VocabData v = read_hf_tokenizer(dir, cfg);
  ASSERT_EQ(v.tokens.size(), size_t(rows));
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  write_vocab(w, v);
  const std::vector<uint8_t> bytes = w.write_to_memory();
  const VocabData back = read_vocab(GgufFile::parse(bytes));
  EXPECT_EQ(back.tokens, v.tokens);
  EXPECT_EQ(back.scores, v.scores);
  EXPECT_EQ(back.types, v.types);
  EXPECT_EQ(back.add_space_prefix, v.add_space_prefix);
  const Tokenizer tok(back), ref(vocab_from_hf_tokenizer(dir));
  EXPECT_EQ(size_t(ref.n_tokens()), n_tokens);
  const auto doc = nlohmann::json::parse(std::ifstream(testing::shared_data_dir() + "/hf-tokenizer-vectors." + name + ".json"));
  for (const auto& t : doc["tests"]) {
    const std::string text = t["text"].get<std::string>();
    EXPECT_EQ(tok.encode(text, false, true), t["ids"].get<std::vector<int32_t>>()) << name << ": " << text;
    EXPECT_EQ(tok.encode(text, true, true), t["ids_special"].get<std::vector<int32_t>>()) << name << ": " << text;
  }
}

TEST(TokenizerImport, Qwen3TokenizerIsPaddedToTheEmbeddingRows) {
  expect_embedding_tokenizer("qwen3", 151936, 151669);
  HfConfig cfg;
  cfg.n_vocab = 151936;
  const VocabData v = read_hf_tokenizer(testing::shared_data_dir() + "/tokenizers/qwen3", cfg);
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "qwen2");
  EXPECT_EQ(v.tokens[151669], "[PAD151669]");
  EXPECT_EQ(v.types[151935], TokenType::UNUSED);
  EXPECT_EQ(v.eos, 151645);
  EXPECT_EQ(v.pad, 151643);
  EXPECT_EQ(v.bos, -1);
  EXPECT_FALSE(v.add_bos);
}

TEST(TokenizerImport, Gemma3TokenizerDropsTheAddedTokenPastTheEmbeddingRows) {
  expect_embedding_tokenizer("gemma3", 262144, 262145);
  HfConfig cfg;
  cfg.n_vocab = 262144;
  const VocabData v = read_hf_tokenizer(testing::shared_data_dir() + "/tokenizers/gemma3", cfg);
  EXPECT_EQ(v.model, "llama");
  EXPECT_EQ(v.tokens.back(), "<unused6241>");
  EXPECT_EQ(v.bos, 2);
  EXPECT_EQ(v.eos, 106);
  EXPECT_TRUE(v.add_bos);
  // Fewer rows than vocabulary entries is still an error.
  cfg.n_vocab = 262000;
  EXPECT_THROW(read_hf_tokenizer(testing::shared_data_dir() + "/tokenizers/gemma3", cfg), FormatError);
}

}  // namespace
}  // namespace bitnet
