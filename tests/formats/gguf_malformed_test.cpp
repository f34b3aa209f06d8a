// Malformed GGUF files (shared/spec/gguf.md §10): each class is built byte by byte and must be
// rejected with a FormatError whose message is specific to that class.
#include <gtest/gtest.h>

#include <limits>

#include "formats/gguf.h"
#include "gguf_test_util.h"

namespace bitnet {
namespace {

using test::GgufBytes;

constexpr uint32_t kF32 = 0, kQ8_0 = 8, kI2_S = 36, kTL2 = 39;
constexpr uint32_t kTypeU32 = 4, kTypeI32 = 5, kTypeBool = 7, kTypeString = 8, kTypeArray = 9,
                   kTypeU64 = 10;

struct MalformedCase {
  std::string name;
  std::vector<uint8_t> bytes;
  std::string expect;  // substring of the error message, unique to this class
};
// Keeps gtest/ctest output readable (otherwise it dumps the struct's bytes).
void PrintTo(const MalformedCase& c, std::ostream* os) { *os << c.name; }

// A file with one tensor info, the data section padded to 32 and `data` zero bytes of data.
std::vector<uint8_t> one_tensor(std::string_view name, const std::vector<uint64_t>& ne,
                                uint32_t type, uint64_t offset, size_t data = 4096) {
  return GgufBytes().header(1, 0).tensor(name, ne, type, offset).pad(32).zeros(data).bytes;
}

// A KV section with one entry whose value bytes follow the key and type tag.
GgufBytes one_kv(std::string_view key, uint32_t type) {
  GgufBytes b;
  b.header(0, 1).str(key).u32(type);
  return b;
}

std::vector<MalformedCase> malformed_cases() {
  const uint64_t huge = uint64_t(1) << 40;
  std::vector<MalformedCase> c;
  auto add = [&](std::string name, std::vector<uint8_t> bytes, std::string expect) {
    c.push_back({std::move(name), std::move(bytes), std::move(expect)});
  };
  // 1: magic, version, header
  add("BadMagic", GgufBytes().raw("GGML").u32(3).u64(0).u64(0).bytes, "bad magic");
  add("EmptyFile", {}, "empty file (0 bytes)");
  add("TruncatedHeader", GgufBytes().raw("GGUF").u32(3).u64(0).bytes,
      "truncated header: file is 16 bytes");
  add("TinyFile", GgufBytes().raw("GG").bytes, "truncated header: file is 2 bytes");
  add("Version0", GgufBytes().header(0, 0, 0).bytes, "unsupported GGUF version 0");
  add("Version1", GgufBytes().header(0, 0, 1).bytes, "GGUF version 1 (32-bit counts)");
  add("Version99", GgufBytes().header(0, 0, 99).bytes, "unsupported GGUF version 99");
  add("BigEndian", GgufBytes().header(0, 0, 0x03000000).bytes, "big-endian GGUF file");
  // Truncation inside the sections.
  add("TruncatedInKv",
      GgufBytes().header(0, 2).kv_str("general.name", "a reasonably long name").str("abc").u32(4).bytes,
      "file truncated in metadata entry #1 ('abc')");
  add("TruncatedInTensorInfo",
      GgufBytes().header(1, 0).str("blk.0.attn_q.weight").u32(2).u64(4).u64(4).bytes,
      "file truncated in tensor info #0 ('blk.0.attn_q.weight')");
  // 2: counts larger than the file could hold
  add("KvCountHuge", GgufBytes().header(0, huge).zeros(64).bytes,
      "kv_count 1099511627776 is larger than the 64 remaining bytes");
  // Millions of tiny entries fit the byte bound but cost gigabytes to hold (found by a hand probe).
  add("KvCountAboveLimit", GgufBytes().header(0, 70000).zeros(70000 * 13).bytes,
      "kv_count 70000 is above the limit of 65536 metadata entries");
  add("TensorCountHuge", GgufBytes().header(huge, 0).zeros(64).bytes,
      "tensor_count 1099511627776 is larger than the 64 remaining bytes");
  add("TensorCountHugeAfterKv",
      GgufBytes().header(1, 1).kv_str("k", std::string(40, 'x')).bytes,
      "bytes left after the metadata could hold");
  // 6: string / array lengths beyond the remaining bytes
  add("KeyLengthHuge", GgufBytes().header(0, 1).u64(uint64_t(1) << 60).zeros(16).bytes,
      "key length 1152921504606846976 exceeds the remaining 16 bytes");
  add("StringValueLengthHuge", one_kv("k", kTypeString).u64(uint64_t(1) << 60).bytes,
      "string value length 1152921504606846976 exceeds the remaining 0 bytes");
  add("ArrayCountHuge", one_kv("k", kTypeArray).u32(kTypeU32).u64(uint64_t(1) << 61).zeros(8).bytes,
      "array count 2305843009213693952 of UINT32 exceeds");
  add("StringArrayCountHuge", one_kv("k", kTypeArray).u32(kTypeString).u64(1000).zeros(100).bytes,
      "array count 1000 of STRING exceeds what the remaining 100 bytes can hold");
  // Value type tags
  add("UnknownValueType", one_kv("k", 13).u32(0).bytes, "key 'k': unknown value type 13");
  add("UnknownArrayElementType", one_kv("k", kTypeArray).u32(77).u64(0).bytes,
      "key 'k': unknown array element type 77");
  add("ArrayOfArrays", one_kv("k", kTypeArray).u32(kTypeArray).u64(1).u32(kTypeU32).u64(0).bytes,
      "key 'k': array of arrays is not supported");
  add("BoolValue2", one_kv("k", kTypeBool).u8(2).bytes, "key 'k': invalid BOOL value 2 (must");
  add("BoolArrayValue2", one_kv("k", kTypeArray).u32(kTypeBool).u64(2).u8(1).u8(2).bytes,
      "invalid BOOL value 2 in array element #1");
  add("Uint64ArrayAboveInt64Max",
      one_kv("k", kTypeArray).u32(kTypeU64).u64(2).u64(1).u64(uint64_t(1) << 63).bytes,
      "UINT64 array element #1 = 9223372036854775808 exceeds INT64_MAX");
  // 8: keys and names
  add("EmptyKey", GgufBytes().header(0, 1).str("").u32(kTypeU32).u32(1).bytes,
      "metadata entry #0 has an empty key");
  add("DuplicateKey", GgufBytes().header(0, 2).kv_u32("general.x", 1).kv_u32("general.x", 2).bytes,
      "duplicate key 'general.x' (metadata entry #1)");
  add("DuplicateTensorName",
      GgufBytes().header(2, 0).tensor("w", {8}, kF32, 0).tensor("w", {8}, kF32, 32).pad(32).zeros(64).bytes,
      "duplicate tensor name 'w' (tensor info #1)");
  add("EmptyTensorName", one_tensor("", {4}, kF32, 0), "tensor info #0 has an empty name");
  add("TensorName64Bytes", one_tensor(std::string(64, 'n'), {4}, kF32, 0),
      "is 64 bytes long (limit 63)");
  // 9: alignment
  add("AlignmentWrongType", one_kv("general.alignment", kTypeI32).u32(32).bytes,
      "key 'general.alignment' must be UINT32, found INT32");
  add("AlignmentZero", one_kv("general.alignment", kTypeU32).u32(0).bytes,
      "key 'general.alignment' is zero");
  add("AlignmentNotPowerOfTwo", one_kv("general.alignment", kTypeU32).u32(48).bytes,
      "key 'general.alignment' = 48 is not a power of two");
  add("MisalignedOffset",
      GgufBytes().header(2, 0).tensor("a", {4}, kF32, 0).tensor("b", {4}, kF32, 16).pad(32).zeros(64).bytes,
      "tensor 'b': offset 16 is not a multiple of the alignment 32");
  add("MisalignedForCustomAlignment",
      GgufBytes().header(1, 1).kv_u32("general.alignment", 64).tensor("a", {4}, kF32, 32).pad(64).zeros(128).bytes,
      "tensor 'a': offset 32 is not a multiple of the alignment 64");
  // 13 and 3/4: shapes and types
  add("NDims0", GgufBytes().header(1, 0).str("w").u32(0).zeros(40).bytes,
      "tensor 'w': n_dims 0 out of range 1..4");
  add("NDims5", GgufBytes().header(1, 0).str("w").u32(5).zeros(60).bytes,
      "tensor 'w': n_dims 5 out of range 1..4");
  add("ZeroDimension", one_tensor("w", {4, 0}, kF32, 0), "tensor 'w': dimension ne[1] is 0");
  add("ElementCountOverflow", one_tensor("w", {(uint64_t(1) << 42) + 1, uint64_t(1) << 22}, kF32, 0),
      "element count of shape [4398046511105, 4194304] overflows int64");
  add("DimensionAboveInt64Max", one_tensor("w", {std::numeric_limits<uint64_t>::max()}, kF32, 0),
      "dimension ne[0] = 18446744073709551615 exceeds INT64_MAX");
  add("ByteSizeOverflow", one_tensor("w", {uint64_t(1) << 62}, kF32, 0), "byte size overflows");
  add("UnknownTypeId4", one_tensor("w", {4}, 4, 0), "tensor 'w': unknown ggml type id 4");
  add("UnknownTypeId200", one_tensor("w", {4}, 200, 0), "tensor 'w': unknown ggml type id 200");
  add("RowNotMultipleOfBlock", one_tensor("w", {33, 2}, kQ8_0, 0),
      "tensor 'w' of type Q8_0 shape [33, 2]: row length ne0 = 33 is not a multiple of the block size 32");
  add("I2SCountNotMultipleOf4", one_tensor("w", {3}, kI2_S, 0),
      "element count is not a multiple of 4");
  add("TL2RowTooShort", one_tensor("w", {128, 2}, kTL2, 0), "TL2 needs a row length ne0 of at least 256");
  // 5: data placement
  add("DataPastEof", one_tensor("blk.0.attn_k.weight", {256, 4}, kF32, 0, 100),
      "extends past end of file");
  add("OffsetOverflow", one_tensor("w", {4}, kF32, 0xFFFFFFFFFFFFFFE0ull),
      "+ size 16 overflows 64 bits");
  // 15: overlap
  add("OverlappingTensors",
      GgufBytes().header(2, 0).tensor("a", {16}, kF32, 0).tensor("b", {16}, kF32, 32).pad(32).zeros(128).bytes,
      "tensor 'b' (offset 32) overlaps tensor 'a'");
  return c;
}

class GgufMalformed : public ::testing::TestWithParam<MalformedCase> {};

std::string rejection_message(const std::vector<uint8_t>& bytes) {
  try {
    GgufFile::parse(bytes, "bad.gguf");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "<accepted>";
}

TEST_P(GgufMalformed, RejectedWithSpecificMessage) {
  const MalformedCase& c = GetParam();
  // An exact-size heap copy, so the sanitizers see any read past the end.
  const std::vector<uint8_t> bytes = c.bytes;
  const std::string msg = rejection_message(bytes);
  EXPECT_NE(msg.find(c.expect), std::string::npos) << "message: " << msg;
  EXPECT_EQ(msg.rfind("bad.gguf: ", 0), 0u) << msg;
}

INSTANTIATE_TEST_SUITE_P(Classes, GgufMalformed, ::testing::ValuesIn(malformed_cases()),
                         [](const auto& info) { return info.param.name; });

// Each class has its own message: no case's expected substring appears in another's message.
TEST(GgufMalformedMessages, AreDistinctPerClass) {
  const auto cases = malformed_cases();
  EXPECT_GE(cases.size(), 24u);
  std::vector<std::string> msgs;
  for (const auto& c : cases) msgs.push_back(rejection_message(c.bytes));
  for (size_t i = 0; i < cases.size(); ++i) {
    for (size_t j = 0; j < cases.size(); ++j) {
      if (i != j) {
        EXPECT_EQ(msgs[j].find(cases[i].expect), std::string::npos)
            << cases[i].name << "'s text appears in " << cases[j].name << ": " << msgs[j];
      }
    }
  }
}

TEST(GgufMalformedMessages, PastEofMessageNamesTensorAndRange) {
  const auto bytes = one_tensor("blk.0.attn_k.weight", {256, 4}, kF32, 0, 100);
  EXPECT_EQ(rejection_message(bytes).substr(0),
            "bad.gguf: tensor 'blk.0.attn_k.weight': data [96, 4192) extends past end of file "
            "(196 bytes)");
}

// ---- files that must be accepted ---------------------------------------------------------------

TEST(GgufAccepted, EdgeCases) {
  // Version 2 has the same layout.
  EXPECT_EQ(GgufFile::parse(GgufBytes().header(0, 0, 2).bytes).version(), 2u);
  // No tensors: the file may end right after the KV section, before data_start.
  const auto vocab = GgufBytes().header(0, 1).kv_u32("k", 1).bytes;
  const GgufFile v = GgufFile::parse(vocab);
  EXPECT_GT(v.data_start(), vocab.size());
  // Missing pad after the last tensor, tensor infos not in offset order, a type this engine
  // cannot compute (Q4_K = 12), TL2 with its hidden scale slot.
  const auto bytes = GgufBytes()
                         .header(3, 0)
                         .tensor("late", {4}, kF32, 352)
                         .tensor("q4k", {256}, 12, 0)
                         .tensor("tl2", {256, 1}, kTL2, 160)
                         .pad(32)
                         .zeros(352 + 16)
                         .bytes;
  const GgufFile f = GgufFile::parse(bytes);
  EXPECT_EQ(f.find_tensor("q4k")->nbytes, 144u);
  EXPECT_EQ(f.find_tensor("tl2")->nbytes, 96u);  // 64 packed + 32-byte scale slot
  EXPECT_EQ(f.tensor_data(*f.find_tensor("late")) + 16, bytes.data() + bytes.size());
}

// ---- truncation at every byte ------------------------------------------------------------------

void expect_every_prefix_rejected(const std::vector<uint8_t>& full, uint64_t accept_from) {
  for (size_t cut = 0; cut < full.size(); ++cut) {
    const std::vector<uint8_t> prefix(full.begin(), full.begin() + cut);
    if (cut >= accept_from) {
      EXPECT_NO_THROW(GgufFile::parse(prefix)) << "cut at " << cut;
    } else {
      EXPECT_THROW(GgufFile::parse(prefix), FormatError) << "cut at " << cut;
    }
  }
  EXPECT_NO_THROW(GgufFile::parse(full));
}

TEST(GgufTruncation, EveryPrefixOfAFileWithTensorsIsRejected) {
  GgufWriter w;
  w.add_string("general.architecture", "bitnet-b1.58");
  w.add_u32("bitnet-b1.58.block_count", 1);
  w.add_f32("eps", 1e-5f);
  w.add_bool("flag", true);
  w.add_string_array("tokens", {"a", "", "ccc"});
  w.add_f32_array("scores", {0.5f, -1.0f});
  w.add_i32_array("types", {1, 2, 3});
  w.add_tensor_bytes("norm", GgmlType::F32, {5}, std::vector<uint8_t>(20, 1));
  w.add_tensor_bytes("w", GgmlType::I2_S, {128, 1}, std::vector<uint8_t>(64, 2));
  w.add_tensor_bytes("last", GgmlType::F16, {3}, std::vector<uint8_t>(6, 3));
  const auto full = w.write_to_memory();
  const GgufFile f = GgufFile::parse(full);
  const GgufTensorInfo& last = *f.find_tensor("last");
  // Only the zero pad after the last tensor may be cut off.
  expect_every_prefix_rejected(full, f.data_start() + last.offset + last.nbytes);
}

TEST(GgufTruncation, EveryPrefixOfAZeroTensorFileIsRejected) {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "x"});
  w.add_bool("tokenizer.ggml.add_bos_token", false);
  const auto full = w.write_to_memory();
  expect_every_prefix_rejected(full, full.size());
}

}  // namespace
}  // namespace bitnet
