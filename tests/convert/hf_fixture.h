#pragma once
// Builds small Hugging Face-style checkpoints on disk (config.json, safetensors single or sharded
// with an index, tokenizer files) with random weights, and remembers the stored values so tests
// can recompute what the converter must write.
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <cmath>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "conversion/sentencepiece_model.h"
#include "formats/gguf.h"
#include "formats/half.h"
#include "formats/safetensors.h"
#include "test_data.h"
#include "tokenizer/internal.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::testing {

struct HfTensor {
  std::string name;
  std::string dtype;  // "BF16", "F32", "U8"
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// Tensors laid out back to back; returns the whole file.
inline std::vector<uint8_t> safetensors_bytes(const std::vector<HfTensor>& ts, const std::string& header_override = "") {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  h["__metadata__"] = {{"format", "pt"}};
  uint64_t off = 0;
  for (const auto& t : ts) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
    off += t.bytes.size();
  }
  std::string header = header_override.empty() ? h.dump() : header_override;
  while (header.size() % 8) header += ' ';  // the reference writer pads with spaces
  std::string buf(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(buf.data(), &n, 8);
  buf += header;
  for (const auto& t : ts) buf.append(t.bytes.begin(), t.bytes.end());
  return std::vector<uint8_t>(buf.begin(), buf.end());
}

inline void write_file(const std::filesystem::path& p, const std::vector<uint8_t>& b) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}
inline void write_text(const std::filesystem::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

enum class TokKind { SmallBpe, Llama3Json, Llama3Tiktoken, Spm };

struct HfModel {
  std::string hf_arch = "BitNetForCausalLM";
  std::string act = "relu2";
  int64_t d = 256, L = 2, H = 4, Hkv = 2, F = 512, ctx = 512;
  int64_t vocab_pad = 3;  // config vocab_size = tokenizer size + vocab_pad
  bool tied = true, packed = false, one_bit_llm_names = false, pairs_merges = false;
  int shards = 1;
  uint64_t seed = 1;
  TokKind tok = TokKind::SmallBpe;
  std::string quant_linear_class;  // quantization_config.linear_class if set

  // Filled by write_checkpoint: the float value of every stored tensor (bf16-rounded masters,
  // or t·scale / t/scale for packed projections), by HF name.
  std::map<std::string, std::vector<float>> values;
  std::vector<HfTensor> tensors;
  int64_t n_vocab = 0;
  nlohmann::json config;
};

inline std::vector<uint8_t> to_bf16(std::vector<float>& v) {  // rounds v in place to what is stored
  std::vector<uint8_t> out(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t h = fp32_to_bf16(v[i]);
    v[i] = bf16_to_fp32(h);
    std::memcpy(&out[2 * i], &h, 2);
  }
  return out;
}

// tokenizers.md §2.3, written out independently of the converter's copy.
inline const char* const kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// The small hand-made byte-level BPE vocabulary: 256 bytes, 4 merges, 3 added tokens.
inline nlohmann::json small_bpe_tokenizer_json(bool pairs) {
  nlohmann::json vocab = nlohmann::json::object();
  int id = 0;
  for (int b = 0; b < 256; ++b) vocab[tok::bytes_to_bpe_text(std::string(1, char(b)))] = id++;
  const std::vector<std::pair<std::string, std::string>> merges = {{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}};
  nlohmann::json jm = nlohmann::json::array();
  for (const auto& [l, r] : merges) {
    vocab[l + r] = id++;
    jm.push_back(pairs ? nlohmann::json::array({l, r}) : nlohmann::json(l + " " + r));
  }
  nlohmann::json added = nlohmann::json::array();
  for (const auto& [text, special] : std::vector<std::pair<std::string, bool>>{
           {"<|begin_of_text|>", true}, {"<|end_of_text|>", true}, {"<|user|>", false}})
    added.push_back({{"id", id++}, {"content", text}, {"special", special}});
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"pre_tokenizer",
           {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Split}}}, {"behavior", "Isolated"}},
              {{"type", "ByteLevel"}, {"use_regex", false}}}}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", jm}}}};
}

