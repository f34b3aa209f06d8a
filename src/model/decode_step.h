#pragma once
// The forward step of a small batch (decode: one token, or one token of each of several sequences,
// or a few tokens of one sequence) as a single pool job. The batch path (forward.cpp) runs each
// product, the attention and the SiLU gate as separate pool jobs with serial work on the caller in
// between; for one token those hand-offs and serial sections were ~20% of a `large` step. Here every
// thread goes through all layers together: each computes the small per-token pieces itself (norms,
// activation quantization), the products' rows and the kv heads are claimed in chunks, and the
// threads meet at a SpinBarrier only where a phase reads what the others wrote.
//
// With several tokens every product reads each weight row once for all of them (the matrix
// kernels: a 4-token step streams the weights once, not four times).
//
// Every value is computed by the same function on the same inputs as in the batch path, so the
// logits are bit-identical to it (tests/model/decode_step_test.cpp) — and so to decoding each
// sequence alone: a token's results do not depend on what else is in the step.
#include <vector>

#include "kernels/thread_pool.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace bitnet {

// Whether decode_step can run `model`: every layer on the CPU and every product on the SIMD kernels
// of the active ISA (not BITNET_KERNELS=reference), so that nothing in the job can throw.
bool decode_step_applies(const Model& model);

// Tests and benchmarks compare the two paths: false sends one-token batches through the batch
// path too. On by default; not for use while a forward pass runs.
void set_decode_step_enabled(bool on);
bool decode_step_enabled();

// Batches of up to this many tokens take the step (forward.cpp); longer ones (prompts) the batch
// path, whose norms and quantization are split over the threads instead of repeated by each.
constexpr int64_t kMaxStepTokens = 16;

// The layers and the head (for the tokens that want logits) for a batch of 1..kMaxStepTokens
// tokens whose embeddings are in x (n_embd floats each, updated in place). Returns n_vocab logits
// per token with want_logits, in batch order. Does not validate the batch or set the cache
// lengths: forward() does both.
std::vector<float> decode_step(const Model& model, KvCache& cache, const Batch& batch, float* x,
                               ThreadPool& pool);

}  // namespace bitnet
