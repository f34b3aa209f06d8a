#pragma once
// Brackets for functions written with 512-bit intrinsics outside the per-ISA kernel files. GCC 12
// reports the _mm512_undefined_*() placeholders inside its own intrinsics (avx512fintrin.h) as
// "(may be) used uninitialized": a false positive, silenced only between these two lines.
#if defined(__GNUC__) && !defined(__clang__)
#define BITNET_AVX512_INTRINSICS_BEGIN                                  \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"") \
      _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")
#define BITNET_AVX512_INTRINSICS_END _Pragma("GCC diagnostic pop")
#else
#define BITNET_AVX512_INTRINSICS_BEGIN
#define BITNET_AVX512_INTRINSICS_END
#endif
