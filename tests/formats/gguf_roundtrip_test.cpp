// GGUF writer -> reader round trips, the shared vocab-only file, typed getters, file I/O.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "output_files.h"
#include "formats/gguf.h"
#include "gguf_test_util.h"

namespace bitnet {
namespace {

using test::expect_same_value;

GgufValue arr(GgufValueType elem, std::vector<int64_t> ints) {
  GgufArray a;
  a.elem_type = elem;
  a.ints = std::move(ints);
  return GgufValue{GgufValueType::ARRAY, std::move(a)};
}

// Every scalar type, arrays of every element type, odd strings, empty containers.
std::vector<GgufKV> all_value_kinds() {
  using T = GgufValueType;
  std::vector<GgufKV> kvs;
  auto add = [&](std::string k, GgufValue v) { kvs.push_back(GgufKV{std::move(k), std::move(v)}); };
  add("s.u8", {T::UINT8, uint64_t(200)});
  add("s.i8", {T::INT8, int64_t(-100)});
  add("s.u16", {T::UINT16, uint64_t(60000)});
  add("s.i16", {T::INT16, int64_t(-30000)});
  add("s.u32", {T::UINT32, uint64_t(4000000000u)});
  add("s.i32", {T::INT32, int64_t(-2000000000)});
  add("s.f32", {T::FLOAT32, 1.5});
  add("s.bool_t", {T::BOOL, true});
  add("s.bool_f", {T::BOOL, false});
  add("s.str", {T::STRING, std::string("a\0b\xff\n\"'", 7)});
  add("s.empty_str", {T::STRING, std::string()});
  add("s.u64", {T::UINT64, std::numeric_limits<uint64_t>::max()});
  add("s.i64", {T::INT64, std::numeric_limits<int64_t>::min()});
  add("s.f64", {T::FLOAT64, 3.141592653589793});
  add("a.u8", arr(T::UINT8, {0, 1, 255}));
  add("a.i8", arr(T::INT8, {-128, 0, 127}));
  add("a.u16", arr(T::UINT16, {0, 65535}));
  add("a.i16", arr(T::INT16, {-32768, 32767}));
  add("a.u32", arr(T::UINT32, {0, 4294967295}));
  add("a.i32", arr(T::INT32, {-2147483648LL, 2147483647}));
  add("a.u64", arr(T::UINT64, {0, std::numeric_limits<int64_t>::max()}));
  add("a.i64", arr(T::INT64, {std::numeric_limits<int64_t>::min(), -1, 5}));
  add("a.empty_u8", arr(T::UINT8, {}));
  GgufArray f32{T::FLOAT32, {}, {0.25, -1e-5f, 3e38f}, {}, {}};
  add("a.f32", {T::ARRAY, f32});
  GgufArray f64{T::FLOAT64, {}, {1e-300, -2.5}, {}, {}};
  add("a.f64", {T::ARRAY, f64});
  GgufArray bools{T::BOOL, {}, {}, {true, false, true}, {}};
  add("a.bool", {T::ARRAY, bools});
  GgufArray strs{T::STRING, {}, {}, {}, {"", std::string("x\0y", 3), "\xff\xfe", "plain"}};
  add("a.str", {T::ARRAY, strs});
  GgufArray empty_strs{T::STRING, {}, {}, {}, {}};
  add("a.empty_str", {T::ARRAY, empty_strs});
  return kvs;
}

struct TensorSpec {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
};

const std::vector<TensorSpec>& tensor_specs() {
  static const std::vector<TensorSpec> specs = {
      {"t.f32", GgmlType::F32, {7, 3}},
      {"t.f16", GgmlType::F16, {16}},
      {"blk.0.attn_q.weight", GgmlType::I2_S, {128, 4}},
      {"t.tq2", GgmlType::TQ2_0, {256, 2, 1}},
      {"t.q8", GgmlType::Q8_0, {64, 3, 2, 1}},
      {"t.q4k", GgmlType::Q4_K, {256}},  // known to the format, not computable: still parsed
      {"t.tl2", GgmlType::TL2, {256, 2}},
  };
  return specs;
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

uint64_t nbytes_of(const TensorSpec& s) {
  std::array<int64_t, 4> ne = {1, 1, 1, 1};
  for (size_t i = 0; i < s.ne.size(); ++i) ne[i] = s.ne[i];
  return *ggml_tensor_nbytes(s.type, ne);
}

GgufWriter make_writer(uint32_t align) {
  GgufWriter w(align);
  for (auto& kv : all_value_kinds()) w.add(kv.key, kv.value);
  w.add_string("general.architecture", "bitnet-b1.58");  // added last, written first
  uint32_t seed = 1;
  for (const auto& s : tensor_specs()) {
    w.add_tensor_bytes(s.name, s.type, s.ne, random_bytes(nbytes_of(s), seed++));
  }
  return w;
}

void check_round_trip(uint32_t align) {
  SCOPED_TRACE("alignment " + std::to_string(align));
  const std::vector<uint8_t> bytes = make_writer(align).write_to_memory();
  const GgufFile f = GgufFile::parse(bytes);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), align);
  EXPECT_EQ(f.file_size(), bytes.size());
  EXPECT_EQ(f.data_start() % align, 0u);
  EXPECT_EQ(bytes.size() % align, 0u);  // padded after the last tensor too

