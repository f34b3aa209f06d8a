#pragma once
// Shared helpers for tests: where the test data lives, temporary directories, and cached tiny
// models generated once per test process.
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <unistd.h>

#include "conversion/dummy_model.h"
#include "model/model.h"

namespace bitnet::testing {

// The repository's data/ (data/README.md), or $BITNET_SHARED_DATA.
inline std::string shared_data_dir() {
  if (const char* env = std::getenv("BITNET_SHARED_DATA"); env && *env) return env;
  return std::string(BITNET_SOURCE_DIR) + "/data";
}

// The shipped default model (models/bitnet-kjv-13M-i2_s.gguf), loaded once per test binary.
inline const Model& shipped_model() {
  static const std::unique_ptr<Model> m = load_model(std::string(BITNET_SOURCE_DIR) + "/models/bitnet-kjv-13M-i2_s.gguf");
  return *m;
}

inline std::string bin_dir() {
  if (const char* env = std::getenv("BITNET_BIN_DIR")) return env;
  return std::string(BITNET_BUILD_DIR) + "/bin";
}

// A fresh directory per test process, removed (with its contents) when the process exits.
inline std::filesystem::path temp_dir() {
  struct Owned {
    std::filesystem::path path;
    ~Owned() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static const Owned dir = [] {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bitnet-test-XXXXXX").string();
    char* made = mkdtemp(tmpl.data());
    if (!made) std::abort();
    return Owned{std::filesystem::path(made)};
  }();
  return dir.path;
}

// Generates a model for arch × preset × type once per build (CTest runs every test case in its
// own process, so models are kept in $BITNET_TEST_MODELS_DIR, default <build>/test-models)
// and returns its path. Written under a unique name and renamed, so concurrent test processes
// never see a partial file.
inline std::string dummy_model(const std::string& arch, const std::string& preset, GgmlType type,
                               GgmlType embedding_type = GgmlType::F16, uint64_t seed = 7) {
  static std::map<std::string, std::string> cache;
  const std::string key = arch + "-" + preset + "-" + std::string(ggml_type_name(type)) + "-" +
                          std::string(ggml_type_name(embedding_type)) + "-" + std::to_string(seed);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  DummyModelSpec spec;
  spec.arch = arch;
  spec.preset = preset;
  spec.type = type;
  spec.embedding_type = embedding_type;
  spec.seed = seed;
  spec.vocab_dir = shared_data_dir();
  const char* env = std::getenv("BITNET_TEST_MODELS_DIR");
  const std::filesystem::path dir = env ? env : std::string(BITNET_BUILD_DIR) + "/test-models";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / (key + ".gguf")).string();
  if (!std::filesystem::exists(path)) {
    const std::string mine = path + "." + std::to_string(getpid());
    generate_dummy_model(spec, mine);
    std::filesystem::rename(mine, path);
  }
  return cache[key] = path;
}

}  // namespace bitnet::testing
