#pragma once
// The CUDA device as the rest of the engine sees it: what is there (probe, in every build) and
// device memory (CUDA builds only). No CUDA header here, so plain C++ code can include it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bitnet::cuda {

// True when this binary contains the CUDA backend (CMake -DBITNET_CUDA=ON, or AUTO with nvcc).
constexpr bool built_with_cuda() {
#if defined(BITNET_WITH_CUDA) && BITNET_WITH_CUDA
  return true;
#else
  return false;
#endif
}

struct GpuInfo {
  int index = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;
  int multiprocessors = 0;
  uint64_t total_memory = 0;  // bytes
  uint64_t free_memory = 0;   // bytes, at probe time
};

struct DeviceInfo {
  std::vector<GpuInfo> gpus;
  int driver_version = 0;   // e.g. 13000 for CUDA 13.0; 0 if unknown
  int runtime_version = 0;
  std::string error;        // why no GPU is usable (empty when gpus is not empty)
  bool available() const { return !gpus.empty(); }
};

// Looks for CUDA devices. Never throws and never aborts: without a driver, a device or the CUDA
// backend itself, `gpus` is empty and `error` says why (the CUDA runtime's message).
DeviceInfo probe();

#if defined(BITNET_WITH_CUDA) && BITNET_WITH_CUDA

// A cudaStream_t; nullptr is the legacy default stream. Every launcher takes one.
using Stream = void*;

// Device memory owned by one object (cudaMalloc / cudaFree). Every failure throws bitnet::Error
// with the CUDA runtime's message.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return ptr_; }
  size_t size() const { return bytes_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

  // Synchronous copies (they wait for work queued on the default stream before them).
  void upload(const void* src, size_t bytes, size_t offset = 0);
  void download(void* dst, size_t bytes, size_t offset = 0) const;
  void fill_zero();

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

template <class T>
DeviceBuffer upload_vector(const std::vector<T>& v) {
  DeviceBuffer b(v.size() * sizeof(T));
  b.upload(v.data(), v.size() * sizeof(T));
  return b;
}
template <class T>
std::vector<T> download_vector(const DeviceBuffer& b, size_t count) {
  std::vector<T> v(count);
  b.download(v.data(), count * sizeof(T));
  return v;
}

// Waits for all queued device work; throws bitnet::Error if any of it failed.
void synchronize();
// Device → device copy of `bytes` (queued on the default stream).
void copy_on_device(void* dst, const void* src, size_t bytes);

#endif  // BITNET_WITH_CUDA

}  // namespace bitnet::cuda