  // Metadata: architecture first, then general.alignment if non-default, then insertion order.
  std::vector<GgufKV> expected;
  expected.push_back({"general.architecture", {GgufValueType::STRING, std::string("bitnet-b1.58")}});
  if (align != 32) expected.push_back({"general.alignment", {GgufValueType::UINT32, uint64_t(align)}});
  for (auto& kv : all_value_kinds()) expected.push_back(kv);
  ASSERT_EQ(f.metadata().size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(f.metadata()[i].key, expected[i].key);
    expect_same_value(f.metadata()[i].value, expected[i].value, expected[i].key);
  }

  ASSERT_EQ(f.tensors().size(), tensor_specs().size());
  uint32_t seed = 1;
  uint64_t expected_offset = 0;
  for (size_t i = 0; i < tensor_specs().size(); ++i) {
    const TensorSpec& s = tensor_specs()[i];
    const GgufTensorInfo& t = f.tensors()[i];
    SCOPED_TRACE(s.name);
    EXPECT_EQ(t.name, s.name);
    EXPECT_EQ(t.type, s.type);
    ASSERT_EQ(t.n_dims, s.ne.size());
    for (size_t d = 0; d < 4; ++d) EXPECT_EQ(t.ne[d], d < s.ne.size() ? s.ne[d] : 1);
    EXPECT_EQ(t.nbytes, nbytes_of(s));
    EXPECT_EQ(t.offset, expected_offset);
    expected_offset += (t.nbytes + align - 1) / align * align;
    const std::vector<uint8_t> want = random_bytes(t.nbytes, seed++);
    EXPECT_EQ(std::vector<uint8_t>(f.tensor_data(t), f.tensor_data(t) + t.nbytes), want);
    // Padding after the tensor is zero.
    const uint8_t* end = f.tensor_data(t) + t.nbytes;
    const uint8_t* next = bytes.data() + f.data_start() + expected_offset;
    for (const uint8_t* p = end; p < next; ++p) ASSERT_EQ(*p, 0);
    const TensorView v = f.view(s.name);
    EXPECT_TRUE(v.valid());
    EXPECT_EQ(v.data, f.tensor_data(t));
    EXPECT_EQ(v.nbytes, t.nbytes);
    EXPECT_EQ(v.ne, t.ne);
  }
  EXPECT_EQ(f.data_start() + expected_offset, bytes.size());

