#pragma once
// Test helper: a GGUF file read, edited (metadata and tensor bytes) and written back to memory —
// for files the generator never writes (damaged, or with unusual but valid contents).
#include <functional>
#include <string>
#include <vector>

#include "formats/gguf.h"

namespace bitnet::testing {

struct TensorCopy {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
  std::vector<uint8_t> bytes;
};

using GgufEdit = std::function<void(std::vector<GgufKV>&, std::vector<TensorCopy>&)>;

// The bytes of `path` after `edit`. Parse them with GgufFile::parse, which does not copy: keep
// the vector alive as long as the file is used.
inline std::vector<uint8_t> edited_gguf(const std::string& path, const GgufEdit& edit) {
  const GgufFile src = GgufFile::open(path);
  std::vector<GgufKV> kvs = src.metadata();
  std::vector<TensorCopy> tensors;
  for (const auto& t : src.tensors()) {
    const uint8_t* d = src.tensor_data(t);
    tensors.push_back({t.name, t.type, std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims),
                       std::vector<uint8_t>(d, d + t.nbytes)});
  }
  edit(kvs, tensors);
  GgufWriter w;
  for (auto& kv : kvs) w.add(kv.key, kv.value);
  for (auto& t : tensors) w.add_tensor_bytes(t.name, t.type, t.ne, t.bytes);
  return w.write_to_memory();
}

}  // namespace bitnet::testing
