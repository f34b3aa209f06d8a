#include "conversion/hf_config.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/untrusted_text.h"
#include "errors.h"

namespace bitnet {
namespace {

using nlohmann::json;

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open (a Hugging Face checkpoint directory needs config.json)");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw FormatError(path + ": not valid JSON: " + e.what());
  }
}

struct Reader {
  const json& j;
  const std::string& path;

  int64_t positive(const char* key, std::optional<int64_t> fallback = std::nullopt) const {
    if (!j.contains(key) || j[key].is_null()) {
      if (fallback) return *fallback;
      throw FormatError(path + ": missing required key '" + key + "'");
    }
    const json& v = j[key];
    if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (int64_t(1) << 31))
      throw FormatError(path + ": '" + key + "' must be a positive integer (got " + v.dump() + ")");
    return v.get<int64_t>();
  }
  double number(const char* key, std::optional<double> fallback) const {
    if (!j.contains(key) || j[key].is_null()) {
      if (fallback) return *fallback;
      throw FormatError(path + ": missing required key '" + key + "'");
    }
    const json& v = j[key];
    if (!v.is_number() || !(v.get<double>() > 0))
      throw FormatError(path + ": '" + key + "' must be a positive number (got " + v.dump() + ")");
    return v.get<double>();
  }
  std::string string(const char* key) const {
    if (!j.contains(key) || j[key].is_null()) return "";
    if (!j[key].is_string()) throw FormatError(path + ": '" + key + "' must be a string");
    return j[key].get<std::string>();
  }
  std::optional<bool> boolean(const char* key) const {
    if (!j.contains(key) || j[key].is_null()) return std::nullopt;
    if (!j[key].is_boolean()) throw FormatError(path + ": '" + key + "' must be true or false");
    return j[key].get<bool>();
  }
  std::optional<int64_t> token_id(const char* key) const {
    if (!j.contains(key) || j[key].is_null()) return std::nullopt;
    const json& v = j[key].is_array() && !j[key].empty() ? j[key][0] : j[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      throw FormatError(path + ": '" + key + "' must be a token id (got " + j[key].dump() + ")");
    return v.get<int64_t>();
  }
};

std::string unsupported(const std::string& what, const std::string& path) {
  std::string list;
  for (const auto& a : supported_hf_architectures()) list += (list.empty() ? "" : ", ") + a;
  return path + ": unsupported architecture " + quote_untrusted(what) + " (supported: " + list + ")";
}

// HF class (or model_type) and activation → GGUF architecture (architectures.md §0).
std::string gguf_arch(const std::string& hf, const std::string& act, const std::string& path) {
  auto need_act = [&](const char* expected, const std::string& arch) {
    if (act != expected)
      throw FormatError(path + ": " + hf + " with hidden_act '" + act + "' is not supported (expected '" +
                        expected + "' for GGUF architecture " + arch + ")");
    return arch;
  };
  if (hf == "BitNetForCausalLM") {  // transformers' BitNet (2B-4T): ReLU² → bitnet-b1.58
    if (act == "silu") return "bitnet";
    return need_act("relu2", "bitnet-b1.58");
  }
  if (hf == "BitnetForCausalLM") return need_act("silu", "bitnet");  // 1bitLLM reproductions
  if (hf == "LlamaForCausalLM") return need_act("silu", "llama");
  throw FormatError(unsupported(hf, path));
}

}  // namespace

std::vector<std::string> supported_hf_architectures() {
  return {"BitNetForCausalLM", "BitnetForCausalLM", "LlamaForCausalLM"};
}

