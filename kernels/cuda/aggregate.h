// The aggregation step of a federated round on device-resident adapters (src/fed/aggregate_device.h):
// MIRA eq. (8) over the received neighbour buffers and the FedIT weighted sum, each in one pass.
// Both do exactly the double-precision operations of the CPU references (src/fed/aggregate.cpp:
// mira_update_client, fedit_average) in the same order, rounded to float once, with every product
// and sum written as __dmul_rn / __dadd_rn so nvcc cannot contract them into FMAs: the results are
// bitwise equal to the CPU functions (tests/gpu/test_cuda_aggregate.cpp).
#pragma once
#include <cstddef>

#include "kernels/cuda/status.h"

namespace mira {

// MIRA eq. (8) for `targets` clients in one launch. Target t reads self[t] and its neighbours
// nbr[first[t]] .. nbr[first[t+1]-1] with weights weight[...] (ascending client id), and writes
//   out[t][i] = self[t][i] - eta_lambda * sum_j weight[j] * (self[t][i] - nbr[j][i])
// (double accumulation in j order, one rounding). out[t] must alias no self or nbr buffer (the
// caller stages the results and copies them back, so every target reads pre-update states).
// out, self, nbr, first (targets+1) and weight are DEVICE arrays (of device pointers); P floats each.
CudaStatus cuda_mira_update(cudaStream_t s, int targets, float* const* out, const float* const* self,
                            const int* first, const float* const* nbr, const double* weight, size_t P,
                            double eta_lambda);

// FedIT: out[i] = sum_j coef[j] * in[j][i] over j = 0..n-1 in order, double accumulation, one rounding
// (coef[j] = size[j] / total, computed on the host as fedit_average does). in (n device pointers) and
// coef (n doubles) are DEVICE arrays; n may be 0 (out becomes zeros).
CudaStatus cuda_weighted_sum(cudaStream_t s, float* out, const float* const* in, const double* coef, int n, size_t P);

}  // namespace mira
