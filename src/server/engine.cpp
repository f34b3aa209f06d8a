#include "server/engine.h"

#include <algorithm>
#include <cmath>

#include "errors.h"
#include "runtime/context_shift.h"
#include "runtime/session.h"
#include "runtime/text_stream.h"

namespace bitnet::server {

using Clock = std::chrono::steady_clock;

namespace {
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

std::optional<Event> Job::next(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return std::nullopt;
  Event e = std::move(events_.front());
  events_.pop_front();
  return e;
}

JobStats Job::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

bool EmbeddingJob::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, timeout, [&] { return done_; });
}

void EmbeddingJob::end() {
  {
    std::lock_guard lock(mutex_);
    done_ = true;
  }
  cv_.notify_all();
}

void Job::push(Event e) {
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

struct Engine::Slot {
  int id = 0;
  std::vector<int32_t> cached;  // tokens whose K/V this slot's sequence holds
  std::shared_ptr<Job> job;     // null: idle
  size_t prompt_pos = 0;        // prompt tokens already in the cache
  size_t chunk = 0;             // prompt (or replay) tokens in the current batch
  int32_t pending = -1;         // sampled token, evaluated in the next step
  // After a context shift: the tokens evaluated again (those after the dropped run, then the
  // sampled token), read in chunks like a prompt; the last one's logits give the next token.
  std::vector<int32_t> replay;
  size_t replay_pos = 0;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<GrammarConstraint> grammar;  // the request's grammar state, if it has one
  Utf8Stream utf8;
  std::string text;             // complete characters generated so far
  size_t sent = 0;              // bytes of `text` already sent
  JobStats stats;
  Clock::time_point assigned, last_token;
  uint64_t assigned_tick = 0;  // kv_unified: when its job came (the newest fails first)
  uint64_t used_tick = 0;      // kv_unified: when it last had a job (idle caches are cut LRU first)
};

namespace {

// Length of the longest suffix of `text` that is a proper prefix of a stop string: those bytes
// are held back because the next token may complete the stop string.
size_t partial_stop_suffix(const std::string& text, const std::vector<std::string>& stops) {
  size_t best = 0;
  for (const std::string& stop : stops)
    for (size_t n = std::min(stop.size() - 1, text.size()); n > best; --n)
      if (text.compare(text.size() - n, n, stop, 0, n) == 0) {
        best = n;
        break;
      }
  return best;
}

// Log-softmax of the logits: the chosen token's value and the n highest (ties by id), in doubles.
void token_logprobs(std::span<const float> logits, int32_t chosen, int32_t n, Event& e) {
  const float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(double(l - max));
  const double log_sum = std::log(sum);
  const auto logprob = [&](size_t i) { return float(double(logits[i] - max) - log_sum); };
  e.logprob = logprob(size_t(chosen));
  if (n <= 0) return;
  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i);
  const size_t k = std::min(ids.size(), size_t(n));
  std::partial_sort(ids.begin(), ids.begin() + ptrdiff_t(k), ids.end(),
                    [&](int32_t a, int32_t b) { return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b); });
  e.probs.clear();
  for (size_t i = 0; i < k; ++i) e.probs.push_back({ids[i], logprob(size_t(ids[i]))});
}

// The sampler chain's distribution of the last draw: the chosen token's probability and the n
// ranked highest (Sampler::distribution).
void chain_probs(Sampler& sampler, int32_t chosen, int32_t n, Event& e) {
  e.prob = float(sampler.probability(chosen));
  e.probs.clear();
  if (n <= 0) return;
  for (const TokenProbability& t : sampler.distribution(size_t(n))) e.probs.push_back({t.id, 0.0f, float(t.p)});
}

Event progress(const GenerationRequest& r, int64_t cache, int64_t processed, Clock::time_point start) {
  Event e;
  e.kind = Event::Kind::Progress;
  e.progress = {int64_t(r.prompt.size()), cache, processed,
                std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count()};
  return e;
}

Event done(std::string reason, std::string stop_word = {}) {
  Event e;
  e.kind = Event::Kind::Done;
  e.finish_reason = std::move(reason);
  e.stopping_word = std::move(stop_word);
  return e;
}

