// Flash-style causal attention on tensor cores: the bf16 operand mode (AttentionPrecision::BF16;
// cuda_attention_forward/backward with bf16 = true, kernels/cuda/attention.h). Every matmul takes
// bf16 operands with fp32 accumulation through the WMMA API (nvcuda::wmma, m16n16k16 bf16
// fragments, fp32 accumulators; no inline PTX, so tests/emu can run it); softmax, logsumexp, masks,
// dropout and the score gradients are fp32. The roundings are exactly those of the CPU oracle
// (kernels/cpu/attention.h, bf16 = true): q, k, v, dO rounded to bf16 when loaded into shared
// memory; the dropped probabilities Pd = z P and the score gradients dS rounded before their
// products. So CPU bf16 and CUDA bf16 differ only by the fp32 summation order (and the rare bf16
// rounding flip of a P or dS that the fp32 differences push across a rounding boundary).
//
// Kernels (128 threads = 4 warps; query tiles of BR = 64 rows, key tiles of BC = 64 keys; warp w
// owns the 16 rows 16w..16w+15 of its block's tile; head dim padded to D = 32, 64 or 128 with zeros):
//  - k_bf16_forward: one block per (query tile, batch*head), two passes over the key tiles up to
//    the causal limit. Pass 1: S = scale q k^T, the exact row max m and row sum l (online, fp32).
//    Pass 2: S again, P = exp(S - m) / l, Pd = z P rounded to bf16, O += Pd v (fp32 accumulator
//    fragments). Two passes because the oracle rounds the normalised P: a one-pass (online-rescaled)
//    kernel would round exp(S - m_running), a different value. Writes out, a copy of out and the
//    row logsumexp L = m + log l (the saved state of attention.h, unchanged).
//  - k_bf16_row_dot: D_i = sum_d bf16(dO_id) O_id (the oracle's D, attention.h).
//  - k_bf16_backward_dkv: one block per (key tile, batch*head); walks the query tiles from the
//    diagonal to T: S^T = k q^T, dPd^T = v dO^T, P = exp(S - L), dS = P (z dPd - D) scale, then
//    dV += bf16(Pd)^T bf16(dO) and dK += bf16(dS)^T bf16(q) in accumulator fragments.
//  - k_bf16_backward_dq: one block per (query tile, batch*head); walks the key tiles up to the
//    causal limit: S, dPd, dS as above, dQ += bf16(dS) bf16(k).
// The fragment layout is opaque, so every per-element step (mask, softmax, dropout, dS) runs on
// tiles stored to shared memory (store_matrix_sync): lane l of a warp takes row l / 2 of its 16-row
// tile and the 32 columns 32 (l % 2) .. + 31, the row reductions combining the two lanes with one
// shuffle. Deterministic: fixed tile orders, fixed in-fragment sums, no atomics.
// Shared memory (dynamic, opted in with cudaFuncSetAttribute): D = 64: forward 53 KB, dK/dV 89 KB,
// dQ 80 KB; D = 128: 93 / 136 / 127 KB (sm_80 allows 163 KB, sm_90 227 KB). The WMMA pointers need
// 256-bit alignment: every buffer below starts at a multiple of 128 bytes of the dynamic shared
// memory, whose base the hardware aligns (the kernels declare no static shared variables).
// Measured on an H200 at GPT-2's shape (B 8, T 1024, hd 64, 12 heads, dropout 0.1): forward
// 0.54 ms, backward 1.19 ms per layer, 1.7x / 1.9x the fp32 kernels: correct, but far from the
// tensor cores' rate. Likely costs, in the order to attack them: the K/V tiles are loaded
// synchronously (fp32 loads + bf16 conversion, then __syncthreads; no prefetch of the next tile
// into registers or a second buffer), and every block re-converts q/k/v (a bf16 copy of qkv made
// once per call would halve the bytes and allow cp.async); only 4 warps per block with 53-136 KB of
// shared memory; the per-element steps (softmax, dropout hash, dS) run 32 elements serially per
// lane with 2-4-way bank conflicts on the fp32 score tiles; the dK/dV kernel draws one rng_at per
// dropout element (its lanes walk columns; the forward and dQ kernels reuse each draw for 4).
#include <mma.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_launch.cuh"
#include "kernels/cuda/device_util.cuh"

