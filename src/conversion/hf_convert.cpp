#include "conversion/hf_convert.h"

#include <cmath>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "conversion/hf_checkpoint.h"
#include "conversion/hf_config.h"
#include "conversion/hf_tokenizer.h"
#include "base/untrusted_text.h"
#include "errors.h"
#include "formats/half.h"
#include "tensor/quants.h"
#include "tensor/tl_tiles.h"

namespace bitnet {

bool is_projection_output_type(GgmlType t) {
  switch (t) {
    case GgmlType::I2_S: case GgmlType::TQ1_0: case GgmlType::TQ2_0: case GgmlType::TL1:
    case GgmlType::TL2: case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: return true;
    default: return false;
  }
}

bool is_embedding_output_type(GgmlType t) {
  return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16 || t == GgmlType::Q8_0 ||
         t == GgmlType::Q6_K;
}

GgmlType default_embedding_type(GgmlType t) {
  return t == GgmlType::F32 ? GgmlType::F32 : t == GgmlType::BF16 ? GgmlType::BF16 : GgmlType::F16;
}

uint32_t gguf_file_type(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1;
    case GgmlType::Q8_0: return 7;
    case GgmlType::Q6_K: return 18;
    case GgmlType::BF16: return 32;
    case GgmlType::TQ1_0: return 36;
    case GgmlType::TQ2_0: return 37;
    case GgmlType::TL1: return 38;
    case GgmlType::TL2: return 39;
    case GgmlType::I2_S: return 40;
    default: throw Error("no general.file_type for type " + std::string(ggml_type_name(t)));
  }
}

GgmlType storage_type(GgmlType wanted, const std::string& tensor, int64_t cols, int64_t rows,
                      std::vector<std::string>* notes) {
  const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
  if (wanted == GgmlType::TL1 || wanted == GgmlType::TL2) {
    if (!tl_tiles(wanted, rows, cols))
      throw Error(std::string(ggml_type_name(wanted)) + " has no tile layout for the " + shape + " tensor '" +
                  tensor + "' (only the shapes of the published models have one); use i2_s");
    return wanted;
  }
  // I2_S packs the flattened matrix in 128-blocks, so only the element count must be whole blocks.
  auto fits = [&](GgmlType t) {
    return t == GgmlType::I2_S ? (cols * rows) % 128 == 0 : ggml_tensor_nbytes(t, {cols, rows, 1, 1}).has_value();
  };
  GgmlType t = wanted;
  while (!fits(t)) {
    const GgmlType next = (t == GgmlType::TQ1_0 || t == GgmlType::TQ2_0) ? GgmlType::I2_S
                          : t == GgmlType::Q6_K                          ? GgmlType::Q8_0
                                                                          : GgmlType::F16;
    if (next == t)
      throw Error("type " + std::string(ggml_type_name(t)) + " cannot store the " + shape + " tensor '" + tensor + "'");
    if (notes)
      notes->push_back(tensor + ": row length " + std::to_string(cols) + " is not a multiple of the " +
                       std::string(ggml_type_name(t)) + " block size " + std::to_string(ggml_type_info(t).block_size) +
                       "; stored as " + std::string(ggml_type_name(next)) +
                       (next == GgmlType::I2_S ? " (same trits, one scale per tensor)" : ""));
    t = next;
  }
  return t;
}

bool is_projection_name(const std::string& n) {
  if (n.rfind("blk.", 0) != 0) return false;
  const size_t dot = n.find('.', 4);
  if (dot == std::string::npos) return false;
  static const std::set<std::string> kProj = {"attn_q.weight", "attn_k.weight", "attn_v.weight",
                                              "attn_output.weight", "ffn_gate.weight", "ffn_up.weight",
                                              "ffn_down.weight"};
  return kProj.count(n.substr(dot + 1)) > 0;
}

void permute_qk_rows(float* w, int64_t rows, int64_t cols, int64_t n_heads) {
  const int64_t hd = rows / n_heads, half = hd / 2;
  std::vector<float> head(size_t(hd * cols));
  for (int64_t h = 0; h < n_heads; ++h) {
    float* base = w + h * hd * cols;
    std::memcpy(head.data(), base, head.size() * sizeof(float));
    for (int64_t l = 0; l < 2; ++l)
      for (int64_t i = 0; i < half; ++i)
        std::memcpy(base + (2 * i + l) * cols, head.data() + (l * half + i) * cols, size_t(cols) * sizeof(float));
  }
}

