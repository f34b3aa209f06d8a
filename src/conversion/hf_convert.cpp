#include "conversion/hf_convert.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "conversion/hf_checkpoint.h"
#include "conversion/hf_config.h"
#include "conversion/hf_tokenizer.h"
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
};

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
  Planner(const HfConfig& c, const HfCheckpoint& ck, const ConvertOptions& o, std::vector<std::string>& notes)
      : c_(c), ck_(ck), type_(o.type), emb_type_(o.embedding_type.value_or(default_embedding_type(o.type))),
        notes_(notes) {}

  std::vector<Item> plan() {
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
    for (const std::string& name : ck_.names()) {
      if (used_.count(name)) continue;
      if (name.size() > 20 && name.ends_with("rotary_emb.inv_freq")) continue;  // recomputed from rope_theta
      throw FormatError("unexpected tensor '" + name + "' in the checkpoint (not part of a " + c_.hf_architecture +
                        " model with " + std::to_string(c_.n_layer) + " layers)");
    }
    return std::move(items_);
  }

 private:
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
    quantize_tensor(it.type, buf.data(), it.cols, n, out.subspan(size_t(uint64_t(r) * row_bytes), size_t(uint64_t(n) * row_bytes)));
    StTensor done = *it.src;
    const uint64_t elem = st_dtype_size(done.dtype);
    done.data += uint64_t(r * it.cols) * elem;
    done.nbytes = uint64_t(n * it.cols) * elem;
    ck.release(done);
  }
}

void write_metadata(GgufWriter& w, const HfConfig& c, GgmlType type, const VocabData& vocab) {
  const std::string a = c.arch + ".";
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
  if (c.head_dim * c.n_head != c.n_embd) {
    w.add_u32(a + "attention.key_length", uint32_t(c.head_dim));
    w.add_u32(a + "attention.value_length", uint32_t(c.head_dim));
  }
  w.add_f32(a + "attention.layer_norm_rms_epsilon", c.norm_eps);
  w.add_f32(a + "rope.freq_base", c.rope_theta);
  w.add_u32("general.file_type", gguf_file_type(type));
  w.add_u32("general.quantization_version", 2);
  write_vocab(w, vocab);
}

}  // namespace

ConvertResult convert_hf_checkpoint(const std::string& dir, const std::string& out, const ConvertOptions& options,
                                    const GgufWriter::Progress& progress) {
  if (!is_projection_output_type(options.type))
    throw Error("unsupported output type " + std::string(ggml_type_name(options.type)));
  if (options.embedding_type && !is_embedding_output_type(*options.embedding_type))
    throw Error("unsupported embedding type " + std::string(ggml_type_name(*options.embedding_type)));
  if (!std::filesystem::is_directory(dir)) throw Error(dir + ": not a directory");
  const HfConfig cfg = read_hf_config(dir);
  const HfCheckpoint ck = HfCheckpoint::open(dir);
  const VocabData vocab = read_hf_tokenizer(dir, cfg);
  ConvertResult result;
  const std::vector<Item> items = Planner(cfg, ck, options, result.notes).plan();

  GgufWriter w;
  write_metadata(w, cfg, options.type, vocab);
  for (const Item& it : items) {
    std::vector<int64_t> ne = {it.cols};
    if (it.kind != Kind::Norm) ne.push_back(it.rows);
    const ScaleRule rule = cfg.scale_rule;
    w.add_tensor(it.gguf, it.type, ne, [&it, &ck, rule](std::span<uint8_t> dst) {
      if (it.kind == Kind::Projection) produce_projection(it, rule, dst);
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
