#pragma once
// `-ngl N`: the last N transformer layers (and, for N ≥ n_layer, the output norm and an F16 head)
// run on the GPU. Plain C++, declared in every build; without the CUDA backend offload_layers()
// throws and nothing else is reachable (Model::gpu stays null).
//
// Ownership: the Model holds the uploaded weights (GpuLayers, made once at load from the same
// TensorViews the CPU kernels read, so both products are bit-identical); each KvCache holds, made
// on its first forward pass, the f16 KV cache of the GPU layers for all its sequences plus the
// scratch buffers (GpuCache). forward() runs layers [0, first_gpu_layer) on the CPU, uploads the
// residual stream once, runs the rest on the GPU and downloads either the logits of the wanted
// tokens (head on the GPU) or the residual stream (head on the CPU) once.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/hparams.h"

namespace bitnet {
struct Model;
struct Batch;
class KvCache;
}  // namespace bitnet

namespace bitnet::cuda {

// Which layers a request puts on the GPU (host bookkeeping, every build).
struct LayerSplit {
  int64_t gpu_layers = 0;       // min(requested, n_layer)
  int64_t first_gpu_layer = 0;  // n_layer − gpu_layers: layers [0, this) stay on the CPU
  bool output_on_gpu = false;   // requested ≥ n_layer: the output norm and the head too (F16 heads)
};
LayerSplit split_layers(int64_t n_layer, int64_t requested);

// Device memory an offload needs (bytes), from the hyper-parameters alone (doctor, tests):
// weights in the GPU layout (2 bits per weight, rows padded to 256 columns, f16 block scales for
// TQ types), norms, an F16 head when it goes to the GPU, the f16 KV cache of the GPU layers for
// n_seq × n_ctx positions, and scratch for max_tokens tokens per forward pass.
struct OffloadEstimate {
  uint64_t weights = 0, kv_cache = 0, scratch = 0;
  uint64_t total() const { return weights + kv_cache + scratch; }
};
// per_block_scales: TQ1_0 / TQ2_0 layer matrices; head_f16: the output matrix is F16.
OffloadEstimate estimate_offload(const HParams& hp, const LayerSplit& split, bool per_block_scales, bool head_f16,
                                 int64_t n_seq, int64_t n_ctx, int64_t max_tokens);
OffloadEstimate estimate_offload(const Model& m, int64_t requested_layers, int64_t n_seq, int64_t n_ctx,
                                 int64_t max_tokens);

class GpuLayers;  // the uploaded weights (CUDA builds)
class GpuCache;   // one KvCache's GPU part (CUDA builds)

// Repacks and uploads the last `requested` layers of `m` (≥ 1). Throws Error with one line that
// says why when it cannot: no CUDA backend in this build, no usable GPU (cuda::probe()'s reason),
// a layer matrix that is not ternary, or the device running out of memory.
std::shared_ptr<const GpuLayers> offload_layers(const Model& m, int64_t requested);
LayerSplit layer_split(const GpuLayers& g);
bool head_on_gpu(const GpuLayers& g);  // output norm + head run on the GPU
uint64_t device_bytes(const GpuLayers& g);
std::string describe(const GpuLayers& g);  // one line for load notes

// Runs batch `b` (already validated) through layers [first_gpu_layer, n_layer) on the GPU, its
// residual stream taken from x (b.size() × n_embd floats after the CPU layers). head_on_gpu(g):
// returns the logits of the tokens with want_logits set (n_logits × n_vocab); otherwise writes the
// final residual stream back into x and returns nothing. Creates the cache's GPU part on first use.
std::vector<float> forward_layers(const GpuLayers& g, KvCache& cache, const Batch& b, float* x);

// Makes the cache's GPU part and scratch for batches of up to max_tokens tokens now (Session does,
// so that no device allocation falls inside a timed forward pass); forward_layers grows it as needed.
void prepare_cache(const GpuLayers& g, KvCache& cache, int64_t max_tokens);

// KvCache::copy_prefix for the GPU layers.
void copy_prefix(GpuCache& c, int64_t from, int64_t to, int64_t n);

}  // namespace bitnet::cuda
