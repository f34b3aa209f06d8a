#include "conversion/dummy_model.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <filesystem>
#include <cstdlib>

#include "errors.h"
#include "conversion/hf_config.h"
#include "conversion/hf_convert.h"
#include "conversion/hf_tokenizer.h"
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

// Random values for every planned tensor, seeded per tensor (seed, index).
void write_planned_tensors(GgufWriter& w, const std::vector<TensorPlan>& plan, uint64_t seed) {
  for (size_t i = 0; i < plan.size(); ++i) {
    const TensorPlan tp = plan[i];
    const uint64_t tensor_seed = seed * 0x100000001b3ull + i;
    w.add_tensor(tp.name, tp.type, tp.ne, [tp, tensor_seed](std::span<uint8_t> out) {
      Rng rng(tensor_seed);
      const int64_t cols = tp.ne[0], rows = tp.ne.size() > 1 ? tp.ne[1] : 1;
      std::vector<float> values;
      if (tp.kind == TensorPlan::Projection) {
        values = ternary_matrix(rng, cols, rows, tp.gain);
      } else if (tp.kind == TensorPlan::Embedding) {
        values.resize(size_t(cols * rows));
        // gain 0: the LM-head scale (logits of standard deviation ~2, docs/dummy-models.md).
        const double sd = tp.gain > 0 ? tp.gain : 2.0 / std::sqrt(double(cols));
        for (float& x : values) x = float(sd * rng.normal());
      } else {  // norm gains near 1 (not exactly 1, so a mis-bound gain shows in tests)
        values.resize(size_t(cols));
        for (float& x : values) x = float(0.9 + 0.2 * rng.uniform());
      }
      quantize_tensor(tp.type, values.data(), cols, rows, out);
    });
  }
}

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

const std::vector<EmbeddingPreset>& embedding_presets() {
  static const std::vector<EmbeddingPreset> presets = {
      {"embed-0.6B", "qwen3", 1024, 28, 16, 8, 128, 3072, 151936, 32768, 1e6f, 1e-6f, 0, 0, 0, 0,
       "microsoft bitnet-embedding-0.6b (Qwen3)"},
      {"embed-270M", "gemma3", 640, 18, 4, 1, 256, 2048, 262144, 32768, 10000.0f, 1e-6f, 512, 6, 10000.0f, 256,
       "microsoft bitnet-embedding-270m (Gemma 3)"},
      // Test sizes. head_dim differs from d / heads as in the real models; the tiny Gemma 3 has a
      // window of 8 (inputs longer than that differ from full attention), every 2nd layer full, a
      // local RoPE base other than the global one and query_pre_attn_scalar ≠ head_dim, so that
      // each of these shows when it is ignored.
      {"embed-tiny-qwen3", "qwen3", 64, 2, 4, 2, 32, 128, 151936, 512, 1e6f, 1e-6f, 0, 0, 0, 0, "test model (Qwen3)"},
      {"embed-tiny-gemma3", "gemma3", 64, 3, 2, 1, 32, 128, 262144, 512, 1e6f, 1e-6f, 8, 2, 10000.0f, 16,
       "test model (Gemma 3)"},
  };
  return presets;
}

const EmbeddingPreset* find_embedding_preset(const std::string& name) {
  for (const auto& p : embedding_presets())
    if (p.name == name) return &p;
  return nullptr;
}

