#pragma once
// In-process reference rates for the benchmark's efficiency columns: the memory read bandwidth
// (a plain streaming read of a large buffer) and the int8 multiply-accumulate peak (a register-only
// loop of the widest int8 dot instruction the CPU has). Both use the given pool's threads, so
// they are measured under the same conditions as the model.
#include <cstdint>
#include <memory>

#include "kernels/thread_pool.h"

namespace bitnet::kernels {

// Bytes per second reading `bytes` (default 1 GiB) once per repeat; the best of `repeats`.
double measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t(1) << 30, int repeats = 5);

// The same with the buffer kept, for a benchmark that measures the read again next to each of its
// repetitions (a shared machine's bandwidth drifts by 1.5× within minutes).
class ReadBandwidthProbe {
 public:
  explicit ReadBandwidthProbe(ThreadPool& pool, size_t bytes = size_t(1) << 30);
  double measure(ThreadPool& pool, int repeats = 5) const;

 private:
  size_t words_;
  std::unique_ptr<uint64_t[]> buffer_;
};

// int8 MACs per second (u8 × s8 products accumulated into int32); the best of `repeats`.
// Uses VPDPBUSD (AVX-512 VNNI), else VPMADDUBSW with 16-bit accumulation (AVX2), else scalar.
double measure_int8_mac_peak(ThreadPool& pool, int repeats = 9);

}  // namespace bitnet::kernels