  // Re-writing the parsed file reproduces it byte for byte.
  GgufWriter w2(f.alignment());
  for (const auto& kv : f.metadata()) w2.add(kv.key, kv.value);
  for (const auto& t : f.tensors()) {
    std::vector<int64_t> ne(t.ne.begin(), t.ne.begin() + t.n_dims);
    w2.add_tensor_bytes(t.name, t.type, ne,
                        std::vector<uint8_t>(f.tensor_data(t), f.tensor_data(t) + t.nbytes));
  }
  EXPECT_EQ(w2.write_to_memory(), bytes);
}

TEST(GgufRoundTrip, DefaultAlignment) { check_round_trip(32); }
TEST(GgufRoundTrip, NonDefaultAlignments) {
  check_round_trip(64);
  check_round_trip(1);
  check_round_trip(256);
}

TEST(GgufRoundTrip, ZeroTensorFileHasNoPadding) {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("x", 7);
  const auto bytes = w.write_to_memory();
  EXPECT_EQ(bytes.size(), 24u + (8 + 20 + 4 + 8 + 5) + (8 + 1 + 4 + 4));
  const GgufFile f = GgufFile::parse(bytes);
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.data_start(), (bytes.size() + 31) / 32 * 32);
}

TEST(GgufRoundTrip, TypedGetters) {
  const auto bytes = make_writer(32).write_to_memory();
  const GgufFile f = GgufFile::parse(bytes, "rt.gguf");
  EXPECT_EQ(f.get_string("general.architecture"), "bitnet-b1.58");
  EXPECT_EQ(f.get_uint("s.u32"), 4000000000u);
  EXPECT_EQ(f.get_uint("s.u64"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(f.get_int("s.i8"), -100);
  EXPECT_EQ(f.get_int("s.u16"), 60000);
  EXPECT_EQ(f.get_float("s.f32"), 1.5);
  EXPECT_EQ(f.get_float("s.i16"), -30000.0);
  EXPECT_EQ(f.get_bool("s.bool_t"), true);
  EXPECT_EQ(f.get_string("s.empty_str"), "");
  EXPECT_EQ(f.get_int_array("a.u8"), (std::vector<int64_t>{0, 1, 255}));
  EXPECT_EQ(f.get_float_array("a.f64"), (std::vector<double>{1e-300, -2.5}));
  EXPECT_EQ(f.get_string_array("a.str")->size(), 4u);
  EXPECT_FALSE(f.get_uint("absent").has_value());
  EXPECT_FALSE(f.get_string_array("absent").has_value());
  EXPECT_EQ(f.find("absent"), nullptr);
  EXPECT_EQ(f.find_tensor("absent"), nullptr);
  EXPECT_FALSE(f.view(std::string_view("absent")).valid());

  auto expect_error = [](auto fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error, expected: " << needle;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  // Class 7 of spec §10: a u8 array read as float scores.
  expect_error([&] { f.get_float_array("a.u8"); },
               "rt.gguf: key 'a.u8' has type ARRAY[UINT8], expected ARRAY[FLOAT32]");
  expect_error([&] { f.get_int_array("a.f32"); }, "key 'a.f32' has type ARRAY[FLOAT32]");
  expect_error([&] { f.get_string_array("a.i32"); }, "has type ARRAY[INT32], expected ARRAY[STRING]");
  expect_error([&] { f.get_string("s.u32"); }, "key 's.u32' has type UINT32, expected STRING");
  expect_error([&] { f.get_uint("s.i8"); }, "negative value -100");
  expect_error([&] { f.get_int("s.u64"); }, "does not fit INT64");
  expect_error([&] { f.get_uint("s.str"); }, "has type STRING, expected an unsigned integer");
  expect_error([&] { f.get_float("a.f32"); }, "has type ARRAY[FLOAT32], expected FLOAT32");
  expect_error([&] { f.get_bool("s.u8"); }, "has type UINT8, expected BOOL");
}

// ---- shared vocab-only file --------------------------------------------------------------------

TEST(GgufVocabFile, ParsesLlamaSpmVocab) {
  const std::string path = test::shared_data_dir() + "/ggml-vocab-llama-spm.gguf";
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata().size(), 22u);
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.file_size(), 723869u);
  EXPECT_EQ(f.data_start(), 723872u);  // beyond EOF: legal without tensors
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f.get_uint("llama.vocab_size"), 32000u);
  EXPECT_EQ(f.get_uint("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_eos_token"), false);
  EXPECT_NEAR(*f.get_float("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-12);
  const auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.has_value());
  ASSERT_EQ(tokens->size(), 32000u);
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ((*tokens)[3], "<0x00>");
  EXPECT_EQ(f.get_float_array("tokenizer.ggml.scores")->size(), 32000u);
  const auto types = f.get_int_array("tokenizer.ggml.token_type");
  ASSERT_EQ(types->size(), 32000u);
  EXPECT_EQ(std::vector<int64_t>(types->begin(), types->begin() + 5),
            (std::vector<int64_t>{2, 3, 3, 6, 6}));
  EXPECT_THROW(f.get_float_array("tokenizer.ggml.token_type"), FormatError);

  // Our writer reproduces the file exactly (arch first, no padding without tensors).
  GgufWriter w(f.alignment());
  for (const auto& kv : f.metadata()) w.add(kv.key, kv.value);
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> original((std::istreambuf_iterator<char>(in)),
                                      std::istreambuf_iterator<char>());
  EXPECT_EQ(w.write_to_memory(), original);
}

// ---- writing to disk ---------------------------------------------------------------------------

class GgufWriteFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("gguf_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(GgufWriteFile, WritesAtomicallyWithProgress) {
  GgufWriter w = make_writer(32);
  size_t calls = 0;
  size_t biggest_request = 0;
  w.add_tensor("produced", GgmlType::F32, {5}, [&](std::span<uint8_t> out) {
    biggest_request = out.size();
    for (size_t i = 0; i < out.size(); ++i) out[i] = uint8_t(i);
  });
  const std::string path = (dir_ / "m.gguf").string();
  uint64_t last = 0, total_seen = 0;
  w.write(path, [&](uint64_t done, uint64_t total) {
    EXPECT_GE(done, last);
    EXPECT_LE(done, total);
    last = done;
    total_seen = total;
    ++calls;
  });
  EXPECT_EQ(biggest_request, 20u);
  EXPECT_EQ(calls, tensor_specs().size() + 2);
  EXPECT_EQ(last, total_seen);
  EXPECT_FALSE(testing::temp_output_left(path));
  EXPECT_EQ(std::filesystem::file_size(path), total_seen);
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.tensors().size(), tensor_specs().size() + 1);
  const uint8_t* d = f.tensor_data(*f.find_tensor("produced"));
  EXPECT_EQ(d[19], 19);
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> on_disk((std::istreambuf_iterator<char>(in)),
                                     std::istreambuf_iterator<char>());
  EXPECT_EQ(on_disk, w.write_to_memory());
}

