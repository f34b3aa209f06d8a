#include "kernels/cpu_features.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace bitnet::kernels {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
  const bool fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
  if (!osxsave || !avx) return f;
  // XCR0: the OS saves XMM|YMM (bits 1,2) and, for AVX-512, opmask|ZMM_Hi256|Hi16_ZMM (bits 5-7).
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool ymm_os = (xcr0_lo & 0x6) == 0x6;
  const bool zmm_os = (xcr0_lo & 0xE6) == 0xE6;
  if (!ymm_os) return f;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = (b >> 5) & 1;
  if (a >= 1) {  // leaf 7's highest subleaf
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    f.avxvnni = (a1 >> 4) & 1;
  }
  f.fma = fma;
  f.f16c = f16c;
  if (zmm_os) {
    f.avx512f = (b >> 16) & 1;
    f.avx512bw = (b >> 30) & 1;
    f.avx512vl = (b >> 31) & 1;
    f.avx512vnni = (c >> 11) & 1;
  }
#endif
#if defined(__aarch64__)
  const unsigned long hwcap = getauxval(AT_HWCAP);
  f.neon = (hwcap & HWCAP_ASIMD) != 0;
  f.dotprod = f.neon && (hwcap & HWCAP_ASIMDDP) != 0;
#endif
  return f;
}

std::string missing_list(Isa isa, const CpuFeatures& f) {
  std::string m;
  auto need = [&](bool have, const char* name) {
    if (have) return;
    if (!m.empty()) m += ' ';
    m += name;
  };
  if (isa == Isa::Generic) return m;
  if (isa == Isa::Neon || isa == Isa::NeonDotprod) {
#if defined(__aarch64__)
    need(f.neon, "neon");
    if (isa == Isa::NeonDotprod) need(f.dotprod, "dotprod");
#else
    m = "aarch64";
#endif
    return m;
  }
#if !defined(__x86_64__)
  return "x86-64";
#endif
  // Every x86 level needs AVX2 + FMA + F16C; AVX-VNNI and AVX-512 are separate extensions of it.
  need(f.avx2, "avx2");
  need(f.fma, "fma");
  need(f.f16c, "f16c");
  if (isa == Isa::AvxVnni) need(f.avxvnni, "avxvnni");
  if (isa == Isa::Avx512Vnni) {
    need(f.avx512f, "avx512f");
    need(f.avx512bw, "avx512bw");
    need(f.avx512vl, "avx512vl");
    need(f.avx512vnni, "avx512vnni");
  }
  return m;
}

Isa choose_active() {
  const Isa best = best_isa();
  const char* env = std::getenv("BITNET_ISA");
  if (!env || !*env) return best;
  const std::string req(env);
  Isa want;
  if (req == "generic") {
    want = Isa::Generic;
  } else if (req == "avx2") {
    want = Isa::Avx2;
  } else if (req == "avxvnni" || req == "avx-vnni") {
    want = Isa::AvxVnni;
  } else if (req == "avx512" || req == "avx512vnni") {
    want = Isa::Avx512Vnni;
  } else if (req == "neon") {
    want = Isa::Neon;
  } else if (req == "neon-dotprod" || req == "dotprod") {
    want = Isa::NeonDotprod;
  } else {
    std::fprintf(stderr, "bitnet: unknown BITNET_ISA '%s' (generic|avx2|avxvnni|avx512|neon|neon-dotprod); using %s\n",
                 env, std::string(isa_name(best)).c_str());
    return best;
  }
  if (isa_supported(want)) return want;
  std::fprintf(stderr, "bitnet: BITNET_ISA=%s is not supported by this CPU (missing: %s); using %s\n",
               env, missing_features(want).c_str(), std::string(isa_name(best)).c_str());
  return best;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx2:
      return "avx2";
    case Isa::AvxVnni:
      return "avxvnni";
    case Isa::Avx512Vnni:
      return "avx512";
    case Isa::Neon:
      return "neon";
    case Isa::NeonDotprod:
      return "neon-dotprod";
    default:
      return "generic";
  }
}

std::string missing_features(Isa isa) { return missing_list(isa, cpu_features()); }

bool isa_supported(Isa isa) { return missing_features(isa).empty(); }

Isa best_isa() {
  if (isa_supported(Isa::NeonDotprod)) return Isa::NeonDotprod;
  if (isa_supported(Isa::Neon)) return Isa::Neon;
  if (isa_supported(Isa::Avx512Vnni)) return Isa::Avx512Vnni;
  if (isa_supported(Isa::AvxVnni)) return Isa::AvxVnni;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Generic;
}

namespace {
struct KernelChoice {
  std::atomic<Isa> isa;
  std::atomic<bool> reference;
};
KernelChoice& kernel_choice() {
  static KernelChoice c{choose_active(), [] {
                          const char* e = std::getenv("BITNET_KERNELS");
                          return e && std::string_view(e) == "reference";
                        }()};
  return c;
}
}  // namespace

Isa active_isa() { return kernel_choice().isa.load(std::memory_order_relaxed); }
bool reference_kernels() { return kernel_choice().reference.load(std::memory_order_relaxed); }

void set_active_isa(Isa isa) {
  if (!isa_supported(isa))
    throw std::invalid_argument("set_active_isa: " + std::string(isa_name(isa)) + " is not supported (missing: " +
                                missing_features(isa) + ")");
  kernel_choice().isa.store(isa);
}
void set_reference_kernels(bool on) { kernel_choice().reference.store(on); }

}  // namespace bitnet::kernels
