#pragma once
// Internal helpers of the tokenizer module (not part of the public contract).
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace bitnet::tok {

// ---- unicode.cpp -------------------------------------------------------------------------------
enum class UClass : uint8_t { L, N, P, S, M, Z, C, U };
UClass uclass(uint32_t cp);  // from the generated table (unicode-categories.tsv)
inline bool is_letter(uint32_t cp) { return uclass(cp) == UClass::L; }
inline bool is_number(uint32_t cp) { return uclass(cp) == UClass::N; }
bool is_space(uint32_t cp);  // the 25 code points of tokenizers.md §2.6
void append_utf8(std::string& out, uint32_t cp);
// Decodes UTF-8. Invalid input is mapped consistently: every byte that does not start a complete,
// well-formed sequence (bad lead byte, truncated or overlong sequence, surrogate, > U+10FFFF)
// becomes one U+FFFD and decoding resumes at the next byte.
std::vector<uint32_t> decode_utf8(std::string_view s);
// Re-encodes decode_utf8(s) (identity for valid UTF-8).
std::string sanitize_utf8(std::string_view s);
bool is_valid_utf8(std::string_view s);

// ---- pretokenize.cpp ---------------------------------------------------------------------------
enum class PreKind { Llama3, Qwen2, Default };
using Range = std::pair<size_t, size_t>;  // [begin, end) in code points
std::vector<Range> pretokenize(PreKind kind, std::span<const uint32_t> cps);

// ---- bpe.cpp -----------------------------------------------------------------------------------
// §2.1 byte <-> code point table.
uint32_t byte_to_cp(uint8_t b);
int cp_to_byte(uint32_t cp);  // -1 if outside the table
std::string bytes_to_bpe_text(std::string_view bytes);
// Inverse: bytes of a token text; code points outside the table are copied as UTF-8.
std::string bpe_text_to_bytes(std::string_view text);

// ---- vocab validation (tokenizer.cpp) ----------------------------------------------------------
// Checks array lengths, token count, special ids, token types and BYTE token texts. Throws
// FormatError. Does not check merges (see check_merges).
void validate_vocab(const VocabData& v);
// Splits a merge entry at the first space that is not the first character. false if none.
bool split_merge(std::string_view m, std::string_view& left, std::string_view& right);
// Validates every merge (separator present, both parts known tokens). Throws FormatError.
void check_merges(const VocabData& v);
// Parses "<0xHH>" (two hex digits); -1 if malformed.
int parse_byte_token(std::string_view text);

}  // namespace bitnet::tok
