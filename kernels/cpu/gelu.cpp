// GELU (tanh approximation) forward/backward (see gelu.h).
// The float path uses tanh_f32 below, written so that GCC vectorises the loops: std::tanhf is a
// scalar libm call and took ~15% of a GPT-2 LoRA training step. Vectorising needs the selects to be
// if-converted, which GCC only does when FP operations may be assumed not to trap, hence the pragma
// (we never enable FP exceptions). The double path (finite-difference tests) keeps std::tanh.
// On CPUs with AVX-512F the float loops run a 16-lane intrinsics copy of tanh_f32 and of the GELU
// expressions, operation for operation in the same order (no FMA: fp-contract is off in this file,
// as GCC would otherwise fuse the intrinsics' multiply-adds), so both paths give the same bits
// (tests/unit/backend: GeluAvx512MatchesScalarBitwise).
#pragma GCC optimize("no-trapping-math", "fp-contract=off")
#include "kernels/cpu/gelu.h"

// GCC 12 warns about the _mm512_undefined_* placeholders inside avx512fintrin.h (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace mira {

namespace {
constexpr double GELU_K = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double GELU_C = 0.044715;            // the cubic coefficient of the tanh approximation

// tanh for float, max abs error 1.1e-7 and max rel error 3.8e-7 against double tanh (checked over
// [-12, 12] in steps of 6e-6): |x| < 0.25: odd Taylor polynomial to x^7 (truncation < 1e-7 rel);
// else 1 - 2 / (exp(2|x|) + 1) with exp(z) = 2^k * p(r), r = z - k ln2 (Cody-Waite split of ln2),
// p the degree-6 Taylor polynomial (|r| <= ln2/2: truncation 2e-8); |x| > 9.02 gives exactly 1
// (1 - tanh < 2^-25 there, so the correctly rounded float is 1, as tanhf returns). Near 1 the result
// may differ from tanhf by one ulp (6e-8).
inline float tanh_f32(float x) {
  float ax = x < 0.0f ? -x : x;
  const float z = 2.0f * (ax < 10.0f ? ax : 10.0f);  // keeps 2^k in range; saturated below
  const int32_t k = (int32_t)(z * 1.44269504089f + 0.5f);  // round(z / ln2), z >= 0
  const float kf = (float)k;
  const float r = (z - kf * 0.693359375f) + kf * 2.12194440e-4f;  // ln2 = 0.693359375 - 2.12194440e-4
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float e = p * __builtin_bit_cast(float, (k + 127) << 23);  // p * 2^k, k in [0, 29]
  const float big = 1.0f - 2.0f / (e + 1.0f);
  const float x2 = ax * ax;
  const float small = ax * (1.0f + x2 * (-1.0f / 3.0f + x2 * (2.0f / 15.0f + x2 * (-17.0f / 315.0f))));
  const float t = ax < 0.25f ? small : (ax > 9.02f ? 1.0f : big);
  return x < 0.0f ? -t : t;
}

inline float tanh_t(float x) { return tanh_f32(x); }
inline double tanh_t(double x) { return std::tanh(x); }

#define MIRA_AVX512 __attribute__((target("avx512f")))

MIRA_AVX512 inline __m512 set1(float v) { return _mm512_set1_ps(v); }
MIRA_AVX512 inline __m512 mul(__m512 a, __m512 b) { return _mm512_mul_ps(a, b); }
MIRA_AVX512 inline __m512 add(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
MIRA_AVX512 inline __m512 sub(__m512 a, __m512 b) { return _mm512_sub_ps(a, b); }
MIRA_AVX512 inline __m512 neg(__m512 a) {
  return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MIN)));
}

