#pragma once
// A minimal reader (and, for tests, writer) of SentencePiece's `tokenizer.model`, a serialized
// protobuf ModelProto. Only the fields a GGUF vocabulary needs are decoded:
//   ModelProto     1: repeated SentencePiece pieces, 2: TrainerSpec, 3: NormalizerSpec
//   SentencePiece  1: piece (string), 2: score (float), 3: type (1 normal, 2 unknown, 3 control,
//                  4 user defined, 5 unused, 6 byte)
//   TrainerSpec    3: model_type (1 unigram [proto default], 2 bpe, 3 word, 4 char),
//                  35: byte_fallback, 40..43: unk/bos/eos/pad id
//   NormalizerSpec 3: add_dummy_prefix (default true), 4: remove_extra_whitespaces (default true)
// Unknown fields are skipped by wire type, so newer files parse too.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace bitnet {

struct SpmPiece {
  std::string piece;
  float score = 0;
  int32_t type = 1;
};

struct SpmModel {
  std::vector<SpmPiece> pieces;
  int32_t model_type = 1;  // proto default: UNIGRAM
  bool byte_fallback = false;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
};

// Throws FormatError naming `name` and the byte offset of a malformed field.
SpmModel parse_sentencepiece_model(std::span<const uint8_t> bytes, const std::string& name);
std::vector<uint8_t> serialize_sentencepiece_model(const SpmModel& model);

}  // namespace bitnet