// The full Llama-3 vocabulary (from the shared tiktoken file) as a tokenizer.json.
inline nlohmann::json llama3_tokenizer_json(bool pairs) {
  const VocabData v = vocab_from_tiktoken(shared_data_dir() + "/llama3-tokenizer.tiktoken");
  nlohmann::json vocab = nlohmann::json::object(), added = nlohmann::json::array(), jm = nlohmann::json::array();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.types[i] == TokenType::CONTROL) added.push_back({{"id", i}, {"content", v.tokens[i]}, {"special", true}});
    else vocab[v.tokens[i]] = i;
  }
  for (const auto& m : v.merges) {
    const size_t sp = m.find(' ', 1);
    jm.push_back(pairs ? nlohmann::json::array({m.substr(0, sp), m.substr(sp + 1)}) : nlohmann::json(m));
  }
  return {{"added_tokens", added},
          {"pre_tokenizer",
           {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Split}}}, {"behavior", "Isolated"}},
              {{"type", "ByteLevel"}, {"use_regex", false}}}}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", jm}, {"ignore_merges", true}}}};
}

// Writes the tokenizer files; returns the number of tokens.
inline int64_t write_tokenizer(const std::filesystem::path& dir, const HfModel& m) {
  nlohmann::json tc = {{"bos_token", "<|begin_of_text|>"}, {"eos_token", {{"content", "<|end_of_text|>"}}},
                       {"chat_template", "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"}};
  switch (m.tok) {
    case TokKind::SmallBpe: {
      const auto j = small_bpe_tokenizer_json(m.pairs_merges);
      write_text(dir / "tokenizer.json", j.dump());
      write_text(dir / "tokenizer_config.json", tc.dump());
      return int64_t(j["model"]["vocab"].size() + j["added_tokens"].size());
    }
    case TokKind::Llama3Json:
      write_text(dir / "tokenizer.json", llama3_tokenizer_json(m.pairs_merges).dump());
      write_text(dir / "tokenizer_config.json", tc.dump());
      return 128256;
    case TokKind::Llama3Tiktoken:
      std::filesystem::copy_file(shared_data_dir() + "/llama3-tokenizer.tiktoken", dir / "tokenizer.model");
      return 128256;
    case TokKind::Spm: {
      const VocabData v = read_vocab(GgufFile::open(shared_data_dir() + "/ggml-vocab-llama-spm.gguf"));
      SpmModel spm;
      spm.model_type = 2;
      spm.byte_fallback = true;
      spm.remove_extra_whitespaces = false;
      for (size_t i = 0; i < v.tokens.size(); ++i)
        spm.pieces.push_back({v.tokens[i], v.scores[i], int32_t(v.types[i])});
      write_file(dir / "tokenizer.model", serialize_sentencepiece_model(spm));
      return int64_t(v.tokens.size());
    }
  }
  return 0;
}

