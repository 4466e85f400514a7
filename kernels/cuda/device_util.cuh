// Device-side helpers shared by the CUDA kernels: launch geometry, deterministic warp/block
// reductions (a fixed shuffle tree, so a sum is the same bits on every run for the same shape) and
// the dropout keep rule of kernels/cpu/elementwise.h on the device.
#pragma once
#include <cstdint>

#include "src/runtime/rng.h"  // rng_at is __host__ __device__ under nvcc

namespace mira {
namespace cuda_detail {

constexpr int BLOCK = 256;  // threads per block for element-wise kernels: a multiple of 32, good occupancy
constexpr int WARP = 32;

// Whether p may be read or written as float4 / int4 (16-byte aligned), for the vectorised paths.
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

inline unsigned grid_for(int64_t n, int block = BLOCK) {
  int64_t g = (n + block - 1) / block;
  if (g < 1) g = 1;
  return (unsigned)g;  // callers keep n below 2^31 * BLOCK (checked by the backend's size checks)
}

// Sum / max over the 32 lanes of a warp with a fixed butterfly: every lane gets the same result and
// the order of additions depends only on the lane layout, never on timing.
__device__ inline float warp_sum(float v) {
  for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float warp_max(float v) {
  for (int o = WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum / max (blockDim.x a multiple of 32, at most 1024): warp results through shared
// memory, then warp 0 combines them in warp order. All threads get the result.
__device__ inline float block_sum(float v) {
  __shared__ float part[32];
  __shared__ float total;
  const int lane = threadIdx.x % WARP, w = threadIdx.x / WARP, nw = blockDim.x / WARP;
  v = warp_sum(v);
  __syncthreads();  // part/total may still be read by a previous call
  if (lane == 0) part[w] = v;
  __syncthreads();
  if (w == 0) {
    float s = lane < nw ? part[lane] : 0.0f;
    s = warp_sum(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}
__device__ inline float block_max(float v) {
  __shared__ float part[32];
  __shared__ float total;
  const int lane = threadIdx.x % WARP, w = threadIdx.x / WARP, nw = blockDim.x / WARP;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) part[w] = v;
  __syncthreads();
  if (w == 0) {
    float s = lane < nw ? part[lane] : -INFINITY;
    s = warp_max(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

// kernels/cpu/elementwise.h, dropout_keep: element j is kept when its 16-bit lane of
// rng_at(stream, j / 4) is >= threshold (threshold = dropout_threshold(p), computed on the host).
__device__ inline bool dropout_keep_dev(uint64_t stream, uint64_t j, uint32_t threshold) {
  return ((rng_at(stream, j >> 2) >> (16 * (j & 3))) & 0xFFFFu) >= threshold;
}

}  // namespace cuda_detail
}  // namespace mira
