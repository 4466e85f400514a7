// Fixed-block reductions: a sum over n elements is split into blocks of REDUCE_BLOCK elements (a
// constant, not a function of the thread count); each block is summed sequentially (in double) and
// the block sums are added in block order. So sums are bitwise identical for any OMP_NUM_THREADS
// (DESIGN.md, Determinism).
#pragma once
#include <algorithm>
#include <cstdint>

namespace mira {

constexpr int64_t REDUCE_BLOCK = 4096;  // elements per block: large enough to amortise the overhead

inline int64_t reduce_num_blocks(int64_t n) { return std::max<int64_t>(1, (n + REDUCE_BLOCK - 1) / REDUCE_BLOCK); }

// Sum of x[i]^2 over i < n, thread-count invariant.
template <typename T>
double cpu_sum_squares(const T* x, int64_t n);

// Sum of x[i] over i < n, thread-count invariant.
template <typename T>
double cpu_sum(const T* x, int64_t n);

}  // namespace mira
