#pragma once
// Shared helpers of the tokenizer tests.
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace bitnet::test {

inline std::string data_dir() {
  if (const char* d = std::getenv("BITNET_SHARED_DATA"); d && *d) return d;
  return std::string(BITNET_SOURCE_DIR) + "/../shared/data";
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

// Reads NAME.inp / NAME.out (format: shared/data/README.md).
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

// The Llama-3 vocabulary from the tiktoken file, built once per test process.
inline const VocabData& llama3_vocab() {
  static const VocabData v = vocab_from_tiktoken(data_dir() + "/llama3-tokenizer.tiktoken");
  return v;
}
inline const Tokenizer& llama3_tokenizer() {
  static const Tokenizer t(llama3_vocab());
  return t;
}

}  // namespace bitnet::test
