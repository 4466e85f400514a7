// bfloat16 conversions (see bf16.h): grid-stride element-wise kernels.
#include "kernels/cuda/bf16.h"
#include "kernels/cuda/device_util.cuh"

namespace mira {

using namespace cuda_detail;

namespace {

constexpr int64_t MAX_GRID = 132 * 16;  // grid-stride cap: 16 blocks of 256 per H100 SM
unsigned capped(int64_t n) { return (unsigned)std::min<int64_t>(grid_for(n), MAX_GRID); }

__global__ void k_freeze_bf16(float* w, __nv_bfloat16* out, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const __nv_bfloat16 h = __float2bfloat16_rn(w[i]);
    out[i] = h;
    w[i] = __bfloat162float(h);
  }
}

__global__ void k_convert_bf16_2d(__nv_bfloat16* dst, const float* src, int64_t rows, int64_t cols, int64_t ld) {
  const int64_t n = rows * cols;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x)
    dst[e] = __float2bfloat16_rn(src[(e / cols) * ld + e % cols]);
}

__global__ void k_widen_bf16(float* dst, const __nv_bfloat16* src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = __bfloat162float(src[i]);
}

}  // namespace

CudaStatus cuda_widen_bf16(cudaStream_t s, float* dst, const __nv_bfloat16* src, int64_t n) {
  if (n <= 0) return CudaStatus{};
  k_widen_bf16<<<capped(n), BLOCK, 0, s>>>(dst, src, n);
  return cuda_status_launch("widen bf16 kernel");
}

CudaStatus cuda_freeze_bf16(cudaStream_t s, float* w, __nv_bfloat16* out, int64_t n) {
  if (n <= 0) return CudaStatus{};
  k_freeze_bf16<<<capped(n), BLOCK, 0, s>>>(w, out, n);
  return cuda_status_launch("freeze bf16 kernel");
}

CudaStatus cuda_convert_bf16_2d(cudaStream_t s, __nv_bfloat16* dst, const float* src, int64_t rows, int64_t cols,
                                int64_t ld_src) {
  if (rows <= 0 || cols <= 0) return CudaStatus{};
  k_convert_bf16_2d<<<capped(rows * cols), BLOCK, 0, s>>>(dst, src, rows, cols, ld_src);
  return cuda_status_launch("convert bf16 kernel");
}

}  // namespace mira
