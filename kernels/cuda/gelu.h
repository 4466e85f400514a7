// GELU, tanh approximation (HF "gelu_new"), forward and backward on the device. The tanh is the CPU
// kernel's tanh_f32 (kernels/cpu/gelu.cpp) ported operation by operation with round-to-nearest
// intrinsics (no FMA contraction), so both backends give the same bits when the CPU build does not
// contract either (the default: no -march=native). Element-wise; nothing fused.
#pragma once
#include <cstdint>

#include "kernels/cuda/status.h"

namespace mira {

CudaStatus cuda_gelu_forward(cudaStream_t s, float* y, const float* x, int64_t n);
// dx = dy * gelu'(x) (dx may alias dy)
CudaStatus cuda_gelu_backward(cudaStream_t s, float* dx, const float* dy, const float* x, int64_t n);

}  // namespace mira