Event failed(std::string message) {
  Event e;
  e.kind = Event::Kind::Failed;
  e.error = std::move(message);
  return e;
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

}  // namespace

Engine::Engine(const Model& model, EngineConfig config, Metrics& metrics)
    : model_(model),
      config_(std::move(config)),
      metrics_(metrics),
      pool_(config_.threads),
      // An embedding model generates nothing: its generation cache is a token's worth.
      cache_(model.hp.n_layer, config_.generation ? config_.n_slots : 1, config_.generation ? config_.n_ctx_slot : 1,
             model.hp.n_head_kv, model.hp.head_dim, config_.generation ? config_.cache_type_k : KvType::F16,
             config_.generation ? config_.cache_type_v : KvType::F16,
             // kv_unified: address space for every slot's whole context, memory as positions are used.
             config_.generation && config_.kv_unified ? KvCommit::OnWrite : KvCommit::Upfront) {
  if (!model.tokenizer) throw Error("the server needs a model with a tokenizer");
  if (config_.kv_unified && model.gpu)
    throw Error("--kv-unified is not supported with -ngl: the GPU's K/V cache cannot be shared by the slots");
  if (config_.embeddings) {
    // kv_unified pools the generation cache only: an embedding input keeps a slot's share of -c.
    const int64_t embed_ctx = config_.kv_unified ? std::max<int64_t>(1, config_.n_ctx_slot / config_.n_slots)
                                                 : config_.n_ctx_slot;
    embedder_ = std::make_unique<Embedder>(model, embed_ctx, config_.n_slots, config_.n_batch, pool_);
  }
  if (!config_.generation) config_.system_prefix.clear();
  for (int i = 0; i < config_.n_slots; ++i) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->id = i;
  }
  prime_system_prefix();
  publish_locked();  // no other thread yet
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (auto& job : queue_) job->push(failed("server is shutting down"));
  for (auto& s : slots_)
    if (s->job) s->job->push(failed("server is shutting down"));
  for (auto& job : embed_queue_) end_embedding(*job, "server is shutting down", 503);
}

// Evaluates the system prefix once in slot 0 and copies its K/V into every other slot, so each
// request that starts with it (they all do) skips those tokens.
void Engine::prime_system_prefix() {
  const auto& prefix = config_.system_prefix;
  if (prefix.empty()) return;
  if (int64_t(prefix.size()) >= config_.n_ctx_slot)
    throw Error("system prompt is " + std::to_string(prefix.size()) + " tokens: it does not fit in a slot context of " +
                std::to_string(config_.n_ctx_slot) + " (raise -c or lower -np)");
  for (size_t begin = 0; begin < prefix.size(); begin += size_t(config_.n_batch)) {
    Batch b;
    for (size_t i = begin; i < std::min(prefix.size(), begin + size_t(config_.n_batch)); ++i)
      b.add(prefix[i], int32_t(i), 0, false);
    forward(model_, cache_, b, pool_);
  }
  for (auto& s : slots_) {
    // kv_unified: copies only while they fit in the shared pool (the others evaluate it on use).
    if (config_.kv_unified && int64_t(prefix.size()) * (s->id + 1) > config_.n_ctx_slot) break;
    s->cached = prefix;
    if (s->id == 0) continue;
    cache_.copy_prefix(0, s->id, int64_t(prefix.size()));
    cache_.set_length(s->id, int64_t(prefix.size()));
  }
}

