// Row-major GEMM for the CPU kernels: C = alpha * op(A) op(B) + beta * C. Float products with at
// least 32 rows and at least 32 (or at most 16) columns go to our AVX-512 sgemm when the CPU has
// AVX-512F (kernels/cpu/sgemm_avx512.h: packed panels shared out as tasks, thread-count invariant
// by construction; gemm.cpp, use_own_sgemm, has the exact rule); everything else - thin float
// products, double (finite-difference checks), CPUs without AVX-512, or MIRA_CPU_GEMM=openblas -
// goes through OpenBLAS cblas as follows.
// Thread-count invariant: C is cut into fixed tiles (a function of the shape only) computed by
// single-threaded BLAS calls from our own OpenMP loop - OpenBLAS (OpenMP build) runs single-threaded
// inside a parallel region - so every element is summed the same way for any OMP_NUM_THREADS.
// Kernels may also call it from their own parallel loops (e.g. per (batch, head)): the nested loop
// then runs on the calling thread.
#pragma once
#include <cstdint>

namespace mira {

template <typename T>
void cpu_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
              const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// A frozen linear layer and its LoRA term: y (n, out) = x (n, in) W (in, out) + bias (out)
// [+ s * u (n, r) bl (out, r)^T when u is non-null]. Where our sgemm takes the product it is one
// fused pass over y (sgemm_avx512_linear), else the three steps below; the same bits either way as
// the steps "y = bias; y += x W; y += s u bl^T" through cpu_gemm.
void cpu_linear_forward(float* y, const float* x, const float* w, const float* bias, const float* u, const float* bl,
                        float s, int64_t n, int64_t in, int64_t out, int64_t r);

}  // namespace mira
