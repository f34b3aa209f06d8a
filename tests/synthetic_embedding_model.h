#pragma once
// Test helper: qwen3 / gemma3 model files written from scratch (random seeded weights, the tiny
// llama dummy's tokenizer) with every feature of the BitNet-embedding architectures switchable.
#include <cmath>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "tensor/quants.h"
#include "test_data.h"

namespace bitnet::testing {

struct Spec {
  std::string arch = "qwen3";
  GgmlType type = GgmlType::I2_S;
  bool norm_in = true;      // BitNet-embedding per-projection input norms
  int64_t head_dim = 128;   // with d = 256 and 4 heads: ≠ d / heads
  int64_t n_swa = 0, swa_pattern = 0;
  float attn_scale = 0;     // 0: not written
  int64_t pooling = -1;     // -1: not written
  float rope_base_swa = 10000.0f;
};

inline void PrintTo(const Spec& s, std::ostream* os) {
  *os << s.arch << " " << ggml_type_name(s.type) << (s.norm_in ? " norm_in" : " plain") << " hd " << s.head_dim
      << " window " << s.n_swa << "/" << s.swa_pattern;
}

constexpr int64_t kEmbd = 256, kLayers = 3, kHeads = 4, kHeadsKv = 2, kFf = 384;

// A model file written from scratch: the tiny llama dummy's tokenizer, every tensor random
// (seeded), projections ~N(0, 1/cols) before quantization, norms around 1.
inline std::vector<uint8_t> synthetic_model(const Spec& s) {
  const GgufFile vocab_src = GgufFile::open(testing::dummy_model("llama", "tiny", GgmlType::F16));
  GgufWriter w;
  w.add_string("general.architecture", s.arch);
  for (const auto& kv : vocab_src.metadata())
    if (kv.key.rfind("tokenizer.", 0) == 0) w.add(kv.key, kv.value);
  const std::string p = s.arch + ".";
  w.add_u32(p + "embedding_length", kEmbd);
  w.add_u32(p + "block_count", kLayers);
  w.add_u32(p + "feed_forward_length", kFf);
  w.add_u32(p + "attention.head_count", kHeads);
  w.add_u32(p + "attention.head_count_kv", kHeadsKv);
  w.add_u32(p + "attention.key_length", uint32_t(s.head_dim));
  w.add_u32(p + "attention.value_length", uint32_t(s.head_dim));
  w.add_u32(p + "context_length", 512);
  w.add_f32(p + "attention.layer_norm_rms_epsilon", 1e-6f);
  w.add_f32(p + "rope.freq_base", 1e6f);
  if (s.n_swa) {
    w.add_u32(p + "attention.sliding_window", uint32_t(s.n_swa));
    w.add_u32(p + "attention.sliding_window_pattern", uint32_t(s.swa_pattern));
    w.add_f32(p + "rope.freq_base_swa", s.rope_base_swa);
  }
  if (s.attn_scale > 0) w.add_f32(p + "attention.scale", s.attn_scale);
  if (s.pooling >= 0) w.add_u32(p + "pooling_type", uint32_t(s.pooling));

  std::mt19937 rng(1234);
  const int64_t n_vocab = int64_t(std::get<GgufArray>(vocab_src.find("tokenizer.ggml.tokens")->value).size());
  auto matrix = [&](const std::string& name, int64_t cols, int64_t rows, GgmlType type) {
    std::normal_distribution<float> dist(0.0f, 1.0f / std::sqrt(float(cols)));
    std::vector<float> v(size_t(cols * rows));
    for (float& x : v) x = dist(rng);
    w.add_tensor_bytes(name, type, {cols, rows}, quantize_tensor(type, v.data(), cols, rows));
  };
  auto norm = [&](const std::string& name, int64_t n) {
    std::uniform_real_distribution<float> dist(0.7f, 1.3f);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = dist(rng);
    w.add_tensor_bytes(name, GgmlType::F32, {n}, quantize_tensor(GgmlType::F32, v.data(), n, 1));
  };
  {
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> e(size_t(kEmbd * n_vocab));
    for (float& x : e) x = dist(rng);
    w.add_tensor_bytes("token_embd.weight", GgmlType::F16, {kEmbd, n_vocab},
                       quantize_tensor(GgmlType::F16, e.data(), kEmbd, n_vocab));
  }
  norm("output_norm.weight", kEmbd);
  const int64_t q_dim = kHeads * s.head_dim, kv_dim = kHeadsKv * s.head_dim;
  for (int64_t il = 0; il < kLayers; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    norm(b + "attn_norm.weight", kEmbd);
    norm(b + "ffn_norm.weight", kEmbd);
    norm(b + "attn_q_norm.weight", s.head_dim);
    norm(b + "attn_k_norm.weight", s.head_dim);
    if (s.arch == "gemma3") {
      norm(b + "post_attention_norm.weight", kEmbd);
      norm(b + "post_ffw_norm.weight", kEmbd);
    }
    matrix(b + "attn_q.weight", kEmbd, q_dim, s.type);
    matrix(b + "attn_k.weight", kEmbd, kv_dim, s.type);
    matrix(b + "attn_v.weight", kEmbd, kv_dim, s.type);
    matrix(b + "attn_output.weight", q_dim, kEmbd, s.type);
    matrix(b + "ffn_gate.weight", kEmbd, kFf, s.type);
    matrix(b + "ffn_up.weight", kEmbd, kFf, s.type);
    matrix(b + "ffn_down.weight", kFf, kEmbd, s.type);
    if (s.norm_in) {
      for (const char* n : {"attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up"}) norm(b + n + "_norm_in.weight", kEmbd);
      norm(b + "attn_output_norm_in.weight", q_dim);
      norm(b + "ffn_down_norm_in.weight", kFf);
    }
  }
  return w.write_to_memory();
}

}  // namespace bitnet::testing
