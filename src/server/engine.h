#pragma once
// The server's inference engine: N slots over ONE KvCache (one sequence per slot) and a single
// engine thread. Every step it forms one Batch from all active slots (a prompt chunk for slots
// still reading their prompt, one token for each generating slot), calls forward() once, samples
// per slot with the slot's own Sampler and pushes the results to each request's Job. HTTP threads
// only submit jobs and read their events, so the model is only ever touched by one thread.
// Embedding requests (EmbeddingJob) run on the same thread, between generation steps, through an
// Embedder with its own cache (docs/server.md, "Embeddings").
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "grammar/constraint.h"
#include "grammar/grammar.h"
#include "model/forward.h"
#include "runtime/embed.h"
#include "sampling/sampler.h"
#include "server/metrics.h"

namespace bitnet::server {

struct GenerationRequest {
  std::vector<int32_t> prompt;  // full prompt, special tokens included
  int64_t n_predict = -1;       // < 0: until end of generation or a full slot context
  SamplingParams sampling;
  bool ignore_eos = false;
  std::vector<std::string> stop;  // stop strings (not included in the output)
  int32_t slot_id = -1;           // -1: any slot
  int32_t n_probs = 0;            // top-n log-probabilities reported per generated token
  bool logprobs = false;          // the generated token's own log-probability too (implied by n_probs > 0)
  bool cache_prompt = true;       // reuse the slot's cached prefix
  // Context shift (EngineConfig::context_shift): llama-server's n_keep (-1: the whole prompt; n:
  // n tokens after a leading BOS) and n_discard (0: half of what follows the kept tokens).
  int64_t n_keep = 0;
  int64_t n_discard = 0;
  // llama-server's post_sampling_probs: the probabilities reported (n_probs, logprobs) are those
  // of the distribution the sampler chain drew from (Sampler::distribution), not the model's.
  bool post_sampling_probs = false;
  bool return_progress = false;   // Progress events while the prompt is evaluated
  // Optional: only text this grammar allows is generated (docs/structured-output.md). The reply
  // ends ("stop") once the grammar is complete and nothing more can follow, or at an
  // end-of-generation token the grammar allows (even with ignore_eos).
  std::shared_ptr<const Grammar> grammar;
};

struct TokenProb {
  int32_t id;
  float logprob;   // natural log of the softmax of the model's logits (before sampling settings)
  float prob = 0;  // post_sampling_probs (then logprob is unused): the probability after the chain
};

// Prompt evaluation so far (llama-server's prompt_progress): `processed` counts the prompt tokens
// in the slot's cache, the `cache` reused ones included.
struct PromptProgress {
  int64_t total = 0, cache = 0, processed = 0;
  int64_t time_ms = 0;  // since the slot took the request
};

struct Event {
  // Progress (request.return_progress): once when the slot takes the request (processed == cache),
  // then after every forward pass that evaluated a chunk of its prompt (the last: processed == total).
  enum class Kind { Token, Done, Failed, Progress };
  Kind kind = Kind::Token;
  std::string text;              // new text (complete UTF-8 characters; may be empty while held)
  int32_t token = -1;            // Token: the generated id
  std::vector<TokenProb> probs;  // Token: top n_probs, highest first
  float logprob = 0;             // Token: the generated id's log-probability (request.logprobs)
  float prob = 0;                // Token, post_sampling_probs: its probability after the chain
  PromptProgress progress;       // Progress
  std::string finish_reason;     // Done: "stop", "length" or "cancelled"
  std::string stopping_word;     // Done: the stop string that ended generation, if any
  std::string error;             // Failed: why
};

struct JobStats {
  int slot = -1;
  int64_t prompt_tokens = 0;  // prompt length
  int64_t cached_tokens = 0;  // prompt tokens reused from the slot's cache
  int64_t generated = 0;
  double queue_ms = 0, prompt_ms = 0, generation_ms = 0;
  bool truncated = false;      // the slot's context filled: the reply stopped there, or it was shifted
  int64_t context_shifts = 0;  // shifts during this reply
};

// One request as seen by both sides: the engine appends events, the HTTP thread reads them.
class Job {
 public:
  explicit Job(GenerationRequest r) : request(std::move(r)) {}
  // The next event, or nullopt when none arrived within `timeout`.
  std::optional<Event> next(std::chrono::milliseconds timeout);
  // Asks the engine to stop this job; it frees its slot at the next step.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }
  JobStats stats() const;

