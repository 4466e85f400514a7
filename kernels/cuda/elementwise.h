// Small element-wise CUDA kernels mirroring kernels/cpu/elementwise.h: embeddings (forward and the
// full fine-tuning scatter-add), bias broadcast, add, scale, inverted dropout from the counter-based
// RNG (and its packed keep masks), bias-gradient column sums. Nothing is fused here; each is one pass over memory. Every output
// element is computed by one thread in a fixed order, so results are run-to-run deterministic; the
// scatter-add and the column sums add in the same order as the CPU kernels (bitwise-equal sums).
#pragma once
#include <cstdint>

#include "kernels/cuda/status.h"

namespace mira {

// out (B*T, C) = wte[ids] + wpe[position]
CudaStatus cuda_embedding_forward(cudaStream_t s, float* out, const int32_t* ids, const float* wte, const float* wpe,
                                  int64_t b, int64_t t, int64_t c);
// dwte[ids[i]] += dout[i], dwpe[i % T] += dout[i]: one thread per column walks the tokens in order (no
// atomics, so deterministic and the same additions as the CPU kernel).
CudaStatus cuda_embedding_backward(cudaStream_t s, float* dwte, float* dwpe, const float* dout, const int32_t* ids,
                                   int64_t b, int64_t t, int64_t c);
// y (N, M) = bias per row
CudaStatus cuda_bias_broadcast(cudaStream_t s, float* y, const float* bias, int64_t n, int64_t m);
CudaStatus cuda_add(cudaStream_t s, float* y, const float* a, const float* b, int64_t n);  // y may alias a or b
CudaStatus cuda_scale(cudaStream_t s, float* y, int64_t n, float f);
// y (+)= x * keep / (1 - p); element i uses index base + i; threshold = dropout_threshold(p).
CudaStatus cuda_dropout(cudaStream_t s, float* y, const float* x, int64_t n, float p, uint32_t threshold,
                        uint64_t stream, uint64_t base, bool accumulate);
// The packed keep mask of cuda_dropout's rule: bit e % 32 of bits[e / 32] = element e is kept (index
// base + e), for e < n; ceil(n / 32) words (the high bits of the last one are 0). The LoRA-input
// dropout keeps it from the forward to the backward (1 bit per element instead of a dropped copy).
CudaStatus cuda_dropout_mask(cudaStream_t s, uint32_t* bits, int64_t n, uint32_t threshold, uint64_t stream,
                             uint64_t base);
// y (+)= x * keep_scale where the mask's bit is set, else (+)= 0: cuda_dropout's operations.
CudaStatus cuda_dropout_apply_mask(cudaStream_t s, float* y, const float* x, const uint32_t* bits, int64_t n,
                                   float keep_scale, bool accumulate);
// db (M) += column sums of dy (N, M): one thread per column sums its rows in order in float (as
// cpu_colsum_accumulate does), then adds once.
CudaStatus cuda_colsum_accumulate(cudaStream_t s, float* db, const float* dy, int64_t n, int64_t m);

}  // namespace mira