namespace {

enum class Kind { Embedding, Norm, Projection };

struct Item {
  std::string gguf;
  Kind kind;
  GgmlType type;
  int64_t cols, rows;           // GGUF ne0, ne1 (rows = 1 for norms)
  const StTensor* src;          // master weights, or the packed uint8 codes
  const StTensor* scale = nullptr;  // packed format: `<name>.weight_scale`
  int64_t permute_heads = 0;    // llama q/k
  bool plain = false;           // a float projection stored as it is (no absmean): qwen3/gemma3 teachers
  bool add_one = false;         // Gemma norm: HF computes x·(1 + w), the GGUF stores 1 + w
};

// What the qwen3/gemma3 planner needs to know besides config.json (decided in convert_hf_checkpoint).
struct QgPlan {
  std::string prefix;        // "model." or "" (a bare backbone saved by sentence-transformers)
  bool bitnet = false;       // per-projection `.norm.weight` tensors: BitNet master weights
  bool embedding = false;    // an embedding model: no LM head is written
};

bool is_qwen_gemma(const HfConfig& c) { return c.arch == "qwen3" || c.arch == "gemma3"; }

[[noreturn]] void shape_error(const StTensor& t, const std::string& expected) {
  throw FormatError("tensor '" + t.name + "' has shape " + t.shape_string() + " but config.json implies " + expected);
}

bool is_float_dtype(StDtype d) {
  return d == StDtype::F32 || d == StDtype::F16 || d == StDtype::BF16 || d == StDtype::F64;
}

// Reads rows × cols floats of a master tensor, refusing NaN/Inf (they would poison α).
void read_finite(const StTensor& t, int64_t first, int64_t n, float* out) {
  st_to_f32(t, first, n, out);
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(out[i]))
      throw FormatError("tensor '" + t.name + "' contains " + (std::isnan(out[i]) ? "NaN" : "Inf") +
                        " at element " + std::to_string(first + i));
}

float packed_scale(const StTensor& s, ScaleRule rule) {
  if (s.elements() != 1) throw FormatError("tensor '" + s.name + "' must hold one value, has shape " + s.shape_string());
  float v;
  read_finite(s, 0, 1, &v);
  if (v == 0) throw FormatError("tensor '" + s.name + "' is 0");
  return rule == ScaleRule::Multiply ? v : 1.0f / v;
}

// HF packed ternaries (ternary-formats.md §13): row r = i·P + p sits in bits 2i..2i+1 of
// packed[p][k], code − 1 = t, code 3 read as 0.
void unpack_hf_ternary(const StTensor& packed, int64_t rows, int64_t cols, float alpha, float* w) {
  const int64_t P = packed.shape[0];
  for (int64_t p = 0; p < P; ++p)
    for (int64_t k = 0; k < cols; ++k) {
      const uint8_t byte = packed.data[p * cols + k];
      for (int64_t i = 0; i < 4; ++i) {
        const int64_t r = i * P + p;
        if (r >= rows) continue;
        const int code = (byte >> (2 * i)) & 3;
        w[r * cols + k] = code == 3 ? 0.0f : alpha * float(code - 1);
      }
    }
}

class Planner {
 public:
  Planner(const HfConfig& c, const HfCheckpoint& ck, GgmlType type, std::optional<GgmlType> emb_type,
          std::vector<std::string>& notes, QgPlan qg = {})
      : c_(c), ck_(ck), type_(type), emb_type_(emb_type.value_or(default_embedding_type(type))), notes_(notes),
        qg_(std::move(qg)) {}

