#pragma once
// The tensors of a Hugging Face checkpoint directory: `model.safetensors`, or the shards named by
// `model.safetensors.index.json` (weight_map: tensor → shard file). All files stay memory-mapped;
// nothing is read until a tensor is converted.
#include <map>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace bitnet {

class HfCheckpoint {
 public:
  // Throws Error/FormatError: no weights file, shard listed but absent, tensor listed in the
  // index but missing from its shard (or present in a shard but not listed), duplicate names.
  static HfCheckpoint open(const std::string& dir);

  const StTensor* find(const std::string& name) const;
  // Drops the tensor's pages from this process's resident set (see SafetensorsFile::release).
  void release(const StTensor& t) const;
  std::vector<std::string> names() const;  // sorted
  uint64_t total_bytes() const;            // sum of all tensor data (for throughput figures)

 private:
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::pair<const StTensor*, size_t>> index_;  // name → tensor, file
};

}  // namespace bitnet
