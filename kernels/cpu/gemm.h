// Row-major GEMM for the CPU kernels: C = alpha * op(A) op(B) + beta * C through OpenBLAS cblas
// (sgemm for float, dgemm for double, so finite-difference checks can run in double).
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

}  // namespace mira
