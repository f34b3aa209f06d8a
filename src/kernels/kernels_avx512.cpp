// AVX-512 VNNI kernels: the AVX2 bodies with VPDPBUSD (256-bit, via AVX512VL) for the ternary
// u8·i8 dots and 16-lane (zmm) float-weight kernels (per-function target attributes; see
// kernels_x86_impl.h).
#if defined(__x86_64__)
#define BITNET_TGT \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define BITNET_VNNI 1
#define BITNET_DPBUSD 1
#define BITNET_ISA_ENUM Isa::Avx512Vnni
// GCC 12 reports the _mm512_undefined_*() placeholders inside its own 512-bit conversion
// intrinsics as "may be used uninitialized" (a false positive in avx512fintrin.h).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "kernels/kernels_x86_impl.h"
#include "kernels/kernels_x86_mm.h"

namespace bitnet::kernels {
const KernelSet& avx512_kernels() { return kSet; }
}  // namespace bitnet::kernels
#endif
