// Aggregation kernels (see aggregate.h): fuses MIRA eq. (8) (the weighted neighbour differences, the
// step and the rounding) for every target client of a rank into one launch, and the FedIT weighted
// sum of the gathered adapters into one pass. Element-wise over P: thread i owns element i of every
// buffer, so no reduction order depends on the launch geometry.
#include "kernels/cuda/aggregate.h"

#include <algorithm>

#include "kernels/cuda/device_util.cuh"

namespace mira {

using namespace cuda_detail;

namespace {

// grid (x: element blocks, y: targets); grid-stride over x.
__global__ void k_mira_update(float* const* out, const float* const* self, const int* first,
                              const float* const* nbr, const double* weight, size_t P, double eta_lambda) {
  const int t = blockIdx.y;
  const float* me = self[t];
  float* dst = out[t];
  const int j0 = first[t], j1 = first[t + 1];
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < P; i += (size_t)gridDim.x * blockDim.x) {
    const double x = me[i];
    double acc = 0.0;
    // acc += weight[j] * (x - nbr[j][i]): the CPU's operations, one rounding each (x - y == x + (-y)).
    for (int j = j0; j < j1; ++j) acc = __dadd_rn(acc, __dmul_rn(weight[j], __dadd_rn(x, -(double)nbr[j][i])));
    dst[i] = (float)__dadd_rn(x, -__dmul_rn(eta_lambda, acc));
  }
}

__global__ void k_weighted_sum(float* out, const float* const* in, const double* coef, int n, size_t P) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < P; i += (size_t)gridDim.x * blockDim.x) {
    double acc = 0.0;
    for (int j = 0; j < n; ++j) acc = __dadd_rn(acc, __dmul_rn(coef[j], (double)in[j][i]));
    out[i] = (float)acc;
  }
}

unsigned element_grid(size_t P) {
  return (unsigned)std::min<int64_t>(grid_for((int64_t)P), 132 * 8);  // grid-stride, H100-sized cap
}

}  // namespace

CudaStatus cuda_mira_update(cudaStream_t s, int targets, float* const* out, const float* const* self,
                            const int* first, const float* const* nbr, const double* weight, size_t P,
                            double eta_lambda) {
  if (targets <= 0 || P == 0) return CudaStatus{};
  // blockIdx.y indexes the targets: at most 65535 per launch (more clients per rank than that is
  // refused by the caller long before).
  const dim3 grid(element_grid(P), (unsigned)targets);
  k_mira_update<<<grid, BLOCK, 0, s>>>(out, self, first, nbr, weight, P, eta_lambda);
  return cuda_status_launch("mira_update kernel");
}

CudaStatus cuda_weighted_sum(cudaStream_t s, float* out, const float* const* in, const double* coef, int n, size_t P) {
  if (P == 0) return CudaStatus{};
  k_weighted_sum<<<element_grid(P), BLOCK, 0, s>>>(out, in, coef, n, P);
  return cuda_status_launch("weighted_sum kernel");
}

}  // namespace mira
