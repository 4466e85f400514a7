// Fixed-order sums (see reduce.h). One thread per 4096-element block keeps the CPU's sequential
// order; the loads of neighbouring threads are 16 KB apart (not coalesced), which is acceptable for
// what it is used for (gradient norms of adapters, loss sums); a faster tree with the same order
// rules is possible but would no longer match the CPU bits.
#include "kernels/cpu/reduce.h"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/reduce.h"

namespace mira {

using namespace cuda_detail;

namespace {

__global__ void k_block_sums(double* partials, const float* x, int64_t n, int64_t nb, bool squares) {
  const int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (b >= nb) return;
  const int64_t i0 = b * REDUCE_BLOCK, i1 = min(n, i0 + REDUCE_BLOCK);
  double s = 0.0;
  for (int64_t i = i0; i < i1; ++i) {
    const double v = (double)x[i];
    s = __dadd_rn(s, squares ? __dmul_rn(v, v) : v);  // no FMA contraction: the CPU rounds twice
  }
  partials[b] = s;
}

__global__ void k_sum_partials(double* out, const double* partials, int64_t nb) {
  double s = 0.0;
  for (int64_t b = 0; b < nb; ++b) s = __dadd_rn(s, partials[b]);  // block order, as the CPU
  *out = s;
}

}  // namespace

int64_t cuda_reduce_partials(int64_t n) { return reduce_num_blocks(n); }

CudaStatus cuda_sum(cudaStream_t s, double* out, double* partials, const float* x, int64_t n, bool squares) {
  const int64_t nb = reduce_num_blocks(n);
  k_block_sums<<<grid_for(nb, 128), 128, 0, s>>>(partials, x, n, nb, squares);  // 128: nb is often small
  CudaStatus st = cuda_status_launch("sum block partials kernel");
  if (!st.ok()) return st;
  k_sum_partials<<<1, 1, 0, s>>>(out, partials, nb);
  return cuda_status_launch("sum of partials kernel");
}

}  // namespace mira
