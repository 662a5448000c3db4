#pragma once
// What the CPU loops of packed_linear.cpp and cached_attention.cpp share (private to src/models):
// the target attribute their AVX-512 code is compiled with and the loads of 16 values as float32.
// Code under MSMEDCAP_AVX512 runs only where packed_kernel_available() (and, for VNNI or
// AVX512-BF16 instructions, its siblings) says the CPU has it.

#include <immintrin.h>

#include <cstdint>

#define MSMEDCAP_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512bf16")))

// GCC 12's own AVX-512 headers start masked loads and reductions from a deliberately undefined
// vector, which -Wmaybe-uninitialized reports wherever they are inlined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace msmedcap::models::avx512 {

// 16 values from p on, as float32 (int16_t: bf16 bits). The masked forms read a row's last,
// partial block only: with a mask that is not a constant a masked load is several times slower here.
MSMEDCAP_AVX512 inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
MSMEDCAP_AVX512 inline __m512 load16(const int16_t* p) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));  // bf16 bits are float32's upper half
}
MSMEDCAP_AVX512 inline __m512 load16(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
MSMEDCAP_AVX512 inline __m512 load16(const float* p, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, p); }
MSMEDCAP_AVX512 inline __m512 load16(const int16_t* p, __mmask16 mask) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}
MSMEDCAP_AVX512 inline __m512 load16(const int8_t* p, __mmask16 mask) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, p)));
}

}  // namespace msmedcap::models::avx512

#pragma GCC diagnostic pop
