// Model binding rejects files whose architecture, tensors or hyper-parameters do not fit, each with
// a message naming the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "model/model.h"
#include "gguf_edit.h"
#include "test_data.h"

namespace bitnet {
namespace {

using testing::TensorCopy;

std::string load_error(const std::function<void(std::vector<GgufKV>&, std::vector<TensorCopy>&)>& edit,
                       GgmlType type = GgmlType::I2_S) {
  static std::vector<std::vector<uint8_t>> keep_alive;  // GgufFile::parse does not copy
  keep_alive.push_back(testing::edited_gguf(testing::dummy_model("bitnet-b1.58", "tiny", type), edit));
  try {
    load_model(GgufFile::parse(keep_alive.back()));
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

void set_kv(std::vector<GgufKV>& kvs, const std::string& key, GgufValue v) {
  for (auto& kv : kvs)
    if (kv.key == key) kv.value = std::move(v);
}
void erase_kv(std::vector<GgufKV>& kvs, const std::string& key) {
  std::erase_if(kvs, [&](const GgufKV& kv) { return kv.key == key; });
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "message: " << (haystack)

TEST(ModelLoad, UnmodifiedTinyModelLoads) {
  EXPECT_EQ(load_error([](auto&, auto&) {}), "");
}

TEST(ModelLoad, UnsupportedArchitectureNamesItAndTheSupportedList) {
  const auto msg = load_error([](auto& kvs, auto&) {
    set_kv(kvs, "general.architecture", {GgufValueType::STRING, std::string("mamba")});
  });
  EXPECT_CONTAINS(msg, "unsupported architecture 'mamba'");
  EXPECT_CONTAINS(msg, "bitnet-b1.58");
}

TEST(ModelLoad, MissingTensorIsNamed) {
  const auto msg = load_error([](auto&, auto& ts) {
    std::erase_if(ts, [](const TensorCopy& t) { return t.name == "blk.1.ffn_sub_norm.weight"; });
  });
  EXPECT_CONTAINS(msg, "missing tensor 'blk.1.ffn_sub_norm.weight'");
}

TEST(ModelLoad, ShapeDisagreeingWithHyperParametersIsRejected) {
  // attn_k must have head_count_kv · head_dim rows; claim more kv heads than the tensor has.
  const auto msg = load_error([](auto& kvs, auto&) {
    set_kv(kvs, "bitnet-b1.58.attention.head_count_kv", {GgufValueType::UINT32, uint64_t(4)});
  });
  EXPECT_CONTAINS(msg, "blk.0.attn_k.weight");
  EXPECT_CONTAINS(msg, "expected");
}

TEST(ModelLoad, MissingRequiredKeyIsNamed) {
  const auto msg = load_error([](auto& kvs, auto&) { erase_kv(kvs, "bitnet-b1.58.block_count"); });
  EXPECT_CONTAINS(msg, "missing required key 'bitnet-b1.58.block_count'");
}

// A block_count smaller than the layers the file holds: the extra layers were silently ignored.
TEST(ModelLoad, LayerTensorsBeyondBlockCountAreRejected) {
  const auto msg = load_error([](auto& kvs, auto&) {
    set_kv(kvs, "bitnet-b1.58.block_count", {GgufValueType::UINT32, uint64_t(1)});
  });
  EXPECT_CONTAINS(msg, "belongs to layer 1, but bitnet-b1.58.block_count is 1");
}

TEST(ModelLoad, OutOfRangeHyperParametersAreRejected) {
  EXPECT_CONTAINS(load_error([](auto& kvs, auto&) {
                    set_kv(kvs, "bitnet-b1.58.block_count", {GgufValueType::UINT32, uint64_t(100000)});
                  }),
                  "out of range");
  EXPECT_CONTAINS(load_error([](auto& kvs, auto&) {
                    set_kv(kvs, "bitnet-b1.58.attention.head_count_kv", {GgufValueType::UINT32, uint64_t(3)});
                  }),
                  "not a multiple of head_count_kv");
  EXPECT_CONTAINS(load_error([](auto& kvs, auto&) {
                    set_kv(kvs, "bitnet-b1.58.attention.head_count_kv", {GgufValueType::UINT32, uint64_t(0)});
                  }),
                  "out of range");
}

TEST(ModelLoad, UncomputableTensorTypeIsNamed) {
  const auto msg = load_error([](auto&, auto& ts) {
    for (auto& t : ts)
      if (t.name == "blk.0.attn_q.weight") {
        t.type = GgmlType::Q4_0;  // 256 x 256 → 8 blocks per row of 18 bytes
        t.bytes.assign(size_t(256 * 256 / 32 * 18), 0x11);
      }
  });
  EXPECT_CONTAINS(msg, "blk.0.attn_q.weight");
  EXPECT_CONTAINS(msg, "Q4_0");
}

TEST(ModelLoad, TernaryLookupTableFileOfUnknownShapeNamesTheConvertCommand) {
  const auto msg = load_error([](auto&, auto& ts) {
    for (auto& t : ts)
      if (t.name == "blk.0.attn_q.weight") {
        t.type = GgmlType::TL2;
        t.bytes.assign(*ggml_tensor_nbytes(GgmlType::TL2, {256, 256, 1, 1}), 0);
      }
  });
  EXPECT_CONTAINS(msg, "bitnet quantize");
  EXPECT_CONTAINS(msg, "i2_s");
}

TEST(ModelLoad, NonFiniteNormWeightsAreRejected) {
  const auto msg = load_error([](auto&, auto& ts) {
    for (auto& t : ts)
      if (t.name == "output_norm.weight") {
        const float nan = std::nanf("");
        std::memcpy(t.bytes.data(), &nan, 4);
      }
  });
  EXPECT_CONTAINS(msg, "NaN");
}

// The kernels trust the codes, so the loader checks every ternary tensor once.
TEST(ModelLoad, InvalidTernaryCodeIsNamedAtLoad) {
  for (GgmlType type : {GgmlType::I2_S, GgmlType::TQ2_0}) {
    const auto msg = load_error([](auto&, auto& ts) {
      for (auto& t : ts)
        if (t.name == "blk.1.ffn_up.weight") t.bytes[100] |= 0x30;  // one field becomes code 3
    }, type);
    EXPECT_CONTAINS(msg, "blk.1.ffn_up.weight");
    EXPECT_CONTAINS(msg, "code 3");
  }
}

}  // namespace
}  // namespace bitnet
