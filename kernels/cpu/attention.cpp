// Causal multi-head attention forward/backward (see attention.h).
#include "kernels/cpu/attention.h"

#include <cmath>
#include <limits>

#include "kernels/cpu/gemm.h"

namespace mira {

template <typename T>
void cpu_attention_forward(T* out, T* att, const T* qkv, int64_t b, int64_t t, int64_t c, int64_t nh, T* scratch,
                           const DropoutKey& drop) {
  const int64_t hd = c / nh;
  const T scale = (T)1 / std::sqrt((T)hd);
  const bool dropping = drop.p > 0.0f;
  const uint32_t thr = dropout_threshold(drop.p);
  const T keep_scale = dropping ? (T)1 / ((T)1 - (T)drop.p) : T(1);
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < b * nh; ++bh) {
    const int64_t bi = bh / nh, h = bh % nh;
    const T* q = qkv + bi * t * 3 * c + h * hd;
    const T* k = q + c;
    const T* v = q + 2 * c;
    T* p = att + bh * t * t;
    // S = scale * q k^T  (T, T); only the lower triangle is used.
    cpu_gemm<T>(false, true, t, t, hd, scale, q, 3 * c, k, 3 * c, T(0), p, t);
    for (int64_t i = 0; i < t; ++i) {
      T* row = p + i * t;
      T mx = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j <= i; ++j) mx = row[j] > mx ? row[j] : mx;
      T sum = 0;
      for (int64_t j = 0; j <= i; ++j) {
        row[j] = std::exp(row[j] - mx);
        sum += row[j];
      }
      const T inv = (T)1 / sum;
      for (int64_t j = 0; j <= i; ++j) row[j] *= inv;
      for (int64_t j = i + 1; j < t; ++j) row[j] = 0;
    }
    const T* pv = p;
    if (dropping) {  // dropped probabilities (B, H, T, T) into scratch
      T* pd = scratch + bh * t * t;
      for (int64_t i = 0; i < t * t; ++i)
        pd[i] = dropout_keep(drop.stream, drop.base + (uint64_t)(bh * t * t + i), thr) ? p[i] * keep_scale : T(0);
      pv = pd;
    }
    // out = P v  (T, hd), written into the head's columns of (B, T, C).
    cpu_gemm<T>(false, false, t, hd, t, T(1), pv, t, v, 3 * c, T(0), out + bi * t * c + h * hd, c);
  }
}

template <typename T>
void cpu_attention_backward(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* att, int64_t b, int64_t t,
                            int64_t c, int64_t nh, const DropoutKey& drop) {
  const int64_t hd = c / nh;
  const T scale = (T)1 / std::sqrt((T)hd);
  const bool dropping = drop.p > 0.0f;
  const uint32_t thr = dropout_threshold(drop.p);
  const T keep_scale = dropping ? (T)1 / ((T)1 - (T)drop.p) : T(1);
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < b * nh; ++bh) {
    const int64_t bi = bh / nh, h = bh % nh;
    const T* q = qkv + bi * t * 3 * c + h * hd;
    const T* k = q + c;
    const T* v = q + 2 * c;
    T* dq = dqkv + bi * t * 3 * c + h * hd;
    T* dk = dq + c;
    T* dv = dq + 2 * c;
    const T* p = att + bh * t * t;
    const T* dO = dout + bi * t * c + h * hd;
    T* dp = scratch + bh * t * t;
    const uint64_t base = drop.base + (uint64_t)(bh * t * t);
    // dv = Pd^T dO with Pd the (dropped) probabilities of the forward pass
    if (dropping) {
      for (int64_t i = 0; i < t * t; ++i)
        dp[i] = dropout_keep(drop.stream, base + (uint64_t)i, thr) ? p[i] * keep_scale : T(0);
      cpu_gemm<T>(true, false, t, hd, t, T(1), dp, t, dO, c, T(0), dv, 3 * c);
    } else {
      cpu_gemm<T>(true, false, t, hd, t, T(1), p, t, dO, c, T(0), dv, 3 * c);
    }
    // dP = dO v^T, then through the dropout mask
    cpu_gemm<T>(false, true, t, t, hd, T(1), dO, c, v, 3 * c, T(0), dp, t);
    if (dropping)
      for (int64_t i = 0; i < t * t; ++i)
        dp[i] = dropout_keep(drop.stream, base + (uint64_t)i, thr) ? dp[i] * keep_scale : T(0);
    // dS = P * (dP - sum_j P dP), scaled for the q k^T / sqrt(hd) product.
    for (int64_t i = 0; i < t; ++i) {
      const T* pr = p + i * t;
      T* dr = dp + i * t;
      T dot = 0;
      for (int64_t j = 0; j <= i; ++j) dot += pr[j] * dr[j];
      for (int64_t j = 0; j <= i; ++j) dr[j] = pr[j] * (dr[j] - dot) * scale;
      for (int64_t j = i + 1; j < t; ++j) dr[j] = 0;
    }
    // dq = dS k ; dk = dS^T q
    cpu_gemm<T>(false, false, t, hd, t, T(1), dp, t, k, 3 * c, T(0), dq, 3 * c);
    cpu_gemm<T>(true, false, t, hd, t, T(1), dp, t, q, 3 * c, T(0), dk, 3 * c);
  }
}

template void cpu_attention_forward<float>(float*, float*, const float*, int64_t, int64_t, int64_t, int64_t, float*,
                                           const DropoutKey&);
template void cpu_attention_forward<double>(double*, double*, const double*, int64_t, int64_t, int64_t, int64_t, double*,
                                            const DropoutKey&);
template void cpu_attention_backward<float>(float*, float*, const float*, const float*, const float*, int64_t, int64_t,
                                            int64_t, int64_t, const DropoutKey&);
template void cpu_attention_backward<double>(double*, double*, const double*, const double*, const double*, int64_t,
                                             int64_t, int64_t, int64_t, const DropoutKey&);

}  // namespace mira