  const GenerationRequest request;

 private:
  friend class Engine;
  void push(Event e);
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  std::atomic<bool> cancelled_{false};
  JobStats stats_;
  std::chrono::steady_clock::time_point submitted_ = std::chrono::steady_clock::now();
};

struct EmbeddingStats {
  int64_t inputs = 0;   // inputs of the request
  int64_t tokens = 0;   // tokens over all its inputs
  int64_t batches = 0;  // Embedder calls its inputs took part in
  double queue_ms = 0;  // submitted → first input in a batch
  double compute_ms = 0;  // time in those Embedder calls
};

// One embedding request: its tokenized inputs go through the model in batches the engine packs
// (inputs of several requests may share one); the HTTP thread waits for the whole result.
class EmbeddingJob {
 public:
  explicit EmbeddingJob(std::vector<std::vector<int32_t>> in) : inputs(std::move(in)), results(inputs.size()) {}
  // True once the job ended (all results in, failed, or cancelled); waits at most `timeout`.
  bool wait(std::chrono::milliseconds timeout);
  // The engine drops the inputs not yet computed at its next step.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  const std::vector<std::vector<int32_t>> inputs;
  // Read once wait() returned true. `error` non-empty: the job failed, with `error_status` (400: the
  // request was wrong, 500: the computation failed, 503: shutting down).
  std::vector<Embedding> results;  // raw: pooled with the engine's pooling, not normalized
  std::string error;
  int error_status = 0;
  EmbeddingStats stats;

 private:
  friend class Engine;
  void end();
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<bool> cancelled_{false};
  size_t next_ = 0;       // inputs handed to the model so far (engine thread)
  size_t remaining_ = 0;  // inputs whose results are still missing (engine thread)
  std::chrono::steady_clock::time_point submitted_ = std::chrono::steady_clock::now();
  bool started_ = false;
};

struct EngineConfig {
  int n_slots = 1;
  int64_t n_ctx_slot = 512;  // positions per slot (total context / slots; with kv_unified the total)
  // --kv-unified: every slot's context is n_ctx_slot (the whole -c) and the slots share one pool of
  // n_ctx_slot positions. The cache reserves address space for n_slots × n_ctx_slot positions,
  // committed only as written (KvCommit::OnWrite), and the engine keeps the positions all slots
  // hold within n_ctx_slot: idle slots' cached prefixes are cut, least recently used first, and when
  // the running requests alone need more, the newest one fails ("Context size has been exceeded").
  // Embeddings keep n_ctx_slot / n_slots tokens per input. Not with a model on the GPU (-ngl).
  bool kv_unified = false;
  int64_t n_batch = 512;     // tokens per forward pass
  int threads = 1;
  int queue_limit = 16;           // jobs that may wait for a slot; more get Busy
  KvType cache_type_k = KvType::F16, cache_type_v = KvType::F16;  // -ctk / -ctv of the generation cache
  bool continuous_batching = true;  // false: admit new jobs only when every slot is idle
  // --context-shift: a generating slot whose context is full drops part of it (runtime/context_shift.h)
  // and goes on; otherwise the reply ends there with "length".
  bool context_shift = false;
  std::vector<int32_t> system_prefix;  // primed into every slot at start-up
  // Called on the engine thread when a request ends (telemetry); must not block.
  std::function<void(const JobStats& stats, const std::string& finish_reason)> on_finished;
  // Embeddings (--embeddings, or an embedding model): an Embedder of n_slots sequences of
  // n_ctx_slot tokens, run between generation steps.
  bool embeddings = false;
  bool generation = true;          // false for embedding models: no generation cache, no system prefix
  std::optional<Pooling> pooling;  // --pooling; nullopt: the model's, else last
  std::function<void(const EmbeddingStats& stats, const std::string& outcome)> on_embedding_finished;
};

// submit() when the wait queue is full, or while shutting down.
struct Busy : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct SlotInfo {
  int id;
  bool busy;
  int64_t n_ctx, cached_tokens, prompt_tokens, generated;
  // The slot's share of the generation KV cache (0 on an embedding model); with kv_unified, the K/V
  // of the positions it holds now.
  uint64_t kv_cache_bytes;
};

class Engine {
 public:
  // Primes the system prefix into every slot (throws Error if it does not fit), then starts the
  // engine thread.
  Engine(const Model& model, EngineConfig config, Metrics& metrics);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a job; throws Busy when the queue is full or the engine is draining.
  std::shared_ptr<Job> submit(GenerationRequest request);
  // Queues an embedding job; throws Error for an empty input, one longer than the embedding context
  // or an id outside the vocabulary, Busy when the queue is full or the engine is draining.
  std::shared_ptr<EmbeddingJob> submit_embedding(std::vector<std::vector<int32_t>> inputs);
  // The pooling embeddings get (--pooling, else the model's, else last); embeddings enabled only.
  Pooling embedding_pooling() const;
  // The most tokens one embedding input may have.
  int64_t embedding_n_ctx() const { return embedder_ ? embedder_->n_ctx() : 0; }
  // Refuses new jobs; returns once every job finished or `deadline` passed (then cancels the rest).
  void drain(std::chrono::steady_clock::time_point deadline);

