// Causal multi-head attention forward/backward (see attention.h). The float softmax uses
// softmax_exp_sum (kernels/cpu/softmax_exp.h, vectorised exp). The bf16 operand mode (bf16 = true,
// the oracle of kernels/cuda/attention_bf16.cu) runs in forward_bf16 / backward_bf16 below, so the
// fp32 path is untouched; both share the causal blocking and the fp32 softmax.
#pragma GCC optimize("no-trapping-math")  // lets GCC vectorise exp_f32 (see softmax_exp.h)
#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <vector>

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/row_sum.h"
#include "kernels/cpu/softmax_exp.h"

namespace mira {

namespace {
// Rows (queries) per causal block: a block's GEMMs skip the keys after its last row. 128 keeps the
// BLAS calls few and large at GPT-2 sequence lengths; a function of nothing, so results do not
// depend on the thread count.
constexpr int64_t ATT_ROW_BLOCK = 128;

// bf16 rounding of one value (kernels/cpu/bf16.h; a double goes through float first).
template <typename T>
inline T rnd(T x) {
  return (T)bf16_round((float)x);
}

// One head's (t, hd) slice of a row-major tensor with leading dimension ld, rounded into dense (t, hd).
template <typename T>
void round_head(std::vector<T>& dst, const T* src, int64_t t, int64_t hd, int64_t ld) {
  dst.resize((size_t)(t * hd));
  for (int64_t i = 0; i < t; ++i)
    for (int64_t d = 0; d < hd; ++d) dst[(size_t)(i * hd + d)] = rnd(src[i * ld + d]);
}

// The bf16 operand mode of cpu_attention_forward (attention.h gives the roundings).
template <typename T>
void forward_bf16(T* out, T* att, const T* qkv, int64_t b, int64_t t, int64_t c, int64_t nh, T* scratch,
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
    std::vector<T> qr, kr, vr, pr;  // bf16(q), bf16(k), bf16(v) (T, hd); pr: a row block of bf16(Pd)
    round_head(qr, q, t, hd, 3 * c);
    round_head(kr, q + c, t, hd, 3 * c);
    round_head(vr, q + 2 * c, t, hd, 3 * c);
    T* p = att + bh * t * t;
    for (int64_t i0 = 0; i0 < t; i0 += ATT_ROW_BLOCK) {
      const int64_t i1 = std::min(t, i0 + ATT_ROW_BLOCK);
      cpu_gemm<T>(false, true, i1 - i0, i1, hd, scale, qr.data() + i0 * hd, hd, kr.data(), hd, T(0), p + i0 * t, t);
      for (int64_t i = i0; i < i1; ++i) {  // the fp32 softmax of the fp32 path
        T* row = p + i * t;
        T mx = -std::numeric_limits<T>::infinity();
        for (int64_t j = 0; j <= i; ++j) mx = row[j] > mx ? row[j] : mx;
        const T sum = softmax_exp_sum(row, i + 1, mx);
        const T inv = (T)1 / sum;
        for (int64_t j = 0; j <= i; ++j) row[j] *= inv;
        for (int64_t j = i + 1; j < t; ++j) row[j] = 0;
      }
    }
    const T* pv = p;
    if (dropping) {
      T* pd = scratch + bh * t * t;
      for (int64_t i = 0; i < t * t; ++i)
        pd[i] = dropout_keep(drop.stream, drop.base + (uint64_t)(bh * t * t + i), thr) ? p[i] * keep_scale : T(0);
      pv = pd;
    }
    // out = bf16(Pd) bf16(v): row block [i0, i1) of Pd rounded into pr (i1 - i0, i1).
    for (int64_t i0 = 0; i0 < t; i0 += ATT_ROW_BLOCK) {
      const int64_t i1 = std::min(t, i0 + ATT_ROW_BLOCK);
      pr.resize((size_t)((i1 - i0) * i1));
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = 0; j < i1; ++j) pr[(size_t)((i - i0) * i1 + j)] = rnd(pv[i * t + j]);
      cpu_gemm<T>(false, false, i1 - i0, hd, i1, T(1), pr.data(), i1, vr.data(), hd, T(0),
                  out + (bi * t + i0) * c + h * hd, c);
    }
  }
}

