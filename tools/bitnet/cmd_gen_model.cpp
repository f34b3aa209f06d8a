// `bitnet gen-model`: random ternary models in real shapes (see docs/dummy-models.md).
#include <cstdio>

#include "commands.h"
#include "conversion/dummy_model.h"
#include "model/hparams.h"
#include "model_options.h"

namespace bitnet::cli {

int cmd_gen_model(int argc, char** argv) {
  std::string arch, preset = "tiny", type = "i2_s", embedding_type = "f16", out,
              vocab_dir;
  uint64_t seed = 42;
  int64_t vocab_size = 0;
  bool list = false;
  ArgParser p("bitnet gen-model", "Write a GGUF model with random ternary weights in the shapes of a real model.");
  p.option({"--arch"}, "ARCH", "general.architecture: bitnet-b1.58, bitnet, llama (default bitnet-b1.58; an embed-* preset sets its own)", &arch);
  p.option({"--preset"}, "NAME", "shape preset: tiny, 125M, large, 2B-4T, 3B, 8B, embed-0.6B, embed-270M, ... (default tiny; see --list-presets)", &preset);
  p.option({"--type"}, "TYPE", "projection type: i2_s, tq1_0, tq2_0, tl1, tl2, f32, f16, bf16, q8_0, q6_k", &type);
  p.option({"--embedding-type"}, "TYPE", "token embedding / output type: f16, f32, bf16, q8_0, q6_k (default f16)",
           &embedding_type);
  p.option({"--seed"}, "N", "random seed (default 42)", &seed);
  p.option({"-o", "--output"}, "FILE", "output GGUF file", &out);
  p.option({"--vocab-dir"}, "DIR", "directory with llama3-tokenizer.tiktoken and ggml-vocab-llama-spm.gguf "
           "(default $BITNET_DATA_DIR, else the source tree's data/)", &vocab_dir);
  p.option({"--vocab-size"}, "N", "keep only the vocabulary's first N tokens (--arch bitnet's SentencePiece vocabulary; "
           "512: a small vocabulary like stories260K's)", &vocab_size);
  p.flag({"--list-presets"}, "print the presets and exit", &list);
  if (!p.parse(argc, argv)) return 0;
  if (list) {
    for (const auto& pr : model_presets())
      std::printf("%-6s d=%-5lld L=%-3lld H=%-3lld Hkv=%-3lld F=%-6lld ctx=%-5lld %s\n", pr.name.c_str(),
                  (long long)pr.n_embd, (long long)pr.n_layer, (long long)pr.n_head,
                  (long long)pr.n_head_kv, (long long)pr.n_ff, (long long)pr.n_ctx, pr.models.c_str());
    for (const auto& pr : embedding_presets())
      std::printf("%-17s %-6s d=%-5lld L=%-3lld H=%-3lld Hkv=%-3lld hd=%-4lld F=%-6lld V=%-7lld ctx=%-5lld %s\n",
                  pr.name.c_str(), pr.arch.c_str(), (long long)pr.n_embd, (long long)pr.n_layer,
                  (long long)pr.n_head, (long long)pr.n_head_kv, (long long)pr.head_dim, (long long)pr.n_ff,
                  (long long)pr.n_vocab, (long long)pr.n_ctx, pr.models.c_str());
    return 0;
  }
  if (out.empty()) throw UsageError("missing -o FILE");
  DummyModelSpec spec;
  const EmbeddingPreset* embed = find_embedding_preset(preset);
  if (embed && !arch.empty() && arch != embed->arch)
    throw UsageError("preset '" + preset + "' is a " + embed->arch + " model; --arch " + arch + " does not apply");
  if (arch.empty()) arch = embed ? embed->arch : "bitnet-b1.58";
  spec.arch = arch;
  if (!embed) arch_traits(arch);  // validates the name
  spec.preset = preset;
  if (!embed && !find_preset(preset)) throw UsageError("unknown preset '" + preset + "' (see --list-presets)");
  const auto t = ggml_type_from_name(type);
  if (!t || !ggml_type_info(*t).computable || *t == GgmlType::I8_S)
    throw UsageError("unsupported --type '" + type + "'");
  spec.type = *t;
  const auto et = ggml_type_from_name(embedding_type);
  if (!et || ggml_type_is_ternary(*et) || !ggml_type_info(*et).computable)
    throw UsageError("unsupported --embedding-type '" + embedding_type + "'");
  spec.embedding_type = *et;
  spec.seed = seed;
  spec.vocab_dir = vocab_dir;
  if (vocab_size < 0) throw UsageError("--vocab-size must be positive");
  if (vocab_size > 0 && (embed || arch != "bitnet"))
    throw UsageError("--vocab-size applies to --arch bitnet (the LLaMA SentencePiece vocabulary) only");
  spec.vocab_size = vocab_size;
  std::vector<std::string> notes;
  generate_dummy_model(spec, out, [](uint64_t d, uint64_t total) { print_progress("writing", d, total); },
                       &notes);
  print_notes(notes);
  std::fprintf(stderr, "wrote %s (%s, preset %s, %s, seed %llu)\n", out.c_str(), arch.c_str(),
               preset.c_str(), type.c_str(), (unsigned long long)seed);
  return 0;
}

namespace {
const CommandRegistration kRegistration({"gen-model", nullptr, cmd_gen_model, "write a GGUF model with random ternary weights in a real architecture's shapes", 60});
}  // namespace

}  // namespace bitnet::cli
