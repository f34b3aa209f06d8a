#include "kernels/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace bitnet {
namespace {

void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// Spins until done() or kSpinMicros have passed; returns done().
template <class Pred>
bool spin_until(const Pred& done) {
  if (done()) return true;
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::microseconds(ThreadPool::kSpinMicros);
  const auto yield_from = start + std::chrono::microseconds(ThreadPool::kPureSpinMicros);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      cpu_relax();
      if (done()) return true;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return done();
    // On a busy machine the thread we wait for may be waiting for this core: offer it — after a
    // short pure spin, since a yield is a system call (~1 µs on a VM) that delays seeing `done`.
    if (now >= yield_from) std::this_thread::yield();
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunk(int index) {
  // Chunks are whole grains, spread as evenly as possible over the threads.
  const int64_t grains = (job_n_ + job_grain_ - 1) / job_grain_;
  const int64_t g0 = grains * index / n_threads_;
  const int64_t g1 = grains * (index + 1) / n_threads_;
  const int64_t begin = std::min(job_n_, g0 * job_grain_);
  const int64_t end = std::min(job_n_, g1 * job_grain_);
  if (begin < end) (*job_)(begin, end, index);
}

void ThreadPool::worker_loop(int index) {
  uint32_t seen = 0;
  for (;;) {
    const auto changed = [&] { return generation_.load(std::memory_order_acquire) != seen; };
    while (!spin_until(changed)) generation_.wait(seen, std::memory_order_acquire);
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    run_chunk(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (n_threads_ == 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  job_grain_ = grain;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  run_chunk(0);
  const auto finished = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  while (!spin_until(finished)) {
    const int left = pending_.load(std::memory_order_acquire);
    if (left != 0) pending_.wait(left, std::memory_order_acquire);
  }
  job_ = nullptr;
}

void ThreadPool::for_each_claimed(int64_t n, const std::function<void(int64_t, int)>& fn) {
  std::atomic<int64_t> next{0};
  parallel_for(std::min<int64_t>(n_threads_, n), 1, [&](int64_t, int64_t, int thread) {
    for (int64_t item; (item = next.fetch_add(1, std::memory_order_relaxed)) < n;) fn(item, thread);
  });
}

void SpinBarrier::arrive_and_wait() {
  const uint32_t gen = generation_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
    // The last arrival resets the count before it opens the next generation, so a thread that
    // races ahead to the next barrier counts into a fresh round.
    arrived_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    return;
  }
  const auto opened = [&] { return generation_.load(std::memory_order_acquire) != gen; };
  while (!spin_until(opened)) generation_.wait(gen, std::memory_order_acquire);
}

}  // namespace bitnet
