// Row-major GEMM through cuBLAS by operand swapping (see gemm.h).
#include "kernels/cuda/gemm.h"

namespace mira {

CudaStatus cuda_gemm(cublasHandle_t h, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                     int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return CudaStatus{};  // as cpu_gemm: nothing to write
  // Column-major view: C^T (n, m) = op(B)^T (n, k) * op(A)^T (k, m).
  return cuda_status_blas(cublasSgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m,
                                      (int)k, &alpha, b, (int)ldb, a, (int)lda, &beta, c, (int)ldc),
                          "cublasSgemm");
}

CudaStatus cuda_gemm_strided(cublasHandle_t h, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                             const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                             int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c, int64_t count) {
  if (m == 0 || n == 0 || count == 0) return CudaStatus{};
  return cuda_status_blas(
      cublasSgemmStridedBatched(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m,
                                (int)k, &alpha, b, (int)ldb, (long long)stride_b, a, (int)lda, (long long)stride_a,
                                &beta, c, (int)ldc, (long long)stride_c, (int)count),
      "cublasSgemmStridedBatched");
}

CudaStatus cuda_gemm_bf16(cublasHandle_t h, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                          const __nv_bfloat16* a, int64_t lda, const __nv_bfloat16* b, int64_t ldb, float beta,
                          float* c, int64_t ldc) {
  if (m == 0 || n == 0) return CudaStatus{};
  // Column-major view as cuda_gemm: C^T (n, m) = op(B)^T (n, k) * op(A)^T (k, m).
  return cuda_status_blas(cublasGemmEx(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m,
                                       (int)k, &alpha, b, CUDA_R_16BF, (int)ldb, a, CUDA_R_16BF, (int)lda, &beta, c,
                                       CUDA_R_32F, (int)ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                          "cublasGemmEx (bf16)");
}

}  // namespace mira
