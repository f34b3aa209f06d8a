#pragma once
// Writers create OUT.tmp.<pid>.<n> beside OUT and rename it: whether any such file is left.
#include <filesystem>
#include <string>

namespace bitnet::testing {

inline bool temp_output_left(const std::filesystem::path& out) {
  const std::string prefix = out.filename().string() + ".tmp";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(out.parent_path(), ec))
    if (e.path().filename().string().rfind(prefix, 0) == 0) return true;
  return false;
}

}  // namespace bitnet::testing