HfConfig read_hf_config(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  const json j = read_json_file(path);
  if (!j.is_object()) throw FormatError(path + ": not a JSON object");
  const Reader r{j, path};
  HfConfig c;
  if (j.contains("architectures")) {
    const json& a = j["architectures"];
    if (!a.is_array() || a.empty() || !a[0].is_string())
      throw FormatError(path + ": 'architectures' must be a non-empty list of strings");
    c.hf_architecture = a[0].get<std::string>();
  } else {
    const std::string mt = r.string("model_type");
    if (mt.empty()) throw FormatError(path + ": neither 'architectures' nor 'model_type' is set");
    c.hf_architecture = mt == "bitnet" ? "BitNetForCausalLM" : mt == "llama" ? "LlamaForCausalLM" : mt;
  }
  std::string act = r.string("hidden_act");
  if (act.empty()) act = "silu";
  c.arch = gguf_arch(c.hf_architecture, act, path);

  c.n_embd = r.positive("hidden_size");
  c.n_layer = r.positive("num_hidden_layers");
  c.n_head = r.positive("num_attention_heads");
  c.n_head_kv = r.positive("num_key_value_heads", c.n_head);
  c.n_ff = r.positive("intermediate_size");
  c.n_vocab = r.positive("vocab_size");
  c.n_ctx = r.positive("max_position_embeddings");
  c.norm_eps = float(r.number("rms_norm_eps", std::nullopt));
  c.rope_theta = float(r.number("rope_theta", 10000.0));
  if (c.n_head % c.n_head_kv != 0)
    throw FormatError(path + ": num_attention_heads " + std::to_string(c.n_head) +
                      " is not a multiple of num_key_value_heads " + std::to_string(c.n_head_kv));
  if (!j.contains("head_dim") && c.n_embd % c.n_head != 0)
    throw FormatError(path + ": hidden_size " + std::to_string(c.n_embd) +
                      " is not divisible by num_attention_heads " + std::to_string(c.n_head));
  c.head_dim = r.positive("head_dim", c.n_embd / c.n_head);
  if (c.head_dim % 2 != 0) throw FormatError(path + ": head_dim " + std::to_string(c.head_dim) + " must be even");
  if (c.arch != "llama" && c.head_dim * c.n_head != c.n_embd)
    throw FormatError(path + ": head_dim × num_attention_heads must equal hidden_size for " + c.arch);
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const json& s = j["rope_scaling"];
    const bool no_op = s.is_object() && s.value("type", s.value("rope_type", "")) == "linear" &&
                       s.contains("factor") && s["factor"].is_number() && s["factor"].get<double>() == 1.0;
    if (!no_op) throw FormatError(path + ": rope_scaling " + s.dump() + " is not supported");
  }

  // bitnet* graphs always tie the head (architectures.md §2–§3); llama follows the config.
  const auto tie = r.boolean("tie_word_embeddings");
  c.tied = c.arch == "llama" ? tie.value_or(false) : true;
  if (c.arch != "llama" && tie == false && c.hf_architecture != "BitnetForCausalLM")
    throw FormatError(path + ": tie_word_embeddings is false, but GGUF architecture " + c.arch +
                      " always uses the token embedding as LM head");

  c.scale_rule = c.arch == "llama" ? ScaleRule::Divide : ScaleRule::Multiply;
  if (j.contains("quantization_config") && j["quantization_config"].is_object()) {
    const json& q = j["quantization_config"];
    const std::string cls = q.value("linear_class", "");
    if (cls == "autobitlinear") c.scale_rule = ScaleRule::Multiply;
    else if (cls == "bitlinear") c.scale_rule = ScaleRule::Divide;
    else if (!cls.empty())
      throw FormatError(path + ": quantization_config.linear_class '" + cls + "' is not supported");
  }

  c.bos_id = r.token_id("bos_token_id");
  c.eos_id = r.token_id("eos_token_id");
  c.pad_id = r.token_id("pad_token_id");
  c.name = r.string("_name_or_path");
  if (c.name.empty()) c.name = std::filesystem::path(dir).lexically_normal().filename().string();
  if (c.name.empty()) c.name = std::filesystem::absolute(dir).parent_path().filename().string();
  return c;
}

}  // namespace bitnet
