// Causal multi-head attention forward/backward (see attention.h). The float softmax uses
// softmax_exp_sum (kernels/cpu/softmax_exp.h, vectorised exp). One implementation serves both
// operand precisions: the bf16 mode (bf16 = true, the oracle of kernels/cuda/attention_bf16.cu)
// differs from the fp32 one only in its operands (dense bf16 copies of q, k, v, dO: see HeadOperand)
// and in rounding the dropped probabilities Pd and the score gradients dS before their products;
// the causal blocking, the GEMM calls and the fp32 softmax are shared.
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

// A GEMM operand: one head's (t, hd) slice, row i at ptr + i * ld.
template <typename T>
struct HeadOperand {
  const T* ptr;
  int64_t ld;
  const T* row(int64_t i) const { return ptr + i * ld; }
};

// The operand for one head's (t, hd) slice of a row-major tensor with leading dimension ld: the
// slice itself (fp32 mode), or (bf16) its values rounded into buf, dense (t, hd).
template <typename T>
HeadOperand<T> head_operand(std::vector<T>& buf, const T* src, int64_t t, int64_t hd, int64_t ld, bool bf16) {
  if (!bf16) return {src, ld};
  buf.resize((size_t)(t * hd));
  for (int64_t i = 0; i < t; ++i)
    for (int64_t d = 0; d < hd; ++d) buf[(size_t)(i * hd + d)] = rnd(src[i * ld + d]);
  return {buf.data(), hd};
}

// What both passes derive from the shape and the dropout key.
template <typename T>
struct AttentionConsts {
  int64_t hd;
  T scale;       // 1 / sqrt(hd)
  bool dropping;
  uint32_t thr;  // dropout_threshold(p)
  T keep_scale;  // 1 / (1 - p), 1 without dropout
  AttentionConsts(int64_t c, int64_t nh, const DropoutKey& drop)
      : hd(c / nh),
        scale((T)1 / std::sqrt((T)hd)),
        dropping(drop.p > 0.0f),
        thr(dropout_threshold(drop.p)),
        keep_scale(dropping ? (T)1 / ((T)1 - (T)drop.p) : T(1)) {}
};

}  // namespace

