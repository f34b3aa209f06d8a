#pragma once
// Text embeddings: many inputs run through the model together (one sequence each in a shared
// cache, as many per forward pass as fit), then pooled and normalized the way llama.cpp's
// llama-embedding does (--pooling, --embd-normalize). docs/embeddings.md.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/thread_pool.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace bitnet {

// llama.cpp's numbering (GGUF {arch}.pooling_type, --pooling): rank is not supported.
enum class Pooling { None = 0, Mean = 1, Cls = 2, Last = 3 };
// "none" | "mean" | "cls" | "last"; nullopt for anything else.
std::optional<Pooling> parse_pooling(std::string_view name);
std::string_view pooling_name(Pooling p);

// --embd-normalize: -1 none, 0 max-abs scaled to int16 range (×32760/max|x|), 1 taxicab (L1),
// 2 euclidean (L2, the default), p > 2: the p-norm. In place; a zero vector stays zero.
void normalize_embedding(std::span<float> v, int norm);

// The token ids of one input as the model wants them: BOS / EOS added where the vocabulary says so
// (BitNet-embedding models append EOS, whose hidden state last-token pooling takes).
std::vector<int32_t> tokenize_for_embedding(const Tokenizer& tok, std::string_view text);

struct EmbedOptions {
  std::optional<Pooling> pooling;  // nullopt: the model's (GGUF pooling_type), else Last
  int normalize = 2;               // --embd-normalize
};

// One input's result: with pooling None one vector per token (n_tokens × n_embd, each row
// normalized), else one pooled vector (n_embd).
struct Embedding {
  std::vector<float> values;
  int64_t n_tokens = 0;
};

// Owns a cache for up to n_seq inputs of up to n_ctx tokens each and reuses it across calls.
// embed() runs a list of tokenized inputs: inputs are packed into forward passes of at most
// n_batch tokens and n_seq sequences (an input longer than n_batch continues in the next pass),
// so many short inputs cost one pass. Results do not depend on how inputs were grouped beyond
// the float tolerance of the batched products (tests/runtime/embed_test.cpp).
class Embedder {
 public:
  Embedder(const Model& model, int64_t n_ctx, int64_t n_seq, int64_t n_batch, ThreadPool& pool,
           KvType type_k = KvType::F16, KvType type_v = KvType::F16);

  // Throws Error naming the input and both lengths when an input is empty or longer than n_ctx
  // (nothing is computed then).
  std::vector<Embedding> embed(std::span<const std::vector<int32_t>> inputs, const EmbedOptions& options);
  // The checks embed() makes before any work (the same Errors), for callers that queue inputs.
  void validate(std::span<const std::vector<int32_t>> inputs) const;

  Pooling resolve(const EmbedOptions& options) const;
  int64_t n_ctx() const { return cache_.n_ctx(); }
  int64_t n_seq() const { return cache_.n_seq(); }
  const Model& model() const { return model_; }

 private:
  const Model& model_;
  ThreadPool& pool_;
  KvCache cache_;
  int64_t n_batch_;
};

// The model's own pooling (GGUF {arch}.pooling_type); nullopt when the file has none.
std::optional<Pooling> model_pooling(const Model& model);
// True for models made only for embeddings (a pooling type in the file, or no usable output head):
// generation requests are refused for them.
bool is_embedding_model(const Model& model);

}  // namespace bitnet