std::shared_ptr<Job> Engine::submit(GenerationRequest request) {
  if (request.prompt.empty()) throw Error("empty prompt");
  if (int64_t(request.prompt.size()) > config_.n_ctx_slot)
    throw Error("prompt is " + std::to_string(request.prompt.size()) + " tokens: more than the slot context of " +
                std::to_string(config_.n_ctx_slot));
  for (int32_t t : request.prompt)
    if (t < 0 || t >= model_.hp.n_vocab) throw Error("token id " + std::to_string(t) + " is outside the vocabulary");
  if (request.slot_id < -1 || request.slot_id >= config_.n_slots) throw Error("slot id out of range");
  if (request.n_probs < 0 || request.n_probs > model_.hp.n_vocab) throw Error("n_probs out of range");
  auto job = std::make_shared<Job>(std::move(request));
  {
    std::lock_guard lock(mutex_);
    if (draining_ || stop_) throw Busy("server is shutting down");
    int idle = 0;
    for (const auto& info : snapshot_) idle += info.busy ? 0 : 1;
    if (int(queue_.size()) >= idle + config_.queue_limit)
      throw Busy("all " + std::to_string(config_.n_slots) + " slots are busy and the queue is full (" +
                 std::to_string(config_.queue_limit) + " waiting)");
    queue_.push_back(job);
  }
  metrics_.requests += 1;
  cv_.notify_all();
  return job;
}

void Engine::drain(Clock::time_point deadline) {
  {
    std::lock_guard lock(mutex_);
    draining_ = true;
  }
  while (Clock::now() < deadline && (active() > 0 || queued() > 0))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  {
    std::lock_guard lock(mutex_);
    for (auto& job : queue_) job->cancel();
    for (auto& job : embed_queue_) job->cancel();
    for (auto& s : slots_)
      if (s->job) s->job->cancel();
  }
  cv_.notify_all();
  // Cancelled jobs end at the engine's next step.
  const auto hard = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < hard && (active() > 0 || queued() > 0))
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

std::vector<SlotInfo> Engine::slots() const {
  std::lock_guard lock(mutex_);
  return snapshot_;
}

int Engine::queued() const {
  std::lock_guard lock(mutex_);
  return int(queue_.size() + embed_queue_.size());
}

int Engine::active() const {
  std::lock_guard lock(mutex_);
  int n = 0;
  for (const auto& info : snapshot_) n += info.busy ? 1 : 0;
  return n;
}

uint64_t Engine::kv_cache_bytes_per_slot() const {
  if (!config_.generation) return 0;
  if (config_.kv_unified) return kv_cache_bytes_total();
  return cache_.bytes() / uint64_t(cache_.n_seq());
}

uint64_t Engine::kv_cache_bytes_total() const {
  if (!config_.generation) return 0;
  if (!config_.kv_unified) return cache_.bytes();
  return KvCache::bytes_for(model_.hp.n_layer, 1, config_.n_ctx_slot, cache_.n_head_kv(), cache_.head_dim(),
                            cache_.type_k(), cache_.type_v());
}

void Engine::publish_locked() {
  snapshot_.clear();
  for (const auto& s : slots_) {
    const uint64_t kv = !config_.generation || !config_.kv_unified
                            ? kv_cache_bytes_per_slot()
                            : KvCache::bytes_for(model_.hp.n_layer, 1, int64_t(s->cached.size()), cache_.n_head_kv(),
                                                 cache_.head_dim(), cache_.type_k(), cache_.type_v());
    snapshot_.push_back({s->id, s->job != nullptr, config_.n_ctx_slot, int64_t(s->cached.size()),
                         s->job ? int64_t(s->job->request.prompt.size()) : 0, s->stats.generated, kv});
  }
}

// Moves queued jobs into idle slots: a job naming a slot waits for it; otherwise it takes the idle
// slot sharing the longest prefix with its prompt (prefix reuse). Cancelled queued jobs end here.
void Engine::admit_locked() {
  const bool any_busy = std::any_of(slots_.begin(), slots_.end(), [](const auto& s) { return s->job != nullptr; });
  if (!config_.continuous_batching && any_busy) return;
  for (auto it = queue_.begin(); it != queue_.end();) {
    const auto job = *it;
    if (job->cancelled()) {
      metrics_.requests_cancelled += 1;
      job->push(done("cancelled"));
      it = queue_.erase(it);
      continue;
    }
    Slot* best = nullptr;
    size_t best_common = 0;
    for (auto& s : slots_) {
      if (s->job || (job->request.slot_id >= 0 && job->request.slot_id != s->id)) continue;
      const size_t common = common_prefix(s->cached, job->request.prompt);
      if (!best || common > best_common) best = s.get(), best_common = common;
    }
    if (!best) {
      ++it;
      continue;
    }
    assign(*best, job);
    it = queue_.erase(it);
  }
}