namespace mira {

using namespace cuda_detail;
using namespace nvcuda;

namespace {

using bf16 = __nv_bfloat16;
constexpr int NW = 4;          // warps per block
constexpr int NT = NW * WARP;  // threads per block
constexpr int BR = 16 * NW;    // query rows per tile
constexpr int BC = 64;         // keys per tile
constexpr int HALF = BC / 2;   // columns of a tile row per lane
static_assert(BR == BC, "the backward's first query tile of a key tile is the diagonal one");

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

constexpr int align128(int bytes) { return (bytes + 127) / 128 * 128; }

// Strides (elements) and buffer sizes (bytes) for head dim D (padded).
template <int D>
struct Geo16 {
  static constexpr int LDH = D + 8;   // bf16 (rows, D) tiles: rows 16 B apart modulo 128 (fewer bank conflicts)
  static constexpr int LDS = BC + 4;  // fp32 (16, BC) score tiles of a warp
  static constexpr int LDP = BC + 8;  // bf16 (16, BC) probability / gradient tiles of a warp
  static constexpr int LDO = D + 4;   // fp32 (16, D) output staging of a warp
  static constexpr int TILE = align128(64 * LDH * 2);                        // (64, LDH) bf16
  static constexpr int SF = align128(16 * (LDS > LDO ? LDS : LDO) * 4);       // per warp: scores / staging
  static constexpr int SF2 = align128(16 * LDS * 4);                          // per warp: second fp32 tile
  static constexpr int PB = align128(16 * LDP * 2);                           // per warp: bf16 tile
  static constexpr int ROWV = align128(BR * 4);                               // (BR) fp32 row values
  static constexpr int FWD = 3 * TILE + NW * (SF + PB);
  // The backward kernels' layout (BackwardSmem) with npb bf16 tiles per warp: dK/dV 2, dQ 1.
  static constexpr int bwd_warp(int npb) { return SF + SF2 + npb * PB; }
  static constexpr int bwd(int npb) { return 4 * TILE + NW * bwd_warp(npb) + 2 * ROWV; }
  static constexpr int DKV = bwd(2);
  static constexpr int DQ = bwd(1);
  static_assert(D % 16 == 0 && LDH % 8 == 0 && LDP % 8 == 0 && LDS % 4 == 0 && LDO % 4 == 0,
                "WMMA ldm: multiples of 16 bytes");
};

// The dynamic shared memory of the backward kernels (G::bwd(NPB) bytes from sm): four bf16 (64, LDH)
// tiles (which operand goes where is the kernel's choice), then per warp an fp32 (16, LDS) tile of
// scores (also the (16, LDO) output staging), an fp32 (16, LDS) tile of dPd and NPB bf16 (16, LDP)
// tiles, then the (BR) row values L and D of the query tile.
template <int D, int NPB>
struct BackwardSmem {
  static constexpr int WARP_BYTES = Geo16<D>::bwd_warp(NPB);  // one warp's share
  bf16* tile[4];
  float* s;
  float* dp;
  bf16* pb[NPB];
  float* Ls;
  float* Ds;
  __device__ BackwardSmem(unsigned char* sm, int warp) {
    using G = Geo16<D>;
    for (int n = 0; n < 4; ++n) tile[n] = reinterpret_cast<bf16*>(sm + n * G::TILE);
    unsigned char* pw = sm + 4 * G::TILE + warp * WARP_BYTES;
    s = reinterpret_cast<float*>(pw);
    dp = reinterpret_cast<float*>(pw + G::SF);
    for (int n = 0; n < NPB; ++n) pb[n] = reinterpret_cast<bf16*>(pw + G::SF + G::SF2 + n * G::PB);
    Ls = reinterpret_cast<float*>(sm + 4 * G::TILE + NW * WARP_BYTES);
    Ds = Ls + G::ROWV / 4;
  }
};

// Head h of batch bi in the backward's inputs: q, k, v in qkv (B, T, 3C) with leading dimension
// ld = 3C, dO in dout (B, T, C) (leading dimension c); each points at the head's column 0 of row 0.
struct HeadInputs {
  const float *q, *k, *v, *dO;
  int64_t ld;
  __device__ HeadInputs(const float* qkv, const float* dout, int64_t bi, int64_t h, int64_t t, int64_t c, int hd)
      : q(qkv + bi * t * 3 * c + h * hd), k(q + c), v(q + 2 * c), dO(dout + bi * t * c + h * hd), ld(3 * c) {}
};

// Rows [r0, r0 + 64) of one head's slice of a row-major fp32 tensor (g: the head's column 0 of row
// 0, leading dimension ld) rounded to bf16 into s (64, LDH); zero past row t and past column hd.
// vec: hd % 4 == 0 and g, ld 16-byte aligned (float4 loads).
template <int D>
__device__ inline void load_tile(bf16* s, const float* g, int64_t ld, int64_t r0, int64_t t, int hd, bool vec) {
  constexpr int LDH = Geo16<D>::LDH;
  if (vec) {
    constexpr int Q = D / 4;
    for (int e = threadIdx.x; e < 64 * Q; e += NT) {
      const int r = e / Q, d = (e % Q) * 4;
      float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (r0 + r < t && d < hd) v = *reinterpret_cast<const float4*>(g + (r0 + r) * ld + d);
      bf16* o = s + r * LDH + d;
      o[0] = __float2bfloat16_rn(v.x);
      o[1] = __float2bfloat16_rn(v.y);
      o[2] = __float2bfloat16_rn(v.z);
      o[3] = __float2bfloat16_rn(v.w);
    }
  } else {
    for (int e = threadIdx.x; e < 64 * D; e += NT) {
      const int r = e / D, d = e % D;
      s[r * LDH + d] = __float2bfloat16_rn((r0 + r < t && d < hd) ? g[(r0 + r) * ld + d] : 0.0f);
    }
  }
}

// Per-row values of (B*H, T) arrays for rows [i0, i0 + BR) of head bh (zero past t).
__device__ inline void load_row_values(float* s, const float* g, int64_t bh, int64_t i0, int64_t t) {
  for (int r = threadIdx.x; r < BR; r += NT) s[r] = i0 + r < t ? g[bh * t + i0 + r] : 0.0f;
}

// The dropout keep factor of (bh, i, j): keep_scale or 0 (attention.h, CudaDropout), with the last
// rng_at draw cached: one draw holds the 16-bit lanes of 4 consecutive mask indices, so a lane that
// walks a row's columns in order (the forward, dQ) draws once per 4 elements instead of 4 times;
// the dK/dV kernel walks a column (indices t apart) and draws every time. The same bits as
// dropout_keep_dev.
struct KeepCache {
  uint64_t group = ~0ull, bits = 0;
  __device__ float factor(const CudaDropout& drop, float keep_scale, int64_t bh, int64_t t, int64_t i, int64_t j) {
    const uint64_t idx = drop.base + ((uint64_t)(bh * t + i) * (uint64_t)t + (uint64_t)j);
    if ((idx >> 2) != group) group = idx >> 2, bits = rng_at(drop.stream, group);
    return ((bits >> (16 * (idx & 3))) & 0xFFFFu) >= drop.threshold ? keep_scale : 0.0f;
  }
};

// Warp-level: out (16, BC; stride LDS, fp32) = A (16, D; stride LDH) B^T with B (BC, D; stride LDH),
// both bf16: the scores q k^T (or dO v^T, k q^T, v dO^T), unscaled.
template <int D>
__device__ inline void product_abt(float* out, const bf16* A, const bf16* B) {
  constexpr int LDH = Geo16<D>::LDH, LDS = Geo16<D>::LDS;
  FragC acc[BC / 16];
#pragma unroll
  for (int n = 0; n < BC / 16; ++n) wmma::fill_fragment(acc[n], 0.0f);
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    FragA a;
    wmma::load_matrix_sync(a, A + kk * 16, LDH);
#pragma unroll
    for (int n = 0; n < BC / 16; ++n) {
      FragBCol b;  // B^T (k, n) = B[n][k]
      wmma::load_matrix_sync(b, B + n * 16 * LDH + kk * 16, LDH);
      wmma::mma_sync(acc[n], a, b, acc[n]);
    }
  }
#pragma unroll
  for (int n = 0; n < BC / 16; ++n) wmma::store_matrix_sync(out + n * 16, acc[n], LDS, wmma::mem_row_major);
}

// Warp-level: acc (16, D as D/16 fragments) += P (16, BC; stride LDP, bf16) V (BC, D; stride LDH).
template <int D>
__device__ inline void product_add_pv(FragC (&acc)[D / 16], const bf16* P, const bf16* V) {
  constexpr int LDH = Geo16<D>::LDH, LDP = Geo16<D>::LDP;
#pragma unroll
  for (int kk = 0; kk < BC / 16; ++kk) {
    FragA a;
    wmma::load_matrix_sync(a, P + kk * 16, LDP);
#pragma unroll
    for (int dd = 0; dd < D / 16; ++dd) {
      FragBRow b;
      wmma::load_matrix_sync(b, V + kk * 16 * LDH + dd * 16, LDH);
      wmma::mma_sync(acc[dd], a, b, acc[dd]);
    }
  }
}

// Warp-level: the (16, D) accumulator through the staging tile st (stride LDO) into rows r0..r0+15
// (those < t) of one head's slice g (leading dimension ld), columns < hd; a second copy into g2 when
// non-null (the forward's saved out).
template <int D>
__device__ inline void write_rows(float* st, FragC (&acc)[D / 16], float* g, float* g2, int64_t ld, int64_t r0,
                                  int64_t t, int hd) {
  constexpr int LDO = Geo16<D>::LDO;
#pragma unroll
  for (int dd = 0; dd < D / 16; ++dd) wmma::store_matrix_sync(st + dd * 16, acc[dd], LDO, wmma::mem_row_major);
  __syncwarp();
  for (int e = threadIdx.x % WARP; e < 16 * D; e += WARP) {
    const int r = e / D, d = e % D;
    if (d >= hd || r0 + r >= t) continue;
    const float v = st[r * LDO + d];
    g[(r0 + r) * ld + d] = v;
    if (g2) g2[(r0 + r) * ld + d] = v;
  }
}

template <int D>
__global__ void __launch_bounds__(NT)
    k_bf16_forward(float* out, float* lse, float* out_copy, const float* qkv, int64_t t, int64_t c, int64_t nh, int hd,
                   float scale, CudaDropout drop, float keep_scale, bool vec) {
  using G = Geo16<D>;
  extern __shared__ float4 smem4[];
  unsigned char* sm = reinterpret_cast<unsigned char*>(smem4);
  const int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
  bf16* Qs = reinterpret_cast<bf16*>(sm);                                // (BR, LDH)
  bf16* Ks = reinterpret_cast<bf16*>(sm + G::TILE);                      // (BC, LDH)
  bf16* Vs = reinterpret_cast<bf16*>(sm + 2 * G::TILE);                  // (BC, LDH)
  float* Sw = reinterpret_cast<float*>(sm + 3 * G::TILE + warp * G::SF);  // (16, LDS) / staging (16, LDO)
  bf16* Pw = reinterpret_cast<bf16*>(sm + 3 * G::TILE + NW * G::SF + warp * G::PB);  // (16, LDP)
  const int64_t bh = blockIdx.x, bi = bh / nh, h = bh % nh;
  const int64_t i0 = (int64_t)(gridDim.y - 1 - blockIdx.y) * BR;  // the longest (last) tiles start first
  const int64_t iw = i0 + 16 * warp;                               // this warp's first row
  const int64_t ld = 3 * c;
  const float* q = qkv + bi * t * ld + h * hd;
  const float* k = q + c;
  const float* v = q + 2 * c;
  const bool dropping = drop.p > 0.0f;
  const int rr = lane / 2, c0 = (lane % 2) * HALF;  // this lane's row of the warp's tile, first column
  const int64_t i = iw + rr;

  load_tile<D>(Qs, q, ld, i0, t, hd, vec);
  const int64_t kend = i0 + BR < t ? i0 + BR : t;  // keys [0, kend) are visible to some row of the tile
  // Pass 1: row max m and row sum l = sum_j exp(S_ij - m) (online over the tiles, in order).
  float m = -INFINITY, l = 0.0f;
  for (int64_t j0 = 0; j0 < kend; j0 += BC) {
    __syncthreads();  // previous tile's reads of Ks done (first: Qs written)
    load_tile<D>(Ks, k, ld, j0, t, hd, vec);
    __syncthreads();
    if (iw >= t || j0 > iw + 15) continue;  // warp-uniform: no visible key in this tile
    product_abt<D>(Sw, Qs + 16 * warp * G::LDH, Ks);
    __syncwarp();
    float mt = -INFINITY;
    for (int x = 0; x < HALF; ++x) {
      const int64_t j = j0 + c0 + x;
      if (i < t && j <= i) mt = fmaxf(mt, Sw[rr * G::LDS + c0 + x] * scale);
    }
    mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
    const float m_new = fmaxf(m, mt);
    float ps = 0.0f;
    for (int x = 0; x < HALF; ++x) {
      const int64_t j = j0 + c0 + x;
      if (i < t && j <= i) ps += expf(Sw[rr * G::LDS + c0 + x] * scale - m_new);
    }
    ps += __shfl_xor_sync(0xffffffffu, ps, 1);
    l = (m == -INFINITY ? 0.0f : l * expf(m - m_new)) + ps;
    m = m_new;
    __syncwarp();  // Sw reads done before the next tile's store
  }
  const float inv_l = l > 0.0f ? 1.0f / l : 0.0f;  // l >= 1 for every row i < t (its max gives exp(0))
  // Pass 2: P = exp(S - m) / l, Pd = z P rounded to bf16, O += Pd v.
  FragC acc[D / 16];
#pragma unroll
  for (int dd = 0; dd < D / 16; ++dd) wmma::fill_fragment(acc[dd], 0.0f);
  for (int64_t j0 = 0; j0 < kend; j0 += BC) {
    __syncthreads();  // previous tile's reads of Ks, Vs done
    load_tile<D>(Ks, k, ld, j0, t, hd, vec);
    load_tile<D>(Vs, v, ld, j0, t, hd, vec);
    __syncthreads();
    if (iw >= t || j0 > iw + 15) continue;
    product_abt<D>(Sw, Qs + 16 * warp * G::LDH, Ks);
    __syncwarp();
    KeepCache kc;
    for (int x = 0; x < HALF; ++x) {
      const int64_t j = j0 + c0 + x;
      float p = 0.0f;
      if (i < t && j <= i) {
        p = expf(Sw[rr * G::LDS + c0 + x] * scale - m) * inv_l;  // as the CPU: exp(S - max) * (1 / sum)
        if (dropping) p *= kc.factor(drop, keep_scale, bh, t, i, j);
      }
      Pw[rr * G::LDP + c0 + x] = __float2bfloat16_rn(p);
    }
    __syncwarp();
    product_add_pv<D>(acc, Pw, Vs);
    __syncwarp();  // Pw / Sw reads done before the next tile's writes
  }
  if (lane % 2 == 0 && i < t) lse[bh * t + i] = m + logf(l);
  write_rows<D>(Sw, acc, out + bi * t * c + h * hd, out_copy + bi * t * c + h * hd, c, iw, t, hd);
}

// D[bh*T + i] = sum_{d < hd} bf16(dout[bi, i, h*hd + d]) * o[bi, i, h*hd + d]; one warp per row.
__global__ void k_bf16_row_dot(float* dsum, const float* dout, const float* o, int64_t rows, int64_t t, int64_t c,
                               int64_t nh, int hd) {
  const int64_t r = blockIdx.x * (int64_t)(BLOCK / WARP) + threadIdx.x / WARP;
  const int lane = threadIdx.x % WARP;
  if (r >= rows) return;  // the same for the whole warp
  const int64_t bh = r / t, i = r % t, bi = bh / nh, h = bh % nh;
  const int64_t off = (bi * t + i) * c + h * hd;
  float s = 0.0f;
  for (int d = lane; d < hd; d += WARP) s += __bfloat162float(__float2bfloat16_rn(dout[off + d])) * o[off + d];
  s = warp_sum(s);
  if (lane == 0) dsum[r] = s;
}

// Warp-level per-element step of both backward kernels on the warp's (16, BC) tiles: S (unscaled
// scores) and dPd (stride LDS) in, bf16 dS (and bf16 Pd when Pd is non-null) out (stride LDP).
// Element (a, b) of the tile is (row_i(a, b), col_j(a, b)) of the (T, T) matrices: the dK/dV kernel
// works on transposed tiles (rows = keys). r0: the tile's first row, c0: its first column. Ls, Ds: L
// and D of the block's query tile; qoff: the index there of the tile's first query.
template <int D, bool TRANSPOSED>
__device__ inline void tile_grads(bf16* Pd, bf16* dS, const float* S, const float* dP, const float* Ls,
                                  const float* Ds, int qoff, int64_t r0, int64_t c0, int64_t t, int64_t bh,
                                  float scale, const CudaDropout& drop, float keep_scale) {
  using G = Geo16<D>;
  const int lane = threadIdx.x % WARP, a = lane / 2, b0 = (lane % 2) * HALF;
  const bool dropping = drop.p > 0.0f;
  KeepCache kc;
  for (int x = 0; x < HALF; ++x) {
    const int b = b0 + x;
    // TRANSPOSED: row a is key r0 + a, column b query c0 + b; else row a is query r0 + a, column b key c0 + b.
    const int64_t i = TRANSPOSED ? c0 + b : r0 + a, j = TRANSPOSED ? r0 + a : c0 + b;
    const int qi = qoff + (TRANSPOSED ? b : a);  // the query's index in Ls, Ds
    float pd = 0.0f, ds = 0.0f;
    if (i < t && j <= i) {
      const float p = expf(S[a * G::LDS + b] * scale - Ls[qi]);
      const float z = dropping ? kc.factor(drop, keep_scale, bh, t, i, j) : 1.0f;
      pd = p * z;
      ds = p * (dP[a * G::LDS + b] * z - Ds[qi]) * scale;
    }
    if (Pd) Pd[a * G::LDP + b] = __float2bfloat16_rn(pd);
    dS[a * G::LDP + b] = __float2bfloat16_rn(ds);
  }
}

template <int D>
__global__ void __launch_bounds__(NT)
    k_bf16_backward_dkv(float* dqkv, const float* dout, const float* qkv, const float* lse, const float* dsum,
                        int64_t t, int64_t c, int64_t nh, int hd, float scale, CudaDropout drop, float keep_scale,
                        bool vec) {
  using G = Geo16<D>;
  extern __shared__ float4 smem4[];
  const int warp = threadIdx.x / WARP;
  const BackwardSmem<D, 2> m(reinterpret_cast<unsigned char*>(smem4), warp);
  bf16 *Ks = m.tile[0], *Vs = m.tile[1], *Qs = m.tile[2], *dOs = m.tile[3];  // (64, LDH) each
  float* St = m.s;                // (16, LDS) S^T; staging (16, LDO)
  float* dPt = m.dp;              // (16, LDS) dPd^T
  bf16* Pt = m.pb[0];             // (16, LDP) bf16(Pd)^T
  bf16* dSt = m.pb[1];            // (16, LDP) bf16(dS)^T
  float *Ls = m.Ls, *Ds = m.Ds;   // (BR)
  const int64_t bh = blockIdx.x, bi = bh / nh, h = bh % nh;
  const int64_t j0 = (int64_t)blockIdx.y * BC;  // the first key tiles (most query tiles) start first
  const int64_t jw = j0 + 16 * warp;            // this warp's first key
  const HeadInputs in(qkv, dout, bi, h, t, c, hd);
  const int64_t ld = in.ld;
  const float *q = in.q, *k = in.k, *v = in.v, *dO = in.dO;

  load_tile<D>(Ks, k, ld, j0, t, hd, vec);
  load_tile<D>(Vs, v, ld, j0, t, hd, vec);
  FragC dk[D / 16], dv[D / 16];
#pragma unroll
  for (int dd = 0; dd < D / 16; ++dd) wmma::fill_fragment(dk[dd], 0.0f), wmma::fill_fragment(dv[dd], 0.0f);
  const bool vec_do = vec && c % 4 == 0;
  for (int64_t i0 = j0; i0 < t; i0 += BR) {  // query rows i < j0 see none of these keys
    __syncthreads();  // previous tile's reads of Qs, dOs, Ls, Ds done (first: Ks, Vs written)
    load_tile<D>(Qs, q, ld, i0, t, hd, vec);
    load_tile<D>(dOs, dO, c, i0, t, hd, vec_do);
    load_row_values(Ls, lse, bh, i0, t);
    load_row_values(Ds, dsum, bh, i0, t);
    __syncthreads();
    const int64_t iend = i0 + BR < t ? i0 + BR : t;
    if (jw >= iend) continue;  // warp-uniform: none of the warp's keys is seen by the tile's rows
    product_abt<D>(St, Ks + 16 * warp * G::LDH, Qs);    // S^T = k q^T
    product_abt<D>(dPt, Vs + 16 * warp * G::LDH, dOs);  // dPd^T = v dO^T
    __syncwarp();
    tile_grads<D, true>(Pt, dSt, St, dPt, Ls, Ds, 0, jw, i0, t, bh, scale, drop, keep_scale);
    __syncwarp();
    product_add_pv<D>(dv, Pt, dOs);  // dV += bf16(Pd)^T bf16(dO)
    product_add_pv<D>(dk, dSt, Qs);  // dK += bf16(dS)^T bf16(q)
    __syncwarp();
  }
  float* g = dqkv + bi * t * ld + h * hd;
  write_rows<D>(St, dk, g + c, nullptr, ld, jw, t, hd);
  __syncwarp();
  write_rows<D>(St, dv, g + 2 * c, nullptr, ld, jw, t, hd);
}

template <int D>
__global__ void __launch_bounds__(NT)
    k_bf16_backward_dq(float* dqkv, const float* dout, const float* qkv, const float* lse, const float* dsum,
                       int64_t t, int64_t c, int64_t nh, int hd, float scale, CudaDropout drop, float keep_scale,
                       bool vec) {
  using G = Geo16<D>;
  extern __shared__ float4 smem4[];
  const int warp = threadIdx.x / WARP;
  const BackwardSmem<D, 1> m(reinterpret_cast<unsigned char*>(smem4), warp);
  bf16 *Qs = m.tile[0], *dOs = m.tile[1], *Ks = m.tile[2], *Vs = m.tile[3];  // (64, LDH) each
  float* Sw = m.s;                // (16, LDS) S; staging (16, LDO)
  float* dPw = m.dp;              // (16, LDS) dPd
  bf16* dSw = m.pb[0];            // (16, LDP) bf16(dS)
  float *Ls = m.Ls, *Ds = m.Ds;   // (BR)
  const int64_t bh = blockIdx.x, bi = bh / nh, h = bh % nh;
  const int64_t i0 = (int64_t)(gridDim.y - 1 - blockIdx.y) * BR;  // the longest (last) tiles start first
  const int64_t iw = i0 + 16 * warp;
  const HeadInputs in(qkv, dout, bi, h, t, c, hd);
  const int64_t ld = in.ld;
  const float *q = in.q, *k = in.k, *v = in.v, *dO = in.dO;

  load_tile<D>(Qs, q, ld, i0, t, hd, vec);
  load_tile<D>(dOs, dO, c, i0, t, hd, vec && c % 4 == 0);
  load_row_values(Ls, lse, bh, i0, t);
  load_row_values(Ds, dsum, bh, i0, t);
  FragC dq[D / 16];
#pragma unroll
  for (int dd = 0; dd < D / 16; ++dd) wmma::fill_fragment(dq[dd], 0.0f);
  const int64_t kend = i0 + BR < t ? i0 + BR : t;
  for (int64_t j0 = 0; j0 < kend; j0 += BC) {
    __syncthreads();  // previous tile's reads of Ks, Vs done (first: Qs, dOs, Ls, Ds written)
    load_tile<D>(Ks, k, ld, j0, t, hd, vec);
    load_tile<D>(Vs, v, ld, j0, t, hd, vec);
    __syncthreads();
    if (iw >= t || j0 > iw + 15) continue;  // warp-uniform: no visible key in this tile
    product_abt<D>(Sw, Qs + 16 * warp * G::LDH, Ks);    // S = q k^T
    product_abt<D>(dPw, dOs + 16 * warp * G::LDH, Vs);  // dPd = dO v^T
    __syncwarp();
    tile_grads<D, false>(nullptr, dSw, Sw, dPw, Ls, Ds, 16 * warp, iw, j0, t, bh, scale, drop, keep_scale);
    __syncwarp();
    product_add_pv<D>(dq, dSw, Ks);  // dQ += bf16(dS) bf16(k) (the scale is inside dS)
    __syncwarp();
  }
  write_rows<D>(Sw, dq, dqkv + bi * t * ld + h * hd, nullptr, ld, iw, t, hd);
}

// float4 loads of q, k, v: every row start and the head offset 16-byte aligned.
bool vec_ok(const float* qkv, int64_t c, int64_t hd) {
  return hd % 4 == 0 && c % 4 == 0 && aligned16(qkv);
}

template <int D>
CudaStatus forward_d(cudaStream_t s, float* out, float* att, const float* qkv, int64_t b, int64_t t, int64_t c,
                     int64_t nh, const CudaDropout& drop) {
  const int64_t hd = c / nh;
  const float scale = 1.0f / std::sqrt((float)hd);  // as the CPU: (T)1 / std::sqrt((T)hd)
  auto kernel = k_bf16_forward<D>;
  MIRA_CUDA_TRY(allow_smem(kernel, Geo16<D>::FWD, "attention bf16 forward shared-memory attribute"));
  const dim3 grid((unsigned)(b * nh), (unsigned)((t + BR - 1) / BR));
  kernel<<<grid, NT, Geo16<D>::FWD, s>>>(out, att, att + b * nh * t, qkv, t, c, nh, (int)hd, scale, drop,
                                         keep_scale_of(drop), vec_ok(qkv, c, hd));
  return cuda_status_launch("attention bf16 forward kernel");
}

template <int D>
CudaStatus backward_d(cudaStream_t s, float* dqkv, float* scratch, const float* dout, const float* qkv,
                      const float* att, int64_t b, int64_t t, int64_t c, int64_t nh, const CudaDropout& drop) {
  using G = Geo16<D>;
  const int64_t hd = c / nh, rows = b * nh * t;
  const float scale = 1.0f / std::sqrt((float)hd);
  const float* lse = att;
  const float* out_copy = att + rows;
  float* dsum = scratch;
  k_bf16_row_dot<<<grid_for(rows, BLOCK / WARP), BLOCK, 0, s>>>(dsum, dout, out_copy, rows, t, c, nh, (int)hd);
  MIRA_CUDA_TRY(cuda_status_launch("attention bf16 backward row-dot kernel"));
  const float ks = keep_scale_of(drop);
  const bool vec = vec_ok(qkv, c, hd) && aligned16(dout);
  auto dkv = k_bf16_backward_dkv<D>;
  auto dq = k_bf16_backward_dq<D>;
  MIRA_CUDA_TRY(allow_smem(dkv, G::DKV, "attention bf16 backward dK/dV shared-memory attribute"));
  MIRA_CUDA_TRY(allow_smem(dq, G::DQ, "attention bf16 backward dQ shared-memory attribute"));
  dkv<<<dim3((unsigned)(b * nh), (unsigned)((t + BC - 1) / BC)), NT, G::DKV, s>>>(dqkv, dout, qkv, lse, dsum, t, c, nh,
                                                                                 (int)hd, scale, drop, ks, vec);
  MIRA_CUDA_TRY(cuda_status_launch("attention bf16 backward dK/dV kernel"));
  dq<<<dim3((unsigned)(b * nh), (unsigned)((t + BR - 1) / BR)), NT, G::DQ, s>>>(dqkv, dout, qkv, lse, dsum, t, c, nh,
                                                                               (int)hd, scale, drop, ks, vec);
  return cuda_status_launch("attention bf16 backward dQ kernel");
}

}  // namespace

