// PageBuffer (huge-page anonymous memory) and WeightArena (tensor copies packed into it).
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <sstream>
#include <vector>

#include "memory/page_buffer.h"

namespace bitnet {
namespace {

TEST(PageBuffer, IsHugePageAlignedZeroFilledAndWritable) {
  const size_t bytes = 3 * PageBuffer::kHugePage + 12345;
  PageBuffer b(bytes);
  ASSERT_NE(b.data(), nullptr);
  EXPECT_EQ(b.size(), bytes);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % PageBuffer::kHugePage, 0u);
  for (size_t i = 0; i < bytes; i += 4093) ASSERT_EQ(b.data()[i], 0) << i;
  EXPECT_EQ(b.data()[bytes - 1], 0);
  b.prefault();  // touches every page, changes nothing
  for (size_t i = 0; i < bytes; i += 4093) ASSERT_EQ(b.data()[i], 0) << i;
  for (size_t i = 0; i < bytes; ++i) b.data()[i] = uint8_t(i * 31 + 7);
  for (size_t i = 0; i < bytes; i += 4093) ASSERT_EQ(b.data()[i], uint8_t(i * 31 + 7)) << i;
}

TEST(PageBuffer, MoveTransfersOwnership) {
  PageBuffer a(1000);
  a.data()[999] = 42;
  uint8_t* p = a.data();
  PageBuffer b(std::move(a));
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.data()[999], 42);
  PageBuffer c(10);
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.size(), 1000u);
  EXPECT_EQ(PageBuffer().data(), nullptr);
  EXPECT_EQ(PageBuffer(0).size(), 0u);
}

TEST(WeightArena, CopiesAreExactAlignedAndStable) {
  std::mt19937 rng(5);
  // Odd sizes, and one larger than a chunk so that it gets a chunk of its own.
  const std::vector<size_t> sizes = {1, 63, 4097, 1'000'003, WeightArena::kChunk + 17, 5, 2'000'000};
  std::vector<std::vector<uint8_t>> sources;
  std::vector<const uint8_t*> copies;
  WeightArena arena;
  size_t total = 0;
  for (size_t n : sizes) {
    std::vector<uint8_t> src(n);
    for (auto& x : src) x = uint8_t(rng());
    copies.push_back(arena.copy(src.data(), n));
    sources.push_back(std::move(src));
    total += n;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(copies.back()) % 64, 0u);
  }
  EXPECT_EQ(arena.bytes(), total);
  // Every earlier copy is still intact after later ones (no chunk moved, nothing overlaps).
  for (size_t i = 0; i < sizes.size(); ++i)
    ASSERT_EQ(std::memcmp(copies[i], sources[i].data(), sizes[i]), 0) << "copy " << i;
}

TEST(Smaps, SumsAnonHugePagesOfOverlappingMappingsOnly) {
  // The layout of /proc/<pid>/smaps: a header line per mapping, then "Field:   N kB" lines.
  std::istringstream smaps(
      "7f0000000000-7f0000400000 rw-p 00000000 00:00 0 \n"
      "Size:               4096 kB\n"
      "AnonHugePages:      4096 kB\n"
      "FilePmdMapped:         0 kB\n"
      "7f0000400000-7f0000600000 rw-p 00000000 00:00 0 \n"
      "AnonHugePages:      2048 kB\n"
      "7f1000000000-7f1000800000 rw-p 00000000 00:00 0 \n"
      "AnonHugePages:      8192 kB\n"
      "VmFlags: rd wr mr mw me ac hg \n");
  const std::vector<AddressRange> first_two = {{0x7f0000100000, 0x7f0000500000}};
  EXPECT_EQ(smaps_huge_bytes(smaps, first_two), size_t(6144) * 1024);
  smaps.clear();
  smaps.seekg(0);
  const std::vector<AddressRange> last_and_none = {{0x7f1000000000, 0x7f1000000001}, {0x1000, 0x2000}};
  EXPECT_EQ(smaps_huge_bytes(smaps, last_and_none), size_t(8192) * 1024);
  smaps.clear();
  smaps.seekg(0);
  // A range that ends where a mapping begins does not overlap it.
  EXPECT_EQ(smaps_huge_bytes(smaps, {{0x7eff00000000, 0x7f0000000000}}), 0u);
}

TEST(TransparentHugePages, ModeIsOneOfTheKernelsWords) {
  const std::string mode = transparent_huge_page_mode();
  EXPECT_TRUE(mode.empty() || mode == "always" || mode == "madvise" || mode == "never") << mode;
}

}  // namespace
}  // namespace bitnet