  std::vector<Item> plan() {
    if (is_qwen_gemma(c_)) return plan_qwen_gemma();
    add(Kind::Embedding, "token_embd.weight", {"model.embed_tokens.weight"}, c_.n_embd, c_.n_vocab);
    add(Kind::Norm, "output_norm.weight", {"model.norm.weight"}, c_.n_embd, 1);
    if (!c_.tied) {
      add(Kind::Embedding, "output.weight", {"lm_head.weight"}, c_.n_embd, c_.n_vocab);
    } else if (ck_.find("lm_head.weight")) {
      if (c_.arch != "llama" && c_.hf_architecture == "BitnetForCausalLM")
        throw FormatError("tensor 'lm_head.weight' is present, but GGUF architecture bitnet ties the LM head to "
                          "the token embedding (an untied 1bitLLM head cannot be represented)");
      used_.insert("lm_head.weight");
      notes_.push_back("lm_head.weight ignored: tie_word_embeddings is true");
    }
    const bool sub = c_.arch != "llama";
    const int64_t d = c_.n_embd, q = c_.n_head * c_.head_dim, kv = c_.n_head_kv * c_.head_dim, f = c_.n_ff;
    const bool permute = c_.arch == "llama";
    for (int64_t i = 0; i < c_.n_layer; ++i) {
      const std::string h = "model.layers." + std::to_string(i) + ".", b = "blk." + std::to_string(i) + ".";
      add(Kind::Norm, b + "attn_norm.weight", {h + "input_layernorm.weight"}, d, 1);
      add(Kind::Projection, b + "attn_q.weight", {h + "self_attn.q_proj.weight"}, d, q, permute ? c_.n_head : 0);
      add(Kind::Projection, b + "attn_k.weight", {h + "self_attn.k_proj.weight"}, d, kv, permute ? c_.n_head_kv : 0);
      add(Kind::Projection, b + "attn_v.weight", {h + "self_attn.v_proj.weight"}, d, kv);
      add(Kind::Projection, b + "attn_output.weight", {h + "self_attn.o_proj.weight"}, q, d);
      if (sub)
        add(Kind::Norm, b + "attn_sub_norm.weight",
            {h + "self_attn.attn_sub_norm.weight", h + "self_attn.inner_attn_ln.weight"}, q, 1);
      add(Kind::Norm, b + "ffn_norm.weight", {h + "post_attention_layernorm.weight"}, d, 1);
      add(Kind::Projection, b + "ffn_gate.weight", {h + "mlp.gate_proj.weight"}, d, f);
      add(Kind::Projection, b + "ffn_up.weight", {h + "mlp.up_proj.weight"}, d, f);
      add(Kind::Projection, b + "ffn_down.weight", {h + "mlp.down_proj.weight"}, f, d);
      if (sub)
        add(Kind::Norm, b + "ffn_sub_norm.weight", {h + "mlp.ffn_sub_norm.weight", h + "mlp.ffn_layernorm.weight"}, f, 1);
    }
    return finish();
  }

 private:
  std::vector<Item> finish() {
    for (const std::string& name : ck_.names()) {
      if (used_.count(name)) continue;
      if (name.size() > 20 && name.ends_with("rotary_emb.inv_freq")) continue;  // recomputed from rope_theta
      throw FormatError("unexpected tensor '" + name + "' in the checkpoint (not part of a " + c_.hf_architecture +
                        (qg_.bitnet ? " BitNet" : "") + " model with " + std::to_string(c_.n_layer) + " layers)");
    }
    return std::move(items_);
  }