void Engine::assign(Slot& s, std::shared_ptr<Job> job) {
  const auto& prompt = job->request.prompt;
  size_t common = job->request.cache_prompt ? common_prefix(s.cached, prompt) : 0;
  if (common == prompt.size()) --common;  // re-evaluate the last prompt token for its logits
  s.cached.resize(common);
  cache_.set_length(s.id, int64_t(common));
  if (config_.kv_unified) cache_.release(s.id, int64_t(common));  // the positions past the prefix go back to the pool
  s.assigned_tick = s.used_tick = ++tick_;
  s.prompt_pos = common;
  s.pending = -1;
  s.replay.clear();
  s.replay_pos = 0;
  s.sampler = std::make_unique<Sampler>(job->request.sampling);
  s.grammar.reset();
  if (job->request.grammar) {
    if (!grammar_vocab_) grammar_vocab_ = std::make_shared<const GrammarVocab>(*model_.tokenizer);
    s.grammar = std::make_unique<GrammarConstraint>(job->request.grammar, grammar_vocab_);
  }
  s.utf8 = Utf8Stream();
  s.text.clear();
  s.sent = 0;
  s.stats = JobStats{};
  s.stats.slot = s.id;
  s.stats.prompt_tokens = int64_t(prompt.size());
  s.stats.cached_tokens = int64_t(common);
  s.stats.queue_ms = seconds_since(job->submitted_) * 1e3;
  s.assigned = Clock::now();
  s.job = std::move(job);
  metrics_.cached_tokens += common;
  if (s.job->request.return_progress) s.job->push(progress(s.job->request, int64_t(common), int64_t(common), s.assigned));
}

void Engine::loop() {
  Batch batch;
  std::vector<int> rows;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      auto busy = [&] { return std::any_of(slots_.begin(), slots_.end(), [](const auto& s) { return s->job != nullptr; }); };
      // Wakes on submit; the timeout lets cancelled queued jobs leave the queue while idle.
      cv_.wait_for(lock, std::chrono::milliseconds(100),
                   [&] { return stop_ || busy() || !queue_.empty() || !embed_queue_.empty(); });
      if (stop_) return;
      admit_locked();
      publish_locked();
    }
    for (auto& s : slots_)
      if (s->job && s->job->cancelled()) {
        metrics_.requests_cancelled += 1;
        finish(*s, done("cancelled"));
      }
    // One generation step, then one batch of embedding inputs: each kind waits for at most one
    // step of the other.
    bool have_batch = build_batch(batch, rows);
    while (have_batch && config_.kv_unified && !fit_unified_pool(batch)) have_batch = build_batch(batch, rows);
    if (have_batch) {
      std::vector<float> logits;
      bool ok = true;
      try {
        logits = forward(model_, cache_, batch, pool_);
      } catch (const std::exception& e) {
        fail_batch(e.what());
        ok = false;
      }
      if (ok) {
        metrics_.decode_steps += 1;
        metrics_.batch_tokens += uint64_t(batch.size());
        after_forward(logits, rows);
      }
    }
    run_embeddings();
  }
}

std::shared_ptr<EmbeddingJob> Engine::submit_embedding(std::vector<std::vector<int32_t>> inputs) {
  if (!embedder_) throw Error("embeddings are not enabled (--embeddings)");
  if (inputs.empty()) throw Error("no input to embed");
  embedder_->validate(inputs);  // the HTTP layer has already answered these with their 400s
  auto job = std::make_shared<EmbeddingJob>(std::move(inputs));
  job->remaining_ = job->inputs.size();
  job->stats.inputs = int64_t(job->inputs.size());
  for (const auto& in : job->inputs) job->stats.tokens += int64_t(in.size());
  {
    std::lock_guard lock(mutex_);
    if (draining_ || stop_) throw Busy("server is shutting down");
    if (int(embed_queue_.size()) >= config_.n_slots + config_.queue_limit)
      throw Busy(std::to_string(embed_queue_.size()) + " embedding requests are waiting: the queue is full");
    embed_queue_.push_back(job);
  }
  metrics_.embedding_requests += 1;
  cv_.notify_all();
  return job;
}

