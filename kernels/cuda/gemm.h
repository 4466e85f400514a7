// Row-major GEMM on cuBLAS (single and strided-batched). cuBLAS is column-major: a row-major
// (m, n) matrix with leading dimension ld is the column-major (n, m) matrix with the same ld, so
// C = op(A) op(B) (row-major) is computed as C^T = op(B)^T op(A)^T (column-major) by swapping the
// operands and m/n - no copies or transposes. The math mode is the handle's (the backend sets
// CUBLAS_PEDANTIC_MATH in the fp32 parity mode: no TF32, no reduced-precision reductions).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/status.h"

namespace mira {

// C (m, n) = alpha * op(A) op(B) + beta * C, all row-major with leading dimensions (elements).
// Dimensions and leading dimensions must fit in int (the backend checks).
CudaStatus cuda_gemm(cublasHandle_t h, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// count independent GEMMs; matrix i uses a + i*stride_a, b + i*stride_b, c + i*stride_c.
CudaStatus cuda_gemm_strided(cublasHandle_t h, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                             const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                             int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c, int64_t count);

// The bf16 frozen-weight mode (Backend::freeze_weights): C (m, n, fp32) = alpha * op(A) op(B) + beta * C
// with bf16 A and B, fp32 accumulation (cublasGemmEx, CUDA_R_16BF inputs, CUDA_R_32F output,
// CUBLAS_COMPUTE_32F): tensor cores on sm_80+. Products of bf16 values are exact in fp32, so the
// result differs from the CPU oracle (bf16 values in fp32 storage, fp32 GEMM) only in the fp32
// summation order. The handle must not be in CUBLAS_PEDANTIC_MATH (that may rule out tensor cores):
// the backend keeps a second handle in CUBLAS_DEFAULT_MATH for these calls.
CudaStatus cuda_gemm_bf16(cublasHandle_t h, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                          const __nv_bfloat16* a, int64_t lda, const __nv_bfloat16* b, int64_t ldb, float beta,
                          float* c, int64_t ldc);

}  // namespace mira
