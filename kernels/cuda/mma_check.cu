// The tensor-core primitives' self-check (mma_check.h): one warp, shared-memory tiles with the
// attention kernels' padded row stride, the attention kernels' fragment addressing.
#include <cuda_bf16.h>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/mma_bf16.cuh"
#include "kernels/cuda/mma_check.h"

namespace mira {

using namespace cuda_detail;

namespace {

constexpr int LD = 40;   // row stride (bf16) of the (.., 32) tiles: 80 bytes, rows 16-byte aligned
constexpr int LDN = 24;  // row stride of the (.., 16) tiles: 48 bytes

constexpr int SMEM = (16 * LD + 16 * LD + 32 * LDN) * 2;  // bytes of the three tiles

__global__ void k_mma_selfcheck(float* d_plain, float* d_trans, const float* a, const float* b) {
  extern __shared__ float4 smem4[];  // 16-byte aligned, as ldmatrix needs
  __nv_bfloat16* As = reinterpret_cast<__nv_bfloat16*>(smem4);  // A (16, 32)
  __nv_bfloat16* Bt = As + 16 * LD;                               // B^T (16, 32): row n holds column n of B
  __nv_bfloat16* Bs = Bt + 16 * LD;                               // B (32, 16)
  const int lane = threadIdx.x;
  for (int e = lane; e < 16 * 32; e += WARP) {
    const int r = e / 32, k = e % 32;
    As[r * LD + k] = __float2bfloat16_rn(a[r * 32 + k]);
  }
  for (int e = lane; e < 32 * 16; e += WARP) {
    const int k = e / 16, n = e % 16;
    const __nv_bfloat16 v = __float2bfloat16_rn(b[k * 16 + n]);
    Bs[k * LDN + n] = v;
    Bt[n * LD + k] = v;
  }
  __syncwarp();
  uint32_t af[2][4];  // A fragments of k-steps 0 and 1 (load_a_frags' addressing)
  for (int kk = 0; kk < 2; ++kk)
    ldmatrix_x4(af[kk], As + ((lane & 7) + 8 * ((lane >> 3) & 1)) * LD + 16 * kk + 8 * (lane >> 4));
  float dp[2][4] = {}, dt[2][4] = {};
  for (int nt = 0; nt < 2; ++nt) {  // B^T rows by plain ldmatrix (product_abt's addressing)
    uint32_t bf[4];
    ldmatrix_x4(bf, Bt + (8 * nt + (lane & 7)) * LD + 8 * (lane >> 3));
    mma_bf16_16816(dp[nt], af[0], bf[0], bf[1]);
    mma_bf16_16816(dp[nt], af[1], bf[2], bf[3]);
  }
  for (int kk = 0; kk < 2; ++kk) {  // B rows by ldmatrix .trans (product_add_av's addressing)
    uint32_t bf[4];
    ldmatrix_x4_trans(bf, Bs + (16 * kk + (lane & 15)) * LDN + 8 * (lane >> 4));
    mma_bf16_16816(dt[0], af[kk], bf[0], bf[1]);
    mma_bf16_16816(dt[1], af[kk], bf[2], bf[3]);
  }
  for (int nt = 0; nt < 2; ++nt)  // C fragments: (lane / 4 + 8 (e / 2), 8 nt + 2 (lane % 4) + e % 2)
    for (int e = 0; e < 4; ++e) {
      const int r = lane / 4 + 8 * (e / 2), c = 8 * nt + 2 * (lane % 4) + e % 2;
      d_plain[r * 16 + c] = dp[nt][e];
      d_trans[r * 16 + c] = dt[nt][e];
    }
}

}  // namespace

CudaStatus cuda_mma_selfcheck(cudaStream_t s, float* d_plain, float* d_trans, const float* a, const float* b) {
  k_mma_selfcheck<<<1, WARP, SMEM, s>>>(d_plain, d_trans, a, b);
  return cuda_status_launch("tensor-core primitives self-check kernel");
}

}  // namespace mira
