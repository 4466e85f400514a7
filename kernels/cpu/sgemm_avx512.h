// Our own float GEMM for x86-64 CPUs with AVX-512 (kernels/cpu/sgemm_avx512.cpp), used by
// cpu_gemm<float> for the large products of a training step (the base-weight GEMMs and the LM head)
// when the CPU has AVX-512F; other shapes and CPUs keep the OpenBLAS path (gemm.cpp).
//
// Row-major C (m, n) = alpha * op(A) op(B) + beta * C, op = transpose when the flag is set.
// Structure (after BLIS/GotoBLAS): C is cut into tasks (row groups x column strips, plus K
// segments for a very long K) handed out dynamically to the threads; a task walks K in blocks of
// 256, packs its strip of op(B) into 32- (or 16-) column panels and its rows of op(A) into 12-row
// panels, and runs a 12 x 32 (or 12 x 16) register-blocked FMA microkernel over each block. The
// task sizing rules are at sgemm_tasks in the .cpp.
//
// Thread-count invariant by construction: every element of C is the sum over K blocks in
// ascending order (a long K may be cut into segments of whole blocks, added in segment order),
// each block summed from zero by the same microkernel in ascending k (edge tiles are zero-padded,
// not handled by other code). K blocks and segments are functions of the shape only; how C is cut
// into tiles (which may follow the thread count) and which thread computes a tile change nothing,
// so the result is the same for any OMP_NUM_THREADS, and called inside an active parallel region it
// runs on the calling thread.
// Different from OpenBLAS's summation order: equal to float rounding.
#pragma once
#include <cstdint>

namespace mira {

// True when this CPU has AVX-512F (checked once, at run time: the binary runs everywhere).
bool sgemm_avx512_available();

// Requires sgemm_avx512_available(); any m, n, k >= 0 and leading dimensions >= the row lengths.
// beta == 0 never reads C (it may hold NaN).
void sgemm_avx512(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                  int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// The frozen linear layer with its LoRA term in one pass over y (row-major):
//   y (m, n) = x (m, k) W (k, n) + bias (n) [+ s * u (m, r) bl (n, r)^T]
// bias may be null (no bias); u null or r == 0: no LoRA term. Every element gets exactly the
// float operations of the unfused sequence "y = bias; y += x W (beta 1); y += s u bl^T (beta 1)"
// run through sgemm_avx512 (the bias takes beta C's place in the first K block, the LoRA product
// is one more K block after the last), so the two give the same bits.
void sgemm_avx512_linear(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw,
                         const float* bias, const float* u, int64_t r, const float* bl, float s, float* y,
                         int64_t ldy);

}  // namespace mira
