#pragma once
// Test helpers for the GGUF tests: a raw byte-level GGUF builder (able to produce malformed files,
// which GgufWriter refuses to) and value comparison.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "formats/gguf.h"

namespace bitnet::test {

class GgufBytes {
 public:
  template <class T>
  GgufBytes& put(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    bytes.insert(bytes.end(), b, b + sizeof(T));
    return *this;
  }
  GgufBytes& u8(uint8_t v) { return put(v); }
  GgufBytes& u32(uint32_t v) { return put(v); }
  GgufBytes& u64(uint64_t v) { return put(v); }
  GgufBytes& raw(std::string_view s) {
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }
  GgufBytes& str(std::string_view s) { return u64(s.size()).raw(s); }
  GgufBytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return raw("GGUF").u32(version).u64(n_tensors).u64(n_kv);
  }
  GgufBytes& kv_u32(std::string_view key, uint32_t v) { return str(key).u32(4).u32(v); }
  GgufBytes& kv_str(std::string_view key, std::string_view v) { return str(key).u32(8).str(v); }
  GgufBytes& tensor(std::string_view name, const std::vector<uint64_t>& ne, uint32_t type,
                    uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
  GgufBytes& pad(size_t align) {
    bytes.resize((bytes.size() + align - 1) / align * align, 0);
    return *this;
  }
  GgufBytes& zeros(size_t n) {
    bytes.resize(bytes.size() + n, 0);
    return *this;
  }
  std::vector<uint8_t> bytes;
};

inline void expect_same_value(const GgufValue& a, const GgufValue& b, const std::string& key) {
  SCOPED_TRACE(key);
  ASSERT_EQ(a.type, b.type);
  ASSERT_EQ(a.value.index(), b.value.index());
  if (const auto* x = std::get_if<GgufArray>(&a.value)) {
    const auto& y = std::get<GgufArray>(b.value);
    EXPECT_EQ(x->elem_type, y.elem_type);
    EXPECT_EQ(x->ints, y.ints);
    EXPECT_EQ(x->floats, y.floats);
    EXPECT_EQ(x->bools, y.bools);
    EXPECT_EQ(x->strings, y.strings);
  } else if (const auto* u = std::get_if<uint64_t>(&a.value)) {
    EXPECT_EQ(*u, std::get<uint64_t>(b.value));
  } else if (const auto* i = std::get_if<int64_t>(&a.value)) {
    EXPECT_EQ(*i, std::get<int64_t>(b.value));
  } else if (const auto* d = std::get_if<double>(&a.value)) {
    EXPECT_EQ(*d, std::get<double>(b.value));
  } else if (const auto* f = std::get_if<bool>(&a.value)) {
    EXPECT_EQ(*f, std::get<bool>(b.value));
  } else {
    EXPECT_EQ(std::get<std::string>(a.value), std::get<std::string>(b.value));
  }
}

// The repository's data/ (data/README.md), or $BITNET_SHARED_DATA.
inline std::string shared_data_dir() {
  if (const char* env = std::getenv("BITNET_SHARED_DATA"); env && *env) return env;
  return BITNET_SOURCE_DIR "/data";
}

}  // namespace bitnet::test
