// Fused LM head + softmax + token cross-entropy (+ gradients) on the device, with the semantics of
// kernels/cpu/lm_head_ce.h: only rows with a non-zero loss weight are computed, in chunks of
// CUDA_CE_CHUNK rows so the (rows, V) logits never exist in full. Per chunk: gather the active
// hidden rows, logits = hs wte^T (cuBLAS), one fused kernel per row (online max + sum of exp, loss,
// then dlogits = weight * (softmax - onehot) in place), dwte += dlogits^T hs (cuBLAS, chunks in
// order), dh rows = dlogits wte scattered back. The row reductions are block trees (fixed order):
// deterministic, equal to the CPU to float rounding.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/status.h"

namespace mira {

// Rows per chunk: for GPT-2 (V = 50257) the chunk's logits are 1024 x 50257 floats = 206 MB, and
// each logits GEMM (1024 x 50257 x 768, 79 GFLOP) is large enough to fill an H100; the CPU uses 256.
constexpr int64_t CUDA_CE_CHUNK = 1024;

// Row stride of the chunk's logits and dlogits: the vocabulary padded to a multiple of 128, so every
// row starts 512-byte aligned for the GEMMs (50257 -> 50304 for GPT-2). The fp32 path never reads
// the pad; the bf16 path runs its GEMMs over it (zero rows of a padded wte16 copy, zero dlogits).
inline int64_t cuda_lm_head_ce_ld(int64_t v) { return (v + 127) / 128 * 128; }

// Scratch floats cuda_lm_head_ce needs for hidden size c and vocabulary v.
inline int64_t cuda_lm_head_ce_scratch(int64_t c, int64_t v) { return CUDA_CE_CHUNK * (cuda_lm_head_ce_ld(v) + 2 * c); }

// rows (device, n_active): indices of the rows with weight != 0, ascending (the backend builds them
// from the weights). loss_rows (N) and dh (N, C) (if non-null) are overwritten (0 on skipped rows);
// dwte (V, C) += gradient if non-null. The handle must be bound to stream s.
CudaStatus cuda_lm_head_ce(cublasHandle_t h, cudaStream_t s, float* loss_rows, float* dh, float* dwte, const float* hid,
                           const float* wte, const int32_t* targets, const float* weight, const int32_t* rows,
                           int64_t n_active, int64_t n, int64_t c, int64_t v, float* scratch);

// bf16 elements of the bf16 scratch cuda_lm_head_ce_bf16 needs: the chunk's hidden rows and
// dlogits, and wte16 padded to cuda_lm_head_ce_ld(v) rows (its GEMMs run over the padded width).
inline int64_t cuda_lm_head_ce_bf16_scratch(int64_t c, int64_t v) {
  return CUDA_CE_CHUNK * (c + cuda_lm_head_ce_ld(v)) + cuda_lm_head_ce_ld(v) * c;
}

// The bf16 frozen-weight mode (Backend::freeze_weights, wte frozen): as cuda_lm_head_ce without dwte,
// but the logits GEMM is bf16(hidden rows) x wte16^T and the dh GEMM bf16(dlogits) x wte16 on the
// bf16 path (cuda_gemm_bf16 with handle h16, bound to stream s, not in pedantic math mode); the
// softmax, loss and fp32 dlogits are unchanged. wte16 (V, C) is the weight's bf16 copy; ws16 holds
// cuda_lm_head_ce_bf16_scratch(c, v) elements; scratch as for cuda_lm_head_ce.
CudaStatus cuda_lm_head_ce_bf16(cublasHandle_t h16, cudaStream_t s, float* loss_rows, float* dh, const float* hid,
                                const __nv_bfloat16* wte16, const int32_t* targets, const float* weight,
                                const int32_t* rows, int64_t n_active, int64_t n, int64_t c, int64_t v, float* scratch,
                                __nv_bfloat16* ws16);

}  // namespace mira
