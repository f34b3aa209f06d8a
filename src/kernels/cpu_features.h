#pragma once
// Run-time CPU feature detection and the instruction-set level the kernels dispatch on.
// One x86-64 binary runs anywhere: SIMD kernels are compiled with per-function target attributes
// and only called when the CPU (and the OS, for the wider register state) supports them.
#include <string>
#include <string_view>

namespace bitnet::kernels {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avxvnni = false;  // VEX-encoded 256-bit VPDPBUSD (CPUID.(7,1):EAX bit 4)
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false;
  bool neon = false, dotprod = false;  // aarch64: ASIMD, and the SDOT/UDOT extension
};

// Detected once (cpuid + xgetbv on x86-64; all false elsewhere).
const CpuFeatures& cpu_features();

// Kernel families, in increasing order of requirements.
//   Generic    portable C++ (any CPU)
//   Avx2       AVX2 + FMA + F16C
//   Avx512Vnni Avx2 plus AVX-512 F/BW/VL/VNNI (256-bit VPDPBUSD for the ternary dots)
//   AvxVnni    Avx2 plus AVX-VNNI (VEX VPDPBUSD, no AVX-512: Intel client CPUs); between the two
//   Neon       aarch64 Advanced SIMD
//   NeonDotprod Neon plus SDOT (ARMv8.2 dot product)
// The x86 and ARM levels are separate ladders; each is only supported on its own architecture.
enum class Isa { Generic = 0, Avx2 = 1, Avx512Vnni = 2, Neon = 3, NeonDotprod = 4, AvxVnni = 5 };
inline constexpr Isa kAllIsas[] = {Isa::Generic, Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni, Isa::Neon,
                                   Isa::NeonDotprod};

std::string_view isa_name(Isa isa);  // "generic", "avx2", "avxvnni", "avx512", "neon", "neon-dotprod"
bool isa_supported(Isa isa);
// Empty when supported, else the missing CPU features, e.g. "avx512vnni avx512bw".
std::string missing_features(Isa isa);
Isa best_isa();
// The level the kernels use: best_isa(), or BITNET_ISA=generic|avx2|avxvnni|avx512|neon|neon-dotprod clamped to what the CPU
// supports (a warning on stderr when the request is unsupported or unknown). Read once.
Isa active_isa();
// BITNET_KERNELS=reference: the scalar reference path for every product and attention (read once).
bool reference_kernels();
// Tests and benchmarks that compare kernel sets in one process: switch the level (must be
// supported) or the reference path. Not for use while a forward pass runs.
void set_active_isa(Isa isa);
void set_reference_kernels(bool on);

}  // namespace bitnet::kernels
