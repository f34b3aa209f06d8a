#include "conversion/hf_checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "errors.h"

namespace bitnet {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// weight_map of the index file, grouped by shard (shard → tensor names).
std::map<std::string, std::vector<std::string>> read_index(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw FormatError(path + ": not valid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw FormatError(path + ": missing object 'weight_map'");
  std::map<std::string, std::vector<std::string>> shards;
  for (const auto& [tensor, shard] : j["weight_map"].items()) {
    if (!shard.is_string()) throw FormatError(path + ": weight_map['" + tensor + "'] is not a file name");
    const std::string s = shard.get<std::string>();
    // Shards must sit next to the index: a path could otherwise point anywhere on the machine.
    if (s.empty() || s.find('/') != std::string::npos || s == "." || s == "..")
      throw FormatError(path + ": weight_map['" + tensor + "'] = '" + s + "' is not a plain file name");
    shards[s].push_back(tensor);
  }
  if (shards.empty()) throw FormatError(path + ": weight_map is empty");
  return shards;
}

}  // namespace

HfCheckpoint HfCheckpoint::open(const std::string& dir) {
  HfCheckpoint c;
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  std::map<std::string, std::vector<std::string>> shards;
  if (fs::exists(index_path)) {
    shards = read_index(index_path.string());
    for (const auto& [shard, tensors] : shards)
      if (!fs::exists(fs::path(dir) / shard))
        throw Error(index_path.string() + ": shard '" + shard + "' is listed but " +
                    (fs::path(dir) / shard).string() + " does not exist");
  } else if (fs::exists(fs::path(dir) / "model.safetensors")) {
    shards["model.safetensors"] = {};
  } else {
    std::string hint = fs::exists(fs::path(dir) / "pytorch_model.bin")
                           ? " (pytorch_model.bin is not supported: re-save the checkpoint as safetensors)"
                           : "";
    throw Error(dir + ": no model.safetensors or model.safetensors.index.json" + hint);
  }
  c.files_.reserve(shards.size());
  for (const auto& [shard, listed] : shards) {
    c.files_.push_back(SafetensorsFile::open((fs::path(dir) / shard).string()));
    const SafetensorsFile& f = c.files_.back();
    for (const StTensor& t : f.tensors()) {
      if (!listed.empty() && std::find(listed.begin(), listed.end(), t.name) == listed.end())
        throw FormatError(f.path() + ": tensor '" + t.name + "' is not listed for this shard in " +
                          index_path.filename().string());
      if (c.index_.count(t.name))
        throw FormatError(f.path() + ": tensor '" + t.name + "' also appears in another shard");
      c.index_[t.name] = {&t, c.files_.size() - 1};
    }
    for (const std::string& name : listed)
      if (!f.find(name))
        throw FormatError(index_path.string() + ": tensor '" + name + "' is listed in shard '" + shard +
                          "' but that file does not contain it");
  }
  return c;
}

const StTensor* HfCheckpoint::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second.first;
}

void HfCheckpoint::release(const StTensor& t) const {
  const auto it = index_.find(t.name);
  if (it != index_.end()) files_[it->second.second].release(t);
}

std::vector<std::string> HfCheckpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, where] : index_) out.push_back(name);
  return out;
}

uint64_t HfCheckpoint::total_bytes() const {
  uint64_t n = 0;
  for (const auto& [name, where] : index_) n += where.first->nbytes;
  return n;
}

}  // namespace bitnet
