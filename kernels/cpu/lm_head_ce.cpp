// Fused LM head + softmax + cross-entropy (see lm_head_ce.h). The float softmax uses
// softmax_exp_sum (kernels/cpu/softmax_exp.h, vectorised exp; double keeps std::exp).
#pragma GCC optimize("no-trapping-math")  // lets GCC vectorise exp_f32 (see softmax_exp.h)
#include "kernels/cpu/lm_head_ce.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/softmax_exp.h"

namespace mira {

template <typename T>
void cpu_lm_head_ce(T* loss_rows, T* dh, T* dwte, const T* h, const T* wte, const int32_t* targets, const T* weight, int64_t n,
                    int64_t c, int64_t v, T* scratch, bool bf16_operands) {
  std::vector<int64_t> rows;  // active rows (a few KB of indices; the big buffers are the caller's)
  rows.reserve((size_t)n);
  for (int64_t i = 0; i < n; ++i) {
    loss_rows[i] = 0;
    if (weight[i] != T(0)) rows.push_back(i);
  }
  if (dh) std::memset(dh, 0, sizeof(T) * (size_t)(n * c));
  T* logits = scratch;             // (CE_CHUNK, V)
  T* hs = scratch + CE_CHUNK * v;  // (CE_CHUNK, C) gathered hidden rows
  T* dhs = hs + CE_CHUNK * c;      // (CE_CHUNK, C)
  for (size_t r0 = 0; r0 < rows.size(); r0 += CE_CHUNK) {
    const int64_t m = std::min<int64_t>(CE_CHUNK, (int64_t)(rows.size() - r0));
    for (int64_t i = 0; i < m; ++i) std::memcpy(hs + i * c, h + rows[r0 + i] * c, sizeof(T) * (size_t)c);
    if (bf16_operands)
      for (int64_t e = 0; e < m * c; ++e) hs[e] = (T)bf16_round((float)hs[e]);
    cpu_gemm<T>(false, true, m, v, c, T(1), hs, c, wte, c, T(0), logits, v);  // (m, V) = hs wte^T
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; ++i) {
      const int64_t row = rows[r0 + i];
      T* l = logits + i * v;
      T mx = l[0];
      for (int64_t j = 1; j < v; ++j) mx = l[j] > mx ? l[j] : mx;
      const T lt = l[targets[row]];
      const T sum = softmax_exp_sum(l, v, mx);  // e_j = exp(l_j - max) kept in place for the gradient
      loss_rows[row] = mx + std::log(sum) - lt;
      if (dh || dwte) {  // dlogits = weight * (softmax - onehot), in place
        const T ws = weight[row] / sum;
        for (int64_t j = 0; j < v; ++j) l[j] *= ws;
        l[targets[row]] -= weight[row];
        if (bf16_operands && dh)  // the dh GEMM's operand (dwte is null in this mode)
          for (int64_t j = 0; j < v; ++j) l[j] = (T)bf16_round((float)l[j]);
      }
    }
    if (dwte) cpu_gemm<T>(true, false, v, c, m, T(1), logits, v, hs, c, T(1), dwte, c);  // += dlogits^T hs
    if (dh) {
      cpu_gemm<T>(false, false, m, c, v, T(1), logits, v, wte, c, T(0), dhs, c);  // (m, C) = dlogits wte
      for (int64_t i = 0; i < m; ++i) std::memcpy(dh + rows[r0 + i] * c, dhs + i * c, sizeof(T) * (size_t)c);
    }
  }
}

template void cpu_lm_head_ce<float>(float*, float*, float*, const float*, const float*, const int32_t*, const float*, int64_t,
                                    int64_t, int64_t, float*, bool);
template void cpu_lm_head_ce<double>(double*, double*, double*, const double*, const double*, const int32_t*, const double*,
                                     int64_t, int64_t, int64_t, double*, bool);

}  // namespace mira
