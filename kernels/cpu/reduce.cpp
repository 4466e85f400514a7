// Thread-count invariant sums over fixed blocks (see reduce.h).
#include "kernels/cpu/reduce.h"

#include <vector>

namespace mira {

namespace {
template <typename T, typename F>
double blocked_sum(const T* x, int64_t n, F f) {
  const int64_t nb = reduce_num_blocks(n);
  std::vector<double> part((size_t)nb, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < nb; ++b) {
    double s = 0;
    const int64_t i1 = std::min(n, (b + 1) * REDUCE_BLOCK);
    for (int64_t i = b * REDUCE_BLOCK; i < i1; ++i) s += f((double)x[i]);
    part[b] = s;
  }
  double s = 0;
  for (double p : part) s += p;
  return s;
}
}  // namespace

template <typename T>
double cpu_sum_squares(const T* x, int64_t n) {
  return blocked_sum(x, n, [](double v) { return v * v; });
}
template <typename T>
double cpu_sum(const T* x, int64_t n) {
  return blocked_sum(x, n, [](double v) { return v; });
}

template double cpu_sum_squares<float>(const float*, int64_t);
template double cpu_sum_squares<double>(const double*, int64_t);
template double cpu_sum<float>(const float*, int64_t);
template double cpu_sum<double>(const double*, int64_t);

}  // namespace mira
