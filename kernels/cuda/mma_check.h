// A direct check of the tensor-core primitives of kernels/cuda/mma_bf16.cuh (mma.sync m16n8k16,
// ldmatrix x4 plain and transposed), which the bf16 attention kernels build on: one warp multiplies
// a (16, 32) by a (32, 16) matrix through the same fragment loads the attention uses, once with
// B^T read by plain ldmatrix (the q k^T pattern) and once with B read by ldmatrix .trans (the P v
// pattern). The emulator implements these instructions from the PTX ISA's layouts; this check is
// what tells, on the first GPU run, whether the hardware agrees (tests/gpu/test_cuda_mma.cpp).
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/status.h"

namespace mira {

// d_plain, d_trans (16, 16) row-major = bf16(a) (16, 32) bf16(b) (32, 16), both row-major fp32 in
// device memory (rounded to bf16 in the kernel), with fp32 accumulation; one warp on stream s.
CudaStatus cuda_mma_selfcheck(cudaStream_t s, float* d_plain, float* d_trans, const float* a, const float* b);

}  // namespace mira