  // Qwen3 / Gemma 3 (docs/embeddings-conversion.md): HF names with or without the "model." prefix;
  // BitNet checkpoints add `<proj>.norm.weight` (the BitLinear input norm) to each of the seven
  // projections, stored as `<gguf proj>_norm_in.weight`; Gemma's own norms are stored as 1 + w.
  std::vector<Item> plan_qwen_gemma() {
    const std::string& m = qg_.prefix;
    const bool gemma = c_.arch == "gemma3";
    auto norm = [&](const std::string& gguf, const std::string& hf, int64_t n, bool gemma_norm) {
      add(Kind::Norm, gguf, {hf}, n, 1);
      items_.back().add_one = gemma && gemma_norm;
    };
    auto proj = [&](const std::string& gguf, const std::string& hf, int64_t cols, int64_t rows) {
      add(Kind::Projection, gguf + ".weight", {hf + ".weight"}, cols, rows);
      items_.back().plain = !qg_.bitnet && items_.back().src->dtype != StDtype::U8;
      if (qg_.bitnet) add(Kind::Norm, gguf + "_norm_in.weight", {hf + ".norm.weight"}, cols, 1);
    };
    add(Kind::Embedding, "token_embd.weight", {m + "embed_tokens.weight"}, c_.n_embd, c_.n_vocab);
    norm("output_norm.weight", m + "norm.weight", c_.n_embd, true);
    const bool head = !qg_.embedding && !c_.tied;
    if (head) add(Kind::Embedding, "output.weight", {"lm_head.weight"}, c_.n_embd, c_.n_vocab);
    if (!head && ck_.find("lm_head.weight")) {
      used_.insert("lm_head.weight");
      notes_.push_back(std::string("lm_head.weight ignored: ") +
                       (qg_.embedding ? "an embedding model has no LM head" : "tie_word_embeddings is true"));
    }
    const int64_t d = c_.n_embd, q = c_.n_head * c_.head_dim, kv = c_.n_head_kv * c_.head_dim, f = c_.n_ff;
    for (int64_t i = 0; i < c_.n_layer; ++i) {
      const std::string h = m + "layers." + std::to_string(i) + ".", b = "blk." + std::to_string(i) + ".";
      norm(b + "attn_norm.weight", h + "input_layernorm.weight", d, true);
      proj(b + "attn_q", h + "self_attn.q_proj", d, q);
      proj(b + "attn_k", h + "self_attn.k_proj", d, kv);
      proj(b + "attn_v", h + "self_attn.v_proj", d, kv);
      norm(b + "attn_q_norm.weight", h + "self_attn.q_norm.weight", c_.head_dim, true);
      norm(b + "attn_k_norm.weight", h + "self_attn.k_norm.weight", c_.head_dim, true);
      proj(b + "attn_output", h + "self_attn.o_proj", q, d);
      if (gemma) {
        norm(b + "post_attention_norm.weight", h + "post_attention_layernorm.weight", d, true);
        norm(b + "ffn_norm.weight", h + "pre_feedforward_layernorm.weight", d, true);
      } else {
        norm(b + "ffn_norm.weight", h + "post_attention_layernorm.weight", d, false);
      }
      proj(b + "ffn_gate", h + "mlp.gate_proj", d, f);
      proj(b + "ffn_up", h + "mlp.up_proj", d, f);
      proj(b + "ffn_down", h + "mlp.down_proj", f, d);
      if (gemma) norm(b + "post_ffw_norm.weight", h + "post_feedforward_layernorm.weight", d, true);
    }
    return finish();
  }

  const StTensor& find(const std::vector<std::string>& names) {
    for (const auto& n : names)
      if (const StTensor* t = ck_.find(n)) {
        used_.insert(n);
        return *t;
      }
    std::string alts;
    for (const auto& n : names) alts += (alts.empty() ? "'" : " or '") + n + "'";
    throw FormatError("checkpoint is missing tensor " + alts);
  }

  void add(Kind kind, const std::string& gguf, const std::vector<std::string>& hf, int64_t cols, int64_t rows,
           int64_t permute_heads = 0) {
    const StTensor& t = find(hf);
    Item it{gguf, kind, GgmlType::F32, cols, rows, &t, nullptr, permute_heads};
    const std::string expected = kind == Kind::Norm ? "[" + std::to_string(cols) + "]"
                                                    : "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
    if (kind == Kind::Projection && t.dtype == StDtype::U8) {
      // Packed: uint8 [ceil(rows/4), cols] plus a scalar <name>_scale.
      if (t.shape.size() != 2 || t.shape[0] != (rows + 3) / 4 || t.shape[1] != cols)
        shape_error(t, "packed uint8 [" + std::to_string((rows + 3) / 4) + ", " + std::to_string(cols) + "]");
      const std::string sname = t.name.substr(0, t.name.size() - 6) + "weight_scale";
      it.scale = &find({sname});
      if (!is_float_dtype(it.scale->dtype))
        throw FormatError("tensor '" + sname + "' has dtype " + st_dtype_name(it.scale->dtype) + "; expected a float");
    } else {
      if (!is_float_dtype(t.dtype))
        throw FormatError("tensor '" + t.name + "' has dtype " + st_dtype_name(t.dtype) +
                          (kind == Kind::Projection ? "; expected F32/F16/BF16 master weights or packed U8"
                                                    : "; expected F32, F16 or BF16"));
      const bool ok = kind == Kind::Norm ? t.shape.size() == 1 && t.shape[0] == cols
                                         : t.shape.size() == 2 && t.shape[0] == rows && t.shape[1] == cols;
      if (!ok) shape_error(t, expected);
    }
    it.type = kind == Kind::Norm ? GgmlType::F32 : kind == Kind::Embedding ? emb_type_ : type_;
    if (kind != Kind::Norm) it.type = storage_type(it.type, gguf, cols, rows, &notes_);
    items_.push_back(std::move(it));
  }

