// Element-wise CUDA kernels (see elementwise.h). Grid-stride loops over int64 indices.
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/elementwise.h"

namespace mira {

using namespace cuda_detail;

namespace {

__global__ void k_embedding_forward(float* out, const int32_t* ids, const float* wte, const float* wpe, int64_t bt,
                                    int64_t t, int64_t c) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < bt * c; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = e / c, j = e % c;
    out[e] = wte[(int64_t)ids[i] * c + j] + wpe[(i % t) * c + j];
  }
}

__global__ void k_embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* ids, int64_t bt,
                                     int64_t t, int64_t c) {
  const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (j >= c) return;
  for (int64_t i = 0; i < bt; ++i) {  // tokens in order: the CPU kernel's order for every element
    const float d = dout[i * c + j];
    dwte[(int64_t)ids[i] * c + j] += d;
    dwpe[(i % t) * c + j] += d;
  }
}

__global__ void k_bias_broadcast(float* y, const float* bias, int64_t n, int64_t m) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n * m; e += (int64_t)gridDim.x * blockDim.x)
    y[e] = bias[e % m];
}

__global__ void k_add(float* y, const float* a, const float* b, int64_t n) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x)
    y[e] = a[e] + b[e];
}

__global__ void k_scale(float* y, int64_t n, float f) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x)
    y[e] *= f;
}

// One thread per group of 4 mask indices j = 4g .. 4g+3 (one rng_at draw holds their 4 16-bit
// lanes, dropout_keep_dev's rule): a quarter of the hashing of one draw per element, which made this
// kernel 6x slower than its memory traffic on an H200. Indices outside [base, base + n) are skipped.
__global__ void k_dropout(float* y, const float* x, int64_t n, float keep_scale, uint32_t threshold, uint64_t stream,
                          uint64_t base, bool accumulate) {
  const uint64_t g0 = base >> 2, groups = ((base + (uint64_t)n + 3) >> 2) - g0;
  for (uint64_t gi = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; gi < groups;
       gi += (uint64_t)gridDim.x * blockDim.x) {
    const uint64_t g = g0 + gi;
    const uint64_t bits = rng_at(stream, g);
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const uint64_t j = 4 * g + (uint64_t)q;
      if (j < base || j >= base + (uint64_t)n) continue;
      const int64_t e = (int64_t)(j - base);
      const bool keep = ((bits >> (16 * q)) & 0xFFFFu) >= threshold;
      // Round-to-nearest intrinsics: nvcc may contract x * keep_scale + y into one FMA (the CPU rounds
      // the product first), which would break the bitwise equality with cpu_dropout.
      const float val = keep ? __fmul_rn(x[e], keep_scale) : 0.0f;
      y[e] = accumulate ? __fadd_rn(y[e], val) : val;
    }
  }
}

// One thread per mask word (32 elements, 8 draws).
__global__ void k_dropout_mask(uint32_t* bits, int64_t n, uint32_t threshold, uint64_t stream, uint64_t base) {
  const int64_t words = (n + 31) / 32;
  for (int64_t w = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; w < words; w += (int64_t)gridDim.x * blockDim.x) {
    uint32_t m = 0;
    uint64_t group = ~0ull, draw = 0;
    for (int e = 0; e < 32 && 32 * w + e < n; ++e) {
      const uint64_t j = base + (uint64_t)(32 * w + e);
      if ((j >> 2) != group) group = j >> 2, draw = rng_at(stream, group);
      m |= (uint32_t)(((draw >> (16 * (j & 3))) & 0xFFFFu) >= threshold) << e;
    }
    bits[w] = m;
  }
}

__global__ void k_dropout_apply_mask(float* y, const float* x, const uint32_t* bits, int64_t n, float keep_scale,
                                     bool accumulate) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const float val = (bits[e >> 5] >> (e & 31)) & 1u ? __fmul_rn(x[e], keep_scale) : 0.0f;  // as k_dropout
    y[e] = accumulate ? __fadd_rn(y[e], val) : val;
  }
}

