#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "backends/cuda/offload.h"
#include "errors.h"
#include "tensor/quants.h"

namespace bitnet {
namespace {

std::string shape_str(const std::array<int64_t, 4>& ne, int n_dims) {
  std::string s = "[";
  for (int i = 0; i < n_dims; ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

std::string computable_types() {
  std::string list;
  for (uint32_t id = 0; id < 64; ++id)
    if (const auto* info = ggml_type_info(id); info && info->computable)
      list += (list.empty() ? "" : ", ") + std::string(info->name);
  return list;
}

class Binder {
 public:
  Binder(Model& m, const LoadOptions& options) : m_(m), options_(options) {}

  const GgufTensorInfo* find(const std::string& name) const { return m_.file.find_tensor(name); }

  // A 2-D tensor checked against the expected shape, in the layout the kernels compute. `streamed`:
  // read whole by every decode step (layer matrices, output matrix), so copied into the arena
  // unless the options keep the file mapping. `projection`: only ever a matmul weight (never read
  // by rows as an embedding), so its I2_S rows may be padded to whole blocks (TensorView::pad_cols).
  TensorView matrix(const std::string& name, int64_t cols, int64_t rows, bool streamed, bool projection = false) {
    const GgufTensorInfo* t = find(name);
    if (!t) throw FormatError(m_.file.path() + ": missing tensor '" + name + "'");
    if (t->n_dims > 2 || t->ne[0] != cols || t->ne[1] != rows)
      throw FormatError(m_.file.path() + ": tensor '" + name + "' has shape " +
                        shape_str(t->ne, int(t->n_dims)) + ", expected [" + std::to_string(cols) +
                        ", " + std::to_string(rows) + "] from the hyper-parameters");
    check_type(*t);
    TensorView v = m_.file.view(*t);
    std::vector<uint8_t> repacked;  // v's bytes when a repack made them
    if (v.type == GgmlType::TL1 || v.type == GgmlType::TL2) v = repack_to_i2s(v, repacked);
    if (v.type == GgmlType::TQ1_0) v = repack_tq1_to_tq2(v, repacked);
    if (projection && v.type == GgmlType::I2_S && v.cols() % 128 != 0) v = pad_i2s_rows(v, repacked);
    // Checked once here so that the kernels need not check every product.
    if (ggml_type_is_ternary(v.type)) {
      try {
        check_ternary_codes(v);
      } catch (const FormatError& e) {
        throw FormatError(m_.file.path() + ": " + e.what());
      }
      v.codes_checked = true;
    }
    if (v.type == GgmlType::TQ2_0) v = repack_tq2_to_i2s(v, repacked);
    if (!repacked.empty() || (streamed && !options_.map_weights)) {
      const uint8_t* source = v.data;
      v.data = m_.arena.copy(source, v.nbytes);
      // Dropping pages is only safe on the file mapping: in a caller's buffer (GgufFile::parse)
      // it would zero the caller's memory.
      if (repacked.empty() && m_.file.memory_mapped()) release_file_pages(source, v.nbytes);
    }
    return v;
  }

  std::vector<float> vector(const std::string& name, int64_t n, bool required = true) {
    const GgufTensorInfo* t = find(name);
    if (!t) {
      if (required) throw FormatError(m_.file.path() + ": missing tensor '" + name + "'");
      return {};
    }
    if (t->n_dims != 1 || t->ne[0] != n)
      throw FormatError(m_.file.path() + ": tensor '" + name + "' has shape " +
                        shape_str(t->ne, int(t->n_dims)) + ", expected [" + std::to_string(n) + "]");
    check_type(*t);
    std::vector<float> out(static_cast<size_t>(n));
    dequantize_rows(m_.file.view(*t), 0, 1, out.data());
    for (float x : out)
      if (!std::isfinite(x))
        throw FormatError(m_.file.path() + ": tensor '" + name + "' contains NaN or Inf");
    return out;
  }

  float scalar(const std::string& name) {
    if (!find(name)) return 1.0f;
    return vector(name, 1)[0];
  }

 private:
  void check_type(const GgufTensorInfo& t) const {
    const GgmlTypeInfo& info = ggml_type_info(t.type);
    if (!info.computable)
      throw FormatError(m_.file.path() + ": tensor '" + t.name + "' has type " +
                        std::string(info.name) + ", which this engine does not compute (supported: " +
                        computable_types() + ")");
  }

  // TL1/TL2 tile layouts depend on the matrix shape; decode once with the known layout and keep
  // the weights as I2_S, which every kernel handles (lossless: both are α·t).
  TensorView repack_to_i2s(const TensorView& tl, std::vector<uint8_t>& holder) {
    std::vector<float> w(size_t(tl.elements()));
    dequantize_rows(tl, 0, tl.rows(), w.data());
    ++repacked_[std::string(ggml_type_name(tl.type))];
    return adopt(tl, GgmlType::I2_S, quantize_tensor(GgmlType::I2_S, w.data(), tl.cols(), tl.rows()), holder);
  }

  // A TQ2_0 tensor with one scale for all its blocks (what BitNet conversions write) is an I2_S
  // tensor in another byte order: the I2_S kernels are the fastest, and the products are exact
  // (α·Σ t·q instead of Σ_b d·isum_b with every d_b = α). Per-block scales stay TQ2_0.
  TensorView repack_tq2_to_i2s(const TensorView& tq2, std::vector<uint8_t>& holder) {
    auto bytes = tq2_to_i2s(tq2);
    if (!bytes) return tq2;
    ++repacked_[std::string(ggml_type_name(tq2.type))];
    return adopt(tq2, GgmlType::I2_S, std::move(*bytes), holder);
  }

  // I2_S rows that do not fill whole blocks (bitnet_b1_58-3B's 8640-wide ffn_down) would leave
  // the matrix to the scalar reference; padded to whole blocks every kernel computes it, with the
  // same products (the inputs are zero in the added columns).
  TensorView pad_i2s_rows(const TensorView& i2s, std::vector<uint8_t>& holder) {
    ++padded_;
    TensorView v = adopt(i2s, GgmlType::I2_S, i2s_pad_rows(i2s), holder);
    v.ne[0] = i2s_padded_cols(i2s.cols());
    v.pad_cols = v.ne[0] - i2s.cols();
    return v;
  }

  // TQ1_0's base-3 bytes cost several instructions per weight to decode; TQ2_0 holds the same
  // trits and block scales (identical products) in 2-bit fields, 22% more bytes, decoded in one.
  TensorView repack_tq1_to_tq2(const TensorView& tq1, std::vector<uint8_t>& holder) {
    ++repacked_tq1_;
    return adopt(tq1, GgmlType::TQ2_0, tq1_to_tq2(tq1), holder);
  }

  // `from` as `type` stored in `bytes`, which `holder` keeps until matrix() copies the final
  // bytes into the arena (an intermediate repack's buffer is simply replaced).
  static TensorView adopt(const TensorView& from, GgmlType type, std::vector<uint8_t> bytes,
                          std::vector<uint8_t>& holder) {
    holder = std::move(bytes);
    TensorView v = from;
    v.type = type;
    v.data = holder.data();
    v.nbytes = holder.size();
    return v;
  }

 public:
  // One summary line per source type for `inspect` / run logs.
  void add_notes() const {
    if (padded_ > 0)
      m_.load_notes.push_back("padded the rows of " + std::to_string(padded_) +
                              " I2_S tensors to whole 128-blocks at load (row length not a multiple of 128)");
    if (repacked_tq1_ > 0)
      m_.load_notes.push_back("repacked " + std::to_string(repacked_tq1_) +
                              " TQ1_0 tensors to TQ2_0 at load (same trits and scales, faster to decode)");
    for (const auto& [type, n] : repacked_)
      m_.load_notes.push_back("repacked " + std::to_string(n) + " " + type + " tensors to I2_S at load (" +
                              (type == "TQ2_0" ? "one scale for all blocks: same trits and products"
                                               : "bitnet.cpp tile layout for their shapes") +
                              ")");
  }

 private:
  std::map<std::string, int> repacked_;
  int repacked_tq1_ = 0;
  int padded_ = 0;

  Model& m_;
  const LoadOptions& options_;
};

}  // namespace

uint64_t Model::weight_bytes() const {
  uint64_t total = output.nbytes + 4 * output_norm.size();
  for (const auto& l : layers)
    for (const TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      total += t->nbytes;
  return total;
}

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& options) {
  return load_model(GgufFile::open(path), options);
}

std::unique_ptr<Model> load_model(GgufFile file, const LoadOptions& options) {
  HParams hp = read_hparams(file);
  VocabData vocab;
  if (options.load_tokenizer) vocab = read_vocab(file);
  auto m = std::make_unique<Model>(std::move(file));
  m->hp = hp;
  if (options.load_tokenizer) m->tokenizer = std::make_shared<Tokenizer>(std::move(vocab));
  const GgufTensorInfo* embd = m->file.find_tensor("token_embd.weight");
  if (!embd) throw FormatError(m->file.path() + ": missing tensor 'token_embd.weight'");
  if (hp.n_vocab == 0) m->hp.n_vocab = hp.n_vocab = embd->ne[1];
  if (m->tokenizer && m->tokenizer->n_tokens() > hp.n_vocab)
    throw FormatError(m->file.path() + ": tokenizer has " + std::to_string(m->tokenizer->n_tokens()) +
                      " tokens but the model's vocabulary size is " + std::to_string(hp.n_vocab));

  Binder bind(*m, options);
  // The embedding table is read one row per token, unless it is also the output matrix.
  const bool tied = hp.arch.always_tied || !bind.find("output.weight");
  // An embedding model never multiplies by its table: it stays in the file mapping.
  m->tok_embd = bind.matrix("token_embd.weight", hp.n_embd, hp.n_vocab, tied && !m->embedding_only());
  m->output_norm = bind.vector("output_norm.weight", hp.n_embd);
  m->output = tied ? m->tok_embd : bind.matrix("output.weight", hp.n_embd, hp.n_vocab, true);

  // Layer tensors beyond block_count would be silently ignored: a file that disagrees with itself.
  for (const GgufTensorInfo& t : m->file.tensors()) {
    if (t.name.rfind("blk.", 0) != 0) continue;
    const size_t dot = t.name.find('.', 4);
    const std::string index = t.name.substr(4, dot == std::string::npos ? std::string::npos : dot - 4);
    const auto digit = [](char ch) { return ch >= '0' && ch <= '9'; };
    if (!index.empty() && index.size() < 10 && std::all_of(index.begin(), index.end(), digit) &&
        std::stoll(index) >= hp.n_layer)
      throw FormatError(m->file.path() + ": tensor '" + t.name + "' belongs to layer " + index + ", but " +
                        hp.arch.name + ".block_count is " + std::to_string(hp.n_layer));
  }
  m->layers.resize(size_t(hp.n_layer));
  for (int64_t i = 0; i < hp.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights& l = m->layers[size_t(i)];
    l.attn_norm = bind.vector(p + "attn_norm.weight", hp.n_embd);
    l.ffn_norm = bind.vector(p + "ffn_norm.weight", hp.n_embd);
    if (hp.arch.sub_norms) {
      l.attn_sub_norm = bind.vector(p + "attn_sub_norm.weight", hp.q_dim());
      l.ffn_sub_norm = bind.vector(p + "ffn_sub_norm.weight", hp.n_ff);
    }
    l.wq = bind.matrix(p + "attn_q.weight", hp.n_embd, hp.q_dim(), true, true);
    l.wk = bind.matrix(p + "attn_k.weight", hp.n_embd, hp.kv_dim(), true, true);
    l.wv = bind.matrix(p + "attn_v.weight", hp.n_embd, hp.kv_dim(), true, true);
    l.wo = bind.matrix(p + "attn_output.weight", hp.q_dim(), hp.n_embd, true, true);
    l.w_gate = bind.matrix(p + "ffn_gate.weight", hp.n_embd, hp.n_ff, true, true);
    l.w_up = bind.matrix(p + "ffn_up.weight", hp.n_embd, hp.n_ff, true, true);
    l.w_down = bind.matrix(p + "ffn_down.weight", hp.n_ff, hp.n_embd, true, true);
    if (hp.arch.qk_norm) {
      l.attn_q_norm = bind.vector(p + "attn_q_norm.weight", hp.head_dim);
      l.attn_k_norm = bind.vector(p + "attn_k_norm.weight", hp.head_dim);
    }
    if (hp.arch.gemma) {
      l.post_attn_norm = bind.vector(p + "post_attention_norm.weight", hp.n_embd);
      l.post_ffw_norm = bind.vector(p + "post_ffw_norm.weight", hp.n_embd);
    }
    l.q_norm_in = bind.vector(p + "attn_q_norm_in.weight", hp.n_embd, false);
    l.k_norm_in = bind.vector(p + "attn_k_norm_in.weight", hp.n_embd, false);
    l.v_norm_in = bind.vector(p + "attn_v_norm_in.weight", hp.n_embd, false);
    l.o_norm_in = bind.vector(p + "attn_output_norm_in.weight", hp.q_dim(), false);
    l.gate_norm_in = bind.vector(p + "ffn_gate_norm_in.weight", hp.n_embd, false);
    l.up_norm_in = bind.vector(p + "ffn_up_norm_in.weight", hp.n_embd, false);
    l.down_norm_in = bind.vector(p + "ffn_down_norm_in.weight", hp.n_ff, false);
    l.scale_q = bind.scalar(p + "attn_q.scale");
    l.scale_k = bind.scalar(p + "attn_k.scale");
    l.scale_v = bind.scalar(p + "attn_v.scale");
    l.scale_o = bind.scalar(p + "attn_output.scale");
    l.scale_gate = bind.scalar(p + "ffn_gate.scale");
    l.scale_up = bind.scalar(p + "ffn_up.scale");
    l.scale_down = bind.scalar(p + "ffn_down.scale");
  }
  bind.add_notes();
  if (m->arena.bytes() > 0) {
    const std::string mode = transparent_huge_page_mode();
    // Under 1 MiB the note reads "0 MiB" whatever smaps says; skip reading it (slow, per load).
    const size_t huge_bytes = m->arena.bytes() >= (size_t{1} << 20) ? m->arena.huge_page_bytes() : 0;
    m->load_notes.push_back(
        "weights: " + std::to_string(m->arena.bytes() >> 20) + " MiB in process memory, " +
        std::to_string(huge_bytes >> 20) + " MiB of it on 2 MiB pages" +
        (mode == "never" ? " (transparent huge pages are disabled on this system)" : "") +
        (options.map_weights ? "" : "; --mmap reads them from the file instead"));
  }
  if (options.gpu_layers > 0) {
    if (hp.arch.qk_norm || hp.arch.gemma || m->layers[0].has_norm_in())
      throw Error("-ngl: the CUDA backend does not run " + hp.arch.name +
                  " layers (q/k norms, per-projection norms); run this model on the CPU (-ngl 0)");
    // From the final views (after any load-time conversion), so the GPU's products are the CPU's.
    m->gpu = cuda::offload_layers(*m, options.gpu_layers);
    m->load_notes.push_back(cuda::describe(*m->gpu));
  }
  return m;
}

}  // namespace bitnet
