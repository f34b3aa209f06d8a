// aarch64 ternary kernels with the ARMv8.2 SDOT instruction (four int8 products per lane step).
// This file is compiled for armv8.2-a+dotprod through the pragma below and is only called when
// the CPU reports the feature (cpu_features.cpp), so one binary still runs on plain ARMv8.
#if defined(__aarch64__)
#pragma GCC target("arch=armv8.2-a+dotprod")
#include <arm_neon.h>

#include "kernels/kernels.h"

namespace bitnet::kernels::neon_dotprod {
inline int32x4_t dot16(int32x4_t acc, uint8x16_t codes, int8x16_t q) {
  return vdotq_s32(acc, vreinterpretq_s8_u8(codes), q);
}
}  // namespace bitnet::kernels::neon_dotprod

#define BITNET_NEON_NAMESPACE neon_dotprod
#include "kernels/kernels_neon_impl.h"

namespace bitnet::kernels {

const KernelSet& neon_dotprod_kernels() {
  static const KernelSet set =
      neon_set_with(Isa::NeonDotprod, neon_dotprod::i2s_rows, neon_dotprod::tq2_rows,
                    neon_dotprod::i2s_mm);
  return set;
}

}  // namespace bitnet::kernels
#endif  // __aarch64__
