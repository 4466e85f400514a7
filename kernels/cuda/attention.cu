// Causal attention forward/backward (see attention.h).
#include "kernels/cuda/attention.h"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/gemm.h"

namespace mira {

using namespace cuda_detail;

namespace {

constexpr int ROWS_PER_BLOCK = 8;  // warps (rows) per block in the row kernels: 256 threads

// Rows r of the (rows, T) matrix p, r = bh*T + i: causal softmax in place (j <= i), zeros above.
__global__ void k_causal_softmax(float* p, int64_t rows, int64_t t) {
  const int64_t r = blockIdx.x * (int64_t)ROWS_PER_BLOCK + threadIdx.x / WARP;
  const int lane = threadIdx.x % WARP;
  if (r >= rows) return;
  const int64_t i = r % t;
  float* row = p + r * t;
  float mx = -INFINITY;
  for (int64_t j = lane; j <= i; j += WARP) mx = fmaxf(mx, row[j]);
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int64_t j = lane; j <= i; j += WARP) {
    const float e = expf(row[j] - mx);
    row[j] = e;
    sum += e;
  }
  const float inv = 1.0f / warp_sum(sum);
  for (int64_t j = lane; j <= i; j += WARP) row[j] *= inv;
  for (int64_t j = i + 1 + lane; j < t; j += WARP) row[j] = 0.0f;
}

// out[e] = keep(base + e) ? in[e] * keep_scale : 0 over the whole (B, H, T, T) array (in may be out).
__global__ void k_dropout_mask(float* out, const float* in, int64_t n, float keep_scale, uint32_t threshold,
                               uint64_t stream, uint64_t base) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x)
    out[e] = dropout_keep_dev(stream, base + (uint64_t)e, threshold) ? in[e] * keep_scale : 0.0f;
}

// dp (rows, T) in place: dS = P * (dP - sum_j P dP) * scale on j <= i, zero above.
__global__ void k_softmax_backward(float* dp, const float* p, int64_t rows, int64_t t, float scale) {
  const int64_t r = blockIdx.x * (int64_t)ROWS_PER_BLOCK + threadIdx.x / WARP;
  const int lane = threadIdx.x % WARP;
  if (r >= rows) return;
  const int64_t i = r % t;
  const float* pr = p + r * t;
  float* dr = dp + r * t;
  float dot = 0.0f;
  for (int64_t j = lane; j <= i; j += WARP) dot += pr[j] * dr[j];
  dot = warp_sum(dot);
  for (int64_t j = lane; j <= i; j += WARP) dr[j] = pr[j] * (dr[j] - dot) * scale;
  for (int64_t j = i + 1 + lane; j < t; j += WARP) dr[j] = 0.0f;
}

constexpr int64_t MAX_GRID = 132 * 16;  // grid-stride cap: 16 blocks of 256 per H100 SM

CudaStatus mask(cudaStream_t s, float* out, const float* in, int64_t n, const CudaDropout& d) {
  const float keep_scale = 1.0f / (1.0f - d.p);  // as the CPU kernel: in float
  k_dropout_mask<<<(unsigned)std::min<int64_t>(grid_for(n), MAX_GRID), BLOCK, 0, s>>>(out, in, n, keep_scale,
                                                                                      d.threshold, d.stream, d.base);
  return cuda_status_launch("attention dropout mask kernel");
}

}  // namespace

#define MIRA_CUDA_TRY(expr)          \
  do {                               \
    CudaStatus st_ = (expr);         \
    if (!st_.ok()) return st_;       \
  } while (0)

