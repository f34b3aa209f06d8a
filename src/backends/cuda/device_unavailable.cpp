// probe() of a build without the CUDA backend (cmake/cuda.cmake compiles this file instead of
// device.cu), so callers such as `doctor` need no #if of their own.
#include "backends/cuda/device.h"

namespace bitnet::cuda {

DeviceInfo probe() {
  DeviceInfo info;
  info.error = "this build has no CUDA backend (configured with BITNET_CUDA=OFF, or AUTO without nvcc)";
  return info;
}

}  // namespace bitnet::cuda
