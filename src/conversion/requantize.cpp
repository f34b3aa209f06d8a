#include "conversion/requantize.h"

#include <cmath>

#include "conversion/hf_convert.h"
#include "errors.h"
#include "tensor/quants.h"

namespace bitnet {
namespace {

// A float-stored projection must already be ternary (values 0 and ±α): re-encoding anything else
// as I2_S/TQ would silently destroy it, so the user is sent to the HF converter instead.
void check_ternary(const std::string& name, const std::vector<float>& w) {
  float alpha = 0;
  for (float x : w) alpha = std::max(alpha, std::fabs(x));
  for (size_t i = 0; i < w.size(); ++i) {
    const float a = std::fabs(w[i]);
    if (!std::isfinite(a))
      throw FormatError("tensor '" + name + "' contains NaN/Inf at element " + std::to_string(i));
    if (a != 0 && std::fabs(a - alpha) > 1e-3f * alpha)
      throw FormatError("tensor '" + name + "' is not ternary (|w| = " + std::to_string(a) + " besides 0 and " +
                        std::to_string(alpha) + "); quantize only re-encodes ternary weights — convert the "
                        "Hugging Face checkpoint with `bitnet convert` instead");
  }
}

void produce(const TensorView& v, GgmlType type, bool projection, std::span<uint8_t> out) {
  const int64_t cols = v.cols(), rows = v.rows();
  if (projection) {
    std::vector<float> w(size_t(cols * rows));
    dequantize_rows(v, 0, rows, w.data());
    if (!ggml_type_is_ternary(v.type)) check_ternary(v.name, w);
    quantize_tensor(type, w.data(), cols, rows, out);
    return;
  }
  const int64_t chunk = std::max<int64_t>(1, (int64_t(4) << 20) / cols);
  const uint64_t row_bytes = *ggml_tensor_nbytes(type, {cols, 1, 1, 1});
  std::vector<float> buf(size_t(std::min(chunk, rows) * cols));
  for (int64_t r = 0; r < rows; r += chunk) {
    const int64_t n = std::min(chunk, rows - r);
    dequantize_rows(v, r, n, buf.data());
    quantize_tensor(type, buf.data(), cols, n, out.subspan(size_t(uint64_t(r) * row_bytes), size_t(uint64_t(n) * row_bytes)));
  }
}

}  // namespace

void requantize_gguf(const std::string& in, const std::string& out, const RequantizeOptions& o,
                     const GgufWriter::Progress& progress, std::vector<std::string>* notes) {
  if (!is_projection_output_type(o.type))
    throw Error("unsupported output type " + std::string(ggml_type_name(o.type)));
  const GgmlType emb = o.embedding_type.value_or(default_embedding_type(o.type));
  const GgufFile f = GgufFile::open(in);
  const bool tied = f.find_tensor("output.weight") == nullptr;
  const GgmlType out_type = o.output_type.value_or(emb);
  const GgmlType token_type = tied && o.output_type ? *o.output_type : o.token_embedding_type.value_or(emb);
  for (GgmlType t : {emb, out_type, token_type})
    if (!is_embedding_output_type(t)) throw Error("unsupported embedding type " + std::string(ggml_type_name(t)));

  GgufWriter w(f.alignment());
  bool has_file_type = false;
  for (const GgufKV& kv : f.metadata()) {
    if (kv.key == "general.alignment") continue;  // the writer adds it for non-default alignments
    if (kv.key == "general.file_type") {
      w.add_u32(kv.key, gguf_file_type(o.type));  // same position as in the input
      has_file_type = true;
    } else {
      w.add(kv.key, kv.value);
    }
  }
  if (!has_file_type) w.add_u32("general.file_type", gguf_file_type(o.type));

  for (const GgufTensorInfo& t : f.tensors()) {
    const bool projection = is_projection_name(t.name);
    const bool embedding = t.name == "token_embd.weight" || t.name == "output.weight";
    std::vector<int64_t> ne(t.ne.begin(), t.ne.begin() + t.n_dims);
    if (!projection && !embedding) {
      const TensorView v = f.view(t);
      w.add_tensor(t.name, t.type, ne, [v](std::span<uint8_t> dst) { std::copy(v.data, v.data + dst.size(), dst.begin()); });
      continue;
    }
    if (t.n_dims != 2) throw FormatError("tensor '" + t.name + "' should be a matrix but has " + std::to_string(t.n_dims) + " dimensions");
    if (!ggml_type_info(t.type).computable)
      throw FormatError("tensor '" + t.name + "' has type " + std::string(ggml_type_name(t.type)) + ", which cannot be decoded");
    const GgmlType wanted = projection ? o.type : t.name == "output.weight" ? out_type : token_type;
    const GgmlType type = storage_type(wanted, t.name, t.ne[0], t.ne[1], notes);
    const TensorView v = f.view(t);
    w.add_tensor(t.name, type, ne, [v, type, projection](std::span<uint8_t> dst) { produce(v, type, projection, dst); });
  }
  w.write(out, progress);
}

}  // namespace bitnet