  const HfConfig& c_;
  const HfCheckpoint& ck_;
  GgmlType type_, emb_type_;
  std::vector<std::string>& notes_;
  QgPlan qg_;
  std::set<std::string> used_;
  std::vector<Item> items_;
};

void produce_projection(const Item& it, ScaleRule rule, std::span<uint8_t> out) {
  std::vector<float> w(size_t(it.rows * it.cols));
  if (it.scale) {
    unpack_hf_ternary(*it.src, it.rows, it.cols, packed_scale(*it.scale, rule), w.data());
  } else {
    read_finite(*it.src, 0, it.rows * it.cols, w.data());
    ternarize_absmean(w.data(), it.rows * it.cols);  // in HF row order, as the source defines α
  }
  if (it.permute_heads) permute_qk_rows(w.data(), it.rows, it.cols, it.permute_heads);
  quantize_tensor(it.type, w.data(), it.cols, it.rows, out);
}

// Row-independent types are encoded in chunks so a 128k × 4096 embedding never exists as f32;
// each chunk's input pages are released as soon as it is encoded.
void produce_rows(const Item& it, const HfCheckpoint& ck, std::span<uint8_t> out) {
  const int64_t chunk = std::max<int64_t>(1, (int64_t(4) << 20) / it.cols);
  const uint64_t row_bytes = *ggml_tensor_nbytes(it.type, {it.cols, 1, 1, 1});
  std::vector<float> buf(size_t(std::min(chunk, it.rows) * it.cols));
  for (int64_t r = 0; r < it.rows; r += chunk) {
    const int64_t n = std::min(chunk, it.rows - r);
    read_finite(*it.src, r * it.cols, n * it.cols, buf.data());
    if (it.add_one)
      for (int64_t k = 0; k < n * it.cols; ++k) buf[size_t(k)] += 1.0f;
    quantize_tensor(it.type, buf.data(), it.cols, n, out.subspan(size_t(uint64_t(r) * row_bytes), size_t(uint64_t(n) * row_bytes)));
    StTensor done = *it.src;
    const uint64_t elem = st_dtype_size(done.dtype);
    done.data += uint64_t(r * it.cols) * elem;
    done.nbytes = uint64_t(n * it.cols) * elem;
    ck.release(done);
  }
}

}  // namespace

void write_model_metadata(GgufWriter& w, const HfConfig& c, GgmlType type, const VocabData& vocab,
                          std::optional<uint32_t> pooling) {
  const std::string a = c.arch + ".";
  const bool qg = is_qwen_gemma(c);
  w.add_string("general.architecture", c.arch);
  w.add_string("general.name", c.name);
  w.add_u32(a + "vocab_size", uint32_t(c.n_vocab));
  w.add_u32(a + "context_length", uint32_t(c.n_ctx));
  w.add_u32(a + "embedding_length", uint32_t(c.n_embd));
  w.add_u32(a + "block_count", uint32_t(c.n_layer));
  w.add_u32(a + "feed_forward_length", uint32_t(c.n_ff));
  w.add_u32(a + "rope.dimension_count", uint32_t(c.head_dim));
  w.add_u32(a + "attention.head_count", uint32_t(c.n_head));
  w.add_u32(a + "attention.head_count_kv", uint32_t(c.n_head_kv));
  if (qg || c.head_dim * c.n_head != c.n_embd) {
    w.add_u32(a + "attention.key_length", uint32_t(c.head_dim));
    w.add_u32(a + "attention.value_length", uint32_t(c.head_dim));
  }
  w.add_f32(a + "attention.layer_norm_rms_epsilon", c.norm_eps);
  w.add_f32(a + "rope.freq_base", c.rope_theta);
  if (c.arch == "gemma3") {
    w.add_u32(a + "attention.sliding_window", uint32_t(c.sliding_window));
    w.add_u32(a + "attention.sliding_window_pattern", uint32_t(c.swa_pattern));
    w.add_f32(a + "rope.freq_base_swa", c.rope_theta_swa);
    if (c.query_pre_attn_scalar != float(c.head_dim))
      w.add_f32(a + "attention.scale", float(1.0 / std::sqrt(double(c.query_pre_attn_scalar))));
  }
  if (pooling) w.add_u32(a + "pooling_type", *pooling);
  w.add_u32("general.file_type", gguf_file_type(type));
  w.add_u32("general.quantization_version", 2);
  write_vocab(w, vocab);
}

