// Fused LM head + cross-entropy (see lm_head_ce.h).
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/lm_head_ce.h"

namespace mira {

using namespace cuda_detail;

namespace {

constexpr int CE_THREADS = 1024;  // one block per row: 50257 logits = 49 per thread for GPT-2

__global__ void k_gather_rows(float* hs, const float* hid, const int32_t* rows, int64_t m, int64_t c) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < m * c; e += (int64_t)gridDim.x * blockDim.x)
    hs[e] = hid[(int64_t)rows[e / c] * c + e % c];
}

__global__ void k_scatter_rows(float* dh, const float* dhs, const int32_t* rows, int64_t m, int64_t c) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < m * c; e += (int64_t)gridDim.x * blockDim.x)
    dh[(int64_t)rows[e / c] * c + e % c] = dhs[e];
}

// Hidden rows gathered straight into bf16 (the bf16 mode's logits GEMM operand).
__global__ void k_gather_rows_bf16(__nv_bfloat16* hs, const float* hid, const int32_t* rows, int64_t m, int64_t c) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < m * c; e += (int64_t)gridDim.x * blockDim.x)
    hs[e] = __float2bfloat16_rn(hid[(int64_t)rows[e / c] * c + e % c]);
}

// Chunk row i (global row rows[i]; logits rows have stride ld >= v): the loss and, when grad, the
// dlogits weight * (softmax - onehot): in place in fp32 when dl16 is null, else rounded to bf16 into
// dl16 (stride ld; the bf16 mode's dh GEMM operand, computed with the same fp32 operations; its pad
// columns v..ld-1 are written as zeros so a GEMM over the padded width adds nothing). Two passes over
// the row: an online max + sum of exponentials (each thread keeps its running max and rescales its
// sum when the max grows; the block then combines the threads' pairs), then the gradient.
__global__ void k_ce_rows(float* logits, __nv_bfloat16* dl16, float* loss_rows, const int32_t* rows,
                          const int32_t* targets, const float* weight, int64_t v, int64_t ld, bool grad) {
  const int64_t i = blockIdx.x;
  const int64_t row = rows[i];
  float* l = logits + i * ld;
  const int32_t tgt = targets[row];
  const float lt = l[tgt];  // read before any thread overwrites the row (block_max synchronises)
  float tm = -INFINITY, ts = 0.0f;  // this thread's running max and sum of exp(l - tm)
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
    const float x = l[j];
    if (x > tm) {
      ts = ts * expf(tm - x) + 1.0f;  // expf(-inf) = 0 on the first element
      tm = x;
    } else {
      ts += expf(x - tm);
    }
  }
  const float mx = block_max(tm);
  const float sum = block_sum(tm == -INFINITY ? 0.0f : ts * expf(tm - mx));
  if (threadIdx.x == 0) loss_rows[row] = mx + logf(sum) - lt;
  if (!grad) return;
  const float w = weight[row];
  const float ws = w / sum;
  if (dl16) {  // the same for every thread of the block: no divergent barrier below
    __nv_bfloat16* d = dl16 + i * ld;
    for (int64_t j = threadIdx.x; j < ld; j += blockDim.x) {
      float g = 0.0f;
      if (j < v) {
        g = __fmul_rn(expf(l[j] - mx), ws);  // the fp32 path's l[j] = e * ws, then l[tgt] -= w (no FMA contraction)
        if (j == tgt) g = __fsub_rn(g, w);
      }
      d[j] = __float2bfloat16_rn(g);
    }
    return;
  }
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) l[j] = __fmul_rn(expf(l[j] - mx), ws);
  __syncthreads();  // the thread owning l[tgt] has scaled it
  if (threadIdx.x == 0) l[tgt] = __fsub_rn(l[tgt], w);
}

constexpr int64_t MAX_GRID = 132 * 16;  // grid-stride cap: 16 blocks of 256 per H100 SM
unsigned capped(int64_t n) { return (unsigned)std::min<int64_t>(grid_for(n), MAX_GRID); }

// loss_rows (N) and, when non-null, dh (N, C) zeroed: skipped rows keep 0.
CudaStatus zero_outputs(cudaStream_t s, float* loss_rows, float* dh, int64_t n, int64_t c) {
  CudaStatus st;
  st.step = "zero loss_rows";
  if ((st.cuda = cudaMemsetAsync(loss_rows, 0, sizeof(float) * (size_t)n, s)) != cudaSuccess) return st;
  if (dh) {
    st.step = "zero dh";
    if ((st.cuda = cudaMemsetAsync(dh, 0, sizeof(float) * (size_t)(n * c), s)) != cudaSuccess) return st;
  }
  return CudaStatus{};
}

}  // namespace

