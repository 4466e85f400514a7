// LayerNorm over the last dimension (HF GPT-2 ln_1/ln_2/ln_f): y = (x - mean) * rstd * w + b with the
// biased variance. Rows are independent, so results do not depend on the thread count; the parameter
// gradients (full fine-tuning only) are summed over fixed row blocks combined in block order.
#pragma once
#include <cstdint>

namespace mira {

// x, y: (N, C); w, b: (C); mean, rstd: (N), saved for the backward pass.
template <typename T>
void cpu_layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, int64_t n, int64_t c,
                           double eps);

// sum (N, C) = a + r, then LayerNorm of sum as above, row by row (sum may alias a or r): the same
// float operations as an element-wise add followed by cpu_layernorm_forward.
template <typename T>
void cpu_residual_layernorm_forward(T* sum, T* y, T* mean, T* rstd, const T* a, const T* r, const T* w, const T* b,
                                    int64_t n, int64_t c, double eps);

// dx (N, C) += d/dx; dw, db (C) += parameter gradients when non-null.
template <typename T>
void cpu_layernorm_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const T* mean, const T* rstd,
                            int64_t n, int64_t c);

}  // namespace mira