// Shapes are checked by the callers (cuda_attention_forward/backward, attention.cu); b, t > 0.
CudaStatus cuda_attention_forward_bf16(cudaStream_t s, float* out, float* att, const float* qkv, int64_t b, int64_t t,
                                       int64_t c, int64_t nh, const CudaDropout& drop) {
  const int64_t hd = c / nh;
  if (hd <= 32) return forward_d<32>(s, out, att, qkv, b, t, c, nh, drop);
  if (hd <= 64) return forward_d<64>(s, out, att, qkv, b, t, c, nh, drop);
  return forward_d<128>(s, out, att, qkv, b, t, c, nh, drop);
}

CudaStatus cuda_attention_backward_bf16(cudaStream_t s, float* dqkv, float* scratch, const float* dout,
                                        const float* qkv, const float* att, int64_t b, int64_t t, int64_t c,
                                        int64_t nh, const CudaDropout& drop) {
  const int64_t hd = c / nh;
  if (hd <= 32) return backward_d<32>(s, dqkv, scratch, dout, qkv, att, b, t, c, nh, drop);
  if (hd <= 64) return backward_d<64>(s, dqkv, scratch, dout, qkv, att, b, t, c, nh, drop);
  return backward_d<128>(s, dqkv, scratch, dout, qkv, att, b, t, c, nh, drop);
}

}  // namespace mira
