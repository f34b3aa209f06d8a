#include <gtest/gtest.h>

#include <atomic>

#include "kernels/thread_pool.h"
#include "runtime/text_stream.h"

namespace bitnet {
namespace {

TEST(ThreadPool, CoversEveryIndexExactlyOnceWithGrainAlignedChunks) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 7, 16, 100, 1001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, 4, [&](int64_t b, int64_t e, int) {
        EXPECT_EQ(b % 4, 0);
        for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
      });
      for (auto& h : hits) ASSERT_EQ(h.load(), 1);
    }
  }
}

TEST(ThreadPool, ReusedManyTimes) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum = 0;
  for (int rep = 0; rep < 2000; ++rep)
    pool.parallel_for(10, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) sum += i;
    });
  EXPECT_EQ(sum.load(), 2000 * 45);
}

TEST(SpinBarrier, NoThreadPassesBeforeAllArrive) {
  // Each phase every thread writes its slot, meets the others, then checks that every slot holds
  // this phase: a thread let through early would see a slot still at the previous phase. Three
  // threads on a 2-core machine also exercise the yield and sleep paths.
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    SpinBarrier barrier(threads);
    std::vector<std::atomic<int>> slot(static_cast<size_t>(threads));
    std::atomic<int> wrong = 0;
    pool.parallel_for(threads, 1, [&](int64_t, int64_t, int t) {
      for (int phase = 1; phase <= 3000; ++phase) {
        slot[size_t(t)].store(phase, std::memory_order_relaxed);
        barrier.arrive_and_wait();
        for (const auto& v : slot)
          if (v.load(std::memory_order_relaxed) != phase) ++wrong;
        barrier.arrive_and_wait();  // nobody writes the next phase while another still reads
      }
    });
    EXPECT_EQ(wrong.load(), 0) << threads << " threads";
  }
}

TEST(Utf8Stream, HoldsBackIncompleteCharacters) {
  Utf8Stream s;
  const std::string smile = "\xF0\x9F\x98\x80";  // U+1F600, 4 bytes
  EXPECT_EQ(s.push("ab"), "ab");
  EXPECT_EQ(s.push(smile.substr(0, 1)), "");
  EXPECT_EQ(s.push(smile.substr(1, 2)), "");
  EXPECT_EQ(s.push(smile.substr(3) + "c"), smile + "c");
  EXPECT_EQ(s.push("\xC3"), "");
  EXPECT_EQ(s.flush(), "\xC3");
}

}  // namespace
}  // namespace bitnet
