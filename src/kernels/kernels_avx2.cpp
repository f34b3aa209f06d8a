// AVX2 + FMA + F16C kernels (per-function target attributes; see kernels_x86_impl.h).
#if defined(__x86_64__)
#define BITNET_TGT __attribute__((target("avx2,fma,f16c")))
#define BITNET_VNNI 0
#define BITNET_DPBUSD 0
#define BITNET_ISA_ENUM Isa::Avx2
#include "kernels/kernels_x86_impl.h"
#include "kernels/kernels_x86_mm.h"

namespace bitnet::kernels {
const KernelSet& avx2_kernels() { return kSet; }
}  // namespace bitnet::kernels
#endif
