#pragma once
// Large buffers the kernels stream through (weights, KV cache), in anonymous memory backed by
// 2 MiB transparent huge pages where the system allows them. From 4 KiB pages (the file mapping)
// decode on the `large` preset ran ~15% slower, though a plain sequential read does not
// (docs/kernels.md).
#include <cstddef>
#include <cstdint>
#include <istream>
#include <string>
#include <vector>

namespace bitnet {

// Zero-filled, 2 MiB-aligned anonymous memory with MADV_HUGEPAGE; pages are faulted in on first
// touch (untouched parts cost no memory). Move-only.
class PageBuffer {
 public:
  static constexpr size_t kHugePage = size_t(2) << 20;

  enum class Pages {
    Huge,  // 2 MiB transparent huge pages where the system allows them (MADV_HUGEPAGE)
    // Memory committed only where it is written (a unified server KV cache: address space for
    // every slot's whole context, memory for the positions in use). 4 KiB pages (MADV_NOHUGEPAGE):
    // one write into a 2 MiB huge page commits all of it, and khugepaged would otherwise fold
    // partly written ranges into huge pages. The mapping is not charged against the system's
    // commit limit (MAP_NORESERVE), so it may be larger than memory; whoever writes it keeps what
    // is written within what the machine has.
    SmallOnWrite,
  };

  PageBuffer() = default;
  explicit PageBuffer(size_t bytes, Pages pages = Pages::Huge);  // throws Error when the system refuses the mapping
  PageBuffer(PageBuffer&& other) noexcept;
  PageBuffer& operator=(PageBuffer&& other) noexcept;
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;
  ~PageBuffer();

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

  // Faults every page in now (the system zero-fills them), so that first use does not pay for it
  // (a KV cache is allocated before a timed run and filled during it).
  void prefault();

  // Bytes of this buffer currently resident on huge pages (/proc/self/smaps; 0 where unknown).
  size_t huge_page_bytes() const;

  // Gives the whole 4 KiB pages inside [offset, offset + bytes) back to the system (MADV_DONTNEED):
  // they cost nothing until written again, and read back as zeros. Parts of pages at either end
  // are kept.
  void release(size_t offset, size_t bytes);
  // Bytes of this buffer backed by memory now (mincore: pages written, or mapped by a read, count;
  // an untouched page does not). Whole pages, so at most size() rounded up to 4 KiB.
  size_t resident_bytes() const;

 private:
  void swap(PageBuffer& other) noexcept;
  uint8_t* data_ = nullptr;
  size_t size_ = 0, mapped_ = 0;  // mapped_: size_ plus the alignment slack, as passed to munmap
  uint8_t* map_base_ = nullptr;
};

// Copies of weight tensors packed into PageBuffers of at least kChunk bytes, each copy 64-byte
// aligned. Pointers stay valid for the arena's lifetime (chunks are never moved or reallocated).
class WeightArena {
 public:
  static constexpr size_t kChunk = size_t(64) << 20;

  const uint8_t* copy(const void* src, size_t bytes);
  size_t bytes() const { return bytes_; }  // total copied
  size_t huge_page_bytes() const;

 private:
  std::vector<PageBuffer> chunks_;
  size_t used_ = 0;  // bytes used in chunks_.back()
  size_t bytes_ = 0;
};

// Drops this process's mapping of the whole pages inside [p, p + bytes) of a read-only file mapping
// (MADV_DONTNEED): a copy has been made, so the pages need not count twice in the resident set.
// They stay in the page cache and read back unchanged if touched again. Only for file mappings:
// on anonymous memory MADV_DONTNEED discards the contents.
void release_file_pages(const void* p, size_t bytes);

// Σ AnonHugePages of the mappings in a /proc/<pid>/smaps text that overlap any of the ranges
// (what huge_page_bytes() reads for this process).
struct AddressRange {
  uintptr_t begin, end;  // [begin, end)
};
size_t smaps_huge_bytes(std::istream& smaps, const std::vector<AddressRange>& ranges);

// The system's transparent huge page mode ("always", "madvise", "never"), or "" where unknown.
std::string transparent_huge_page_mode();

}  // namespace bitnet
