#pragma once
// Tokenizer::Impl, shared by tokenizer.cpp, bpe.cpp and spm.cpp.
#include <unordered_map>

#include "tokenizer/internal.h"

namespace bitnet {

struct Tokenizer::Impl {
  enum class Algo { BPE, SPM };

  VocabData v;
  Algo algo = Algo::BPE;
  tok::PreKind pre = tok::PreKind::Llama3;
  std::string pre_name;
  bool ignore_merges = false;
  bool add_space_prefix = false;  // SPM

  std::unordered_map<std::string_view, int32_t> text_to_id;  // first id for each text
  struct MergeInfo {
    int32_t rank;
    int32_t result;  // id of the concatenation, -1 if it is not a token
  };
  std::unordered_map<uint64_t, MergeInfo> merges;  // (left id << 32 | right id) -> info
  std::array<int32_t, 256> byte_token{};  // BPE: id of the single-byte token; SPM: <0xXX> id
  std::vector<std::string> pieces;         // decoded bytes of every token
  std::vector<int32_t> specials;           // CONTROL/USER_DEFINED/UNKNOWN, longest text first
  std::vector<int32_t> eog;                // sorted
  int32_t eot = -1;

  int32_t find(std::string_view text) const {
    auto it = text_to_id.find(text);
    return it == text_to_id.end() ? -1 : it->second;
  }
  TokenType type(int32_t id) const { return v.types[static_cast<size_t>(id)]; }

  void build();  // tokenizer.cpp
  void build_bpe();  // bpe.cpp
  void build_spm();  // spm.cpp
  // Tokenize one text fragment (already free of special tokens).
  void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;  // bpe.cpp
  void encode_spm(std::string_view text, bool prefix, std::vector<int32_t>& out) const;  // spm.cpp
};

}  // namespace bitnet
