#include "conversion/dummy_model.h"

#include <bit>
#include <cmath>
#include <filesystem>
#include <cstdlib>

#include "errors.h"
#include "conversion/hf_convert.h"
#include "formats/gguf.h"
#include "model/hparams.h"
#include "tensor/quants.h"
#include "tokenizer/tokenizer.h"

namespace bitnet {
namespace {

// xoshiro256** seeded through splitmix64: small, fast and fully specified, so a seed gives the
// same model on every platform.
struct Rng {
  uint64_t s[4];
  explicit Rng(uint64_t seed) {
    for (auto& x : s) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      x = z ^ (z >> 31);
    }
  }
  uint64_t next() {
    const uint64_t result = std::rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = std::rotl(s[3], 45);
    return result;
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {  // Box-Muller
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

// Random ternary matrix α·t with P(t=±1) = 1/3 each. α = gain / sqrt(expected non-zeros per row),
// so every output element has variance gain² when the input has unit RMS.
std::vector<float> ternary_matrix(Rng& rng, int64_t cols, int64_t rows, double gain) {
  const float alpha = float(gain / std::sqrt(2.0 / 3.0 * double(cols)));
  std::vector<float> w(static_cast<size_t>(cols * rows));
  for (float& x : w) x = alpha * float(int((rng.next() >> 32) * 3 >> 32) - 1);
  return w;
}

struct TensorPlan {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
  enum Kind { Embedding, Norm, Projection } kind;
  double gain;
};

}  // namespace

const std::vector<ModelPreset>& model_presets() {
  static const std::vector<ModelPreset> presets = {
      {"tiny", 256, 2, 4, 2, 512, 512, "test model"},
      // The 3B's awkward widths in miniature: head size 100, rows of 400 and 544 that are not
      // whole 128-blocks (the 3B's 8640 is 67.5 blocks), neither a multiple of 256.
      {"tiny-odd", 400, 2, 4, 2, 544, 512, "test model with 3B-like odd widths"},
      {"125M", 768, 12, 12, 4, 2048, 2048, "small development model"},
      {"large", 1536, 24, 16, 16, 4096, 2048, "1bitLLM bitnet_b1_58-large (0.7B)"},
      {"2B-4T", 2560, 30, 20, 5, 6912, 4096, "microsoft BitNet-b1.58-2B-4T"},
      {"3B", 3200, 26, 32, 32, 8640, 2048, "1bitLLM bitnet_b1_58-3B"},
      {"8B", 4096, 32, 32, 8, 14336, 8192, "HF1BitLLM Llama3-8B-1.58-100B-tokens"},
  };
  return presets;
}

const ModelPreset* find_preset(const std::string& name) {
  for (const auto& p : model_presets())
    if (p.name == name) return &p;
  return nullptr;
}

std::string default_vocab_dir() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("BITNET_DATA_DIR"); env && *env) candidates.push_back(env);
  candidates.push_back(std::string(BITNET_SOURCE_DIR) + "/data");
  for (const auto& dir : candidates)
    if (std::filesystem::exists(dir + "/llama3-tokenizer.tiktoken") &&
        std::filesystem::exists(dir + "/ggml-vocab-llama-spm.gguf"))
      return dir;
  std::string list;
  for (const auto& dir : candidates) list += "\n  " + dir;
  throw Error("tokenizer data (llama3-tokenizer.tiktoken, ggml-vocab-llama-spm.gguf) not found in:" +
              list + "\nset BITNET_DATA_DIR or pass --vocab-dir");
}

void generate_dummy_model(const DummyModelSpec& spec, const std::string& path,
                          const GenerateProgress& progress, std::vector<std::string>* notes) {
  const ArchTraits& arch = arch_traits(spec.arch);
  const ModelPreset* preset = find_preset(spec.preset);
  if (!preset) {
    std::string list;
    for (const auto& p : model_presets()) list += (list.empty() ? "" : ", ") + p.name;
    throw Error("unknown preset '" + spec.preset + "' (available: " + list + ")");
  }
  const std::string dir = spec.vocab_dir.empty() ? default_vocab_dir() : spec.vocab_dir;
  // The 1bitLLM `bitnet` models use the LLaMA SentencePiece vocabulary; the others Llama-3's.
  const bool spm = spec.arch == "bitnet";
  VocabData vocab = spm ? read_vocab(GgufFile::open(dir + "/ggml-vocab-llama-spm.gguf"))
                        : vocab_from_tiktoken(dir + "/llama3-tokenizer.tiktoken");
  const ChatFormat chat = spec.arch == "llama"   ? ChatFormat::Llama3
                          : spec.arch == "bitnet" ? ChatFormat::Plain
                                                  : ChatFormat::BitNet;
  vocab.chat_template = chat == ChatFormat::Plain ? "" : chat_template_text(chat);

  const ModelPreset& p = *preset;
  const int64_t n_vocab = int64_t(vocab.tokens.size());
  const int64_t hd = p.n_embd / p.n_head;
  const float rope_base = spec.arch == "bitnet" ? 10000.0f : 500000.0f;

  GgufWriter w;
  const std::string a = spec.arch + ".";
  w.add_string("general.architecture", spec.arch);
  w.add_string("general.name", "bitnet.cpp dummy " + spec.arch + " " + p.name);
  w.add_u32(a + "vocab_size", uint32_t(n_vocab));
  w.add_u32(a + "context_length", uint32_t(p.n_ctx));
  w.add_u32(a + "embedding_length", uint32_t(p.n_embd));
  w.add_u32(a + "block_count", uint32_t(p.n_layer));
  w.add_u32(a + "feed_forward_length", uint32_t(p.n_ff));
  w.add_u32(a + "rope.dimension_count", uint32_t(hd));
  w.add_u32(a + "attention.head_count", uint32_t(p.n_head));
  w.add_u32(a + "attention.head_count_kv", uint32_t(p.n_head_kv));
  w.add_f32(a + "attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_f32(a + "rope.freq_base", rope_base);
  w.add_u32("general.file_type", gguf_file_type(spec.type));
  w.add_u32("general.quantization_version", 2);
  write_vocab(w, vocab);

  // Gains: q/k/v/gate/up outputs get unit variance; attn_output and ffn_down are scaled by
  // 1/sqrt(2L) so the residual stream stays O(1) after all 2L additions. Embedding entries have
  // std 2/sqrt(d): with the unit-RMS final norm the logits then have a standard deviation of ~2,
  // so a random model's perplexity is about V·e^(σ²/2) ≈ 7.4·V instead of astronomically large.
  const double residual_gain = 1.0 / std::sqrt(2.0 * double(p.n_layer));
  std::vector<TensorPlan> plan;
  auto proj = [&](const std::string& name, int64_t cols, int64_t rows, double gain) {
    const GgmlType t = storage_type(spec.type, name, cols, rows, notes);
    plan.push_back({name, t, {cols, rows}, TensorPlan::Projection, gain});
  };
  // Embedding types fall back the same way (Q6_K needs rows of whole 256-blocks).
  auto embedding = [&](const std::string& name) {
    const GgmlType t = storage_type(spec.embedding_type, name, p.n_embd, n_vocab, notes);
    plan.push_back({name, t, {p.n_embd, n_vocab}, TensorPlan::Embedding, 0});
  };
  embedding("token_embd.weight");
  plan.push_back({"output_norm.weight", GgmlType::F32, {p.n_embd}, TensorPlan::Norm, 0});
  if (!arch.always_tied) embedding("output.weight");
  for (int64_t i = 0; i < p.n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    plan.push_back({b + "attn_norm.weight", GgmlType::F32, {p.n_embd}, TensorPlan::Norm, 0});
    proj(b + "attn_q.weight", p.n_embd, p.n_head * hd, 1.0);
    proj(b + "attn_k.weight", p.n_embd, p.n_head_kv * hd, 1.0);
    proj(b + "attn_v.weight", p.n_embd, p.n_head_kv * hd, 1.0);
    proj(b + "attn_output.weight", p.n_head * hd, p.n_embd, residual_gain);
    if (arch.sub_norms) plan.push_back({b + "attn_sub_norm.weight", GgmlType::F32, {p.n_head * hd}, TensorPlan::Norm, 0});
    plan.push_back({b + "ffn_norm.weight", GgmlType::F32, {p.n_embd}, TensorPlan::Norm, 0});
    proj(b + "ffn_gate.weight", p.n_embd, p.n_ff, 1.0);
    proj(b + "ffn_up.weight", p.n_embd, p.n_ff, 1.0);
    proj(b + "ffn_down.weight", p.n_ff, p.n_embd, residual_gain);
    if (arch.sub_norms) plan.push_back({b + "ffn_sub_norm.weight", GgmlType::F32, {p.n_ff}, TensorPlan::Norm, 0});
  }

  for (size_t i = 0; i < plan.size(); ++i) {
    const TensorPlan tp = plan[i];
    const uint64_t tensor_seed = spec.seed * 0x100000001b3ull + i;
    w.add_tensor(tp.name, tp.type, tp.ne, [tp, tensor_seed](std::span<uint8_t> out) {
      Rng rng(tensor_seed);
      const int64_t cols = tp.ne[0], rows = tp.ne.size() > 1 ? tp.ne[1] : 1;
      std::vector<float> values;
      if (tp.kind == TensorPlan::Projection) {
        values = ternary_matrix(rng, cols, rows, tp.gain);
      } else if (tp.kind == TensorPlan::Embedding) {
        values.resize(size_t(cols * rows));
        const double sd = 2.0 / std::sqrt(double(cols));
        for (float& x : values) x = float(sd * rng.normal());
      } else {  // norm gains near 1 (not exactly 1, so a mis-bound gain shows in tests)
        values.resize(size_t(cols));
        for (float& x : values) x = float(0.9 + 0.2 * rng.uniform());
      }
      quantize_tensor(tp.type, values.data(), cols, rows, out);
    });
  }
  w.write(path, progress);
}

}  // namespace bitnet