Pooling Engine::embedding_pooling() const {
  if (!embedder_) throw Error("embeddings are not enabled (--embeddings)");
  return embedder_->resolve({config_.pooling, -1});
}

// Ends an embedding job (engine thread, or the destructor once the thread is gone).
void Engine::end_embedding(EmbeddingJob& job, std::string error, int status) {
  job.error = std::move(error);
  job.error_status = job.error.empty() ? 0 : status;
  metrics_.embedding_duration.observe(seconds_since(job.submitted_));
  if (config_.on_embedding_finished)
    config_.on_embedding_finished(job.stats, job.error.empty() ? "done" : job.cancelled() ? "cancelled" : "failed");
  job.end();
}

// One Embedder call over queued inputs: up to n_slots inputs and n_batch tokens (one input more
// when the batch would otherwise be empty), taken round-robin from the waiting requests so a
// small request is not stuck behind a large one. Returns whether anything ran.
bool Engine::run_embeddings() {
  struct Piece {
    std::shared_ptr<EmbeddingJob> job;
    size_t index;
  };
  std::vector<Piece> pieces;
  std::vector<std::vector<int32_t>> inputs;
  std::vector<std::shared_ptr<EmbeddingJob>> ended;  // cancelled: ended outside the lock
  {
    std::lock_guard lock(mutex_);
    for (auto it = embed_queue_.begin(); it != embed_queue_.end();) {
      if ((*it)->cancelled()) {
        ended.push_back(*it);
        it = embed_queue_.erase(it);
      } else {
        ++it;
      }
    }
    const size_t max_inputs = size_t(config_.n_slots);
    int64_t tokens = 0;
    for (bool added = true; added && pieces.size() < max_inputs;) {
      added = false;
      for (auto& job : embed_queue_) {
        if (pieces.size() >= max_inputs) break;
        if (job->next_ >= job->inputs.size()) continue;
        const int64_t n = int64_t(job->inputs[job->next_].size());
        if (!pieces.empty() && tokens + n > config_.n_batch) continue;
        pieces.push_back({job, job->next_++});
        tokens += n;
        added = true;
      }
    }
    // Jobs whose every input is now handed out leave the queue (their results come below).
    embed_queue_.erase(std::remove_if(embed_queue_.begin(), embed_queue_.end(),
                                      [](const auto& j) { return j->next_ >= j->inputs.size(); }),
                       embed_queue_.end());
  }
  for (auto& job : ended) {
    metrics_.embedding_cancelled += 1;
    end_embedding(*job, "cancelled", 499);
  }
  if (pieces.empty()) return false;
  for (const Piece& p : pieces) {
    inputs.push_back(p.job->inputs[p.index]);
    if (!p.job->started_) {
      p.job->started_ = true;
      p.job->stats.queue_ms = seconds_since(p.job->submitted_) * 1e3;
    }
  }
  const auto start = Clock::now();
  std::vector<Embedding> out;
  std::string error;
  int status = 500;
  try {
    out = embedder_->embed(inputs, {config_.pooling, -1});
    if (out.size() != inputs.size()) throw std::runtime_error("the embedder returned a wrong number of results");
  } catch (const Error& e) {  // the Embedder's checks of the inputs (lengths): the request was wrong
    error = e.what();
    status = 400;
  } catch (const std::exception& e) {
    error = std::string("embedding failed: ") + e.what();
  }
  const double ms = seconds_since(start) * 1e3;
  metrics_.embedding_batches += 1;
  std::vector<std::shared_ptr<EmbeddingJob>> seen;
  for (size_t i = 0; i < pieces.size(); ++i) {
    EmbeddingJob& job = *pieces[i].job;
    if (std::find(seen.begin(), seen.end(), pieces[i].job) == seen.end()) {
      seen.push_back(pieces[i].job);
      job.stats.batches += 1;
      job.stats.compute_ms += ms;
    }
    if (job.done_ || !job.error.empty()) continue;  // failed in an earlier batch of this call
    if (!error.empty()) {
      {
        std::lock_guard lock(mutex_);  // its other inputs must not run
        embed_queue_.erase(std::remove(embed_queue_.begin(), embed_queue_.end(), pieces[i].job), embed_queue_.end());
      }
      end_embedding(job, error, status);
      continue;
    }
    metrics_.embedding_inputs += 1;
    metrics_.embedding_tokens += uint64_t(inputs[i].size());
    job.results[pieces[i].index] = std::move(out[i]);
    if (--job.remaining_ == 0) end_embedding(job, "", 0);
  }
  return true;
}

