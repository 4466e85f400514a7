// GELU with the tanh approximation (HF "gelu_new"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// Element-wise, so thread-count invariant.
#pragma once
#include <cstdint>

namespace mira {

template <typename T>
void cpu_gelu_forward(T* y, const T* x, int64_t n);

// dx = dy * gelu'(x)  (overwrites dx; dx may alias dy).
template <typename T>
void cpu_gelu_backward(T* dx, const T* dy, const T* x, int64_t n);

// The float functions above run 16-lane AVX-512 loops when the CPU has AVX-512F, else the portable
// loops below (which GCC vectorises for SSE2); both give the same bits (tested).
bool cpu_gelu_avx512_available();
template <typename T>
void cpu_gelu_forward_portable(T* y, const T* x, int64_t n);
template <typename T>
void cpu_gelu_backward_portable(T* dx, const T* dy, const T* x, int64_t n);

}  // namespace mira
