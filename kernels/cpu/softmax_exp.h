// exp for softmax rows on the CPU: a float exp that GCC vectorises (std::exp is a scalar libm
// call) and row helpers with a fixed summation order, shared by attention and the LM head.
// The selects in exp_f32 are only if-converted (and so vectorised) when FP operations may be
// assumed not to trap, hence the pragma in every file that includes this one (we never enable FP
// exceptions): `#pragma GCC optimize("no-trapping-math")` before the includes.
#pragma once
#include <cmath>
#include <cstdint>

namespace mira {

// exp(z) for float z <= 0 (softmax numerators): exp(z) = 2^k * p(r), r = z - k ln2 with a
// Cody-Waite split of ln2, p the degree-7 Taylor polynomial (|r| <= ln2/2: truncation 4e-9
// relative); max rel error against double exp 1.1e-7 over [-87, 0] (checked in steps of 1e-5).
// Below -87 (exp < 1.7e-38; the float normal range ends at -87.3) it returns 0 where expf gives a
// denormal: against a row sum >= 1 both are nothing.
inline float exp_f32(float z) {
  const float zc = z < -87.0f ? -87.0f : z;                 // keeps 2^k a normal float
  const int32_t k = (int32_t)(zc * 1.44269504089f - 0.5f);  // round(z / ln2), z <= 0
  const float kf = (float)k;
  const float r = (zc - kf * 0.693359375f) + kf * 2.12194440e-4f;  // ln2 = 0.693359375 - 2.12194440e-4
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float e = p * __builtin_bit_cast(float, (k + 127) << 23);  // p * 2^k, k in [-126, 0]
  return z < -87.0f ? 0.0f : e;
}

// row[j] = exp(row[j] - mx) for j < n; returns their sum, added in a fixed order (8 interleaved
// partial sums, then combined) so that it does not depend on how the loop is vectorised.
inline float softmax_exp_sum(float* row, int64_t n, float mx) {
  for (int64_t j = 0; j < n; ++j) row[j] = exp_f32(row[j] - mx);
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) acc[l] += row[j + l];
  for (; j < n; ++j) acc[0] += row[j];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// The double path (finite-difference tests) keeps std::exp and a plain sequential sum.
inline double softmax_exp_sum(double* row, int64_t n, double mx) {
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    row[j] = std::exp(row[j] - mx);
    sum += row[j];
  }
  return sum;
}

}  // namespace mira