// The bf16 operand mode of cpu_attention_backward (attention.h gives the roundings).
template <typename T>
void backward_bf16(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* att, int64_t b, int64_t t, int64_t c,
                   int64_t nh, const DropoutKey& drop) {
  const int64_t hd = c / nh;
  const T scale = (T)1 / std::sqrt((T)hd);
  const bool dropping = drop.p > 0.0f;
  const uint32_t thr = dropout_threshold(drop.p);
  const T keep_scale = dropping ? (T)1 / ((T)1 - (T)drop.p) : T(1);
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < b * nh; ++bh) {
    const int64_t bi = bh / nh, h = bh % nh;
    const T* q = qkv + bi * t * 3 * c + h * hd;
    T* dq = dqkv + bi * t * 3 * c + h * hd;
    T* dk = dq + c;
    T* dv = dq + 2 * c;
    const T* p = att + bh * t * t;
    T* dp = scratch + bh * t * t;
    const uint64_t base = drop.base + (uint64_t)(bh * t * t);
    // z_ij: the keep factor (keep_scale or 0; 1 without dropout)
    auto z = [&](int64_t i, int64_t j) -> T {
      return !dropping ? T(1) : dropout_keep(drop.stream, base + (uint64_t)(i * t + j), thr) ? keep_scale : T(0);
    };
    std::vector<T> qr, kr, vr, dor;  // bf16 copies (T, hd)
    round_head(qr, q, t, hd, 3 * c);
    round_head(kr, q + c, t, hd, 3 * c);
    round_head(vr, q + 2 * c, t, hd, 3 * c);
    round_head(dor, dout + bi * t * c + h * hd, t, hd, c);
    // dV = bf16(Pd)^T bf16(dO) (Pd = z P, zero above the diagonal)
    for (int64_t i = 0; i < t; ++i)
      for (int64_t j = 0; j < t; ++j) dp[i * t + j] = j <= i ? rnd(p[i * t + j] * z(i, j)) : T(0);
    for (int64_t j0 = 0; j0 < t; j0 += ATT_ROW_BLOCK) {
      const int64_t j1 = std::min(t, j0 + ATT_ROW_BLOCK);
      cpu_gemm<T>(true, false, j1 - j0, hd, t - j0, T(1), dp + j0 * t + j0, t, dor.data() + j0 * hd, hd, T(0),
                  dv + j0 * 3 * c, 3 * c);
    }
    for (int64_t i0 = 0; i0 < t; i0 += ATT_ROW_BLOCK) {
      const int64_t i1 = std::min(t, i0 + ATT_ROW_BLOCK);
      // dPd = bf16(dO) bf16(v)^T (rows i0..i1, columns 0..i1)
      cpu_gemm<T>(false, true, i1 - i0, i1, hd, T(1), dor.data() + i0 * hd, hd, vr.data(), hd, T(0), dp + i0 * t, t);
      for (int64_t i = i0; i < i1; ++i) {
        const T* pr = p + i * t;
        T* dr = dp + i * t;
        const T dot = row_sum<T>(i + 1, [&](int64_t j) { return rnd(pr[j] * z(i, j)) * dr[j]; });
        for (int64_t j = 0; j <= i; ++j) dr[j] = rnd(pr[j] * (dr[j] * z(i, j) - dot) * scale);
        for (int64_t j = i + 1; j < t; ++j) dr[j] = 0;
      }
      // dq = bf16(dS) bf16(k)
      cpu_gemm<T>(false, false, i1 - i0, hd, i1, T(1), dp + i0 * t, t, kr.data(), hd, T(0), dq + i0 * 3 * c, 3 * c);
    }
    // dk = bf16(dS)^T bf16(q)
    for (int64_t j0 = 0; j0 < t; j0 += ATT_ROW_BLOCK) {
      const int64_t j1 = std::min(t, j0 + ATT_ROW_BLOCK);
      cpu_gemm<T>(true, false, j1 - j0, hd, t - j0, T(1), dp + j0 * t + j0, t, qr.data() + j0 * hd, hd, T(0),
                  dk + j0 * 3 * c, 3 * c);
    }
  }
}

}  // namespace

template <typename T>
void cpu_attention_forward(T* out, T* att, const T* qkv, int64_t b, int64_t t, int64_t c, int64_t nh, T* scratch,
                           const DropoutKey& drop, bool bf16) {
  if (bf16) return forward_bf16(out, att, qkv, b, t, c, nh, scratch, drop);
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
    // Causal blocks: query rows [i0, i1) only see keys [0, i1), so each block's GEMMs stop at column
    // i1 (about 60% of the full T x T work at T = 512).
    for (int64_t i0 = 0; i0 < t; i0 += ATT_ROW_BLOCK) {
      const int64_t i1 = std::min(t, i0 + ATT_ROW_BLOCK);
      // S = scale * q k^T  (rows i0..i1, columns 0..i1); only the lower triangle is used.
      cpu_gemm<T>(false, true, i1 - i0, i1, hd, scale, q + i0 * 3 * c, 3 * c, k, 3 * c, T(0), p + i0 * t, t);
      for (int64_t i = i0; i < i1; ++i) {
        T* row = p + i * t;
        T mx = -std::numeric_limits<T>::infinity();
        for (int64_t j = 0; j <= i; ++j) mx = row[j] > mx ? row[j] : mx;
        const T sum = softmax_exp_sum(row, i + 1, mx);
        const T inv = (T)1 / sum;
        for (int64_t j = 0; j <= i; ++j) row[j] *= inv;
        for (int64_t j = i + 1; j < t; ++j) row[j] = 0;
      }
    }
    const T* pv = p;
    if (dropping) {  // dropped probabilities (B, H, T, T) into scratch
      T* pd = scratch + bh * t * t;
      for (int64_t i = 0; i < t * t; ++i)
        pd[i] = dropout_keep(drop.stream, drop.base + (uint64_t)(bh * t * t + i), thr) ? p[i] * keep_scale : T(0);
      pv = pd;
    }
    // out = P v  (T, hd), written into the head's columns of (B, T, C); rows i0..i1 use P[:, 0..i1].
    for (int64_t i0 = 0; i0 < t; i0 += ATT_ROW_BLOCK) {
      const int64_t i1 = std::min(t, i0 + ATT_ROW_BLOCK);
      cpu_gemm<T>(false, false, i1 - i0, hd, i1, T(1), pv + i0 * t, t, v, 3 * c, T(0), out + (bi * t + i0) * c + h * hd,
                  c);
    }
  }
}

