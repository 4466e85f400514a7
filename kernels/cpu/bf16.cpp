// bfloat16 rounding (see bf16.h). Element-wise: the same bits for any thread count.
#include "kernels/cpu/bf16.h"

namespace mira {

void cpu_round_bf16(float* dst, const float* src, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_round(src[i]);
}

void cpu_round_bf16_2d(float* dst, const float* src, int64_t rows, int64_t cols, int64_t ld_src) {
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[i * cols + j] = bf16_round(src[i * ld_src + j]);
}

void cpu_narrow_bf16(uint16_t* dst, const float* src, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_bits(src[i]);
}

void cpu_widen_bf16(float* dst, const uint16_t* src, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_value(src[i]);
}

}  // namespace mira
