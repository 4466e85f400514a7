// Causal multi-head self-attention on the device, flash style: no T x T matrix is ever kept
// in device memory. Semantics of cpu_attention_forward/backward (kernels/cpu/attention.h): per
// (batch, head) S = q k^T / sqrt(hd), keys j > i masked, P = softmax(S), optional dropout on P
// (the same counter-based keep mask, recomputed from each element's index, never stored), out = P v.
// The forward keeps the per-row logsumexp L of S; the backward takes out as well and recomputes P from
// q, k and L tile by tile. See attention.cu for the kernels and the gradient derivation.
// Two operand precisions (bf16 below): false = the fp32 kernels of attention.cu (CUDA cores, the
// parity mode); true = the tensor-core kernels of attention_bf16.cu, every matmul on bf16 operands
// with fp32 accumulation, the roundings of the CPU oracle (kernels/cpu/attention.h, bf16 = true).
// Both keep the same saved state and scratch (the size functions below) and support head dims up
// to 128 (padded to 32, 64 or 128) and any T.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/status.h"

namespace mira {

// The dropout site as the kernels use it: p (0 = off), the host-computed threshold
// (dropout_threshold(p)), the RNG stream and the index of element 0 of (B, H, T, T): probability
// (b, h, i, j) uses mask index base + ((b*H + h)*T + i)*T + j, also for the flash kernels.
struct CudaDropout {
  float p = 0.0f;
  uint32_t threshold = 0;
  uint64_t stream = 0;
  uint64_t base = 0;
};

// Largest head dimension C / H the kernels support (larger: cudaErrorInvalidValue, step says why).
constexpr int64_t CUDA_ATTENTION_MAX_HEAD_DIM = 128;

// Floats of the bf16 mode's saved state: the forward's packed bf16 heads of q, k, v (3 B*H heads of
// (T rounded up to 64, hd rounded up to 32/64/128), which the backward reads instead of qkv), then
// the row logsumexp (B, H, T). att must then be 16-byte aligned (the heads are copied in 16 bytes).
int64_t cuda_attention_bf16_saved_floats(int64_t b, int64_t t, int64_t c, int64_t nh);

// Floats of the forward's saved state `att`: the logsumexp L (B, H, T) of each causal score row
// (fp32 mode; the backward reads qkv), or cuda_attention_bf16_saved_floats (bf16 mode).
inline int64_t cuda_attention_saved_floats(int64_t b, int64_t t, int64_t c, int64_t nh, bool bf16 = false) {
  return bf16 ? cuda_attention_bf16_saved_floats(b, t, c, nh) : b * nh * t;
}
// Floats of the scratch: D = rowsum(dout * out) (B, H, T), written and read by the backward only.
inline int64_t cuda_attention_scratch_floats(int64_t b, int64_t t, int64_t c, int64_t nh) { return b * nh * t; }

// bf16 elements of the workspace the bf16 backward needs (ws16 below; not kept between calls): dout's
// padded bf16 heads (B*H, T rounded up to 64, hd rounded up to 32, 64 or 128).
int64_t cuda_attention_bf16_workspace(int64_t b, int64_t t, int64_t c, int64_t nh);

// out (B, T, C) and att (cuda_attention_saved_floats(..., bf16)) from qkv (B, T, 3C), on stream s.
// bf16: the tensor-core kernels (att 16-byte aligned).
CudaStatus cuda_attention_forward(cudaStream_t s, float* out, float* att, const float* qkv, int64_t b, int64_t t,
                                  int64_t c, int64_t nh, const CudaDropout& drop, bool bf16 = false);

// dqkv (B, T, 3C) overwritten from dout (B, T, C), qkv (not read in the bf16 mode: att holds its
// packed heads), the forward's out (B, T, C) and att; scratch (cuda_attention_scratch_floats); drop
// and bf16: the forward's; ws16 (bf16 only): cuda_attention_bf16_workspace elements, 16-byte aligned.
CudaStatus cuda_attention_backward(cudaStream_t s, float* dqkv, float* scratch, const float* dout, const float* qkv,
                                   const float* out, const float* att, int64_t b, int64_t t, int64_t c, int64_t nh,
                                   const CudaDropout& drop, bool bf16 = false, __nv_bfloat16* ws16 = nullptr);

// The bf16 mode with out stored in bf16 (bf16 activations, Backend DAct): out = the fp32 result
// rounded to nearest even, and the backward's D = rowsum(bf16(dout) * out) from those values. The
// tensor-core kernels only (there is no fp32-mode variant).
CudaStatus cuda_attention_forward(cudaStream_t s, __nv_bfloat16* out, float* att, const float* qkv, int64_t b,
                                  int64_t t, int64_t c, int64_t nh, const CudaDropout& drop);
CudaStatus cuda_attention_backward(cudaStream_t s, float* dqkv, float* scratch, const float* dout,
                                   const __nv_bfloat16* out, const float* att, int64_t b, int64_t t, int64_t c,
                                   int64_t nh, const CudaDropout& drop, __nv_bfloat16* ws16);

// The tensor-core kernels (attention_bf16.cu) behind bf16 = true; shapes, att and ws16 already
// checked, b, t > 0.
CudaStatus cuda_attention_forward_bf16(cudaStream_t s, float* out, float* att, const float* qkv, int64_t b, int64_t t,
                                       int64_t c, int64_t nh, const CudaDropout& drop);
CudaStatus cuda_attention_backward_bf16(cudaStream_t s, float* dqkv, float* scratch, const float* dout,
                                        const float* out, const float* att, __nv_bfloat16* ws16, int64_t b, int64_t t,
                                        int64_t c, int64_t nh, const CudaDropout& drop);
CudaStatus cuda_attention_forward_bf16(cudaStream_t s, __nv_bfloat16* out, float* att, const float* qkv, int64_t b,
                                       int64_t t, int64_t c, int64_t nh, const CudaDropout& drop);
CudaStatus cuda_attention_backward_bf16(cudaStream_t s, float* dqkv, float* scratch, const float* dout,
                                        const __nv_bfloat16* out, const float* att, __nv_bfloat16* ws16, int64_t b,
                                        int64_t t, int64_t c, int64_t nh, const CudaDropout& drop);

}  // namespace mira