TEST_F(GgufWriteFile, ThrowingProducerLeavesNoFile) {
  GgufWriter w = make_writer(32);
  w.add_tensor("bad", GgmlType::F32, {4}, [](std::span<uint8_t>) {
    throw std::runtime_error("producer failed");
  });
  const std::string path = (dir_ / "m.gguf").string();
  EXPECT_THROW(w.write(path), std::runtime_error);
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(testing::temp_output_left(path));
}

// The output replaces a regular file or nothing: a FIFO, device or directory is refused and left
// as it was, and temporary names planted as symlinks are never followed.
TEST_F(GgufWriteFile, SpecialOutputsAreRefusedAndPlantedSymlinksNotFollowed) {
  GgufWriter w = make_writer(32);
  const std::string fifo = (dir_ / "fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& out : {fifo, dir_.string(), std::string("/dev/null")}) {
    try {
      w.write(out);
      FAIL() << "wrote over " << out;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(out == dir_.string() ? "is a directory" : "not a regular file"),
                std::string::npos) << e.what();
    }
  }
  struct stat st {};
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the FIFO is still a FIFO";

  const std::filesystem::path victim = dir_ / "victim.txt", out = dir_ / "m.gguf";
  { std::ofstream(victim) << "precious"; }
  std::filesystem::create_symlink(victim, out.string() + ".tmp");
  for (int n = 0; n < 4; ++n)
    std::filesystem::create_symlink(victim, out.string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(n));
  w.write(out.string());
  std::ifstream in(victim);
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "precious");
  EXPECT_EQ(GgufFile::open(out.string()).tensors().size(), tensor_specs().size());
}