template <typename T>
void cpu_attention_backward(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* att, int64_t b, int64_t t,
                            int64_t c, int64_t nh, const DropoutKey& drop, bool bf16) {
  if (bf16) return backward_bf16(dqkv, scratch, dout, qkv, att, b, t, c, nh, drop);
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
    // Causal blocks as in the forward: row block [i0, i1) of P, dP and dS is zero beyond column i1,
    // and column block [j0, j1) is zero above row j0.
    // dv = Pd^T dO with Pd the (dropped) probabilities of the forward pass; keys j0..j1 get rows j0..t.
    const T* pd = p;
    if (dropping) {
      for (int64_t i = 0; i < t * t; ++i)
        dp[i] = dropout_keep(drop.stream, base + (uint64_t)i, thr) ? p[i] * keep_scale : T(0);
      pd = dp;
    }
    for (int64_t j0 = 0; j0 < t; j0 += ATT_ROW_BLOCK) {
      const int64_t j1 = std::min(t, j0 + ATT_ROW_BLOCK);
      cpu_gemm<T>(true, false, j1 - j0, hd, t - j0, T(1), pd + j0 * t + j0, t, dO + j0 * c, c, T(0), dv + j0 * 3 * c,
                  3 * c);
    }
    for (int64_t i0 = 0; i0 < t; i0 += ATT_ROW_BLOCK) {
      const int64_t i1 = std::min(t, i0 + ATT_ROW_BLOCK);
      // dP = dO v^T (rows i0..i1, columns 0..i1), then through the dropout mask
      cpu_gemm<T>(false, true, i1 - i0, i1, hd, T(1), dO + i0 * c, c, v, 3 * c, T(0), dp + i0 * t, t);
      // dS = P * (dP - sum_j P dP), scaled for the q k^T / sqrt(hd) product.
      for (int64_t i = i0; i < i1; ++i) {
        const T* pr = p + i * t;
        T* dr = dp + i * t;
        if (dropping)
          for (int64_t j = 0; j <= i; ++j)
            dr[j] = dropout_keep(drop.stream, base + (uint64_t)(i * t + j), thr) ? dr[j] * keep_scale : T(0);
        const T dot = row_sum<T>(i + 1, [&](int64_t j) { return pr[j] * dr[j]; });
        for (int64_t j = 0; j <= i; ++j) dr[j] = pr[j] * (dr[j] - dot) * scale;
        for (int64_t j = i + 1; j < t; ++j) dr[j] = 0;
      }
      // dq = dS k  (rows i0..i1 use keys 0..i1)
      cpu_gemm<T>(false, false, i1 - i0, hd, i1, T(1), dp + i0 * t, t, k, 3 * c, T(0), dq + i0 * 3 * c, 3 * c);
    }
    // dk = dS^T q  (keys j0..j1 use query rows j0..t)
    for (int64_t j0 = 0; j0 < t; j0 += ATT_ROW_BLOCK) {
      const int64_t j1 = std::min(t, j0 + ATT_ROW_BLOCK);
      cpu_gemm<T>(true, false, j1 - j0, hd, t - j0, T(1), dp + j0 * t + j0, t, q + j0 * 3 * c, 3 * c, T(0),
                  dk + j0 * 3 * c, 3 * c);
    }
  }
}

template void cpu_attention_forward<float>(float*, float*, const float*, int64_t, int64_t, int64_t, int64_t, float*,
                                           const DropoutKey&, bool);
template void cpu_attention_forward<double>(double*, double*, const double*, int64_t, int64_t, int64_t, int64_t, double*,
                                            const DropoutKey&, bool);
template void cpu_attention_backward<float>(float*, float*, const float*, const float*, const float*, int64_t, int64_t,
                                            int64_t, int64_t, const DropoutKey&, bool);
template void cpu_attention_backward<double>(double*, double*, const double*, const double*, const double*, int64_t,
                                             int64_t, int64_t, int64_t, const DropoutKey&, bool);

}  // namespace mira
