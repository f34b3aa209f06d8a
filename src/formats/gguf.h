#pragma once
// GGUF v3 reader (memory-mapped, zero-copy, fully validated) and streaming writer.
// Format facts: shared/spec/gguf.md. Every problem in a file is reported as FormatError with a
// specific message naming the offending key / tensor / offset; the reader never reads out of
// bounds, never allocates more than the file could justify, and never hangs.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "errors.h"
#include "tensor/ggml_type.h"
#include "tensor/tensor_view.h"

namespace bitnet {

enum class GgufValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
std::string_view gguf_value_type_name(GgufValueType t);

struct GgufArray {
  GgufValueType elem_type = GgufValueType::UINT8;
  // Exactly one of these is filled, by element type: integers (any width, sign-extended or
  // zero-extended), floats (f32/f64 widened), bools, strings.
  std::vector<int64_t> ints;  // UINT64 values above INT64_MAX are rejected at parse time
  std::vector<double> floats;
  std::vector<bool> bools;
  std::vector<std::string> strings;
  size_t size() const;
};

struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  // uint64_t for UINT8/16/32/64, int64_t for INT8/16/32/64, double for FLOAT32/64.
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> value;
};

struct GgufKV {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  uint32_t n_dims = 0;
  std::array<int64_t, 4> ne = {1, 1, 1, 1};
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;  // relative to data_start
  uint64_t nbytes = 0;  // ggml_tensor_nbytes(type, ne)
};

class GgufFile {
 public:
  // Memory-maps and parses the file. Throws FormatError (or Error for I/O problems).
  static GgufFile open(const std::string& path);
  // Parses a buffer the caller keeps alive (used by tests and by in-memory producers).
  static GgufFile parse(std::span<const uint8_t> bytes, std::string name = "<memory>");

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  const std::string& path() const;
  // True for open(): the tensor bytes are the process's private, read-only mapping of the file
  // (so its pages may be dropped and re-read); false for parse() of a caller's buffer.
  bool memory_mapped() const;
  uint32_t version() const;
  uint32_t alignment() const;
  uint64_t data_start() const;
  uint64_t file_size() const;
  const std::vector<GgufKV>& metadata() const;
  const std::vector<GgufTensorInfo>& tensors() const;

  const GgufValue* find(std::string_view key) const;
  // Typed getters: std::nullopt if the key is absent; FormatError naming the key if present with
  // an incompatible type. get_uint accepts any integer type holding a non-negative value;
  // get_int any integer type; get_float FLOAT32/FLOAT64 (and integers).
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<uint64_t> get_uint(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  // Array getters: FormatError if the element type does not fit (e.g. u8 array read as floats).
  std::optional<std::vector<std::string>> get_string_array(std::string_view key) const;
  std::optional<std::vector<double>> get_float_array(std::string_view key) const;
  std::optional<std::vector<int64_t>> get_int_array(std::string_view key) const;

  const GgufTensorInfo* find_tensor(std::string_view name) const;
  const uint8_t* tensor_data(const GgufTensorInfo& t) const;
  TensorView view(const GgufTensorInfo& t) const;
  // View of a named tensor; an invalid (data == nullptr) view if absent.
  TensorView view(std::string_view name) const;

 private:
  struct Impl;
  explicit GgufFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Streaming writer: metadata and tensor infos are declared first; tensor bytes are produced one
// tensor at a time during write() so a multi-GiB model never sits in memory. The output goes to
// `path + ".tmp"` and is renamed to `path` only after everything was written successfully.
class GgufWriter {
 public:
  using Producer = std::function<void(std::span<uint8_t> out)>;  // fill exactly out.size() bytes
  using Progress = std::function<void(uint64_t bytes_done, uint64_t bytes_total)>;

  explicit GgufWriter(uint32_t alignment = 32);  // alignment != 32 is written as general.alignment

  void add(std::string key, GgufValue value);  // keys must be unique (Error otherwise)
  void add_string(std::string key, std::string v);
  void add_u32(std::string key, uint32_t v);
  void add_i32(std::string key, int32_t v);
  void add_u64(std::string key, uint64_t v);
  void add_f32(std::string key, float v);
  void add_bool(std::string key, bool v);
  void add_string_array(std::string key, std::vector<std::string> v);
  void add_f32_array(std::string key, const std::vector<float>& v);
  void add_i32_array(std::string key, const std::vector<int32_t>& v);

  // Declares a tensor (ne innermost first, 1..4 dims). nbytes comes from ggml_tensor_nbytes.
  void add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne, Producer produce);
  // Convenience: tensor whose bytes are already in memory (copied).
  void add_tensor_bytes(std::string name, GgmlType type, std::vector<int64_t> ne,
                        std::vector<uint8_t> bytes);

  void write(const std::string& path, const Progress& progress = {}) const;
  // Whole file in memory (tests, small files).
  std::vector<uint8_t> write_to_memory() const;

 private:
  struct PendingTensor {
    GgufTensorInfo info;
    Producer produce;
  };
  uint32_t alignment_;
  std::vector<GgufKV> kvs_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace bitnet
