#include "conversion/hf_config.h"

#include <algorithm>
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


// model_type / class → "qwen3", "gemma3", or "" for the other families (gguf_arch decides those).
std::string qwen_gemma_family(const std::string& hf, const std::string& mt, const std::string& path) {
  static const std::vector<std::string> qwen3 = {"Qwen3Model", "Qwen3ForCausalLM"};
  static const std::vector<std::string> gemma3 = {"Gemma3TextModel", "Gemma3ForCausalLM"};
  auto in = [&](const std::vector<std::string>& v) { return std::find(v.begin(), v.end(), hf) != v.end(); };
  if (mt == "gemma3")
    throw FormatError(path + ": model_type 'gemma3' is the multimodal Gemma 3 (text_config inside); only text "
                      "checkpoints (model_type 'gemma3_text') are supported");
  std::string family = mt == "qwen3" ? "qwen3" : mt == "gemma3_text" ? "gemma3" : "";
  if (family.empty()) family = in(qwen3) ? "qwen3" : in(gemma3) ? "gemma3" : "";
  if (family.empty()) return "";
  const auto& classes = family == "qwen3" ? qwen3 : gemma3;
  if (hf != mt && !in(classes))
    throw FormatError(path + ": model_type '" + mt + "' with class " + quote_untrusted(hf) + " is not supported (" +
                      classes[0] + " or " + classes[1] + ")");
  return family;
}

// Sliding-window and attention-scale keys of Gemma 3 (HF Gemma3TextConfig defaults); what Qwen3 has
// that the engine cannot run is refused.
void read_qwen_gemma_extras(const json& j, const Reader& r, HfConfig& c) {
  const std::string& path = r.path;
  auto is_set = [&](const char* k) { return j.contains(k) && !j[k].is_null() && j[k] != false; };
  if (is_set("attention_bias")) throw FormatError(path + ": attention_bias is true (projection biases are not supported)");
  if (c.arch == "qwen3") {
    if (is_set("use_sliding_window"))
      throw FormatError(path + ": use_sliding_window is true (sliding-window Qwen3 is not supported)");
    return;
  }
  if (is_set("attn_logit_softcapping"))
    throw FormatError(path + ": attn_logit_softcapping " + j["attn_logit_softcapping"].dump() + " is not supported");
  c.query_pre_attn_scalar = float(r.number("query_pre_attn_scalar", 256.0));
  c.rope_theta_swa = float(r.number("rope_local_base_freq", 10000.0));
  c.sliding_window = r.positive("sliding_window", 4096);
  if (j.contains("layer_types") && !j["layer_types"].is_null()) {
    const json& lt = j["layer_types"];
    if (!lt.is_array() || int64_t(lt.size()) != c.n_layer)
      throw FormatError(path + ": 'layer_types' must list num_hidden_layers (" + std::to_string(c.n_layer) + ") entries");
    std::vector<bool> full;
    for (const json& t : lt) {
      const std::string s = t.is_string() ? t.get<std::string>() : "";
      if (s != "full_attention" && s != "sliding_attention")
        throw FormatError(path + ": layer_types entry " + t.dump() + " is neither 'full_attention' nor 'sliding_attention'");
      full.push_back(s == "full_attention");
    }
    // The GGUF key holds a period P: layer i is full iff (i+1) % P == 0 (P > layers: all sliding).
    for (int64_t p = 1; p <= c.n_layer + 1 && c.swa_pattern == 0; ++p) {
      bool ok = true;
      for (int64_t i = 0; i < c.n_layer && ok; ++i) ok = full[size_t(i)] == ((i + 1) % p == 0);
      if (ok) c.swa_pattern = p;
    }
    if (c.swa_pattern == 0)
      throw FormatError(path + ": layer_types " + lt.dump() + " is not periodic (layer i full iff (i+1) % P == 0)");
  } else {
    c.swa_pattern = r.positive(j.contains("sliding_window_pattern") ? "sliding_window_pattern" : "_sliding_window_pattern", 6);
  }
}

}  // namespace

std::vector<std::string> supported_hf_architectures() {
  return {"BitNetForCausalLM", "BitnetForCausalLM", "LlamaForCausalLM", "Qwen3Model", "Qwen3ForCausalLM",
          "Gemma3TextModel", "Gemma3ForCausalLM"};
}