std::string embedding_tokenizer_dir(const std::string& vocab_dir, const std::string& arch) {
  const std::string dir = vocab_dir + "/tokenizers/" + arch;
  if (!std::filesystem::exists(dir + "/tokenizer.json") || !std::filesystem::exists(dir + "/tokenizer_config.json"))
    throw Error(dir + ": the " + arch + " tokenizer (tokenizer.json, tokenizer_config.json) is missing; "
                "run scripts/fetch_tokenizers.sh");
  return dir;
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

namespace {

// DummyModelSpec::vocab_size: a SentencePiece vocabulary of n tokens, as a small model trained with
// byte fallback would have it: the special and byte tokens, the single characters of ASCII and the
// word-boundary "▁" (so ASCII text decodes back exactly), and the highest-scoring merges to fill n —
// kept in the original order (specials and bytes, merges, characters), ids renumbered.
void cut_vocab(VocabData& vocab, int64_t n, bool spm) {
  if (!spm) throw Error("a vocabulary size applies to the LLaMA SentencePiece vocabulary only (--arch bitnet)");
  const size_t size = vocab.tokens.size();
  if (vocab.types.size() != size || vocab.scores.size() != size)
    throw Error("a vocabulary size needs token types and scores for every token");
  std::vector<char> kept(size, 0);
  int64_t fixed = 0;
  for (size_t i = 0; i < size; ++i) {
    const std::string& t = vocab.tokens[i];
    const bool character = t == "\xE2\x96\x81" || (t.size() == 1 && static_cast<unsigned char>(t[0]) < 0x80);
    if (vocab.types[i] != TokenType::NORMAL || character) kept[i] = 1, ++fixed;
  }
  if (n < fixed || n > int64_t(size))
    throw Error("vocabulary size " + std::to_string(n) + ": must be between " + std::to_string(fixed) +
                " (the special, byte and single-character tokens) and " + std::to_string(size));
  for (size_t i = 0; i < size && fixed < n; ++i)
    if (!kept[i]) kept[i] = 1, ++fixed;  // merges by id: the LLaMA vocabulary lists them by descending score
  std::vector<int32_t> new_id(size, -1);
  VocabData out = vocab;
  out.tokens.clear(), out.scores.clear(), out.types.clear();
  for (size_t i = 0; i < size; ++i)
    if (kept[i]) {
      new_id[i] = int32_t(out.tokens.size());
      out.tokens.push_back(vocab.tokens[i]);
      out.scores.push_back(vocab.scores[i]);
      out.types.push_back(vocab.types[i]);
    }
  for (int32_t* id : {&out.bos, &out.eos, &out.eot, &out.unk, &out.pad})
    if (*id >= 0) *id = size_t(*id) < size ? new_id[size_t(*id)] : -1;
  vocab = std::move(out);
}

// An embedding-model preset (qwen3 / gemma3 BitNet-embedding shapes): ternary projections each with
// its BitNet input norm (`*_norm_in`), per-head q/k norms, Gemma's post-attention / post-FFN norms,
// no LM head, last-token pooling, the real tokenizer with EOS appended (what `bitnet convert`
// writes for these checkpoints).
void generate_embedding_model(const DummyModelSpec& spec, const EmbeddingPreset& p, const std::string& path,
                              const GenerateProgress& progress, std::vector<std::string>* notes) {
  const std::string dir = spec.vocab_dir.empty() ? default_vocab_dir() : spec.vocab_dir;
  HfConfig cfg;
  cfg.arch = p.arch;
  cfg.n_vocab = p.n_vocab;
  VocabData vocab = read_hf_tokenizer(embedding_tokenizer_dir(dir, p.arch), cfg);
  const bool gemma = p.arch == "gemma3";
  set_embedding_special_tokens(vocab, p.arch);

  cfg.name = "bitnet.cpp dummy " + p.arch + " " + p.name;
  cfg.n_ctx = p.n_ctx;
  cfg.n_embd = p.n_embd;
  cfg.n_layer = p.n_layer;
  cfg.n_ff = p.n_ff;
  cfg.n_head = p.n_head;
  cfg.n_head_kv = p.n_head_kv;
  cfg.head_dim = p.head_dim;
  cfg.norm_eps = p.norm_eps;
  cfg.rope_theta = p.rope_theta;
  cfg.sliding_window = p.sliding_window;
  cfg.swa_pattern = p.swa_pattern;
  cfg.rope_theta_swa = p.rope_theta_swa;
  cfg.query_pre_attn_scalar = p.query_pre_attn_scalar;
  GgufWriter w;
  write_model_metadata(w, cfg, spec.type, vocab, 3);  // last-token pooling

  // As for the other presets every projection's output has RMS ~gain for a unit-RMS input (the
  // BitNet input norm makes every projection input unit-RMS). Gemma's post-norms renormalize
  // each residual addition, so there the output gains are 1; in Qwen3 they are 1/sqrt(2L).
  // Embedding entries: RMS 1 (Gemma: 1/sqrt(d), since the graph multiplies them by sqrt(d)).
  const double residual_gain = gemma ? 1.0 : 1.0 / std::sqrt(2.0 * double(p.n_layer));
  const int64_t d = p.n_embd, q = p.n_head * p.head_dim, kv = p.n_head_kv * p.head_dim, f = p.n_ff;
  std::vector<TensorPlan> plan;
  auto norm = [&](const std::string& name, int64_t n) { plan.push_back({name, GgmlType::F32, {n}, TensorPlan::Norm, 0}); };
  auto proj = [&](const std::string& name, int64_t cols, int64_t rows, double gain) {
    plan.push_back({name + ".weight", storage_type(spec.type, name + ".weight", cols, rows, notes), {cols, rows},
                    TensorPlan::Projection, gain});
    norm(name + "_norm_in.weight", cols);
  };
  plan.push_back({"token_embd.weight", storage_type(spec.embedding_type, "token_embd.weight", d, p.n_vocab, notes),
                  {d, p.n_vocab}, TensorPlan::Embedding, gemma ? 1.0 / std::sqrt(double(d)) : 1.0});
  norm("output_norm.weight", d);
  for (int64_t i = 0; i < p.n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    norm(b + "attn_norm.weight", d);
    proj(b + "attn_q", d, q, 1.0);
    proj(b + "attn_k", d, kv, 1.0);
    proj(b + "attn_v", d, kv, 1.0);
    norm(b + "attn_q_norm.weight", p.head_dim);
    norm(b + "attn_k_norm.weight", p.head_dim);
    proj(b + "attn_output", q, d, residual_gain);
    if (gemma) norm(b + "post_attention_norm.weight", d);
    norm(b + "ffn_norm.weight", d);
    proj(b + "ffn_gate", d, f, 1.0);
    proj(b + "ffn_up", d, f, 1.0);
    proj(b + "ffn_down", f, d, residual_gain);
    if (gemma) norm(b + "post_ffw_norm.weight", d);
  }
  write_planned_tensors(w, plan, spec.seed);
  w.write(path, progress);
}

}  // namespace

void generate_dummy_model(const DummyModelSpec& spec, const std::string& path,
                          const GenerateProgress& progress, std::vector<std::string>* notes) {
  if (const EmbeddingPreset* ep = find_embedding_preset(spec.preset)) {
    if (spec.arch != ep->arch)
      throw Error("preset '" + spec.preset + "' is a " + ep->arch + " model (--arch " + spec.arch + " given)");
    return generate_embedding_model(spec, *ep, path, progress, notes);
  }
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
  if (spec.vocab_size > 0) cut_vocab(vocab, spec.vocab_size, spm);

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

  write_planned_tensors(w, plan, spec.seed);
  w.write(path, progress);
}

}  // namespace bitnet
