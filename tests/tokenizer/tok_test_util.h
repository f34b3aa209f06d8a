#pragma once
// Shared helpers of the tokenizer tests.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace bitnet::test {

// The repository's data/ (data/README.md), or $BITNET_SHARED_DATA.
inline std::string data_dir() {
  if (const char* d = std::getenv("BITNET_SHARED_DATA"); d && *d) return d;
  return std::string(BITNET_SOURCE_DIR) + "/data";
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Vector {
  std::string text;
  std::vector<int32_t> ids;
};

// Reads NAME.inp / NAME.out (format: data/README.md).
inline std::vector<Vector> load_vectors(const std::string& name) {
  const std::string inp = read_file(data_dir() + "/" + name + ".inp");
  const std::string out = read_file(data_dir() + "/" + name + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<Vector> v;
  for (size_t pos = 0;;) {
    const size_t hit = inp.find(sep, pos);
    if (hit == std::string::npos) break;
    v.push_back(Vector{inp.substr(pos, hit - pos), {}});
    pos = hit + sep.size();
  }
  std::istringstream lines(out);
  std::string line;
  for (size_t i = 0; i < v.size() && std::getline(lines, line); ++i) {
    std::istringstream ids(line);
    int32_t id;
    while (ids >> id) v[i].ids.push_back(id);
  }
  return v;
}

// Wall-clock milliseconds of the one-time builds below (printed by a test).
inline double& tiktoken_ms() {
  static double ms = -1;
  return ms;
}
inline double& llama3_build_ms() {
  static double ms = -1;
  return ms;
}

// The Llama-3 vocabulary from the tiktoken file, built once per test process.
inline const VocabData& llama3_vocab() {
  static const VocabData v = [] {
    const auto t0 = std::chrono::steady_clock::now();
    VocabData r = vocab_from_tiktoken(data_dir() + "/llama3-tokenizer.tiktoken");
    tiktoken_ms() = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return r;
  }();
  return v;
}
// The Llama-3 tokenizer, built once, from the vocab with `pre` removed (like the official 2B-4T
// GGUF) so that it exercises the "missing pre + Llama-3 vocab -> llama-bpe" rule.
inline const Tokenizer& llama3_tokenizer() {
  static const Tokenizer t = [] {
    VocabData v = llama3_vocab();
    v.pre.clear();
    const auto t0 = std::chrono::steady_clock::now();
    Tokenizer r(std::move(v));
    llama3_build_ms() = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return r;
  }();
  return t;
}

// A tiny byte-level BPE vocab: the 256 single bytes of the Llama-3 vocab (ids 0..255), then
// 256 "Ġw", 257 "or", 258 "ld", 259 "Ġwor", 260 "Ġworld", 261 "<|bos|>" (CONTROL),
// 262 "<|eot_id|>" (CONTROL), 263 "33", 264 "<|user_def|>" (NORMAL).
inline VocabData tiny_bpe_vocab() {
  VocabData v;
  v.model = "gpt2";
  v.pre = "llama-bpe";
  const VocabData& l3 = llama3_vocab();
  for (size_t i = 0; i < 256; ++i) v.tokens.push_back(l3.tokens[i]);
  for (const char* t : {"Ġw", "or", "ld", "Ġwor", "Ġworld", "<|bos|>", "<|eot_id|>", "33", "<|user_def|>"})
    v.tokens.push_back(t);
  v.types.assign(v.tokens.size(), TokenType::NORMAL);
  v.types[261] = v.types[262] = TokenType::CONTROL;
  v.scores.assign(v.tokens.size(), 0.0f);
  v.merges = {"Ġ w", "o r", "l d", "Ġw or", "Ġwor ld", "3 3"};
  v.bos = 261;
  v.eos = 262;
  v.pad = 262;
  v.add_bos = true;
  return v;
}

}  // namespace bitnet::test
