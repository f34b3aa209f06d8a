#pragma once
// The transformer forward pass shared by every supported architecture (architectures.md §2–§4):
// the differences (sub-norms, activation, RoPE pairing, tied head) come from HParams.
#include <vector>

#include "kernels/thread_pool.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace bitnet {

// Runs `batch` through the model, writing each token's K/V into `cache` at (seq, pos).
// Returns logits for the tokens with want_logits set, in batch order: n_logits × n_vocab floats.
// Throws Error (nothing is written to the cache) when a token id, sequence id or position is out of
// range — in particular "context is full" when a position reaches the cache size.
std::vector<float> forward(const Model& model, KvCache& cache, const Batch& batch, ThreadPool& pool);

// The same layers without the LM head: the final-normed hidden states (n_embd floats each) of the
// tokens with want_logits set, in batch order — what embeddings pool (runtime/embed.h). CPU only.
std::vector<float> forward_hidden(const Model& model, KvCache& cache, const Batch& batch, ThreadPool& pool);

}  // namespace bitnet
