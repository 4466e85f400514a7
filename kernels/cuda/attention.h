// Causal multi-head self-attention on the device, the straightforward version that mirrors
// cpu_attention_forward/backward (kernels/cpu/attention.h): the (B, H, T, T) probabilities are
// materialised (the Backend interface keeps them for the backward pass). Per batch row, the head
// GEMMs are one cuBLAS strided-batched call over heads (heads are hd columns apart in qkv). Custom
// kernels fuse: causal mask + softmax (one warp per row: max, exp, sum, normalise, zero the upper
// triangle); the dropout keep mask + inverted scaling of the probabilities / their gradient; and the
// softmax backward dS = P * (dP - rowsum(P dP)) * scale with the upper triangle zeroed.
#pragma once
#include <cstdint>

#include "kernels/cuda/status.h"

namespace mira {

// The dropout site as the kernels use it: p (0 = off), the host-computed threshold
// (dropout_threshold(p)), the RNG stream and the index of element 0 of (B, H, T, T).
struct CudaDropout {
  float p = 0.0f;
  uint32_t threshold = 0;
  uint64_t stream = 0;
  uint64_t base = 0;
};

// out (B, T, C), att (B, H, T, T) from qkv (B, T, 3C); scratch (B, H, T, T) receives the dropped
// probabilities when drop.p > 0 (may be null otherwise). The handle must be bound to stream s.
CudaStatus cuda_attention_forward(cublasHandle_t h, cudaStream_t s, float* out, float* att, const float* qkv,
                                  int64_t b, int64_t t, int64_t c, int64_t nh, float* scratch,
                                  const CudaDropout& drop);

// dqkv (B, T, 3C) overwritten; scratch (B, H, T, T); drop: the forward's site.
CudaStatus cuda_attention_backward(cublasHandle_t h, cudaStream_t s, float* dqkv, float* scratch, const float* dout,
                                   const float* qkv, const float* att, int64_t b, int64_t t, int64_t c, int64_t nh,
                                   const CudaDropout& drop);

}  // namespace mira