CudaStatus cuda_lm_head_ce(cublasHandle_t h, cudaStream_t s, float* loss_rows, float* dh, float* dwte, const float* hid,
                           const float* wte, const int32_t* targets, const float* weight, const int32_t* rows,
                           int64_t n_active, int64_t n, int64_t c, int64_t v, float* scratch) {
  CudaStatus st = zero_outputs(s, loss_rows, dh, n, c);
  if (!st.ok()) return st;
  const int64_t ld = cuda_lm_head_ce_ld(v);
  float* logits = scratch;                   // (CUDA_CE_CHUNK, V) with row stride ld
  float* hs = scratch + CUDA_CE_CHUNK * ld;  // (CUDA_CE_CHUNK, C) gathered hidden rows
  float* dhs = hs + CUDA_CE_CHUNK * c;      // (CUDA_CE_CHUNK, C)
  const bool grad = dh != nullptr || dwte != nullptr;
  for (int64_t r0 = 0; r0 < n_active; r0 += CUDA_CE_CHUNK) {
    const int64_t m = std::min<int64_t>(CUDA_CE_CHUNK, n_active - r0);
    k_gather_rows<<<capped(m * c), BLOCK, 0, s>>>(hs, hid, rows + r0, m, c);
    if (!(st = cuda_status_launch("lm_head_ce gather kernel")).ok()) return st;
    if (!(st = cuda_gemm(h, false, true, m, v, c, 1.0f, hs, c, wte, c, 0.0f, logits, ld)).ok()) return st;
    k_ce_rows<<<(unsigned)m, CE_THREADS, 0, s>>>(logits, nullptr, loss_rows, rows + r0, targets, weight, v, ld, grad);
    if (!(st = cuda_status_launch("lm_head_ce row kernel")).ok()) return st;
    if (dwte && !(st = cuda_gemm(h, true, false, v, c, m, 1.0f, logits, ld, hs, c, 1.0f, dwte, c)).ok()) return st;
    if (dh) {
      if (!(st = cuda_gemm(h, false, false, m, c, v, 1.0f, logits, ld, wte, c, 0.0f, dhs, c)).ok()) return st;
      k_scatter_rows<<<capped(m * c), BLOCK, 0, s>>>(dh, dhs, rows + r0, m, c);
      if (!(st = cuda_status_launch("lm_head_ce scatter kernel")).ok()) return st;
    }
  }
  return CudaStatus{};
}

CudaStatus cuda_lm_head_ce_bf16(cublasHandle_t h16, cudaStream_t s, float* loss_rows, float* dh, const float* hid,
                                const __nv_bfloat16* wte16, const int32_t* targets, const float* weight,
                                const int32_t* rows, int64_t n_active, int64_t n, int64_t c, int64_t v, float* scratch,
                                __nv_bfloat16* ws16) {
  CudaStatus st = zero_outputs(s, loss_rows, dh, n, c);
  if (!st.ok()) return st;
  const int64_t ld = cuda_lm_head_ce_ld(v);
  float* logits = scratch;                         // (CUDA_CE_CHUNK, ld) fp32: columns >= v are 0
  float* dhs = scratch + CUDA_CE_CHUNK * (ld + c);  // (CUDA_CE_CHUNK, C) fp32, as cuda_lm_head_ce
  __nv_bfloat16* hs16 = ws16;                      // (CUDA_CE_CHUNK, C) bf16 hidden rows
  __nv_bfloat16* dl16 = hs16 + CUDA_CE_CHUNK * c;   // (CUDA_CE_CHUNK, ld) bf16 dlogits, pad columns 0
  __nv_bfloat16* wte16p = dl16 + CUDA_CE_CHUNK * ld;  // (ld, C): wte16 and ld - v zero rows
  // Both GEMMs run over the padded vocabulary ld: with an odd V (50257) cuBLAS can only pick
  // narrow-alignment kernels (measured on an H200: 70-84 TFLOP/s, 15.7 of the step's 93 ms); with
  // ld (a multiple of 128) it takes the sm_90 tensor-core kernels. The copy (V C bf16, 77 MB for
  // GPT-2) costs tens of microseconds per call.
  st.step = "copy wte16 into its padded copy";
  if ((st.cuda = cudaMemcpyAsync(wte16p, wte16, sizeof(__nv_bfloat16) * (size_t)(v * c), cudaMemcpyDeviceToDevice,
                                 s)) != cudaSuccess)
    return st;
  st.step = "zero the padded rows of wte16";
  if ((st.cuda = cudaMemsetAsync(wte16p + v * c, 0, sizeof(__nv_bfloat16) * (size_t)((ld - v) * c), s)) != cudaSuccess)
    return st;
  const bool grad = dh != nullptr;
  for (int64_t r0 = 0; r0 < n_active; r0 += CUDA_CE_CHUNK) {
    const int64_t m = std::min<int64_t>(CUDA_CE_CHUNK, n_active - r0);
    k_gather_rows_bf16<<<capped(m * c), BLOCK, 0, s>>>(hs16, hid, rows + r0, m, c);
    if (!(st = cuda_status_launch("lm_head_ce bf16 gather kernel")).ok()) return st;
    if (!(st = cuda_gemm_bf16(h16, false, true, m, ld, c, 1.0f, hs16, c, wte16p, c, 0.0f, logits, ld)).ok()) return st;
    k_ce_rows<<<(unsigned)m, CE_THREADS, 0, s>>>(logits, grad ? dl16 : nullptr, loss_rows, rows + r0, targets, weight,
                                                 v, ld, grad);
    if (!(st = cuda_status_launch("lm_head_ce bf16 row kernel")).ok()) return st;
    if (dh) {
      if (!(st = cuda_gemm_bf16(h16, false, false, m, c, ld, 1.0f, dl16, ld, wte16p, c, 0.0f, dhs, c)).ok()) return st;
      k_scatter_rows<<<capped(m * c), BLOCK, 0, s>>>(dh, dhs, rows + r0, m, c);
      if (!(st = cuda_status_launch("lm_head_ce scatter kernel")).ok()) return st;
    }
  }
  return CudaStatus{};
}

}  // namespace mira
