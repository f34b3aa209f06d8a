#include "memory/page_buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "errors.h"

namespace bitnet {

namespace {

size_t round_up_to_huge_pages(size_t bytes) {
  return (bytes + PageBuffer::kHugePage - 1) / PageBuffer::kHugePage * PageBuffer::kHugePage;
}

}  // namespace

PageBuffer::PageBuffer(size_t bytes, Pages pages) {
  if (bytes == 0) return;
  // Over-allocate by one huge page and align inside: mmap only guarantees 4 KiB alignment, and a
  // huge page can only back a 2 MiB-aligned range.
  const size_t mapped = round_up_to_huge_pages(bytes) + kHugePage;
  const int flags = MAP_PRIVATE | MAP_ANONYMOUS | (pages == Pages::SmallOnWrite ? MAP_NORESERVE : 0);
  void* base = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (base == MAP_FAILED)
    throw Error("cannot allocate " + std::to_string(bytes >> 20) + " MiB: " + std::strerror(errno));
  map_base_ = static_cast<uint8_t*>(base);
  mapped_ = mapped;
  data_ = reinterpret_cast<uint8_t*>(round_up_to_huge_pages(reinterpret_cast<uintptr_t>(base)));
  size_ = bytes;
  // Advisory, both.
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
  madvise(data_, round_up_to_huge_pages(bytes), pages == Pages::SmallOnWrite ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
#endif
}

PageBuffer::PageBuffer(PageBuffer&& other) noexcept { swap(other); }

PageBuffer& PageBuffer::operator=(PageBuffer&& other) noexcept {
  PageBuffer old(std::move(*this));  // this buffer's mapping is released when `old` goes
  swap(other);
  return *this;
}

void PageBuffer::swap(PageBuffer& other) noexcept {
  std::swap(data_, other.data_);
  std::swap(size_, other.size_);
  std::swap(mapped_, other.mapped_);
  std::swap(map_base_, other.map_base_);
}

PageBuffer::~PageBuffer() {
  if (map_base_) munmap(map_base_, mapped_);
}

void PageBuffer::prefault() {
  // One store per 4 KiB page: pages are zero already, so storing a zero changes nothing.
  volatile uint8_t* p = data_;
  for (size_t i = 0; i < size_; i += 4096) p[i] = 0;
}

void PageBuffer::release(size_t offset, size_t bytes) {
  if (!data_ || offset >= size_) return;
  bytes = std::min(bytes, size_ - offset);
  const uintptr_t page = 4096, begin = (reinterpret_cast<uintptr_t>(data_) + offset + page - 1) / page * page,
                  end = (reinterpret_cast<uintptr_t>(data_) + offset + bytes) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

size_t PageBuffer::resident_bytes() const {
  if (!data_) return 0;
  const size_t page = 4096, pages = (size_ + page - 1) / page;
  std::vector<unsigned char> in_core(pages);
  if (mincore(data_, pages * page, in_core.data()) != 0) return 0;
  size_t n = 0;
  for (unsigned char c : in_core) n += c & 1;
  return n * page;
}

size_t smaps_huge_bytes(std::istream& smaps, const std::vector<AddressRange>& ranges) {
  size_t total = 0;
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {  // a mapping's header line
      inside = std::any_of(ranges.begin(), ranges.end(),
                           [&](const AddressRange& r) { return lo < r.end && hi > r.begin; });
      continue;
    }
    if (inside && line.rfind("AnonHugePages:", 0) == 0)
      total += size_t(std::strtoull(line.c_str() + 14, nullptr, 10)) * 1024;
  }
  return total;
}

namespace {

size_t own_smaps_huge_bytes(const std::vector<AddressRange>& ranges) {
  std::ifstream smaps("/proc/self/smaps");
  return smaps_huge_bytes(smaps, ranges);
}

AddressRange range_of(const PageBuffer& b) {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(b.data());
  return {begin, begin + b.size()};
}

}  // namespace

size_t PageBuffer::huge_page_bytes() const {
  if (!data_) return 0;
  // The system may merge neighbouring mappings into one region; count at most this buffer's pages.
  return std::min(own_smaps_huge_bytes({range_of(*this)}), round_up_to_huge_pages(size_));
}

const uint8_t* WeightArena::copy(const void* src, size_t bytes) {
  used_ = (used_ + 63) / 64 * 64;
  if (chunks_.empty() || used_ + bytes > chunks_.back().size()) {
    chunks_.emplace_back(std::max(kChunk, bytes));
    used_ = 0;
  }
  uint8_t* dst = chunks_.back().data() + used_;
  std::memcpy(dst, src, bytes);
  used_ += bytes;
  bytes_ += bytes;
  return dst;
}

size_t WeightArena::huge_page_bytes() const {
  std::vector<AddressRange> ranges;
  for (const PageBuffer& c : chunks_) ranges.push_back(range_of(c));
  // The last chunk's partly used huge page counts whole.
  return ranges.empty() ? 0 : std::min(own_smaps_huge_bytes(ranges), bytes_);
}

void release_file_pages(const void* p, size_t bytes) {
  const uintptr_t page = 4096, begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page,
                  end = (reinterpret_cast<uintptr_t>(p) + bytes) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);  // advisory
}

std::string transparent_huge_page_mode() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes;
  std::getline(in, modes);
  const size_t open = modes.find('['), close = modes.find(']');
  if (open == std::string::npos || close == std::string::npos || close < open) return "";
  return modes.substr(open + 1, close - open - 1);
}

}  // namespace bitnet