  const EngineConfig& config() const { return config_; }
  // Bytes of K/V (f16 or q8_0) each slot holds: its n_ctx_slot positions in every layer, as KvCache stores
  // them (KvCache::bytes() / slots). 0 for an embedding model, whose slots generate nothing; the
  // embeddings' own cache is not counted.
  // With kv_unified: the most one slot may hold, the shared pool's n_ctx_slot positions.
  uint64_t kv_cache_bytes_per_slot() const;
  // The generation KV cache of all slots: KvCache::bytes(), or with kv_unified the shared pool's
  // n_ctx_slot positions (the memory it may commit; its address space is n_slots times that).
  uint64_t kv_cache_bytes_total() const;
  // Bytes of the generation cache backed by memory now (KvCache::resident_bytes, mincore: safe from
  // any thread; tests and diagnostics).
  uint64_t kv_cache_resident_bytes() const { return cache_.resident_bytes(); }
  std::vector<SlotInfo> slots() const;
  int queued() const;
  int active() const;

 private:
  struct Slot;
  void loop();
  void prime_system_prefix();
  void admit_locked();
  void publish_locked();
  void assign(Slot& s, std::shared_ptr<Job> job);
  bool build_batch(Batch& batch, std::vector<int>& row_of_slot);
  void after_forward(const std::vector<float>& logits, const std::vector<int>& row_of_slot);
  void on_sampled(Slot& s, int32_t token, std::span<const float> logits);
  void shift_context(Slot& s, int32_t token);
  void finish(Slot& s, Event done);
  void fail_batch(const std::string& message);
  bool fit_unified_pool(const Batch& batch);
  bool run_embeddings();
  void end_embedding(EmbeddingJob& job, std::string error, int status);

  const Model& model_;
  EngineConfig config_;
  std::shared_ptr<const GrammarVocab> grammar_vocab_;  // built at the first grammar request
  std::vector<float> masked_logits_;                   // scratch for a grammar's masked draw
  Metrics& metrics_;
  ThreadPool pool_;
  KvCache cache_;
  std::vector<std::unique_ptr<Slot>> slots_;
  mutable std::mutex mutex_;  // guards queue_, snapshot_, stop_, draining_ and Slot::job
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::unique_ptr<Embedder> embedder_;                // null unless config_.embeddings
  std::deque<std::shared_ptr<EmbeddingJob>> embed_queue_;  // jobs with inputs not yet computed
  std::vector<SlotInfo> snapshot_;  // what slots() reports, refreshed each step
  uint64_t tick_ = 0;               // orders job assignments and slot use (kv_unified)
  bool stop_ = false, draining_ = false;
  std::thread thread_;
};

}  // namespace bitnet::server
