// Row sums for the CPU kernels: 16 interleaved partial sums combined pairwise at the end, a fixed
// order (the same for any thread count and vector width) that GCC vectorises, where one running
// sum would chain every add on the previous one (a 4-cycle latency per element). Used by LayerNorm
// and the attention backward.
#pragma once
#include <cstdint>

namespace mira {

constexpr int ROW_SUM_LANES = 16;

template <typename T>
inline T row_sum_combine(T (&acc)[ROW_SUM_LANES]) {
  for (int w = ROW_SUM_LANES / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

// sum_j f(j) for j < n.
template <typename T, typename F>
inline T row_sum(int64_t n, F f) {
  T acc[ROW_SUM_LANES] = {};
  int64_t j = 0;
  for (; j + ROW_SUM_LANES <= n; j += ROW_SUM_LANES)
    for (int l = 0; l < ROW_SUM_LANES; ++l) acc[l] += f(j + l);
  for (; j < n; ++j) acc[0] += f(j);
  return row_sum_combine(acc);
}

}  // namespace mira