// One token for every generating slot, then prompt chunks within the n_batch budget.
bool Engine::build_batch(Batch& b, std::vector<int>& row_of_slot) {
  b.clear();
  row_of_slot.assign(slots_.size(), -1);
  int64_t budget = std::max<int64_t>(config_.n_batch, int64_t(slots_.size()));
  int rows = 0;
  for (auto& s : slots_) {
    s->chunk = 0;
    if (!s->job || s->pending < 0) continue;
    b.add(s->pending, int32_t(s->cached.size()), s->id, true);
    row_of_slot[size_t(s->id)] = rows++;
    --budget;
  }
  for (auto& s : slots_) {
    if (!s->job || s->pending >= 0 || budget <= 0) continue;
    // The prompt, or after a context shift the tokens to evaluate again; either continues the
    // slot's cached tokens.
    const bool replay = !s->replay.empty();
    const auto& input = replay ? s->replay : s->job->request.prompt;
    const size_t from = replay ? s->replay_pos : s->prompt_pos;
    const size_t n = std::min(size_t(budget), input.size() - from);
    for (size_t i = from; i < from + n; ++i) {
      const bool last = i + 1 == input.size();
      b.add(input[i], int32_t(s->cached.size() + (i - from)), s->id, last);
      if (last) row_of_slot[size_t(s->id)] = rows++;
    }
    s->chunk = n;
    budget -= int64_t(n);
  }
  return b.size() > 0;
}

void Engine::after_forward(const std::vector<float>& logits, const std::vector<int>& row_of_slot) {
  const size_t V = size_t(model_.hp.n_vocab);
  for (auto& s : slots_) {
    if (!s->job) continue;
    if (s->pending >= 0) {
      s->cached.push_back(s->pending);
      s->pending = -1;
    } else if (s->chunk > 0 && !s->replay.empty()) {
      s->cached.insert(s->cached.end(), s->replay.begin() + ptrdiff_t(s->replay_pos),
                       s->replay.begin() + ptrdiff_t(s->replay_pos + s->chunk));
      s->replay_pos += s->chunk;
      if (s->replay_pos == s->replay.size()) s->replay.clear(), s->replay_pos = 0;
    } else if (s->chunk > 0) {
      const auto& prompt = s->job->request.prompt;
      s->cached.insert(s->cached.end(), prompt.begin() + ptrdiff_t(s->prompt_pos),
                       prompt.begin() + ptrdiff_t(s->prompt_pos + s->chunk));
      s->prompt_pos += s->chunk;
      metrics_.prompt_tokens += s->chunk;
      if (s->job->request.return_progress)
        s->job->push(progress(s->job->request, s->stats.cached_tokens, int64_t(s->prompt_pos), s->assigned));
    }
    const int row = row_of_slot[size_t(s->id)];
    if (row < 0) continue;
    if (s->stats.generated == 0) s->stats.prompt_ms = seconds_since(s->assigned) * 1e3;
    if (s->job->request.n_predict == 0) {
      finish(*s, done("length"));
      continue;
    }
    const std::span<const float> row_logits(logits.data() + size_t(row) * V, V);
    int32_t token = s->sampler->sample(row_logits, s->cached);
    if (s->grammar) {
      // As runtime/generate.cpp: the first choice is checked alone; only when the grammar refuses
      // it is the full mask applied and the draw repeated.
      try {
        if (!s->grammar->allows(token)) {
          masked_logits_.assign(row_logits.begin(), row_logits.end());
          s->grammar->apply(masked_logits_);
          token = s->sampler->sample(masked_logits_, s->cached);
          if (!s->grammar->allows(token))
            throw GrammarError("grammar: the sampler chose token " + std::to_string(token) +
                               ", which the grammar does not allow (a logit bias of +inf?)");
        }
        s->grammar->accept(token);
      } catch (const Error& e) {
        finish(*s, failed(e.what()));
        continue;
      }
    }
    on_sampled(*s, token, row_logits);
  }
}

