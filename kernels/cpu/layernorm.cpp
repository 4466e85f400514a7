// LayerNorm forward/backward kernels (see layernorm.h).
#include "kernels/cpu/layernorm.h"

#include <cmath>
#include <vector>

#include "kernels/cpu/reduce.h"
#include "kernels/cpu/row_sum.h"

namespace mira {

namespace {

// One row: yi = LayerNorm(xi) with the row's mean and rstd.
template <typename T>
inline void layernorm_row(T* yi, T* mean, T* rstd, const T* xi, const T* w, const T* b, int64_t c, double eps) {
  const T m = row_sum<T>(c, [&](int64_t j) { return xi[j]; }) / (T)c;
  const T v = row_sum<T>(c, [&](int64_t j) { return (xi[j] - m) * (xi[j] - m); }) / (T)c;
  const T s = (T)1 / std::sqrt(v + (T)eps);
  for (int64_t j = 0; j < c; ++j) yi[j] = (xi[j] - m) * s * w[j] + b[j];
  *mean = m;
  *rstd = s;
}

}  // namespace

template <typename T>
void cpu_layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int64_t n, int64_t c,
                           double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) layernorm_row(y + i * c, mean + i, rstd + i, x + i * c, w, b, c, eps);
}

template <typename T>
void cpu_residual_layernorm_forward(T* sum, T* y, T* mean, T* rstd, const T* a, const T* r, const T* w, const T* b,
                                    int64_t n, int64_t c, double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T* si = sum + i * c;
    const T* ai = a + i * c;
    const T* ri = r + i * c;
    for (int64_t j = 0; j < c; ++j) si[j] = ai[j] + ri[j];
    layernorm_row(y + i * c, mean + i, rstd + i, si, w, b, c, eps);  // the row is still in cache
  }
}

template <typename T>
void cpu_layernorm_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const T* mean, const T* rstd,
                            int64_t n, int64_t c) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T* dyi = dy + i * c;
    const T* xi = x + i * c;
    const T mi = mean[i], ri = rstd[i];
    T am[ROW_SUM_LANES] = {}, an[ROW_SUM_LANES] = {};  // partial sums of w dy and w dy xhat (row_sum's order)
    int64_t j = 0;
    for (; j + ROW_SUM_LANES <= c; j += ROW_SUM_LANES)
      for (int l = 0; l < ROW_SUM_LANES; ++l) {
        const T dn = w[j + l] * dyi[j + l];
        am[l] += dn;
        an[l] += dn * ((xi[j + l] - mi) * ri);
      }
    for (; j < c; ++j) {
      const T dn = w[j] * dyi[j];
      am[0] += dn;
      an[0] += dn * ((xi[j] - mi) * ri);
    }
    const T dnorm_mean = row_sum_combine(am) / (T)c;
    const T dnorm_norm_mean = row_sum_combine(an) / (T)c;
    T* dxi = dx + i * c;
    for (int64_t jj = 0; jj < c; ++jj) {
      const T xh = (xi[jj] - mi) * ri;
      dxi[jj] += (w[jj] * dyi[jj] - dnorm_mean - xh * dnorm_norm_mean) * ri;
    }
  }
  if (dw == nullptr && db == nullptr) return;
  // Parameter gradients: column sums over rows, in fixed row blocks combined in order.
  const int64_t nb = reduce_num_blocks(n);
  std::vector<T> pw((size_t)(nb * c), T(0)), pb((size_t)(nb * c), T(0));
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < nb; ++blk) {
    const int64_t i0 = blk * REDUCE_BLOCK, i1 = std::min(n, i0 + REDUCE_BLOCK);
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = 0; j < c; ++j) {
        const T xh = (x[i * c + j] - mean[i]) * rstd[i];
        pw[blk * c + j] += dy[i * c + j] * xh;
        pb[blk * c + j] += dy[i * c + j];
      }
  }
  for (int64_t blk = 0; blk < nb; ++blk)
    for (int64_t j = 0; j < c; ++j) {
      if (dw) dw[j] += pw[blk * c + j];
      if (db) db[j] += pb[blk * c + j];
    }
}

template void cpu_layernorm_forward<float>(float*, float*, float*, const float*, const float*, const float*, int64_t,
                                           int64_t, double);
template void cpu_layernorm_forward<double>(double*, double*, double*, const double*, const double*, const double*,
                                            int64_t, int64_t, double);
template void cpu_residual_layernorm_forward<float>(float*, float*, float*, float*, const float*, const float*,
                                                    const float*, const float*, int64_t, int64_t, double);
template void cpu_residual_layernorm_forward<double>(double*, double*, double*, double*, const double*, const double*,
                                                     const double*, const double*, int64_t, int64_t, double);
template void cpu_layernorm_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                            const float*, const float*, int64_t, int64_t);
template void cpu_layernorm_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                             const double*, const double*, int64_t, int64_t);

}  // namespace mira