__global__ void k_colsum_accumulate(float* db, const float* dy, int64_t n, int64_t m) {
  const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (j >= m) return;
  float acc = 0.0f;
  for (int64_t i = 0; i < n; ++i) acc += dy[i * m + j];  // coalesced across the warp's columns
  db[j] += acc;
}

// Grid-stride launches cap the grid: enough blocks to fill an H100 (132 SMs x 16 blocks of 256).
constexpr int64_t MAX_GRID = 132 * 16;
unsigned capped(int64_t n) { return (unsigned)std::min<int64_t>(grid_for(n), MAX_GRID); }

}  // namespace

CudaStatus cuda_embedding_forward(cudaStream_t s, float* out, const int32_t* ids, const float* wte, const float* wpe,
                                  int64_t b, int64_t t, int64_t c) {
  k_embedding_forward<<<capped(b * t * c), BLOCK, 0, s>>>(out, ids, wte, wpe, b * t, t, c);
  return cuda_status_launch("embedding_forward kernel");
}

CudaStatus cuda_embedding_backward(cudaStream_t s, float* dwte, float* dwpe, const float* dout, const int32_t* ids,
                                   int64_t b, int64_t t, int64_t c) {
  k_embedding_backward<<<grid_for(c), BLOCK, 0, s>>>(dwte, dwpe, dout, ids, b * t, t, c);
  return cuda_status_launch("embedding_backward kernel");
}

CudaStatus cuda_bias_broadcast(cudaStream_t s, float* y, const float* bias, int64_t n, int64_t m) {
  k_bias_broadcast<<<capped(n * m), BLOCK, 0, s>>>(y, bias, n, m);
  return cuda_status_launch("bias_broadcast kernel");
}

CudaStatus cuda_add(cudaStream_t s, float* y, const float* a, const float* b, int64_t n) {
  k_add<<<capped(n), BLOCK, 0, s>>>(y, a, b, n);
  return cuda_status_launch("add kernel");
}

CudaStatus cuda_scale(cudaStream_t s, float* y, int64_t n, float f) {
  k_scale<<<capped(n), BLOCK, 0, s>>>(y, n, f);
  return cuda_status_launch("scale kernel");
}

CudaStatus cuda_dropout(cudaStream_t s, float* y, const float* x, int64_t n, float p, uint32_t threshold,
                        uint64_t stream, uint64_t base, bool accumulate) {
  const float keep_scale = 1.0f / (1.0f - p);  // as cpu_dropout: computed in float
  k_dropout<<<capped((n + 7) / 4), BLOCK, 0, s>>>(y, x, n, keep_scale, threshold, stream, base, accumulate);
  return cuda_status_launch("dropout kernel");
}

CudaStatus cuda_dropout_mask(cudaStream_t s, uint32_t* bits, int64_t n, uint32_t threshold, uint64_t stream,
                             uint64_t base) {
  if (n <= 0) return CudaStatus{};
  k_dropout_mask<<<capped((n + 31) / 32), BLOCK, 0, s>>>(bits, n, threshold, stream, base);
  return cuda_status_launch("dropout mask kernel");
}

CudaStatus cuda_dropout_apply_mask(cudaStream_t s, float* y, const float* x, const uint32_t* bits, int64_t n,
                                   float keep_scale, bool accumulate) {
  if (n <= 0) return CudaStatus{};
  k_dropout_apply_mask<<<capped(n), BLOCK, 0, s>>>(y, x, bits, n, keep_scale, accumulate);
  return cuda_status_launch("dropout apply-mask kernel");
}

CudaStatus cuda_colsum_accumulate(cudaStream_t s, float* db, const float* dy, int64_t n, int64_t m) {
  k_colsum_accumulate<<<grid_for(m), BLOCK, 0, s>>>(db, dy, n, m);
  return cuda_status_launch("colsum_accumulate kernel");
}

}  // namespace mira
