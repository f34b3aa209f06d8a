#pragma once
// Tokenizer::Impl, shared by tokenizer.cpp, bpe.cpp and spm.cpp.
#include "tokenizer/flat_map.h"
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

  tok::TextIdMap text_to_id;  // first id for each text
  tok::PairMap merges;        // (left id, right id) -> (rank, id of the concatenation or -1)
  std::array<int32_t, 256> byte_token{};  // BPE: id of the single-byte token; SPM: <0xXX> id
  std::vector<std::string> pieces;         // decoded bytes of every token
  std::vector<int32_t> specials;           // CONTROL/USER_DEFINED/UNKNOWN, longest text first
  std::vector<int32_t> eog;                // sorted
  int32_t eot = -1;

  int32_t find(std::string_view text) const { return text_to_id.find(text); }
  TokenType type(int32_t id) const { return v.types[static_cast<size_t>(id)]; }

  void build();  // tokenizer.cpp
  void build_bpe();  // bpe.cpp
  void build_spm();  // spm.cpp
  // Tokenize one text fragment (already free of special tokens).
  void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;  // bpe.cpp
  void encode_spm(std::string_view text, bool prefix, std::vector<int32_t>& out) const;  // spm.cpp
};

}  // namespace bitnet