void set_embedding_special_tokens(VocabData& vocab, const std::string& arch) {
  const std::string eos = arch == "qwen3" ? "<|endoftext|>" : "<eos>";
  vocab.eos = -1;
  for (size_t i = 0; i < vocab.tokens.size(); ++i)
    if (vocab.tokens[i] == eos) vocab.eos = int32_t(i);
  if (vocab.eos < 0)
    throw FormatError("the tokenizer has no token '" + eos + "' (needed as EOS of an embedding model)");
  if (arch == "gemma3") vocab.add_bos = true;
  vocab.add_eos = true;
}

namespace {

nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(p.string() + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(p.string() + ": not valid JSON: " + e.what());
  }
}

}  // namespace

std::optional<uint32_t> read_sentence_transformers_pooling(const std::string& dir, std::vector<std::string>* notes) {
  namespace fs = std::filesystem;
  const fs::path mp = fs::path(dir) / "modules.json";
  if (!fs::exists(mp)) return std::nullopt;
  const nlohmann::json modules = read_json(mp);
  if (!modules.is_array()) throw FormatError(mp.string() + ": not a list of modules");
  std::optional<uint32_t> pooling;
  for (const auto& m : modules) {
    if (!m.is_object() || !m.contains("type") || !m["type"].is_string())
      throw FormatError(mp.string() + ": module " + m.dump() + " has no 'type'");
    const std::string type = m["type"].get<std::string>();
    const std::string path = m.contains("path") && m["path"].is_string() ? m["path"].get<std::string>() : "";
    if (type.ends_with(".Transformer") || type == "Transformer") continue;
    if (type.ends_with(".Normalize") || type == "Normalize") {
      if (notes) notes->push_back("modules.json: Normalize (L2) is the engine's default --embd-normalize 2");
      continue;
    }
    if (!(type.ends_with(".Pooling") || type == "Pooling"))
      throw FormatError(mp.string() + ": sentence-transformers module " + quote_untrusted(type) +
                        " is not supported (its transformation cannot be represented in the GGUF)");
    if (pooling) throw FormatError(mp.string() + ": more than one Pooling module");
    // The module folder must sit inside the checkpoint: a path could otherwise point anywhere.
    const fs::path rel(path);
    if (path.empty() || rel.is_absolute() || std::any_of(rel.begin(), rel.end(), [](const fs::path& c) { return c == ".."; }))
      throw FormatError(mp.string() + ": Pooling module path " + quote_untrusted(path) + " is not a folder of the checkpoint");
    const fs::path cp = fs::path(dir) / rel / "config.json";
    const nlohmann::json pc = read_json(cp);
    if (!pc.is_object()) throw FormatError(cp.string() + ": not a JSON object");
    static const std::vector<std::pair<std::string, uint32_t>> kModes = {
        {"pooling_mode_mean_tokens", 1}, {"pooling_mode_cls_token", 2}, {"pooling_mode_lasttoken", 3},
        {"pooling_mode_max_tokens", 0}, {"pooling_mode_mean_sqrt_len_tokens", 0}, {"pooling_mode_weightedmean_tokens", 0}};
    std::vector<std::pair<std::string, uint32_t>> on;
    for (const auto& [key, id] : kModes)
      if (pc.contains(key) && pc[key].is_boolean() && pc[key].get<bool>()) on.push_back({key, id});
    if (on.empty() && pc.contains("pooling_mode") && pc["pooling_mode"].is_string()) {
      const std::string pm = pc["pooling_mode"].get<std::string>();
      const uint32_t id = pm == "mean" ? 1 : pm == "cls" ? 2 : pm == "lasttoken" ? 3 : 0;
      on.push_back({"pooling_mode " + pm, id});
    }
    if (on.size() != 1)
      throw FormatError(cp.string() + ": " + (on.empty() ? "no pooling mode is set" : "several pooling modes are set") +
                        " (supported: exactly one of mean, cls, lasttoken)");
    if (on[0].second == 0)
      throw FormatError(cp.string() + ": " + on[0].first + " is not supported (supported: mean, cls, lasttoken)");
    pooling = on[0].second;
  }
  return pooling;
}

