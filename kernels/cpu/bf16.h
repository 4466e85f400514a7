// bfloat16 rounding on the host, for the bf16 frozen-weight mode (Backend::freeze_weights): the CPU
// backend keeps bf16 values in fp32 storage, so a bf16 x bf16 product is exact in fp32 and its GEMM
// differs from a tensor-core bf16 GEMM with fp32 accumulation only in the fp32 summation order.
#pragma once
#include <cstdint>
#include <cstring>

namespace mira {

// x rounded to the nearest bfloat16 (ties to even), returned as a float: the upper 16 bits of the
// float kept. Overflow goes to +-inf as in __float2bfloat16_rn; a NaN stays a (quiet) NaN.
inline float bf16_round(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu) != 0)
    u |= 0x00400000u;  // NaN: set the quiet bit so that truncation cannot turn it into an infinity
  else
    u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest, ties to even
  u &= 0xFFFF0000u;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

// dst[i] = bf16_round(src[i]) for n elements (dst may equal src); OpenMP over fixed blocks.
void cpu_round_bf16(float* dst, const float* src, int64_t n);

// A rows x cols block with leading dimension ld_src, rounded into dst (dense, leading dimension cols).
void cpu_round_bf16_2d(float* dst, const float* src, int64_t rows, int64_t cols, int64_t ld_src);

// bf16 storage (the upper 16 bits of an fp32 value, as uint16_t), for activations kept in bf16
// (Backend DAct): narrow = bf16_round's bits (ties to even), widen = exact.
inline uint16_t bf16_bits(float x) {
  const float r = bf16_round(x);
  uint32_t u;
  std::memcpy(&u, &r, 4);
  return (uint16_t)(u >> 16);
}
inline float bf16_value(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}
void cpu_narrow_bf16(uint16_t* dst, const float* src, int64_t n);  // dst[i] = bf16_bits(src[i])
void cpu_widen_bf16(float* dst, const uint16_t* src, int64_t n);   // dst[i] = bf16_value(src[i])

}  // namespace mira