template <typename T>
void cpu_attention_forward(T* out, T* att, const T* qkv, int64_t b, int64_t t, int64_t c, int64_t nh, T* scratch,
                           const DropoutKey& drop, bool bf16) {
  const AttentionConsts<T> cst(c, nh, drop);
  const int64_t hd = cst.hd;
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < b * nh; ++bh) {
    const int64_t bi = bh / nh, h = bh % nh;
    const T* qh = qkv + bi * t * 3 * c + h * hd;
    std::vector<T> qb, kb, vb, pr;  // bf16 mode: bf16(q), bf16(k), bf16(v) (T, hd); pr: a row block of bf16(Pd)
    const HeadOperand<T> q = head_operand(qb, qh, t, hd, 3 * c, bf16);
    const HeadOperand<T> k = head_operand(kb, qh + c, t, hd, 3 * c, bf16);
    const HeadOperand<T> v = head_operand(vb, qh + 2 * c, t, hd, 3 * c, bf16);
    T* p = att + bh * t * t;
    // Causal blocks: query rows [i0, i1) only see keys [0, i1), so each block's GEMMs stop at column
    // i1 (about 60% of the full T x T work at T = 512).
    for (int64_t i0 = 0; i0 < t; i0 += ATT_ROW_BLOCK) {
      const int64_t i1 = std::min(t, i0 + ATT_ROW_BLOCK);
      // S = scale * q k^T  (rows i0..i1, columns 0..i1); only the lower triangle is used.
      cpu_gemm<T>(false, true, i1 - i0, i1, hd, cst.scale, q.row(i0), q.ld, k.ptr, k.ld, T(0), p + i0 * t, t);
      for (int64_t i = i0; i < i1; ++i) {  // softmax in fp32 (both modes)
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
    if (cst.dropping) {  // dropped probabilities (B, H, T, T) into scratch
      T* pd = scratch + bh * t * t;
      for (int64_t i = 0; i < t * t; ++i)
        pd[i] = dropout_keep(drop.stream, drop.base + (uint64_t)(bh * t * t + i), cst.thr) ? p[i] * cst.keep_scale
                                                                                           : T(0);
      pv = pd;
    }
    // out = Pd v  (T, hd), written into the head's columns of (B, T, C); rows i0..i1 use Pd[:, 0..i1].
    for (int64_t i0 = 0; i0 < t; i0 += ATT_ROW_BLOCK) {
      const int64_t i1 = std::min(t, i0 + ATT_ROW_BLOCK);
      const T* a = pv + i0 * t;
      int64_t lda = t;
      if (bf16) {  // bf16(Pd): row block [i0, i1), columns 0..i1, rounded into pr (i1 - i0, i1)
        pr.resize((size_t)((i1 - i0) * i1));
        for (int64_t i = i0; i < i1; ++i)
          for (int64_t j = 0; j < i1; ++j) pr[(size_t)((i - i0) * i1 + j)] = rnd(pv[i * t + j]);
        a = pr.data(), lda = i1;
      }
      cpu_gemm<T>(false, false, i1 - i0, hd, i1, T(1), a, lda, v.ptr, v.ld, T(0), out + (bi * t + i0) * c + h * hd, c);
    }
  }
}

template <typename T>
void cpu_attention_backward(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* att, int64_t b, int64_t t,
                            int64_t c, int64_t nh, const DropoutKey& drop, bool bf16) {
  const AttentionConsts<T> cst(c, nh, drop);
  const int64_t hd = cst.hd;
  const T scale = cst.scale, keep_scale = cst.keep_scale;
  const bool dropping = cst.dropping;
  const uint32_t thr = cst.thr;
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < b * nh; ++bh) {
    const int64_t bi = bh / nh, h = bh % nh;
    const T* qh = qkv + bi * t * 3 * c + h * hd;
    T* dq = dqkv + bi * t * 3 * c + h * hd;
    T* dk = dq + c;
    T* dv = dq + 2 * c;
    const T* p = att + bh * t * t;
    T* dp = scratch + bh * t * t;
    const uint64_t base = drop.base + (uint64_t)(bh * t * t);
    std::vector<T> qb, kb, vb, dob;  // bf16 mode: the bf16 copies (T, hd)
    const HeadOperand<T> q = head_operand(qb, qh, t, hd, 3 * c, bf16);
    const HeadOperand<T> k = head_operand(kb, qh + c, t, hd, 3 * c, bf16);
    const HeadOperand<T> v = head_operand(vb, qh + 2 * c, t, hd, 3 * c, bf16);
    const HeadOperand<T> dO = head_operand(dob, dout + bi * t * c + h * hd, t, hd, c, bf16);
    // keep(i, j): the dropout mask of element (i, j); z_ij: the keep factor (keep_scale or 0; 1 without dropout)
    const auto keep = [&](int64_t i, int64_t j) {
      return dropout_keep(drop.stream, base + (uint64_t)(i * t + j), thr);
    };
    const auto z = [&](int64_t i, int64_t j) -> T { return !dropping ? T(1) : keep(i, j) ? keep_scale : T(0); };
    // Causal blocks as in the forward: row block [i0, i1) of P, dP and dS is zero beyond column i1,
    // and column block [j0, j1) is zero above row j0.
    // dv = Pd^T dO with Pd the (dropped) probabilities of the forward pass; keys j0..j1 get rows j0..t.
    const T* pd = p;
    if (bf16) {  // bf16(Pd), Pd = z P zero above the diagonal
      for (int64_t i = 0; i < t; ++i)
        for (int64_t j = 0; j < t; ++j) dp[i * t + j] = j <= i ? rnd(p[i * t + j] * z(i, j)) : T(0);
      pd = dp;
    } else if (dropping) {
      for (int64_t i = 0; i < t * t; ++i)
        dp[i] = dropout_keep(drop.stream, base + (uint64_t)i, thr) ? p[i] * keep_scale : T(0);
      pd = dp;
    }
    for (int64_t j0 = 0; j0 < t; j0 += ATT_ROW_BLOCK) {
      const int64_t j1 = std::min(t, j0 + ATT_ROW_BLOCK);
      cpu_gemm<T>(true, false, j1 - j0, hd, t - j0, T(1), pd + j0 * t + j0, t, dO.row(j0), dO.ld, T(0), dv + j0 * 3 * c,
                  3 * c);
    }
    for (int64_t i0 = 0; i0 < t; i0 += ATT_ROW_BLOCK) {
      const int64_t i1 = std::min(t, i0 + ATT_ROW_BLOCK);
      // dPd = dO v^T (rows i0..i1, columns 0..i1)
      cpu_gemm<T>(false, true, i1 - i0, i1, hd, T(1), dO.row(i0), dO.ld, v.ptr, v.ld, T(0), dp + i0 * t, t);
      // dS = P * (dP - sum_j P dP) scale with dP = z dPd (the scale: of the q k^T / sqrt(hd) product).
      for (int64_t i = i0; i < i1; ++i) {
        const T* pr = p + i * t;
        T* dr = dp + i * t;
        if (bf16) {  // D_i = sum_j bf16(Pd_ij) dPd_ij; dS rounded to bf16
          const T dot = row_sum<T>(i + 1, [&](int64_t j) { return rnd(pr[j] * z(i, j)) * dr[j]; });
          for (int64_t j = 0; j <= i; ++j) dr[j] = rnd(pr[j] * (dr[j] * z(i, j) - dot) * scale);
        } else {
          if (dropping)
            for (int64_t j = 0; j <= i; ++j) dr[j] = keep(i, j) ? dr[j] * keep_scale : T(0);
          const T dot = row_sum<T>(i + 1, [&](int64_t j) { return pr[j] * dr[j]; });
          for (int64_t j = 0; j <= i; ++j) dr[j] = pr[j] * (dr[j] - dot) * scale;
        }
        for (int64_t j = i + 1; j < t; ++j) dr[j] = 0;
      }
      // dq = dS k  (rows i0..i1 use keys 0..i1)
      cpu_gemm<T>(false, false, i1 - i0, hd, i1, T(1), dp + i0 * t, t, k.ptr, k.ld, T(0), dq + i0 * 3 * c, 3 * c);
    }
    // dk = dS^T q  (keys j0..j1 use query rows j0..t)
    for (int64_t j0 = 0; j0 < t; j0 += ATT_ROW_BLOCK) {
      const int64_t j1 = std::min(t, j0 + ATT_ROW_BLOCK);
      cpu_gemm<T>(true, false, j1 - j0, hd, t - j0, T(1), dp + j0 * t + j0, t, q.row(j0), q.ld, T(0), dk + j0 * 3 * c,
                  3 * c);
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