HfConfig read_hf_config(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  const json j = read_json_file(path);
  if (!j.is_object()) throw FormatError(path + ": not a JSON object");
  const Reader r{j, path};
  HfConfig c;
  c.model_type = r.string("model_type");
  if (j.contains("architectures")) {
    const json& a = j["architectures"];
    if (!a.is_array() || a.empty() || !a[0].is_string())
      throw FormatError(path + ": 'architectures' must be a non-empty list of strings");
    c.hf_architecture = a[0].get<std::string>();
  } else {
    const std::string& mt = c.model_type;
    if (mt.empty()) throw FormatError(path + ": neither 'architectures' nor 'model_type' is set");
    c.hf_architecture = mt == "bitnet" ? "BitNetForCausalLM" : mt == "llama" ? "LlamaForCausalLM" : mt;
  }
  c.causal_lm = c.hf_architecture.ends_with("ForCausalLM");
  const std::string family = qwen_gemma_family(c.hf_architecture, c.model_type, path);
  const bool qg = !family.empty();  // qwen3 / gemma3: HF's defaults apply to keys they default
  if (qg) {
    c.arch = family;
    const std::string act = family == "gemma3" ? (r.string("hidden_activation").empty() ? r.string("hidden_act")
                                                                                         : r.string("hidden_activation"))
                                               : r.string("hidden_act");
    const char* expected = family == "gemma3" ? "gelu_pytorch_tanh" : "silu";
    if (!act.empty() && act != expected)
      throw FormatError(path + ": " + c.hf_architecture + " with activation '" + act + "' is not supported (expected '" +
                        expected + "' for GGUF architecture " + family + ")");
  } else {
    std::string act = r.string("hidden_act");
    if (act.empty()) act = "silu";
    c.arch = gguf_arch(c.hf_architecture, act, path);
  }

  c.n_embd = r.positive("hidden_size");
  c.n_layer = r.positive("num_hidden_layers");
  c.n_head = r.positive("num_attention_heads");
  c.n_head_kv = r.positive("num_key_value_heads", c.n_head);
  c.n_ff = r.positive("intermediate_size");
  c.n_vocab = r.positive("vocab_size");
  c.n_ctx = r.positive("max_position_embeddings");
  c.norm_eps = float(r.number("rms_norm_eps", std::nullopt));
  c.rope_theta = float(r.number("rope_theta", family == "gemma3" ? 1000000.0 : 10000.0));
  if (c.n_head % c.n_head_kv != 0)
    throw FormatError(path + ": num_attention_heads " + std::to_string(c.n_head) +
                      " is not a multiple of num_key_value_heads " + std::to_string(c.n_head_kv));
  if (!qg && !j.contains("head_dim") && c.n_embd % c.n_head != 0)
    throw FormatError(path + ": hidden_size " + std::to_string(c.n_embd) +
                      " is not divisible by num_attention_heads " + std::to_string(c.n_head));
  // Qwen3Config and Gemma3TextConfig default head_dim to 128 and 256, not hidden_size / heads.
  c.head_dim = r.positive("head_dim", family == "qwen3" ? 128 : family == "gemma3" ? 256 : c.n_embd / c.n_head);
  if (c.head_dim % 2 != 0) throw FormatError(path + ": head_dim " + std::to_string(c.head_dim) + " must be even");
  if (!qg && c.arch != "llama" && c.head_dim * c.n_head != c.n_embd)
    throw FormatError(path + ": head_dim × num_attention_heads must equal hidden_size for " + c.arch);
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const json& s = j["rope_scaling"];
    const bool no_op = s.is_object() && s.value("type", s.value("rope_type", "")) == "linear" &&
                       s.contains("factor") && s["factor"].is_number() && s["factor"].get<double>() == 1.0;
    if (!no_op) throw FormatError(path + ": rope_scaling " + s.dump() + " is not supported");
  }

  const auto tie = r.boolean("tie_word_embeddings");
  if (qg) {
    // Qwen3Config defaults to an untied head, Gemma3 always ties it.
    c.tied = tie.value_or(family == "gemma3");
    if (family == "gemma3" && !c.tied)
      throw FormatError(path + ": tie_word_embeddings is false, but Gemma 3 always ties the LM head");
    read_qwen_gemma_extras(j, r, c);
  } else {
    // bitnet* graphs always tie the head (architectures.md §2–§3); llama follows the config.
    c.tied = c.arch == "llama" ? tie.value_or(false) : true;
    if (c.arch != "llama" && tie == false && c.hf_architecture != "BitnetForCausalLM")
      throw FormatError(path + ": tie_word_embeddings is false, but GGUF architecture " + c.arch +
                        " always uses the token embedding as LM head");
  }

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
