#pragma once
// A persistent pool of worker threads: created once, reused for every matrix product, so no
// thread is created per token. parallel_for splits [0, n) into one contiguous chunk per thread;
// each index is processed by exactly one thread, so results never depend on the thread count.
//
// A decode step issues a few hundred short jobs. Waking a sleeping thread through the kernel costs
// tens of microseconds on a VM, so workers and the caller first spin on an atomic for a short
// while (kSpinMicros) and only then sleep on a futex (std::atomic::wait): back-to-back jobs never
// touch the scheduler, and an idle pool still costs no CPU.
#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace bitnet {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // fn(begin, end, thread_index) over contiguous chunks of [0, n); chunk boundaries are multiples
  // of `grain` (except the last). The caller's thread takes part. Not reentrant.
  void parallel_for(int64_t n, int64_t grain,
                    const std::function<void(int64_t, int64_t, int)>& fn);

  // fn(item, thread_index) for every item in [0, n), the threads claiming items one after another
  // from a shared counter: a thread slowed down by other work on the machine simply takes fewer.
  // Each item runs exactly once, so results never depend on the thread count or the claim order.
  void for_each_claimed(int64_t n, const std::function<void(int64_t, int)>& fn);

  // How long a thread spins for the next job (worker) or for the others to finish (caller)
  // before it sleeps.
  static constexpr int64_t kSpinMicros = 200;
  // The first part of that spin never yields the core: the waits between the phases of a decode
  // step are a few microseconds, and yielding in them cost ~2% of a step.
  static constexpr int64_t kPureSpinMicros = 20;

 private:
  void worker_loop(int index);
  void run_chunk(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  // Bumped (release) after the job fields below are written; workers acquire it.
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  // The current job.
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0, job_grain_ = 1;
};

// A reusable barrier for the threads of one ThreadPool job that work through several dependent
// phases (the one-token decode step): each arrival spins like the pool (kSpinMicros), then sleeps.
// Costs one atomic add and a spin on one cache line instead of a pool job's dispatch and join.
class SpinBarrier {
 public:
  explicit SpinBarrier(int n_threads) : n_(n_threads) {}
  // Returns once all n_threads threads have arrived at this generation of the barrier.
  void arrive_and_wait();

 private:
  const int n_;
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<uint32_t> generation_{0};
};

}  // namespace bitnet
