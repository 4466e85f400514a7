// Small element-wise kernels: embeddings, bias broadcast, adds, scaling, dropout from the
// counter-based RNG. Each output element depends only on its own inputs, so all are thread-count
// invariant.
#pragma once
#include <cstdint>

#include "src/runtime/rng.h"  // kernels/ sees the source root only

namespace mira {

// out (B*T, C) = wte[ids] + wpe[t]; ids (B*T) must be in range (checked by the caller).
template <typename T>
void cpu_embedding_forward(T* out, const int32_t* ids, const T* wte, const T* wpe, int64_t b, int64_t t, int64_t c);

// Full fine-tuning: dwte[ids[i]] += dout[i], dwpe[i % T] += dout[i] (a scatter-add). Each thread
// owns a block of columns and walks the tokens in order, so the sums are thread-count invariant.
template <typename T>
void cpu_embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* ids, int64_t b, int64_t t, int64_t c);

// db (M) += column sums of dy (N, M) (bias gradients); per column in row order, columns split
// across threads: thread-count invariant.
template <typename T>
void cpu_colsum_accumulate(T* db, const T* dy, int64_t n, int64_t m);

// y (N, M) = bias broadcast over rows.
template <typename T>
void cpu_bias_broadcast(T* y, const T* bias, int64_t n, int64_t m);

// y = a + b (y may alias a or b).
template <typename T>
void cpu_add(T* y, const T* a, const T* b, int64_t n);

// y *= s
template <typename T>
void cpu_scale(T* y, int64_t n, T s);

// Inverted dropout: y (+)= x * keep_j / (1 - p) for element j = base + i. Element j is dropped when
// its 16-bit lane ((rng_at(stream, j / 4) >> (16 * (j % 4))) & 0xFFFF) is below
// dropout_threshold(p) = round(p * 65536): the drop probability is p rounded to a multiple of 2^-16
// (0.05 -> 0.0500031). The mask is a pure function of (stream, j), so the backward pass regenerates it.
inline uint32_t dropout_threshold(float p) { return (uint32_t)((double)p * 65536.0 + 0.5); }

// Whether element j of a dropout stream is kept (the rule above, for kernels that fuse dropout).
inline bool dropout_keep(uint64_t stream, uint64_t j, uint32_t threshold) {
  return ((rng_at(stream, j >> 2) >> (16 * (j & 3))) & 0xFFFFu) >= threshold;
}

// A dropout site for fused kernels: probability p (0 = off), stream, first element index.
struct DropoutKey {
  float p = 0.0f;
  uint64_t stream = 0;
  uint64_t base = 0;
};

template <typename T>
void cpu_dropout(T* y, const T* x, int64_t n, float p, uint64_t stream, uint64_t base, bool accumulate);

// The packed keep mask of cpu_dropout's rule: bit e % 32 of bits[e / 32] = element e (index base + e)
// is kept, for e < n; ceil(n / 32) words, the unused high bits of the last one 0.
void cpu_dropout_mask(uint32_t* bits, int64_t n, float p, uint64_t stream, uint64_t base);
// y (+)= x * keep_scale where the mask's bit is set, else (+)= 0, keep_scale = 1 / (1 - p):
// cpu_dropout's operations with the mask's flags.
template <typename T>
void cpu_dropout_apply_mask(T* y, const T* x, const uint32_t* bits, int64_t n, float p, bool accumulate);

// One Adam/AdamW step exactly as torch.optim (single-tensor path): decoupled (AdamW) multiplies the
// parameter by (1 - lr*wd) first; otherwise (Adam) wd*param is added to the gradient. bc1/bc2 are
// 1 - beta^step computed by the caller in double.
template <typename T>
void cpu_adam_step(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1, double beta2, double eps,
                   double weight_decay, bool decoupled, double bc1, double bc2);

}  // namespace mira
