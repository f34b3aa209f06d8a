// Device discovery and device memory (device.h), and the uploads of kernels.h.
#include "backends/cuda/common.cuh"
#include "backends/cuda/device.h"
#include "backends/cuda/kernels.h"

namespace bitnet::cuda {

DeviceInfo probe() {
  DeviceInfo info;
  cudaDriverGetVersion(&info.driver_version);  // 0 when no driver is installed
  cudaRuntimeGetVersion(&info.runtime_version);
  int count = 0;
  if (const cudaError_t status = cudaGetDeviceCount(&count); status != cudaSuccess) {
    // Without a driver the runtime says "driver version is insufficient": name the real cause.
    info.error = info.driver_version == 0
                     ? std::string("no NVIDIA driver is installed (CUDA runtime: ") + cudaGetErrorString(status) + ")"
                     : std::string(cudaGetErrorString(status));
    cudaGetLastError();  // clear the "last error" so later calls start clean
    return info;
  }
  if (count == 0) {
    info.error = "the CUDA runtime reports no device";
    return info;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (const cudaError_t status = cudaGetDeviceProperties(&prop, i); status != cudaSuccess) {
      info.error = "device " + std::to_string(i) + ": " + cudaGetErrorString(status);
      cudaGetLastError();
      continue;
    }
    GpuInfo gpu;
    gpu.index = i;
    gpu.name = prop.name;
    gpu.compute_major = prop.major;
    gpu.compute_minor = prop.minor;
    gpu.multiprocessors = prop.multiProcessorCount;
    gpu.total_memory = prop.totalGlobalMem;
    size_t free_bytes = 0, total_bytes = 0;
    int previous = 0;
    cudaGetDevice(&previous);
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
      gpu.free_memory = free_bytes;
    cudaGetLastError();
    cudaSetDevice(previous);
    info.gpus.push_back(gpu);
  }
  if (!info.gpus.empty()) info.error.clear();
  return info;
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  detail::check(cudaMalloc(&ptr_, bytes), ("cudaMalloc of " + std::to_string(bytes) + " bytes").c_str());
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);  // an error here (e.g. a lost device) cannot be reported from a destructor
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept : ptr_(other.ptr_), bytes_(other.bytes_) {
  other.ptr_ = nullptr;
  other.bytes_ = 0;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = other.ptr_;
    bytes_ = other.bytes_;
    other.ptr_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

void DeviceBuffer::upload(const void* src, size_t bytes, size_t offset) {
  if (offset + bytes > bytes_) throw Error("DeviceBuffer::upload: " + std::to_string(bytes) + " bytes at offset " +
                                           std::to_string(offset) + " exceed the buffer's " + std::to_string(bytes_));
  if (bytes == 0) return;
  detail::check(cudaMemcpy(static_cast<char*>(ptr_) + offset, src, bytes, cudaMemcpyHostToDevice), "upload");
}

void DeviceBuffer::download(void* dst, size_t bytes, size_t offset) const {
  if (offset + bytes > bytes_) throw Error("DeviceBuffer::download: " + std::to_string(bytes) + " bytes at offset " +
                                           std::to_string(offset) + " exceed the buffer's " + std::to_string(bytes_));
  if (bytes == 0) return;
  detail::check(cudaMemcpy(dst, static_cast<const char*>(ptr_) + offset, bytes, cudaMemcpyDeviceToHost), "download");
}

void DeviceBuffer::fill_zero() {
  if (bytes_ > 0) detail::check(cudaMemset(ptr_, 0, bytes_), "cudaMemset");
}

void synchronize() { detail::check(cudaDeviceSynchronize(), "device work"); }

void copy_on_device(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) detail::check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "device copy");
}

DeviceTernaryMatrix upload_ternary(const GpuTernaryMatrix& m) {
  DeviceTernaryMatrix d;
  d.codes = upload_vector(m.codes);
  if (m.scale_kind == GpuScaleKind::PerBlock) d.block_scales = upload_vector(m.block_scales);
  d.rows = m.rows;
  d.cols = m.cols;
  d.padded_cols = m.padded_cols;
  d.scale_kind = m.scale_kind;
  d.tensor_scale = m.tensor_scale;
  return d;
}

DeviceActivationBuffers::DeviceActivationBuffers(int64_t max_tokens, int64_t padded_cols)
    : q(size_t(max_tokens * padded_cols)),
      scale(size_t(max_tokens) * sizeof(float)),
      sum(size_t(max_tokens) * sizeof(int32_t)),
      block_sums(size_t(max_tokens * (padded_cols / kGpuBlock)) * sizeof(int32_t)) {
  if (padded_cols % kGpuBlock != 0)
    throw Error("DeviceActivationBuffers: padded_cols " + std::to_string(padded_cols) + " is not a multiple of 256");
  view = {q.as<int8_t>(), scale.as<float>(), sum.as<int32_t>(), block_sums.as<int32_t>(), padded_cols};
}

}  // namespace bitnet::cuda