ConvertResult convert_hf_checkpoint(const std::string& dir, const std::string& out, const ConvertOptions& options,
                                    const GgufWriter::Progress& progress) {
  if (!is_projection_output_type(options.type))
    throw Error("unsupported output type " + std::string(ggml_type_name(options.type)));
  if (options.embedding_type && !is_embedding_output_type(*options.embedding_type))
    throw Error("unsupported embedding type " + std::string(ggml_type_name(*options.embedding_type)));
  if (!std::filesystem::is_directory(dir)) throw Error(dir + ": not a directory");
  const HfConfig cfg = read_hf_config(dir);
  const HfCheckpoint ck = HfCheckpoint::open(dir);
  VocabData vocab = read_hf_tokenizer(dir, cfg);
  ConvertResult result;
  GgmlType type = options.type;
  std::optional<uint32_t> pooling;
  QgPlan qg;
  if (is_qwen_gemma(cfg)) {
    qg.prefix = ck.find("model.embed_tokens.weight") ? "model." : "";
    qg.bitnet = ck.find(qg.prefix + "layers.0.self_attn.q_proj.norm.weight") != nullptr;
    if (!qg.bitnet && ggml_type_is_ternary(type)) {
      if (!options.type_defaulted)
        throw Error(dir + ": a plain float " + cfg.arch + " checkpoint (no BitNet per-projection norms such as '" +
                    qg.prefix + "layers.0.self_attn.q_proj.norm.weight') cannot be written as " +
                    std::string(ggml_type_name(type)) + ": ternarizing it would destroy it; use --outtype f16, bf16 or f32");
      type = GgmlType::F16;
      result.notes.push_back("plain float checkpoint (no BitNet per-projection norms): projections written as f16");
    }
    pooling = read_sentence_transformers_pooling(dir, &result.notes);
    qg.embedding = pooling.has_value() || qg.bitnet || !cfg.causal_lm;
    if (qg.embedding && !pooling) {
      pooling = 3;  // last token: what the BitNet-embedding family uses (docs/embeddings-conversion.md)
      result.notes.push_back(std::string("no sentence-transformers pooling (modules.json); ") +
                             (qg.bitnet ? "BitNet" : cfg.hf_architecture) +
                             " embedding model: last-token pooling written");
    }
    if (qg.embedding) {
      set_embedding_special_tokens(vocab, cfg.arch);
    }
  }
  const std::vector<Item> items = Planner(cfg, ck, type, options.embedding_type, result.notes, qg).plan();

  GgufWriter w;
  write_model_metadata(w, cfg, type, vocab, pooling);
  for (const Item& it : items) {
    std::vector<int64_t> ne = {it.cols};
    if (it.kind != Kind::Norm) ne.push_back(it.rows);
    const ScaleRule rule = cfg.scale_rule;
    w.add_tensor(it.gguf, it.type, ne, [&it, &ck, rule](std::span<uint8_t> dst) {
      if (it.kind == Kind::Projection && !it.plain) produce_projection(it, rule, dst);
      else produce_rows(it, ck, dst);
      ck.release(*it.src);
    });
    result.input_bytes += it.src->nbytes + (it.scale ? it.scale->nbytes : 0);
  }
  w.write(out, progress);
  result.output_bytes = std::filesystem::file_size(out);
  return result;
}

}  // namespace bitnet
