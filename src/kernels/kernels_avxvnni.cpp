// AVX-VNNI kernels (Intel client CPUs since Alder Lake, AMD since Zen 4/5: the VEX-encoded 256-bit
// VPDPBUSD without AVX-512): the AVX2 bodies with VPDPBUSD for the ternary u8·i8 dots, and a
// one-row-at-a-time I2_S row kernel (per-function target attributes; see kernels_x86_impl.h).
#if defined(__x86_64__)
#define BITNET_TGT __attribute__((target("avx2,fma,f16c,avxvnni")))
#define BITNET_VNNI 0
#define BITNET_DPBUSD 1
#define BITNET_ISA_ENUM Isa::AvxVnni
#include "kernels/kernels_x86_impl.h"
#include "kernels/kernels_x86_mm.h"

namespace bitnet::kernels {
const KernelSet& avxvnni_kernels() { return kSet; }
}  // namespace bitnet::kernels
#endif
