// GELU, tanh approximation (HF "gelu_new"), forward and backward on the device. The tanh is the CPU
// kernel's tanh_f32 (kernels/cpu/gelu.cpp) ported operation by operation with round-to-nearest
// intrinsics (no FMA contraction), so both backends give the same bits when the CPU build does not
// contract either (the default: no -march=native). Element-wise; nothing fused. 4 elements per
// thread, one 16-byte (fp32) or 8-byte (bf16) access per operand when aligned.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/status.h"

namespace mira {

CudaStatus cuda_gelu_forward(cudaStream_t s, float* y, const float* x, int64_t n);
// dx = dy * gelu'(x) (dx may alias dy)
CudaStatus cuda_gelu_backward(cudaStream_t s, float* dx, const float* dy, const float* x, int64_t n);

// bf16 storage of x and/or y (bf16 activations, Backend DAct): x read exactly, y = the fp32 result
// rounded to nearest even; the arithmetic is the fp32 kernel's.
CudaStatus cuda_gelu_forward(cudaStream_t s, __nv_bfloat16* y, const float* x, int64_t n);
CudaStatus cuda_gelu_forward(cudaStream_t s, float* y, const __nv_bfloat16* x, int64_t n);
CudaStatus cuda_gelu_forward(cudaStream_t s, __nv_bfloat16* y, const __nv_bfloat16* x, int64_t n);
CudaStatus cuda_gelu_backward(cudaStream_t s, float* dx, const float* dy, const __nv_bfloat16* x, int64_t n);

}  // namespace mira
