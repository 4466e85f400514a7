// sum / sum_squares of a float array on the device with a FIXED reduction order that reproduces
// kernels/cpu/reduce.h bit for bit: blocks of REDUCE_BLOCK (4096) elements, each summed sequentially
// in double by one thread, then the block partials summed in block order in double by a second
// pass. The order depends on n only - never on the grid, the device or timing.
#pragma once
#include <cstdint>

#include "kernels/cuda/status.h"

namespace mira {

// Partials needed for n elements (= reduce_num_blocks(n) of kernels/cpu/reduce.h).
int64_t cuda_reduce_partials(int64_t n);

// *out (one double in device memory) = sum of x[i] (squares = false) or x[i]^2 (squares = true).
// partials: device scratch of cuda_reduce_partials(n) doubles.
CudaStatus cuda_sum(cudaStream_t s, double* out, double* partials, const float* x, int64_t n, bool squares);

}  // namespace mira
