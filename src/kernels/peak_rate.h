#pragma once
// In-process reference rates for the benchmark's efficiency columns: the memory read bandwidth
// (a plain streaming read of a large buffer) and the int8 multiply-accumulate peak (a register-only
// loop of the widest int8 dot instruction the CPU has). Both use the given pool's threads, so
// they are measured under the same conditions as the model.
#include "kernels/thread_pool.h"

namespace bitnet::kernels {

// Bytes per second reading `bytes` (default 1 GiB) once per repeat; the best of `repeats`.
double measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t(1) << 30, int repeats = 5);

// int8 MACs per second (u8 × s8 products accumulated into int32); the best of `repeats`.
// Uses VPDPBUSD (AVX-512 VNNI), else VPMADDUBSW with 16-bit accumulation (AVX2), else scalar.
double measure_int8_mac_peak(ThreadPool& pool, int repeats = 9);

}  // namespace bitnet::kernels