// Mirrors runtime/generate.cpp so a slot produces exactly what `bitnet run` does: end of
// generation is not emitted; the context check follows the emitted token.
void Engine::on_sampled(Slot& s, int32_t token, std::span<const float> logits) {
  const GenerationRequest& req = s.job->request;
  const Tokenizer& tok = *model_.tokenizer;
  const auto now = Clock::now();
  if (s.stats.generated == 0)
    metrics_.ttft.observe(seconds_since(s.job->submitted_));
  else
    metrics_.inter_token.observe(std::chrono::duration<double>(now - s.last_token).count());
  s.last_token = now;
  if (tok.is_end_of_generation(token) && (!req.ignore_eos || (s.grammar && s.grammar->ended()))) {
    finish(s, done("stop"));
    return;
  }
  s.stats.generated += 1;
  metrics_.generated_tokens += 1;
  s.text += s.utf8.push(tok.token_to_piece(token));
  Event e;
  e.token = token;
  if (req.post_sampling_probs && (req.n_probs > 0 || req.logprobs))
    chain_probs(*s.sampler, token, req.n_probs, e);
  else if (req.n_probs > 0 || req.logprobs)
    token_logprobs(logits, token, req.n_probs, e);
  // A stop string ends generation; it and anything after it are not sent.
  size_t stop_at = std::string::npos;
  std::string stop_word;
  for (const std::string& stop : req.stop) {
    const size_t p = s.text.find(stop, s.sent);
    if (p != std::string::npos && p < stop_at) stop_at = p, stop_word = stop;
  }
  if (stop_at != std::string::npos) {
    e.text = s.text.substr(s.sent, stop_at - s.sent);
    s.sent = s.text.size();
    s.job->push(std::move(e));
    finish(s, done("stop", stop_word));
    return;
  }
  const size_t safe = s.text.size() - partial_stop_suffix(s.text, req.stop);
  if (safe > s.sent) {
    e.text = s.text.substr(s.sent, safe - s.sent);
    s.sent = safe;
  }
  s.job->push(std::move(e));
  if (s.grammar && s.grammar->matcher().finished()) {  // the grammar admits nothing more
    finish(s, done("stop"));
    return;
  }
  if (req.n_predict >= 0 && s.stats.generated >= req.n_predict) {
    finish(s, done("length"));
    return;
  }
  // Full as llama-server has it: the cached tokens and this one fill the slot (prompt + generated
  // ≤ n_ctx, as runtime/generate.cpp).
  if (int64_t(s.cached.size()) + 1 >= config_.n_ctx_slot) {
    s.stats.truncated = true;
    if (!config_.context_shift) {
      finish(s, done("length"));
      return;
    }
    try {
      shift_context(s, token);
    } catch (const std::exception& e) {
      finish(s, failed(std::string("context shift: ") + e.what()));
    }
    return;
  }
  s.pending = token;
}

// --context-shift: the slot keeps its first n_keep tokens, drops part of the rest, and evaluates
// what follows the dropped run again, then the sampled token (runtime/context_shift.h), as prompt
// chunks: its next token comes from exactly the logits a fresh evaluation of the remaining tokens
// gives.
void Engine::shift_context(Slot& s, int32_t token) {
  const GenerationRequest& req = s.job->request;
  const Tokenizer& tok = *model_.tokenizer;
  const bool leading_bos = tok.bos() >= 0 && !s.cached.empty() && s.cached.front() == tok.bos();
  const int64_t n_keep = resolve_n_keep(req.n_keep, int64_t(req.prompt.size()), leading_bos);
  const ContextShift shift = plan_context_shift(int64_t(s.cached.size()), n_keep, req.n_discard);
  s.replay = apply_context_shift(cache_, s.id, s.cached, shift);
  s.replay.push_back(token);
  s.replay_pos = 0;
  // kv_unified: the pages past where the replay ends go back to the pool's memory.
  if (config_.kv_unified) cache_.release(s.id, int64_t(s.cached.size() + s.replay.size()));
  s.stats.context_shifts += 1;
  metrics_.context_shifts += 1;
}