// Random tensors in HF layout, then config.json, safetensors (sharded if asked) and tokenizer.
inline void write_checkpoint(const std::filesystem::path& dir, HfModel& m) {
  std::filesystem::create_directories(dir);
  m.n_vocab = write_tokenizer(dir, m) + m.vocab_pad;
  std::mt19937_64 rng(m.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  m.tensors.clear();
  m.values.clear();
  auto master = [&](const std::string& name, std::vector<int64_t> shape, float sd, float mean) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = mean + sd * normal(rng);
    m.tensors.push_back({name, "BF16", shape, to_bf16(v)});
    m.values[name] = v;
  };
  auto projection = [&](const std::string& name, int64_t rows, int64_t cols) {
    if (!m.packed) return master(name, {rows, cols}, 1.0f / std::sqrt(float(cols)), 0.0f);
    const int64_t P = (rows + 3) / 4;
    std::vector<uint8_t> packed(size_t(P * cols), 0);
    std::vector<float> scale_v = {0.5f + float(rng() % 100) / 64.0f};
    const auto scale_bytes = to_bf16(scale_v);
    const bool divide = m.quant_linear_class == "bitlinear" ||
                        (m.quant_linear_class.empty() && m.hf_arch == "LlamaForCausalLM");
    std::vector<float> v(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < cols; ++k) {
        const int code = int(rng() % 3);
        packed[size_t((r % P) * cols + k)] |= uint8_t(code << (2 * (r / P)));
        v[size_t(r * cols + k)] = float(code - 1) * (divide ? 1.0f / scale_v[0] : scale_v[0]);
      }
    m.tensors.push_back({name, "U8", {P, cols}, packed});
    m.tensors.push_back({name.substr(0, name.size() - 6) + "weight_scale", "BF16", {}, scale_bytes});
    m.values[name] = v;
  };
  const bool sub = m.hf_arch != "LlamaForCausalLM";
  const int64_t hd = m.d / m.H;
  master("model.embed_tokens.weight", {m.n_vocab, m.d}, 2.0f / std::sqrt(float(m.d)), 0.0f);
  master("model.norm.weight", {m.d}, 0.05f, 1.0f);
  if (!m.tied) master("lm_head.weight", {m.n_vocab, m.d}, 2.0f / std::sqrt(float(m.d)), 0.0f);
  for (int64_t i = 0; i < m.L; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    master(p + "input_layernorm.weight", {m.d}, 0.05f, 1.0f);
    projection(p + "self_attn.q_proj.weight", m.H * hd, m.d);
    projection(p + "self_attn.k_proj.weight", m.Hkv * hd, m.d);
    projection(p + "self_attn.v_proj.weight", m.Hkv * hd, m.d);
    projection(p + "self_attn.o_proj.weight", m.d, m.H * hd);
    if (sub) master(p + (m.one_bit_llm_names ? "self_attn.inner_attn_ln.weight" : "self_attn.attn_sub_norm.weight"), {m.d}, 0.05f, 1.0f);
    master(p + "post_attention_layernorm.weight", {m.d}, 0.05f, 1.0f);
    projection(p + "mlp.gate_proj.weight", m.F, m.d);
    projection(p + "mlp.up_proj.weight", m.F, m.d);
    projection(p + "mlp.down_proj.weight", m.d, m.F);
    if (sub) master(p + (m.one_bit_llm_names ? "mlp.ffn_layernorm.weight" : "mlp.ffn_sub_norm.weight"), {m.F}, 0.05f, 1.0f);
  }
  m.config = {{"_name_or_path", "test/tiny-" + m.hf_arch}, {"architectures", {m.hf_arch}}, {"hidden_act", m.act}, {"hidden_size", m.d},
              {"num_hidden_layers", m.L}, {"num_attention_heads", m.H}, {"num_key_value_heads", m.Hkv},
              {"intermediate_size", m.F}, {"vocab_size", m.n_vocab}, {"max_position_embeddings", m.ctx},
              {"rms_norm_eps", 1e-5}, {"rope_theta", 500000.0}, {"tie_word_embeddings", m.tied},
              {"bos_token_id", 0}, {"eos_token_id", 1}};
  if (!m.quant_linear_class.empty())
    m.config["quantization_config"] = {{"quant_method", "bitnet"}, {"linear_class", m.quant_linear_class}};
  write_text(dir / "config.json", m.config.dump(2));
  if (m.shards <= 1) return write_file(dir / "model.safetensors", safetensors_bytes(m.tensors));
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  for (int s = 0; s < m.shards; ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, m.shards);
    std::vector<HfTensor> part;
    for (size_t i = size_t(s); i < m.tensors.size(); i += size_t(m.shards)) {
      part.push_back(m.tensors[i]);
      index["weight_map"][m.tensors[i].name] = name;
    }
    write_file(dir / name, safetensors_bytes(part));
  }
  write_text(dir / "model.safetensors.index.json", index.dump(2));
}

inline std::vector<uint8_t> read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace bitnet::testing