CudaStatus cuda_attention_forward(cublasHandle_t h, cudaStream_t s, float* out, float* att, const float* qkv,
                                  int64_t b, int64_t t, int64_t c, int64_t nh, float* scratch,
                                  const CudaDropout& drop) {
  const int64_t hd = c / nh, tt = t * t;
  const float scale = 1.0f / sqrtf((float)hd);  // as the CPU: (T)1 / std::sqrt((T)hd)
  for (int64_t bi = 0; bi < b; ++bi) {  // S = scale * q k^T for every head of batch row bi
    const float* q = qkv + bi * t * 3 * c;
    MIRA_CUDA_TRY(cuda_gemm_strided(h, false, true, t, t, hd, scale, q, 3 * c, hd, q + c, 3 * c, hd, 0.0f,
                                    att + bi * nh * tt, t, tt, nh));
  }
  const int64_t rows = b * nh * t;
  k_causal_softmax<<<grid_for(rows, ROWS_PER_BLOCK), ROWS_PER_BLOCK * WARP, 0, s>>>(att, rows, t);
  MIRA_CUDA_TRY(cuda_status_launch("attention causal softmax kernel"));
  const float* pv = att;
  if (drop.p > 0.0f) {
    MIRA_CUDA_TRY(mask(s, scratch, att, b * nh * tt, drop));
    pv = scratch;
  }
  for (int64_t bi = 0; bi < b; ++bi) {  // out = P v, written into the head's columns of (B, T, C)
    const float* v = qkv + bi * t * 3 * c + 2 * c;
    MIRA_CUDA_TRY(cuda_gemm_strided(h, false, false, t, hd, t, 1.0f, pv + bi * nh * tt, t, tt, v, 3 * c, hd, 0.0f,
                                    out + bi * t * c, c, hd, nh));
  }
  return CudaStatus{};
}

CudaStatus cuda_attention_backward(cublasHandle_t h, cudaStream_t s, float* dqkv, float* scratch, const float* dout,
                                   const float* qkv, const float* att, int64_t b, int64_t t, int64_t c, int64_t nh,
                                   const CudaDropout& drop) {
  const int64_t hd = c / nh, tt = t * t;
  const float scale = 1.0f / sqrtf((float)hd);
  const bool dropping = drop.p > 0.0f;
  const float* pd = att;
  if (dropping) {  // the forward's dropped probabilities, regenerated from the counter-based mask
    MIRA_CUDA_TRY(mask(s, scratch, att, b * nh * tt, drop));
    pd = scratch;
  }
  for (int64_t bi = 0; bi < b; ++bi) {  // dv = Pd^T dO
    MIRA_CUDA_TRY(cuda_gemm_strided(h, true, false, t, hd, t, 1.0f, pd + bi * nh * tt, t, tt, dout + bi * t * c, c, hd,
                                    0.0f, dqkv + bi * t * 3 * c + 2 * c, 3 * c, hd, nh));
  }
  for (int64_t bi = 0; bi < b; ++bi) {  // dP = dO v^T (overwrites the dropped probabilities)
    MIRA_CUDA_TRY(cuda_gemm_strided(h, false, true, t, t, hd, 1.0f, dout + bi * t * c, c, hd,
                                    qkv + bi * t * 3 * c + 2 * c, 3 * c, hd, 0.0f, scratch + bi * nh * tt, t, tt, nh));
  }
  if (dropping) MIRA_CUDA_TRY(mask(s, scratch, scratch, b * nh * tt, drop));
  const int64_t rows = b * nh * t;
  k_softmax_backward<<<grid_for(rows, ROWS_PER_BLOCK), ROWS_PER_BLOCK * WARP, 0, s>>>(scratch, att, rows, t, scale);
  MIRA_CUDA_TRY(cuda_status_launch("attention softmax backward kernel"));
  for (int64_t bi = 0; bi < b; ++bi) {  // dq = dS k ; dk = dS^T q
    const float* q = qkv + bi * t * 3 * c;
    float* dq = dqkv + bi * t * 3 * c;
    MIRA_CUDA_TRY(cuda_gemm_strided(h, false, false, t, hd, t, 1.0f, scratch + bi * nh * tt, t, tt, q + c, 3 * c, hd,
                                    0.0f, dq, 3 * c, hd, nh));
    MIRA_CUDA_TRY(cuda_gemm_strided(h, true, false, t, hd, t, 1.0f, scratch + bi * nh * tt, t, tt, q, 3 * c, hd, 0.0f,
                                    dq + c, 3 * c, hd, nh));
  }
  return CudaStatus{};
}

}  // namespace mira