TEST_F(GgufWriteFile, IoErrorsNameTheCause) {
  GgufWriter w;
  w.add_u32("x", 1);
  try {
    w.write((dir_ / "no_such_dir" / "m.gguf").string());
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(GgufFile::open((dir_ / "missing.gguf").string()), Error);
  EXPECT_THROW(GgufFile::open(dir_.string()), Error);  // a directory
  const std::string empty = (dir_ / "empty.gguf").string();
  std::ofstream(empty).close();
  try {
    GgufFile::open(empty);
    ADD_FAILURE() << "expected an error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("empty file"), std::string::npos) << e.what();
  }
}

// ---- writer refuses bad input ------------------------------------------------------------------

TEST(GgufWriterValidation, RejectsBadDeclarations) {
  EXPECT_THROW(GgufWriter(0), Error);
  EXPECT_THROW(GgufWriter(48), Error);
  GgufWriter w;
  w.add_u32("k", 1);
  EXPECT_THROW(w.add_u32("k", 2), Error);  // duplicate
  EXPECT_THROW(w.add_u32("", 2), Error);
  EXPECT_THROW(w.add("m", GgufValue{GgufValueType::UINT8, uint64_t(256)}), Error);
  EXPECT_THROW(w.add("m", GgufValue{GgufValueType::UINT32, std::string("x")}), Error);
  EXPECT_THROW(w.add("m", arr(GgufValueType::INT8, {128})), Error);
  EXPECT_THROW(w.add("m", arr(GgufValueType::ARRAY, {})), Error);
  EXPECT_THROW(w.add("m", arr(GgufValueType::FLOAT32, {1})), Error);  // ints for a float array
  EXPECT_THROW(w.add_u32("general.alignment", 64), Error);  // disagrees with the constructor
  EXPECT_THROW(w.add_tensor_bytes("q", GgmlType::Q8_0, {33}, std::vector<uint8_t>(34)), Error);
  EXPECT_THROW(w.add_tensor_bytes("f", GgmlType::F32, {4}, std::vector<uint8_t>(15)), Error);
  EXPECT_THROW(w.add_tensor_bytes("f", GgmlType::F32, {}, {}), Error);
  EXPECT_THROW(w.add_tensor_bytes("f", GgmlType::F32, {1, 1, 1, 1, 1}, std::vector<uint8_t>(4)),
               Error);
  EXPECT_THROW(w.add_tensor_bytes(std::string(64, 'n'), GgmlType::F32, {1}, std::vector<uint8_t>(4)),
               Error);
  EXPECT_THROW(w.add_tensor_bytes("g", GgmlType(4), {1}, std::vector<uint8_t>(4)), Error);
  w.add_tensor_bytes("f", GgmlType::F32, {1}, std::vector<uint8_t>(4));
  EXPECT_THROW(w.add_tensor_bytes("f", GgmlType::F32, {1}, std::vector<uint8_t>(4)), Error);
  GgufWriter w64(64);
  w64.add_u32("general.alignment", 64);  // same as the constructor's: accepted, not duplicated
  EXPECT_EQ(GgufFile::parse(w64.write_to_memory()).metadata().size(), 1u);
}

}  // namespace
}  // namespace bitnet
