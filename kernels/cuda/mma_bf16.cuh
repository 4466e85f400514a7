// Warp-level tensor-core primitives for the register-resident kernels (attention_bf16.cu): the PTX
// instructions mma.sync m16n8k16 (bf16 inputs, fp32 accumulators), ldmatrix (x4, plain and
// transposed) and cp.async (16-byte global -> shared copies with commit/wait groups). On nvcc they are
// inline PTX; in the CPU emulator (MIRA_CUDA_EMU, tests/emu/cuda_emu.h) the same functions are
// warp-collective host emulations with the PTX ISA's fragment layouts, so the kernels' indexing is
// checked by the emulated test suite.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"; g = lane / 4, q = lane % 4; a
// 32-bit register holds two bf16, the lower-indexed element in the low half):
//   A (16 x 16, row-major) a[4]: a[0] = (g, 2q..2q+1), a[1] = (g+8, 2q..), a[2] = (g, 2q+8..),
//                                a[3] = (g+8, 2q+8..)
//   B (16 x 8, k x n)      b[2]: b[0] = (k 2q..2q+1, n g), b[1] = (k 2q+8..2q+9, n g)
//   C/D (16 x 8, fp32)     c[4]: c[0..1] = (g, 2q..2q+1), c[2..3] = (g+8, 2q..2q+1)
// So the C fragments of two adjacent n-tiles, rounded to bf16 and packed, are the A fragment of the
// next product (the flash-attention trick: probabilities never leave the registers).
// ldmatrix x4: lanes 8m..8m+7 give the row addresses (16-byte aligned, shared memory) of the 8 x 8
// bf16 matrix m; register m of lane l receives row l / 4, columns 2(l % 4)..+1 of matrix m (.trans:
// rows 2(l % 4)..+1 of column l / 4, i.e. the matrix transposed).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace mira {
namespace cuda_detail {

// Two floats rounded to bf16 (round to nearest even) in one register: lo in the low half.
__device__ inline uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat16_raw l = __float2bfloat16_rn(lo), h = __float2bfloat16_rn(hi);
  return (uint32_t)l.x | ((uint32_t)h.x << 16);
}

#if defined(MIRA_CUDA_EMU)

// d += A b (16 x 8 x 16, fp32 accumulate).
__device__ inline void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  ::emu::mma_m16n8k16_bf16(d, a, b0, b1);
}
// r[0..3] from the four 8 x 8 matrices whose rows this lane (and its 31 neighbours) address.
__device__ inline void ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16* row) { ::emu::ldmatrix_x4(r, row, false); }
__device__ inline void ldmatrix_x4_trans(uint32_t (&r)[4], const __nv_bfloat16* row) {
  ::emu::ldmatrix_x4(r, row, true);
}
// 16 bytes from global src to shared dst, asynchronously (both 16-byte aligned).
__device__ inline void cp_async16(void* dst, const void* src) { ::emu::cp_async16(dst, src); }
__device__ inline void cp_async_commit() {}
// Waits until at most N of this thread's committed groups are pending (then __syncthreads makes
// every thread's copies visible to the block).
template <int N>
__device__ inline void cp_async_wait() {}

#else

__device__ inline void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ inline uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
__device__ inline void ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(row))
               : "memory");
}
__device__ inline void ldmatrix_x4_trans(uint32_t (&r)[4], const __nv_bfloat16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(row))
               : "memory");
}
__device__ inline void cp_async16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(__cvta_generic_to_global(src))
               : "memory");
}
__device__ inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ inline void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

#endif

}  // namespace cuda_detail
}  // namespace mira
