// aarch64 Advanced SIMD kernels for the ternary formats (plain NEON: widening multiplies with
// pairwise accumulation into int32). Float-weight kernels are the portable ones, which the
// compiler vectorizes for NEON. The SDOT variant is kernels_neon_dotprod.cpp.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "kernels/kernels.h"

namespace bitnet::kernels::neon {
inline int32x4_t dot16(int32x4_t acc, uint8x16_t codes, int8x16_t q) {
  const int8x16_t c = vreinterpretq_s8_u8(codes);
  // Each int16 product is at most 2·128 in magnitude; pairwise widening keeps the sums exact.
  acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(c), vget_low_s8(q)));
  return vpadalq_s16(acc, vmull_high_s8(c, q));
}
}  // namespace bitnet::kernels::neon

#define BITNET_NEON_NAMESPACE neon
#include "kernels/kernels_neon_impl.h"

namespace bitnet::kernels {

KernelSet neon_set_with(Isa isa, TernaryRowsFn i2s, TernaryRowsFn tq2, TernaryMatFn i2s_mm) {
  KernelSet set = generic_kernels();
  set.isa = isa;
  set.i2s = i2s;
  set.tq2 = tq2;
  set.i2s_mm = i2s_mm;
  return set;
}

const KernelSet& neon_kernels() {
  static const KernelSet set = neon_set_with(Isa::Neon, neon::i2s_rows, neon::tq2_rows, neon::i2s_mm);
  return set;
}

}  // namespace bitnet::kernels
#endif  // __aarch64__
