// `bitnet convert`: Hugging Face checkpoint directory → GGUF (docs/conversion.md).
#include <chrono>
#include <cstdio>

#include "commands.h"
#include "conversion/dummy_model.h"
#include "conversion/hf_convert.h"
#include "conversion/hf_synthetic.h"
#include "model_options.h"

namespace bitnet::cli {

// Parses a --outtype / --embedding-type value against the converter's accepted set.
GgmlType parse_conversion_type(const std::string& flag, const std::string& value, bool embedding) {
  const auto t = ggml_type_from_name(value);
  if (!t || !(embedding ? is_embedding_output_type(*t) : is_projection_output_type(*t)))
    throw UsageError("unsupported " + flag + " '" + value + "' (expected " +
                     (embedding ? "f16, q8_0, q6_k, f32 or bf16" : "i2_s, tq1_0, tq2_0, tl1, tl2, f16, bf16 or f32") + ")");
  return *t;
}

int cmd_convert(int argc, char** argv) {
  std::string dir, out, outtype, embedding_type, synthetic, synthetic_arch = "BitNetForCausalLM",
              synthetic_variant = "bitnet", synthetic_pooling = "last";
  ArgParser p("bitnet convert", "Convert a Hugging Face checkpoint (config.json, *.safetensors, tokenizer) to GGUF.");
  p.positional("HF_DIR", "checkpoint directory", &dir, true);
  p.option({"-o", "--outfile"}, "FILE", "output GGUF file", &out);
  p.option({"--outtype"}, "TYPE", "projection type: i2_s (default; f16 for a plain float qwen3/gemma3 checkpoint), tq1_0, tq2_0, tl1, tl2, f16, bf16, f32", &outtype);
  p.option({"--embedding-type"}, "TYPE", "token embedding / LM head type: f16, q8_0, q6_k, f32, bf16 "
           "(default f32 for --outtype f32, bf16 for bf16, else f16)", &embedding_type);
  p.option({"--write-synthetic"}, "PRESET", "benchmark aid: instead of converting, write a random bf16 checkpoint "
           "in the shapes of a gen-model preset to HF_DIR", &synthetic);
  p.option({"--synthetic-arch"}, "CLASS", "with --write-synthetic: BitNetForCausalLM (default) or LlamaForCausalLM",
           &synthetic_arch);
  p.option({"--synthetic-variant"}, "V", "with --write-synthetic and an embed-* preset: bitnet (default; BitNet "
           "per-projection norms, ternarized by convert) or plain (a float teacher)", &synthetic_variant);
  p.option({"--synthetic-pooling"}, "P", "with --write-synthetic and an embed-* preset: sentence-transformers pooling "
           "mean, cls, last (default) or none (no modules.json)", &synthetic_pooling);
  if (!p.parse(argc, argv)) return 0;
  if (!synthetic.empty() && find_embedding_preset(synthetic)) {
    if (synthetic_variant != "bitnet" && synthetic_variant != "plain")
      throw UsageError("--synthetic-variant must be bitnet or plain (got '" + synthetic_variant + "')");
    if (synthetic_pooling != "mean" && synthetic_pooling != "cls" && synthetic_pooling != "last" &&
        synthetic_pooling != "none")
      throw UsageError("--synthetic-pooling must be mean, cls, last or none (got '" + synthetic_pooling + "')");
    SyntheticEmbeddingOptions so;
    so.bitnet = synthetic_variant == "bitnet";
    so.pooling = synthetic_pooling == "none" ? "" : synthetic_pooling;
    const uint64_t n = write_synthetic_embedding_checkpoint(dir, synthetic, default_vocab_dir(), so);
    std::fprintf(stderr, "wrote %s: %.3f GB of bf16 weights (preset %s, %s, pooling %s)\n", dir.c_str(), double(n) / 1e9,
                 synthetic.c_str(), synthetic_variant.c_str(), synthetic_pooling.c_str());
    return 0;
  }
  if (!synthetic.empty()) {
    const uint64_t n = write_synthetic_hf_checkpoint(dir, synthetic_arch, synthetic, default_vocab_dir());
    std::fprintf(stderr, "wrote %s: %.2f GB of bf16 weights (%s, preset %s)\n", dir.c_str(), double(n) / 1e9,
                 synthetic_arch.c_str(), synthetic.c_str());
    return 0;
  }
  if (out.empty()) throw UsageError("missing -o FILE");
  ConvertOptions o;
  o.type_defaulted = outtype.empty();
  o.type = parse_conversion_type("--outtype", outtype.empty() ? "i2_s" : outtype, false);
  if (!embedding_type.empty()) o.embedding_type = parse_conversion_type("--embedding-type", embedding_type, true);
  const auto t0 = std::chrono::steady_clock::now();
  const ConvertResult r = convert_hf_checkpoint(dir, out, o, [](uint64_t d, uint64_t total) {
    print_progress("converting", d, total);
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "\n");
  print_notes(r.notes);
  std::fprintf(stderr, "wrote %s: %.1f MiB from %.1f MiB of weights in %.2f s (%.2f GB/s of input), peak memory %.1f MiB\n",
               out.c_str(), double(r.output_bytes) / (1 << 20), double(r.input_bytes) / (1 << 20), s,
               s > 0 ? double(r.input_bytes) / s / 1e9 : 0.0, peak_rss_mib());
  return 0;
}

namespace {
const CommandRegistration kRegistration({"convert", nullptr, cmd_convert,
                                         "convert a Hugging Face checkpoint directory to GGUF", 70});
}  // namespace

}  // namespace bitnet::cli
