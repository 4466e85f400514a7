// Skinny fp32 GEMMs: the LoRA products, where one dimension is the adapter rank r (a few to 64).
// cuBLAS runs them as general GEMMs with split-k and tiles mostly idle (measured on an H200 at the
// GPT-2 124M shape, B 8 x T 1024, r 16: about 9 ms of a 93 ms step in fp32 GEMM kernels for
// products that only need to stream their big operand once, about 1.5 ms). Three kernel families,
// all row-major like cuda_gemm, C (m, n) = alpha op(A) op(B) + beta C (C not read when beta == 0):
//  - thin output  (!trans_a, n <= 64):            C (m, n) = A (m, k) op(B) (k, n), e.g. u = x A^T,
//    du = s dy B. One warp per group of rows; lanes stride over k (coalesced row reads), each lane
//    keeps n partial sums per row, a warp butterfly adds them.
//  - long k       (trans_a, min(m, n) <= 64, !trans_b): C = A^T B with A (k, m), B (k, n) both
//    tall, e.g. gB = s dy^T u, gA = du^T x. Pass 1: each block sums a chunk of k rows for a tile of
//    the big dimension (one thread per big column, coalesced) into a partial (chunk, small, big);
//    pass 2 adds the chunks in order and applies alpha/beta.
//  - rank update  (!trans_a, k <= 64):            C = A (m, k) op(B) (k, n) + beta C, e.g.
//    dx += du A, and with a bias instead of beta C the LoRA forward y = bias + s u B^T
//    (cuda_rank_update_bias). One thread per output column keeps its op(B) column in registers
//    and streams rows of C: one read and one write of C.
// Every sum has a fixed order (no atomics): deterministic run to run; it differs from the CPU and
// from cuBLAS only by fp32 summation order.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/status.h"

namespace mira {

// Largest small dimension (rank) the kernels take.
constexpr int64_t CUDA_SKINNY_MAX = 64;

// Whether cuda_skinny_gemm handles this shape (else use cuda_gemm). Also requires the big
// dimensions to be large enough that the custom kernels pay (>= 256 rows/columns), and small
// enough for CUDA's grid.y limit (rank update: m <= 2,097,120 rows; long k: k <= 8,388,480).
bool cuda_skinny_gemm_applies(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k);

// Floats of device scratch cuda_skinny_gemm needs for this shape (0 for most shapes).
int64_t cuda_skinny_gemm_scratch(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k);

// The LoRA-input dropout fused into a skinny product (Backend::lora_down / lora_down_grad /
// lora_input_grad): a packed keep mask (cuda_dropout_mask, kernels/cuda/elementwise.h; bit e % 32 of
// word e / 32 is element e's flag), the keep scale 1 / (1 - p), and where it applies, each with
// exactly the operations of cuda_dropout into a buffer followed by the plain product:
//  - A: A (m, k) is read as dropout(A), element (i, kk) = bit i k + kk (the thin-output kernel);
//  - B: B (k, n) is read as dropout(B), element (kk, j) = bit kk n + j (long k, small dimension m);
//  - ACCUMULATE: C += dropout(alpha A op(B)), element (i, j) = bit i n + j, beta must be 1 (the
//    rank-update kernel).
// bits == nullptr: no mask.
struct SkinnyMask {
  enum Where { A, B, ACCUMULATE };
  const uint32_t* bits = nullptr;
  float keep_scale = 1.0f;
  Where where = A;
};

// Whether cuda_skinny_gemm takes this shape with the mask applied where mask.where says (the
// kernel family the shape selects must be the one that applies it there).
bool cuda_skinny_gemm_takes_mask(const SkinnyMask& mask, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k);

// The big operand in bf16 storage (bf16 activations, Backend DAct: the LoRA input x read in place,
// each element exactly widened, the arithmetic unchanged): a = A of the thin-output kernel (u = x A^T),
// b = B of the long-k kernel with a small m (gA = du^T x). The float pointer of that operand is then
// ignored. Both null: fp32 operands.
struct SkinnyBf16 {
  const __nv_bfloat16* a = nullptr;
  const __nv_bfloat16* b = nullptr;
};
bool cuda_skinny_gemm_takes_bf16(const SkinnyBf16& in16, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k);

// C = alpha op(A) op(B) + beta C for a shape cuda_skinny_gemm_applies accepts; scratch holds
// cuda_skinny_gemm_scratch floats. Leading dimensions in elements, as cuda_gemm. mask: see
// SkinnyMask; a mask the shape cannot take (cuda_skinny_gemm_takes_mask) is an error, and so is a
// bf16 operand it cannot take (cuda_skinny_gemm_takes_bf16).
CudaStatus cuda_skinny_gemm(cudaStream_t s, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                            const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                            int64_t ldc, float* scratch, const SkinnyMask& mask = SkinnyMask{},
                            const SkinnyBf16& in16 = SkinnyBf16{});

// The first half of a LoRA linear layer's forward (CudaBackend::linear_forward): C (m, n) =
// alpha A (m, k) op(B) + bias (n) on every row, C written without being read, for the rank-update
// shapes (cuda_rank_update_bias_applies). The base GEMM then accumulates x W onto C (beta 1): two
// passes over C instead of four (bias broadcast, base GEMM, LoRA update).
bool cuda_rank_update_bias_applies(int64_t m, int64_t n, int64_t k);
CudaStatus cuda_rank_update_bias(cudaStream_t s, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                                 const float* a, int64_t lda, const float* b, int64_t ldb, const float* bias, float* c,
                                 int64_t ldc);

}  // namespace mira
