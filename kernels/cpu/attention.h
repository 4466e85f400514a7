// Causal multi-head self-attention as HF GPT-2 computes it (eager path): per (batch, head)
// S = q k^T / sqrt(hd), positions j > i masked, P = softmax(S), out = P v. The attention
// probabilities P are kept for the backward pass. Work is split over (batch, head) pairs, each
// computed identically whatever the thread count (BLAS calls inside the parallel loop run
// single-threaded), so results are thread-count invariant.
// Two operand precisions (`bf16`): false = fp32 throughout (the parity mode); true = the bf16 mode
// of Backend::attention_forward/backward (AttentionPrecision::BF16), the oracle of the CUDA
// tensor-core kernels: the operands of every matmul are rounded to bf16 (round to nearest even,
// kernels/cpu/bf16.h) and the products summed in fp32. Exactly:
//   forward:  S = scale * bf16(q) bf16(k)^T; P = softmax(S) in fp32 (att keeps this unrounded P);
//             out = bf16(Pd) bf16(v) with Pd = z * P the dropped (and 1/(1-p)-scaled) probabilities.
//   backward: dV = bf16(Pd)^T bf16(dO); dPd = bf16(dO) bf16(v)^T; D_i = sum_j bf16(Pd_ij) dPd_ij
//             (= bf16(dO_i) . out_i, the rowsum the flash kernels form); dS = P (z dPd - D) scale in
//             fp32; dq = bf16(dS) bf16(k), dk = bf16(dS)^T bf16(q).
// The roundings are only of operands (copies): nothing stored is rounded.
#pragma once
#include <cstdint>

#include "kernels/cpu/elementwise.h"

namespace mira {

// qkv: (B, T, 3C) laid out [q | k | v], head h uses columns h*hd..(h+1)*hd of each part.
// out: (B, T, C) heads merged; att: (B, H, T, T) probabilities (zero above the diagonal).
// Attention dropout (HF attn_pdrop, applied to the probabilities before P v) when drop.p > 0: element
// (bh, i, j) uses index drop.base + (bh*T + i)*T + j; the dropped probabilities go to scratch
// (B, H, T, T), att keeps the undropped ones for the backward pass. scratch may be null when p = 0.
template <typename T>
void cpu_attention_forward(T* out, T* att, const T* qkv, int64_t b, int64_t t, int64_t c, int64_t nh, T* scratch,
                           const DropoutKey& drop, bool bf16 = false);

// dqkv (B, T, 3C) = gradient w.r.t. qkv (overwritten); dout (B, T, C); scratch: (B, H, T, T).
// drop: the forward's key (masks are regenerated). bf16: as the forward's.
template <typename T>
void cpu_attention_backward(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* att, int64_t b, int64_t t,
                            int64_t c, int64_t nh, const DropoutKey& drop, bool bf16 = false);

}  // namespace mira