// tanh_f32 on 16 lanes, the same operations in the same order (selects as mask blends).
MIRA_AVX512 inline __m512 tanh16(__m512 x) {
  const __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 ax = _mm512_mask_blend_ps(negative, x, neg(x));
  const __m512 z = mul(set1(2.0f), _mm512_min_ps(ax, set1(10.0f)));  // minps: ax < 10 ? ax : 10
  const __m512i k = _mm512_cvttps_epi32(add(mul(z, set1(1.44269504089f)), set1(0.5f)));
  const __m512 kf = _mm512_cvtepi32_ps(k);
  const __m512 r = add(sub(z, mul(kf, set1(0.693359375f))), mul(kf, set1(2.12194440e-4f)));
  __m512 p = set1(1.0f / 720.0f);
  p = add(mul(p, r), set1(1.0f / 120.0f));
  p = add(mul(p, r), set1(1.0f / 24.0f));
  p = add(mul(p, r), set1(1.0f / 6.0f));
  p = add(mul(p, r), set1(0.5f));
  p = add(mul(p, r), set1(1.0f));
  p = add(mul(p, r), set1(1.0f));
  const __m512 e = mul(p, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k, _mm512_set1_epi32(127)), 23)));
  const __m512 big = sub(set1(1.0f), _mm512_div_ps(set1(2.0f), add(e, set1(1.0f))));
  const __m512 x2 = mul(ax, ax);
  const __m512 small = mul(
      ax, add(set1(1.0f), mul(x2, add(set1(-1.0f / 3.0f), mul(x2, add(set1(2.0f / 15.0f), mul(x2, set1(-17.0f / 315.0f))))))));
  const __m512 sat = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(ax, set1(9.02f), _CMP_GT_OQ), big, set1(1.0f));
  const __m512 t = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(ax, set1(0.25f), _CMP_LT_OQ), sat, small);
  return _mm512_mask_blend_ps(negative, t, neg(t));
}

// u = K * (v + C v^3) as the scalar code evaluates it: ((C * v) * v) * v.
MIRA_AVX512 inline __m512 gelu_arg16(__m512 v) {
  return mul(set1((float)GELU_K), add(v, mul(mul(mul(set1((float)GELU_C), v), v), v)));
}

MIRA_AVX512 void gelu_forward_avx512(float* y, const float* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 out = mul(mul(set1(0.5f), v), add(set1(1.0f), tanh16(gelu_arg16(v))));
    _mm512_mask_storeu_ps(y + i, m, out);
  }
}

MIRA_AVX512 void gelu_backward_avx512(float* dx, const float* dy, const float* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 th = tanh16(gelu_arg16(v));
    const __m512 sech2 = sub(set1(1.0f), mul(th, th));
    const __m512 g = add(mul(set1(0.5f), add(set1(1.0f), th)),
                         mul(mul(mul(mul(set1(0.5f), v), sech2), set1((float)GELU_K)),
                             add(set1(1.0f), mul(mul(set1((float)(3 * GELU_C)), v), v))));
    _mm512_mask_storeu_ps(dx + i, m, mul(_mm512_maskz_loadu_ps(m, dy + i), g));
  }
}

}  // namespace

bool cpu_gelu_avx512_available() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

template <typename T>
void cpu_gelu_forward_portable(T* y, const T* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    y[i] = (T)0.5 * v * ((T)1 + tanh_t((T)GELU_K * (v + (T)GELU_C * v * v * v)));
  }
}

template <typename T>
void cpu_gelu_backward_portable(T* dx, const T* dy, const T* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    const T u = (T)GELU_K * (v + (T)GELU_C * v * v * v);
    const T th = tanh_t(u);
    const T sech2 = (T)1 - th * th;
    const T g = (T)0.5 * ((T)1 + th) + (T)0.5 * v * sech2 * (T)GELU_K * ((T)1 + (T)(3 * GELU_C) * v * v);
    dx[i] = dy[i] * g;
  }
}

template <typename T>
void cpu_gelu_forward(T* y, const T* x, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (cpu_gelu_avx512_available()) return gelu_forward_avx512(y, x, n);
  }
  cpu_gelu_forward_portable(y, x, n);
}

template <typename T>
void cpu_gelu_backward(T* dx, const T* dy, const T* x, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (cpu_gelu_avx512_available()) return gelu_backward_avx512(dx, dy, x, n);
  }
  cpu_gelu_backward_portable(dx, dy, x, n);
}


template void cpu_gelu_forward<float>(float*, const float*, int64_t);
template void cpu_gelu_forward<double>(double*, const double*, int64_t);
template void cpu_gelu_backward<float>(float*, const float*, const float*, int64_t);
template void cpu_gelu_backward<double>(double*, const double*, const double*, int64_t);
template void cpu_gelu_forward_portable<float>(float*, const float*, int64_t);
template void cpu_gelu_backward_portable<float>(float*, const float*, const float*, int64_t);

}  // namespace mira
