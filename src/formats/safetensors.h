#pragma once
// Reader for Hugging Face safetensors files (memory-mapped, zero-copy, fully validated).
// Layout: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets},
// optional "__metadata__": {string: string}}, then the data section; offsets are relative to it.
// Every problem is a FormatError naming the file and the offending tensor or field.
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "errors.h"

namespace bitnet {

enum class StDtype { BOOL, U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64, F8_E4M3, F8_E5M2 };

// Bytes per element; the dtype's name as written in the header ("BF16").
size_t st_dtype_size(StDtype t);
const char* st_dtype_name(StDtype t);

struct StTensor {
  std::string name;
  StDtype dtype = StDtype::F32;
  std::vector<int64_t> shape;  // outermost first (PyTorch order)
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;

  int64_t elements() const;
  std::string shape_string() const;  // "[4, 256]"
};

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);
  // Parses a buffer the caller keeps alive (tests).
  static SafetensorsFile parse(std::span<const uint8_t> bytes, std::string name = "<memory>");

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  const std::string& path() const;
  const std::vector<StTensor>& tensors() const;  // in data-offset order
  const StTensor* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const;
  // Tells the kernel this tensor's pages are no longer needed, so a streaming converter's
  // resident memory stays bounded by one tensor instead of growing to the whole input.
  void release(const StTensor& t) const;

 private:
  struct Impl;
  explicit SafetensorsFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Converts elements [first, first + n) of a F32/F16/BF16/F64 tensor to f32. Throws FormatError
// naming the tensor for any other dtype.
void st_to_f32(const StTensor& t, int64_t first, int64_t n, float* out);

}  // namespace bitnet
