// LayerNorm forward/backward kernels (see layernorm.h).
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/layernorm.h"

namespace mira {

using namespace cuda_detail;

namespace {

constexpr int ROWS_PER_BLOCK = 8;   // warps per block in the row kernels (256 threads)
constexpr int64_t PARAM_ROWS = 256;  // rows per partial in the parameter-gradient column sums

// kResidual: x = a + r is formed in the first pass and written to `sum` (each lane later reads back
// only the elements it wrote, so no synchronisation is needed); otherwise x is read.
__device__ inline void store_y(float* p, float v) { *p = v; }
__device__ inline void store_y(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// TY: the output's storage (fp32, or bf16 = the fp32 value rounded to nearest even).
template <bool kResidual, typename TY>
__global__ void k_ln_forward(TY* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                             int64_t n, int64_t c, float eps, float* sum, const float* a, const float* res) {
  const int64_t row = blockIdx.x * (int64_t)ROWS_PER_BLOCK + threadIdx.x / WARP;
  const int lane = threadIdx.x % WARP;
  if (row >= n) return;  // whole warps leave together: the shuffles below stay full-warp
  if (kResidual) {
    x = sum;
    for (int64_t j = lane; j < c; j += WARP) sum[row * c + j] = __fadd_rn(a[row * c + j], res[row * c + j]);
  }
  const float* xi = x + row * c;
  float s = 0.0f;
  for (int64_t j = lane; j < c; j += WARP) s += xi[j];
  const float m = warp_sum(s) / (float)c;
  float v = 0.0f;
  for (int64_t j = lane; j < c; j += WARP) v += (xi[j] - m) * (xi[j] - m);
  v = warp_sum(v) / (float)c;
  const float r = 1.0f / sqrtf(v + eps);
  TY* yi = y + row * c;
  for (int64_t j = lane; j < c; j += WARP) store_y(yi + j, (xi[j] - m) * r * w[j] + b[j]);
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

__global__ void k_ln_backward_dx(float* dx, const float* dy, const float* x, const float* w, const float* mean,
                                 const float* rstd, int64_t n, int64_t c) {
  const int64_t row = blockIdx.x * (int64_t)ROWS_PER_BLOCK + threadIdx.x / WARP;
  const int lane = threadIdx.x % WARP;
  if (row >= n) return;
  const float* dyi = dy + row * c;
  const float* xi = x + row * c;
  const float mi = mean[row], ri = rstd[row];
  float dm = 0.0f, dnm = 0.0f;
  for (int64_t j = lane; j < c; j += WARP) {
    const float xh = (xi[j] - mi) * ri;
    const float dn = w[j] * dyi[j];
    dm += dn;
    dnm += dn * xh;
  }
  dm = warp_sum(dm) / (float)c;
  dnm = warp_sum(dnm) / (float)c;
  float* dxi = dx + row * c;
  for (int64_t j = lane; j < c; j += WARP) {
    const float xh = (xi[j] - mi) * ri;
    dxi[j] += (w[j] * dyi[j] - dm - xh * dnm) * ri;
  }
}

// partial (nb, 2, C): per 256-row block, column sums of dy * xhat and of dy (rows in order).
// Row blocks stride over gridDim.y (at most 65535), so any n is covered.
__global__ void k_ln_param_partials(float* partial, const float* dy, const float* x, const float* mean,
                                    const float* rstd, int64_t n, int64_t c, int64_t nb) {
  const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (j >= c) return;
  for (int64_t blk = blockIdx.y; blk < nb; blk += gridDim.y) {
    const int64_t i0 = blk * PARAM_ROWS, i1 = min(n, i0 + PARAM_ROWS);
    float sw = 0.0f, sb = 0.0f;
    for (int64_t i = i0; i < i1; ++i) {
      const float xh = (x[i * c + j] - mean[i]) * rstd[i];
      sw += dy[i * c + j] * xh;
      sb += dy[i * c + j];
    }
    partial[(blk * 2) * c + j] = sw;
    partial[(blk * 2 + 1) * c + j] = sb;
  }
}

__global__ void k_ln_param_combine(float* dw, float* db, const float* partial, int64_t nb, int64_t c) {
  const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (j >= c) return;
  for (int64_t blk = 0; blk < nb; ++blk) {  // block order, as the CPU combines its blocks
    if (dw) dw[j] += partial[(blk * 2) * c + j];
    if (db) db[j] += partial[(blk * 2 + 1) * c + j];
  }
}

int64_t param_blocks(int64_t n) { return std::max<int64_t>(1, (n + PARAM_ROWS - 1) / PARAM_ROWS); }

template <typename TY>
CudaStatus layernorm_forward(cudaStream_t s, TY* y, float* mean, float* rstd, const float* x, const float* w,
                             const float* b, int64_t n, int64_t c, double eps) {
  if (n == 0) return CudaStatus{};
  k_ln_forward<false, TY><<<grid_for(n, ROWS_PER_BLOCK), ROWS_PER_BLOCK * WARP, 0, s>>>(
      y, mean, rstd, x, w, b, n, c, (float)eps, nullptr, nullptr, nullptr);
  return cuda_status_launch("layernorm_forward kernel");
}

template <typename TY>
CudaStatus residual_layernorm_forward(cudaStream_t s, float* sum, TY* y, float* mean, float* rstd, const float* a,
                                      const float* r, const float* w, const float* b, int64_t n, int64_t c,
                                      double eps) {
  if (n == 0) return CudaStatus{};
  k_ln_forward<true, TY><<<grid_for(n, ROWS_PER_BLOCK), ROWS_PER_BLOCK * WARP, 0, s>>>(
      y, mean, rstd, nullptr, w, b, n, c, (float)eps, sum, a, r);
  return cuda_status_launch("residual_layernorm_forward kernel");
}

}  // namespace

CudaStatus cuda_layernorm_forward(cudaStream_t s, float* y, float* mean, float* rstd, const float* x, const float* w,
                                  const float* b, int64_t n, int64_t c, double eps) {
  return layernorm_forward(s, y, mean, rstd, x, w, b, n, c, eps);
}
CudaStatus cuda_layernorm_forward(cudaStream_t s, __nv_bfloat16* y, float* mean, float* rstd, const float* x,
                                  const float* w, const float* b, int64_t n, int64_t c, double eps) {
  return layernorm_forward(s, y, mean, rstd, x, w, b, n, c, eps);
}
CudaStatus cuda_residual_layernorm_forward(cudaStream_t s, float* sum, float* y, float* mean, float* rstd,
                                           const float* a, const float* r, const float* w, const float* b, int64_t n,
                                           int64_t c, double eps) {
  return residual_layernorm_forward(s, sum, y, mean, rstd, a, r, w, b, n, c, eps);
}
CudaStatus cuda_residual_layernorm_forward(cudaStream_t s, float* sum, __nv_bfloat16* y, float* mean, float* rstd,
                                           const float* a, const float* r, const float* w, const float* b, int64_t n,
                                           int64_t c, double eps) {
  return residual_layernorm_forward(s, sum, y, mean, rstd, a, r, w, b, n, c, eps);
}

int64_t cuda_layernorm_backward_scratch(int64_t n, int64_t c) { return param_blocks(n) * 2 * c; }

CudaStatus cuda_layernorm_backward(cudaStream_t s, float* dx, float* dw, float* db, const float* dy, const float* x,
                                   const float* w, const float* mean, const float* rstd, int64_t n, int64_t c,
                                   float* scratch) {
  if (n == 0) return CudaStatus{};
  k_ln_backward_dx<<<grid_for(n, ROWS_PER_BLOCK), ROWS_PER_BLOCK * WARP, 0, s>>>(dx, dy, x, w, mean, rstd, n, c);
  CudaStatus st = cuda_status_launch("layernorm_backward dx kernel");
  if (!st.ok() || (dw == nullptr && db == nullptr)) return st;
  const int64_t nb = param_blocks(n);
  const unsigned gy = (unsigned)std::min<int64_t>(nb, 65535);  // gridDim.y limit; the kernel strides over the rest
  k_ln_param_partials<<<dim3(grid_for(c), gy), BLOCK, 0, s>>>(scratch, dy, x, mean, rstd, n, c, nb);
  st = cuda_status_launch("layernorm_backward parameter partials kernel");
  if (!st.ok()) return st;
  k_ln_param_combine<<<grid_for(c), BLOCK, 0, s>>>(dw, db, scratch, nb, c);
  return cuda_status_launch("layernorm_backward parameter combine kernel");
}

}  // namespace mira
