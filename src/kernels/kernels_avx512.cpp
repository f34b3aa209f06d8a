// AVX-512 VNNI kernels: the AVX2 bodies with VPDPBUSD (256-bit, via AVX512VL) for the ternary
// u8·i8 dots (per-function target attributes; see kernels_x86_impl.h).
#if defined(__x86_64__)
#define BITNET_TGT \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define BITNET_VNNI 1
#define BITNET_ISA_ENUM Isa::Avx512Vnni
#include "kernels/kernels_x86_impl.h"
#include "kernels/kernels_x86_mm.h"

namespace bitnet::kernels {
const KernelSet& avx512_kernels() { return kSet; }
}  // namespace bitnet::kernels
#endif
