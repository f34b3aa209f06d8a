// KvCommit::OnWrite (model/kv_cache.h): a cache whose memory is committed only where positions
// are written and given back by release() — what the server's --kv-unified relies on to reserve
// every slot's whole context while the slots share one context's worth of memory. Memory is
// measured with mincore (PageBuffer::resident_bytes): a page counts once written or read, so these
// tests also catch code that merely reads (or zero-fills) positions it does not use.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <vector>

#include "model/kv_cache.h"

namespace bitnet {
namespace {

constexpr int64_t kLayers = 2, kSeqs = 4, kCtx = 4096, kHeads = 2, kHeadDim = 64, kPage = 4096;

// Random rows, never all zero (a page of zeros written back would still count, but a wrong read
// of an untouched position would then go unnoticed).
std::vector<float> random_row(std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> x(size_t(kHeads * kHeadDim));
  for (float& v : x) v = normal(rng) + 0.25f;
  return x;
}

void fill(KvCache& c, int64_t seq, int64_t from, int64_t to, std::mt19937& rng) {
  for (int64_t l = 0; l < kLayers; ++l)
    for (int64_t p = from; p < to; ++p) {
      const std::vector<float> k = random_row(rng), v = random_row(rng);
      c.store(l, seq, p, k.data(), v.data());
    }
  c.set_length(seq, std::max(c.length(seq), to));
}

// What `n` positions of one sequence take (KvCache::bytes_for), and the most the page rounding may
// add: a partly used page at the end of each (layer, kv head) region of every side (K, V, and the
// q8_0 scales), and one more where a region does not start on a page.
uint64_t exact(int64_t n, KvType t) { return KvCache::bytes_for(kLayers, 1, n, kHeads, kHeadDim, t, t); }
uint64_t slack(KvType t) { return uint64_t(kLayers * kHeads * (t == KvType::Q8_0 ? 4 : 2) * 2 * kPage); }

class KvCommitTest : public ::testing::TestWithParam<KvType> {};

TEST_P(KvCommitTest, OnlyWrittenPositionsCostMemoryAndReleaseGivesThemBack) {
  const KvType t = GetParam();
  KvCache c(kLayers, kSeqs, kCtx, kHeads, kHeadDim, t, t, KvCommit::OnWrite);
  EXPECT_EQ(c.commit(), KvCommit::OnWrite);
  // 4 sequences × 4096 positions of address space, nothing committed yet.
  EXPECT_EQ(c.bytes(), exact(kCtx, t) * kSeqs);
  EXPECT_EQ(c.resident_bytes(), 0u);

  std::mt19937 rng(11);
  fill(c, 1, 0, 1000, rng);
  const uint64_t after_one = c.resident_bytes();
  EXPECT_GE(after_one, exact(1000, t) - slack(t)) << "the written positions are in memory";
  EXPECT_LE(after_one, exact(1000, t) + slack(t)) << "and only they";
  EXPECT_LT(after_one, c.bytes() / 10);

  fill(c, 3, 0, 300, rng);
  EXPECT_LE(c.resident_bytes(), exact(1300, t) + 2 * slack(t));

  // Positions [0, 400) of sequence 1 before the release, to compare after it.
  std::vector<float> before;
  for (int64_t p = 0; p < 400; p += 7)
    for (int64_t d = 0; d < kHeads * kHeadDim; d += 5) before.push_back(c.key_f32(1, 1, p, d) + c.value_f32(0, 1, p, d));

  c.release(1, 400);
  EXPECT_EQ(c.length(1), 400);
  EXPECT_LE(c.resident_bytes(), exact(700, t) + 2 * slack(t)) << "the released positions' pages went back";
  size_t i = 0;
  for (int64_t p = 0; p < 400; p += 7)
    for (int64_t d = 0; d < kHeads * kHeadDim; d += 5)
      ASSERT_EQ(c.key_f32(1, 1, p, d) + c.value_f32(0, 1, p, d), before[i++]) << "position " << p << " kept";

  // Written again past the release, the positions read back what was stored.
  std::mt19937 again(5);
  fill(c, 1, 400, 600, again);
  std::mt19937 replay(5);
  KvCache ref(1, 1, 8, kHeads, kHeadDim, t, t);  // the same rounding or quantization
  for (int64_t l = 0; l < kLayers; ++l)
    for (int64_t p = 400; p < 600; ++p) {
      const std::vector<float> k = random_row(replay), v = random_row(replay);
      ref.store(0, 0, 0, k.data(), v.data());
      for (int64_t d = 0; d < kHeads * kHeadDim; d += 3) {
        ASSERT_EQ(c.key_f32(l, 1, p, d), ref.key_f32(0, 0, 0, d)) << l << " " << p << " " << d;
        ASSERT_EQ(c.value_f32(l, 1, p, d), ref.value_f32(0, 0, 0, d)) << l << " " << p << " " << d;
      }
    }

  c.release(1, 0);
  c.release(3, 0);
  EXPECT_EQ(c.length(3), 0);
  EXPECT_LE(c.resident_bytes(), 2 * slack(t));
}

// A release in the middle of a key block keeps the block (positions before `from` in it stay).
TEST_P(KvCommitTest, ReleaseInsideAKeyBlockKeepsItsEarlierPositions) {
  const KvType t = GetParam();
  KvCache c(kLayers, 1, kCtx, kHeads, kHeadDim, t, t, KvCommit::OnWrite);
  std::mt19937 rng(3);
  fill(c, 0, 0, 1500, rng);
  const float k = c.key_f32(1, 0, 1202, 70), v = c.value_f32(1, 0, 1202, 70);
  c.release(0, 1203);  // 1203 is inside the key block [1200, 1208)
  EXPECT_EQ(c.key_f32(1, 0, 1202, 70), k);
  EXPECT_EQ(c.value_f32(1, 0, 1202, 70), v);
  EXPECT_EQ(c.length(0), 1203);
}

// The default cache commits everything at construction (huge pages, prefaulted); release() only
// shortens the sequence there.
TEST_P(KvCommitTest, UpfrontCacheIsCommittedWhole) {
  const KvType t = GetParam();
  KvCache c(kLayers, kSeqs, 512, kHeads, kHeadDim, t, t);
  EXPECT_EQ(c.commit(), KvCommit::Upfront);
  EXPECT_GE(c.resident_bytes(), c.bytes());
  std::mt19937 rng(1);
  fill(c, 0, 0, 100, rng);
  const float k = c.key_f32(0, 0, 99, 1);
  c.release(0, 50);
  EXPECT_EQ(c.length(0), 50);
  EXPECT_GE(c.resident_bytes(), c.bytes());
  EXPECT_EQ(c.key_f32(0, 0, 99, 1), k);
}

// The address space may exceed the machine's memory (MAP_NORESERVE): K and V of 1.5 × the RAM each
// (the kernel's default heuristic refuses one mapping larger than RAM + swap when it is charged), of
// which a few positions are used. (Under the strict overcommit policy, vm.overcommit_memory = 2,
// the kernel charges every writable private mapping in full: skipped there.)
TEST(KvCommit, AddressSpaceBeyondTheMachinesMemory) {
  std::ifstream policy("/proc/sys/vm/overcommit_memory");
  int mode = 0;
  if (policy >> mode && mode == 2) GTEST_SKIP() << "vm.overcommit_memory = 2";
  const uint64_t ram = uint64_t(sysconf(_SC_PHYS_PAGES)) * uint64_t(sysconf(_SC_PAGE_SIZE));
  const int64_t per_seq = KvCache::bytes_for(kLayers, 1, kCtx, kHeads, kHeadDim, KvType::F16, KvType::F16);
  const int64_t n_seq = int64_t(3 * ram / uint64_t(per_seq)) + 1;
  KvCache c(kLayers, n_seq, kCtx, kHeads, kHeadDim, KvType::F16, KvType::F16, KvCommit::OnWrite);
  EXPECT_GT(c.bytes(), 3 * ram);
  std::mt19937 rng(2);
  fill(c, n_seq - 1, 0, 64, rng);
  EXPECT_LE(c.resident_bytes(), exact(64, KvType::F16) + slack(KvType::F16));
}

INSTANTIATE_TEST_SUITE_P(Types, KvCommitTest, ::testing::Values(KvType::F16, KvType::Q8_0),
                         [](const auto& info) { return std::string(kv_type_name(info.param)); });

}  // namespace
}  // namespace bitnet