// Ends the slot's job with `done` (carrying any held-back text) and frees the slot; its cache
// keeps the evaluated tokens for prefix reuse.
void Engine::finish(Slot& s, Event done) {
  if (done.kind == Event::Kind::Done && done.stopping_word.empty() && done.finish_reason != "cancelled") {
    s.text += s.utf8.flush();
    done.text = s.text.substr(std::min(s.sent, s.text.size()));
  }
  s.stats.generation_ms = s.stats.generated > 0 ? seconds_since(s.assigned) * 1e3 - s.stats.prompt_ms : 0;
  {
    std::lock_guard lock(s.job->mutex_);
    s.job->stats_ = s.stats;
  }
  metrics_.e2e.observe(seconds_since(s.job->submitted_));
  if (config_.on_finished) config_.on_finished(s.stats, done.finish_reason);
  s.pending = -1;
  s.replay.clear();
  s.replay_pos = 0;
  s.used_tick = ++tick_;
  std::shared_ptr<Job> job;
  {
    // The slot is free before the client hears that its request ended.
    std::lock_guard lock(mutex_);
    job = std::move(s.job);
    publish_locked();
  }
  job->push(std::move(done));
}

void Engine::fail_batch(const std::string& message) {
  for (auto& s : slots_)
    if (s->job && (s->pending >= 0 || s->chunk > 0)) finish(*s, failed(message));
}

// kv_unified: makes room in the shared pool of n_ctx_slot positions for this step's batch. Idle
// slots give up their cached prefixes first, least recently used first, each cut from its end (at
// least kCut positions at a time, so that the pages are not given back a few positions per step);
// a cut prefix still serves the requests that share what is left of it. When the running requests
// alone need more than the pool, the newest of them fails — a client gets an error, never a reply
// cut short — and false asks for the batch to be built again without it.
bool Engine::fit_unified_pool(const Batch& batch) {
  constexpr int64_t kCut = 256;
  int64_t held = 0;
  for (const auto& s : slots_) held += int64_t(s->cached.size());
  int64_t over = held + int64_t(batch.size()) - config_.n_ctx_slot;
  if (over <= 0) return true;
  std::vector<Slot*> idle;
  for (auto& s : slots_)
    if (!s->job && !s->cached.empty()) idle.push_back(s.get());
  std::sort(idle.begin(), idle.end(), [](const Slot* a, const Slot* b) { return a->used_tick < b->used_tick; });
  for (Slot* s : idle) {
    if (over <= 0) break;
    const int64_t n = int64_t(s->cached.size()), cut = std::min(n, std::max(over, kCut));
    s->cached.resize(size_t(n - cut));
    cache_.release(s->id, n - cut);
    over -= cut;
  }
  if (over <= 0) {
    std::lock_guard lock(mutex_);
    publish_locked();
    return true;
  }
  // The newest request that holds positions or asks for some in this batch (one that does neither
  // yet may find room once another ends).
  Slot* newest = nullptr;
  int running = 0;
  for (auto& s : slots_) {
    if (!s->job) continue;
    ++running;
    if ((!s->cached.empty() || s->pending >= 0 || s->chunk > 0) &&
        (!newest || s->assigned_tick > newest->assigned_tick))
      newest = s.get();
  }
  if (!newest) return true;  // unreachable: the positions over the pool are held or asked for by a request
  finish(*newest, failed("Context size has been exceeded: the " + std::to_string(config_.n_ctx_slot) +
                         " positions of the unified KV cache (-c with --kv-unified) are all held by the " +
                         std::to_string(running) + " running requests"));
  return false;
}

}  // namespace bitnet::server
