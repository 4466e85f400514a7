// The bf16 base GEMM with the bias fused into cuBLASLt's epilogue: y (m, n, fp32, row-major) =
// x (m, k, bf16) W (k, n, bf16) + bias (n, fp32), fp32 accumulation, one write of y. The composed
// alternative (the bias broadcast into y, then cublasGemmEx with beta 1) writes y, reads it and writes
// it again. Row-major through cuBLAS's column-major view as kernels/cuda/gemm.h: y^T (n, m) = W^T x^T,
// so the bias runs along D's rows, as CUBLASLT_EPILOGUE_BIAS wants.
// A plan (descriptors + the heuristic's algorithm) is made once per shape and pointer-alignment class
// and cached; cuBLASLt's workspace is allocated once (cuda_gemm_lt_create). Where cuBLASLt has no
// kernel for a shape, the call returns CUBLAS_STATUS_NOT_SUPPORTED without launching anything and the
// caller takes the composed path (backend_cuda.cpp).
#pragma once
#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/status.h"

namespace mira {

struct CudaGemmLt;  // the cuBLASLt handle, its workspace and the plan cache

// workspace_bytes: cuBLASLt's scratch (32 MiB is NVIDIA's advice for Hopper). On failure *out is null.
CudaStatus cuda_gemm_lt_create(CudaGemmLt** out, size_t workspace_bytes);
void cuda_gemm_lt_destroy(CudaGemmLt* lt);  // after the stream's work is done; null is a no-op

// y (m, n) = x (m, k) W (k, n) + bias (n): row-major, leading dimensions in elements, stream-ordered.
// CUBLAS_STATUS_NOT_SUPPORTED (nothing launched): no cuBLASLt kernel for this shape and alignment.
CudaStatus cuda_gemm_bf16_bias(CudaGemmLt* lt, cudaStream_t stream, int64_t m, int64_t n, int64_t k,
                               const __nv_bfloat16* x, int64_t ldx, const __nv_bfloat16* w, int64_t ldw,
                               const float* bias, float* y, int64_t ldy);

}  // namespace mira
