// Every input problem is a specific error and leaves no output file behind.
#include <gtest/gtest.h>

#include <functional>

#include "output_files.h"
#include "conversion/hf_convert.h"
#include "hf_fixture.h"

namespace bitnet {
namespace {

namespace fs = std::filesystem;
using testing::HfModel;

struct Case {
  std::string name;
  std::function<void(HfModel&)> setup;                  // before writing
  std::function<void(const fs::path&, HfModel&)> edit;  // after writing
  std::string message;                                   // substring of the error
};

void edit_config(const fs::path& dir, HfModel& m, const std::function<void(nlohmann::json&)>& f) {
  f(m.config);
  testing::write_text(dir / "config.json", m.config.dump());
}

// Rewrites model.safetensors with a patched header (or raw bytes).
void patch_safetensors(const fs::path& dir, HfModel& m, const std::function<void(std::vector<uint8_t>&)>& f) {
  auto bytes = testing::safetensors_bytes(m.tensors);
  f(bytes);
  testing::write_file(dir / "model.safetensors", bytes);
}

std::vector<Case> cases() {
  auto set_value = [](const std::string& tensor, float v) {
    return [tensor, v](const fs::path& dir, HfModel& m) {
      for (auto& t : m.tensors)
        if (t.name == tensor) {
          const uint16_t h = fp32_to_bf16(v);
          std::memcpy(&t.bytes[2 * 37], &h, 2);
        }
      testing::write_file(dir / "model.safetensors", testing::safetensors_bytes(m.tensors));
    };
  };
  auto header = [](const std::string& from, const std::string& to) {
    return [from, to](const fs::path& dir, HfModel& m) {
      nlohmann::ordered_json h = nlohmann::ordered_json::object();
      uint64_t off = 0;
      for (const auto& t : m.tensors) {
        h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
        off += t.bytes.size();
      }
      std::string s = h.dump();
      const size_t at = s.find(from);
      if (at == std::string::npos) throw std::runtime_error("fixture: '" + from + "' not in header");
      s.replace(at, from.size(), to);
      testing::write_file(dir / "model.safetensors", testing::safetensors_bytes(m.tensors, s));
    };
  };
  const std::string q0 = "model.layers.0.self_attn.q_proj.weight";
  return {
      {"missing config key", nullptr,
       [](const fs::path& d, HfModel& m) { edit_config(d, m, [](auto& j) { j.erase("hidden_size"); }); },
       "missing required key 'hidden_size'"},
      {"inconsistent heads", nullptr,
       [](const fs::path& d, HfModel& m) { edit_config(d, m, [](auto& j) { j["num_key_value_heads"] = 3; }); },
       "num_attention_heads 4 is not a multiple of num_key_value_heads 3"},
      {"mistyped config value", nullptr,
       [](const fs::path& d, HfModel& m) { edit_config(d, m, [](auto& j) { j["num_hidden_layers"] = "two"; }); },
       "'num_hidden_layers' must be a positive integer"},
      {"config not JSON", nullptr, [](const fs::path& d, HfModel&) { testing::write_text(d / "config.json", "{oops"); },
       "config.json: not valid JSON"},
      {"unknown architecture", nullptr,
       [](const fs::path& d, HfModel& m) { edit_config(d, m, [](auto& j) { j["architectures"] = {"MistralForCausalLM"}; }); },
       "unsupported architecture 'MistralForCausalLM' (supported: BitNetForCausalLM, BitnetForCausalLM, LlamaForCausalLM, Qwen3Model, Qwen3ForCausalLM, "
       "Gemma3TextModel, Gemma3ForCausalLM)"},
      {"wrong activation", nullptr,
       [](const fs::path& d, HfModel& m) { edit_config(d, m, [](auto& j) { j["hidden_act"] = "gelu"; }); },
       "hidden_act 'gelu' is not supported"},
      {"shard listed but absent", [](HfModel& m) { m.shards = 2; },
       [](const fs::path& d, HfModel&) { fs::remove(d / "model-00002-of-00002.safetensors"); },
       "shard 'model-00002-of-00002.safetensors' is listed but"},
      {"index names a tensor the shard lacks", [](HfModel& m) { m.shards = 2; },
       [](const fs::path& d, HfModel&) {
         auto j = nlohmann::json::parse(std::ifstream(d / "model.safetensors.index.json"));
         j["weight_map"]["model.extra.weight"] = "model-00001-of-00002.safetensors";
         testing::write_text(d / "model.safetensors.index.json", j.dump());
       },
       "tensor 'model.extra.weight' is listed in shard 'model-00001-of-00002.safetensors' but that file does not contain it"},
      {"tensor shape disagrees with config", nullptr,
       [](const fs::path& d, HfModel& m) { edit_config(d, m, [](auto& j) { j["intermediate_size"] = 768; }); },
       "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [512, 256] but config.json implies [768, 256]"},
      {"header length beyond file", nullptr,
       [](const fs::path& d, HfModel& m) {
         patch_safetensors(d, m, [](auto& b) { const uint64_t n = b.size(); std::memcpy(b.data(), &n, 8); });
       },
       "exceeds the file size"},
      {"header not JSON", nullptr, header("{\"", "[\""), "header is not valid JSON"},
      {"offsets out of bounds", nullptr, header("\"data_offsets\":[0,", "\"data_offsets\":[0,9"),
       "is beyond the data section"},
      {"offsets disagree with dtype x shape", nullptr, header("\"dtype\":\"BF16\"", "\"dtype\":\"F32\""),
       "needs"},
      {"unknown dtype", nullptr, header("\"dtype\":\"BF16\"", "\"dtype\":\"Q4\""), "unknown dtype 'Q4'"},
      {"overlapping tensors", nullptr, header(",\"model.norm.weight\":{\"dtype\":\"BF16\",\"shape\":[256],\"data_offsets\":[",
                                              ",\"model.norm.weight\":{\"dtype\":\"BF16\",\"shape\":[256],\"data_offsets\":[0,512],\"x\":["),
       "overlap in the data section"},
      {"NaN in weights", nullptr, set_value(q0, NAN), "tensor '" + q0 + "' contains NaN at element 37"},
      {"Inf in weights", nullptr, set_value("model.embed_tokens.weight", INFINITY),
       "tensor 'model.embed_tokens.weight' contains Inf at element 37"},
      {"missing tensor", nullptr,
       [q0](const fs::path& d, HfModel& m) {
         std::erase_if(m.tensors, [&](const auto& t) { return t.name == q0; });
         testing::write_file(d / "model.safetensors", testing::safetensors_bytes(m.tensors));
       },
       "checkpoint is missing tensor '" + q0 + "'"},
      {"unexpected tensor", nullptr,
       [](const fs::path& d, HfModel& m) {
         m.tensors.push_back({"model.layers.2.mlp.up_proj.weight", "BF16", {1}, {0, 0}});
         testing::write_file(d / "model.safetensors", testing::safetensors_bytes(m.tensors));
       },
       "unexpected tensor 'model.layers.2.mlp.up_proj.weight'"},
      {"missing tokenizer", nullptr, [](const fs::path& d, HfModel&) { fs::remove(d / "tokenizer.json"); },
       "no tokenizer (tokenizer.json or tokenizer.model)"},
      {"tokenizer larger than vocab_size", nullptr,
       [](const fs::path& d, HfModel& m) { edit_config(d, m, [](auto& j) { j["vocab_size"] = 100; }); },
       "tokens but config.json vocab_size is 100"},
      {"unsupported pre-tokenizer", nullptr,
       [](const fs::path& d, HfModel&) {
         auto j = testing::small_bpe_tokenizer_json(false);
         j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\p{N}+";
         testing::write_text(d / "tokenizer.json", j.dump());
       },
       "unsupported pre-tokenizer"},
      {"no weights", nullptr, [](const fs::path& d, HfModel&) { fs::remove(d / "model.safetensors"); },
       "no model.safetensors or model.safetensors.index.json"},
  };
}

TEST(ConvertMalformed, EachProblemHasItsOwnMessageAndLeavesNoFile) {
  int n = 0;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    HfModel m;
    m.L = 1;
    if (c.setup) c.setup(m);
    const fs::path dir = testing::temp_dir() / ("bad-" + std::to_string(n++));
    fs::remove_all(dir);
    testing::write_checkpoint(dir, m);
    c.edit(dir, m);
    const std::string out = dir.string() + ".gguf";
    try {
      convert_hf_checkpoint(dir.string(), out, {});
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << "message: " << e.what();
    }
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(testing::temp_output_left(out));
  }
  EXPECT_GE(n, 12);
}

TEST(ConvertMalformed, TypesThatCannotHoldTheShapesAreRefusedBeforeWriting) {
  HfModel m;
  m.L = 1;
  const fs::path dir = testing::temp_dir() / "tl-tiny";
  fs::remove_all(dir);
  testing::write_checkpoint(dir, m);
  const std::string out = dir.string() + ".gguf";
  ConvertOptions o;
  o.type = GgmlType::TL2;
  try {
    convert_hf_checkpoint(dir.string(), out, o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("TL2 has no tile layout for the 256x256 tensor 'blk.0.attn_q.weight'"),
              std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace bitnet
