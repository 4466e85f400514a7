// Flash-style causal attention, forward and backward, in fp32 (see attention.h): the fp32 parity
// mode, and the entry points, which hand the bf16 operand mode to attention_bf16.cu. No (T, T) matrix
// is ever stored: scores, probabilities and their gradients live in shared-memory tiles of one
// block. What each kernel fuses:
//  - k_flash_forward: one block per (query tile of BR rows, batch*head). The q tile stays in shared
//    memory; the block walks the key/value tiles of BC keys up to its causal limit, in order, and
//    fuses per tile: scores S = scale q k^T, causal mask, online softmax (running row max m and row
//    sum l; the output accumulator is rescaled by exp(m_old - m_new)), dropout keep mask + 1/(1-p)
//    scaling of the probabilities, and O += P_dropped v. It writes out = O / l, the row logsumexp
//    L = m + log(l) (the saved state; the backward gets out itself for rowsum(dO * O)).
//  - k_row_dot: D_i = sum_d dO_i,d O_i,d for every (batch, head, row) (one warp per row).
//  - k_flash_backward_dkv: one block per (key tile, batch*head); walks the query tiles from the one
//    holding the tile's first key to T, in order; per tile it recomputes P = exp(S - L), the keep
//    mask, dP = dO v^T and dS (below), and accumulates dV += P_dropped^T dO and dK += dS^T q in
//    registers; it writes dK and dV once.
//  - k_flash_backward_dq: one block per (query tile, batch*head); walks the key tiles up to the
//    causal limit, in order, recomputes P, dP, dS and accumulates dQ += dS k; writes dQ once.
// Deterministic: every sum has a fixed order (tiles in order, each thread's sums over a fixed index
// order, warp butterflies); no atomics, nothing depends on scheduling. The CPU (kernels/cpu) sums
// in other orders, so results equal it within float rounding, not bitwise.
//
// Gradient with dropout (p > 0, keep scale s = 1/(1-p), keep bit k_ij in {0, 1}, z_ij = k_ij s):
//   P_ij = softmax_j(S_ij) over j <= i;  Pd_ij = z_ij P_ij;  O_i = sum_j Pd_ij v_j.
//   dV_j   = sum_i Pd_ij dO_i                       (O is linear in Pd)
//   dPd_ij = dO_i . v_j ;  dP_ij = z_ij dPd_ij      (Pd = z * P elementwise)
//   dS_ij  = P_ij (dP_ij - sum_k P_ik dP_ik)        (softmax Jacobian, row i)
//   sum_k P_ik dP_ik = sum_k P_ik z_ik (dO_i . v_k) = dO_i . sum_k Pd_ik v_k = dO_i . O_i =: D_i
//   so dS_ij = P_ij (z_ij (dO_i . v_j) - D_i), and with S = scale q k^T:
//   dq_i = scale sum_j dS_ij k_j,  dk_j = scale sum_i dS_ij q_i.
// The CPU computes the same quantities (its "dot" is sum_j P_ij z_ij dPd_ij = D_i); only the order
// of the additions differs. Without dropout z = 1. The mask of (b, h, i, j) is the counter-based
// rule at index drop.base + ((b*H + h)*T + i)*T + j, evaluated in the forward and again in both
// backward kernels; entries j > i are never dropped or used (the CPU's mask bits there meet zeros).
//
// Tiles: 256 threads as a 16 x 16 grid (ty, tx). A thread computes the scores of rows ty + 16a and
// columns tx + 16b of the (BR, BC) tile, and owns accumulator rows ty + 16a, head-dim columns
// tx + 16e. The head dim is padded to the template's D (32, 64 or 128) with zeros in shared memory,
// so every product runs over D exactly (the zeros add nothing). Row strides D + 1 and BC + 1 make
// the column-wise shared-memory reads conflict-free. Shared memory is dynamic (up to ~98 KB:
// cudaFuncSetAttribute raises the 48 KB default; sm_80 allows 163 KB, sm_90 227 KB).
//
// Run on an H200 (test_gpu, docs/cuda.md). The tiled algorithm itself is also replayed on the CPU
// by tests/unit/kernels/test_flash_attention_reference.cpp.
#include <cmath>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_launch.cuh"
#include "kernels/cuda/device_util.cuh"

namespace mira {

using namespace cuda_detail;

namespace {

constexpr int NT = 256;  // threads per block
constexpr int TG = 16;   // the thread grid is TG x TG
constexpr int NWARP = NT / WARP;

template <int D, int BR, int BC>
struct Geo {
  static constexpr int DP = D + 1;   // row stride of (rows, D) tiles
  static constexpr int SP = BC + 1;  // row stride of (BR, BC) tiles
  static constexpr int RM = BR / TG; // score / accumulator rows per thread (query side)
  static constexpr int CN = BC / TG; // score columns per thread; accumulator rows per thread (key side)
  static constexpr int DN = D / TG;  // head-dim columns per thread
  static constexpr int RW = BR / NWARP;  // softmax rows per warp (forward)
  static constexpr int CL = BC / WARP;   // softmax columns per lane (forward)
  static_assert(D % TG == 0 && BR % TG == 0 && BC % TG == 0, "tile sizes must be multiples of 16");
  static_assert(BR % NWARP == 0 && BC % WARP == 0, "softmax rows per warp / columns per lane");
  // Shared memory in floats of each kernel (the layouts in the kernels).
  static constexpr int FWD = (BR + 2 * BC) * DP + BR * SP + 2 * BR;
  static constexpr int DKV = (2 * BC + 2 * BR) * DP + 2 * BR * SP + 2 * BR;
  static constexpr int DQ = (2 * BR + 2 * BC) * DP + BR * SP + 2 * BR;
};

// Rows [r0, r0 + R) of one head's slice of a row-major tensor with leading dimension ld (g points at
// the head's first column of row 0) into s (R, D + 1); zero past row t and past column hd.
template <int R, int D>
__device__ inline void load_rows(float* s, const float* g, int64_t ld, int64_t r0, int64_t t, int hd) {
  for (int e = threadIdx.x; e < R * D; e += NT) {
    const int r = e / D, d = e % D;
    const int64_t row = r0 + r;
    s[r * (D + 1) + d] = (row < t && d < hd) ? g[row * ld + d] : 0.0f;
  }
}

// Per-row values of (B*H, T) arrays for rows [i0, i0 + R) of head bh (zero past t).
template <int R>
__device__ inline void load_row_values(float* s, const float* g, int64_t bh, int64_t i0, int64_t t) {
  for (int r = threadIdx.x; r < R; r += NT) s[r] = i0 + r < t ? g[bh * t + i0 + r] : 0.0f;
}

__device__ inline float keep_factor(const CudaDropout& drop, float keep_scale, int64_t bh, int64_t t, int64_t i,
                                    int64_t j) {
  const uint64_t idx = drop.base + ((uint64_t)(bh * t + i) * (uint64_t)t + (uint64_t)j);
  return dropout_keep_dev(drop.stream, idx, drop.threshold) ? keep_scale : 0.0f;
}

// acc (this thread's rows ty + 16a, head-dim columns tx + 16e) += A (BR, BC; stride SP) B (BC, D;
// stride DP), summed over the BC columns in order: the forward's O += P_dropped v and dQ += dS k.
template <int D, int BR, int BC>
__device__ inline void tile_product_add(float (&acc)[Geo<D, BR, BC>::RM][Geo<D, BR, BC>::DN], const float* A,
                                        const float* B) {
  using G = Geo<D, BR, BC>;
  const int tx = threadIdx.x % TG, ty = threadIdx.x / TG;
#pragma unroll 4
  for (int cc = 0; cc < BC; ++cc) {
    float a_col[G::RM], b_row[G::DN];
#pragma unroll
    for (int a = 0; a < G::RM; ++a) a_col[a] = A[(ty + TG * a) * G::SP + cc];
#pragma unroll
    for (int e = 0; e < G::DN; ++e) b_row[e] = B[cc * G::DP + tx + TG * e];
#pragma unroll
    for (int a = 0; a < G::RM; ++a)
#pragma unroll
      for (int e = 0; e < G::DN; ++e) acc[a][e] += a_col[a] * b_row[e];
  }
}

template <int D, int BR, int BC>
__global__ void __launch_bounds__(NT)
    k_flash_forward(float* out, float* lse, const float* qkv, int64_t t, int64_t c, int64_t nh, int hd, float scale,
                    CudaDropout drop, float keep_scale) {
  using G = Geo<D, BR, BC>;
  extern __shared__ float smem[];
  float* Qs = smem;                // (BR, DP)
  float* Ks = Qs + BR * G::DP;     // (BC, DP)
  float* Vs = Ks + BC * G::DP;     // (BC, DP)
  float* Ss = Vs + BC * G::DP;     // (BR, SP) scores, then dropped probabilities
  float* alpha_s = Ss + BR * G::SP;  // (BR) accumulator rescale of the current tile
  float* l_s = alpha_s + BR;         // (BR) final row sums
  const int64_t bh = blockIdx.x, bi = bh / nh, h = bh % nh;
  const int64_t i0 = (int64_t)(gridDim.y - 1 - blockIdx.y) * BR;  // the longest (last) tiles start first
  const int64_t ld = 3 * c;
  const float* q = qkv + bi * t * ld + h * hd;
  const float* k = q + c;
  const float* v = q + 2 * c;
  const int tx = threadIdx.x % TG, ty = threadIdx.x / TG, lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
  const bool dropping = drop.p > 0.0f;

  load_rows<BR, D>(Qs, q, ld, i0, t, hd);
  float acc[G::RM][G::DN];
#pragma unroll
  for (int a = 0; a < G::RM; ++a)
#pragma unroll
    for (int e = 0; e < G::DN; ++e) acc[a][e] = 0.0f;
  float m_row[G::RW], l_row[G::RW];  // rows warp + NWARP*u, the same in every lane of the warp
#pragma unroll
  for (int u = 0; u < G::RW; ++u) m_row[u] = -INFINITY, l_row[u] = 0.0f;

  const int64_t kend = i0 + BR < t ? i0 + BR : t;  // keys [0, kend) are visible to some row of the tile
  for (int64_t j0 = 0; j0 < kend; j0 += BC) {
    __syncthreads();  // the previous tile's reads of Ks, Vs, Ss, alpha_s are done (first: Qs written)
    load_rows<BC, D>(Ks, k, ld, j0, t, hd);
    load_rows<BC, D>(Vs, v, ld, j0, t, hd);
    __syncthreads();
    {  // scores of rows ty + 16a, columns tx + 16b; masked entries (j > i, or row past t) = -inf
      float sc[G::RM][G::CN];
#pragma unroll
      for (int a = 0; a < G::RM; ++a)
#pragma unroll
        for (int b = 0; b < G::CN; ++b) sc[a][b] = 0.0f;
#pragma unroll 4
      for (int d = 0; d < D; ++d) {
        float qa[G::RM], kb[G::CN];
#pragma unroll
        for (int a = 0; a < G::RM; ++a) qa[a] = Qs[(ty + TG * a) * G::DP + d];
#pragma unroll
        for (int b = 0; b < G::CN; ++b) kb[b] = Ks[(tx + TG * b) * G::DP + d];
#pragma unroll
        for (int a = 0; a < G::RM; ++a)
#pragma unroll
          for (int b = 0; b < G::CN; ++b) sc[a][b] += qa[a] * kb[b];
      }
#pragma unroll
      for (int a = 0; a < G::RM; ++a)
#pragma unroll
        for (int b = 0; b < G::CN; ++b) {
          const int r = ty + TG * a, cc = tx + TG * b;
          const int64_t i = i0 + r, j = j0 + cc;
          Ss[r * G::SP + cc] = (i < t && j <= i) ? sc[a][b] * scale : -INFINITY;
        }
    }
    __syncthreads();
    // Online softmax: warp w owns rows w + NWARP*u; lane covers columns lane + 32*x.
#pragma unroll
    for (int u = 0; u < G::RW; ++u) {
      const int r = warp + NWARP * u;
      const int64_t i = i0 + r;
      float sv[G::CL];
      float mt = -INFINITY;
#pragma unroll
      for (int x = 0; x < G::CL; ++x) {
        sv[x] = Ss[r * G::SP + lane + WARP * x];
        mt = fmaxf(mt, sv[x]);
      }
      mt = warp_max(mt);
      const float m_new = fmaxf(m_row[u], mt);  // -inf only for rows past t (every row i < t sees key 0)
      float psum = 0.0f;
#pragma unroll
      for (int x = 0; x < G::CL; ++x) {
        float p = sv[x] == -INFINITY ? 0.0f : expf(sv[x] - m_new);
        psum += p;  // the undropped probabilities normalise the row
        if (dropping && p != 0.0f) p *= keep_factor(drop, keep_scale, bh, t, i, j0 + lane + WARP * x);
        Ss[r * G::SP + lane + WARP * x] = p;
      }
      psum = warp_sum(psum);
      const float alpha = m_row[u] == -INFINITY ? 0.0f : expf(m_row[u] - m_new);
      l_row[u] = l_row[u] * alpha + psum;
      m_row[u] = m_new;
      if (lane == 0) alpha_s[r] = alpha;
    }
    __syncthreads();
    // O = alpha O + P_dropped v
#pragma unroll
    for (int a = 0; a < G::RM; ++a) {
      const float al = alpha_s[ty + TG * a];
#pragma unroll
      for (int e = 0; e < G::DN; ++e) acc[a][e] *= al;
    }
    tile_product_add<D, BR, BC>(acc, Ss, Vs);
  }
  // Row results: L = m + log(l) (l >= 1 for every row i < t: its maximum contributes exp(0)).
#pragma unroll
  for (int u = 0; u < G::RW; ++u) {
    const int r = warp + NWARP * u;
    const int64_t i = i0 + r;
    if (lane == 0) {
      l_s[r] = l_row[u];
      if (i < t) lse[bh * t + i] = m_row[u] + logf(l_row[u]);
    }
  }
  __syncthreads();
#pragma unroll
  for (int a = 0; a < G::RM; ++a) {
    const int r = ty + TG * a;
    const int64_t i = i0 + r;
    if (i >= t) continue;
    const float inv = 1.0f / l_s[r];
#pragma unroll
    for (int e = 0; e < G::DN; ++e) {
      const int d = tx + TG * e;
      if (d >= hd) continue;
      const int64_t o = (bi * t + i) * c + h * hd + d;
      out[o] = acc[a][e] * inv;
    }
  }
}

// D[bh*T + i] = sum_{d < hd} dout[bi, i, h*hd + d] * o[bi, i, h*hd + d]; one warp per row.
__global__ void k_row_dot(float* dsum, const float* dout, const float* o, int64_t rows, int64_t t, int64_t c,
                          int64_t nh, int hd) {
  const int64_t r = blockIdx.x * (int64_t)NWARP + threadIdx.x / WARP;
  const int lane = threadIdx.x % WARP;
  if (r >= rows) return;  // the same for the whole warp
  const int64_t bh = r / t, i = r % t, bi = bh / nh, h = bh % nh;
  const int64_t off = (bi * t + i) * c + h * hd;
  float s = 0.0f;
  for (int d = lane; d < hd; d += WARP) s += dout[off + d] * o[off + d];
  s = warp_sum(s);
  if (lane == 0) dsum[r] = s;
}

// The backward's per-tile recomputation, shared by both backward kernels: for rows ty + 16a and
// columns tx + 16b of the (BR, BC) tile at (i0, j0): P = exp(scale q.k - L), the dropped P and
// dS = P (z dO.v - D) scale (the derivation at the top); zero outside the causal triangle and past t.
// Pd may be null (the dQ kernel needs only dS).
template <int D, int BR, int BC>
__device__ inline void tile_grads(float* Pd, float* dS, const float* Qs, const float* dOs, const float* Ks,
                                  const float* Vs, const float* Ls, const float* Ds, int64_t i0, int64_t j0, int64_t t,
                                  int64_t bh, float scale, const CudaDropout& drop, float keep_scale) {
  using G = Geo<D, BR, BC>;
  const int tx = threadIdx.x % TG, ty = threadIdx.x / TG;
  float sc[G::RM][G::CN], dp[G::RM][G::CN];
#pragma unroll
  for (int a = 0; a < G::RM; ++a)
#pragma unroll
    for (int b = 0; b < G::CN; ++b) sc[a][b] = 0.0f, dp[a][b] = 0.0f;
#pragma unroll 4
  for (int d = 0; d < D; ++d) {
    float qa[G::RM], oa[G::RM], kb[G::CN], vb[G::CN];
#pragma unroll
    for (int a = 0; a < G::RM; ++a) {
      qa[a] = Qs[(ty + TG * a) * G::DP + d];
      oa[a] = dOs[(ty + TG * a) * G::DP + d];
    }
#pragma unroll
    for (int b = 0; b < G::CN; ++b) {
      kb[b] = Ks[(tx + TG * b) * G::DP + d];
      vb[b] = Vs[(tx + TG * b) * G::DP + d];
    }
#pragma unroll
    for (int a = 0; a < G::RM; ++a)
#pragma unroll
      for (int b = 0; b < G::CN; ++b) {
        sc[a][b] += qa[a] * kb[b];
        dp[a][b] += oa[a] * vb[b];
      }
  }
  const bool dropping = drop.p > 0.0f;
#pragma unroll
  for (int a = 0; a < G::RM; ++a)
#pragma unroll
    for (int b = 0; b < G::CN; ++b) {
      const int r = ty + TG * a, cc = tx + TG * b;
      const int64_t i = i0 + r, j = j0 + cc;
      float pd = 0.0f, ds = 0.0f;
      if (i < t && j <= i) {
        const float p = expf(sc[a][b] * scale - Ls[r]);
        const float z = dropping ? keep_factor(drop, keep_scale, bh, t, i, j) : 1.0f;
        pd = p * z;
        ds = p * (dp[a][b] * z - Ds[r]) * scale;
      }
      if (Pd) Pd[r * G::SP + cc] = pd;
      dS[r * G::SP + cc] = ds;
    }
}

template <int D, int BR, int BC>
__global__ void __launch_bounds__(NT)
    k_flash_backward_dkv(float* dqkv, const float* dout, const float* qkv, const float* lse, const float* dsum,
                         int64_t t, int64_t c, int64_t nh, int hd, float scale, CudaDropout drop, float keep_scale) {
  using G = Geo<D, BR, BC>;
  extern __shared__ float smem[];
  float* Ks = smem;                 // (BC, DP)
  float* Vs = Ks + BC * G::DP;      // (BC, DP)
  float* Qs = Vs + BC * G::DP;      // (BR, DP)
  float* dOs = Qs + BR * G::DP;     // (BR, DP)
  float* Ps = dOs + BR * G::DP;     // (BR, SP) dropped probabilities
  float* dSs = Ps + BR * G::SP;     // (BR, SP) score gradients
  float* Ls = dSs + BR * G::SP;     // (BR)
  float* Ds = Ls + BR;              // (BR)
  const int64_t bh = blockIdx.x, bi = bh / nh, h = bh % nh;
  const int64_t j0 = (int64_t)blockIdx.y * BC;  // the first key tiles (most query tiles) start first
  const int64_t ld = 3 * c;
  const float* q = qkv + bi * t * ld + h * hd;
  const float* k = q + c;
  const float* v = q + 2 * c;
  const float* dO = dout + bi * t * c + h * hd;
  const int tx = threadIdx.x % TG, ty = threadIdx.x / TG;

  load_rows<BC, D>(Ks, k, ld, j0, t, hd);
  load_rows<BC, D>(Vs, v, ld, j0, t, hd);
  float dk[G::CN][G::DN], dv[G::CN][G::DN];  // key rows ty + 16a, head-dim columns tx + 16e
#pragma unroll
  for (int a = 0; a < G::CN; ++a)
#pragma unroll
    for (int e = 0; e < G::DN; ++e) dk[a][e] = 0.0f, dv[a][e] = 0.0f;

  // Query rows i < j0 see none of these keys: start at the tile holding row j0.
  for (int64_t i0 = (j0 / BR) * BR; i0 < t; i0 += BR) {
    __syncthreads();  // the previous tile's reads of Qs, dOs, Ps, dSs are done (first: Ks, Vs written)
    load_rows<BR, D>(Qs, q, ld, i0, t, hd);
    load_rows<BR, D>(dOs, dO, c, i0, t, hd);
    load_row_values<BR>(Ls, lse, bh, i0, t);
    load_row_values<BR>(Ds, dsum, bh, i0, t);
    __syncthreads();
    tile_grads<D, BR, BC>(Ps, dSs, Qs, dOs, Ks, Vs, Ls, Ds, i0, j0, t, bh, scale, drop, keep_scale);
    __syncthreads();
    // dV += Pd^T dO, dK += dS^T q over the tile's query rows in order
#pragma unroll 4
    for (int rr = 0; rr < BR; ++rr) {
      float pa[G::CN], sa[G::CN], ob[G::DN], qb[G::DN];
#pragma unroll
      for (int a = 0; a < G::CN; ++a) {
        pa[a] = Ps[rr * G::SP + ty + TG * a];
        sa[a] = dSs[rr * G::SP + ty + TG * a];
      }
#pragma unroll
      for (int e = 0; e < G::DN; ++e) {
        ob[e] = dOs[rr * G::DP + tx + TG * e];
        qb[e] = Qs[rr * G::DP + tx + TG * e];
      }
#pragma unroll
      for (int a = 0; a < G::CN; ++a)
#pragma unroll
        for (int e = 0; e < G::DN; ++e) {
          dv[a][e] += pa[a] * ob[e];
          dk[a][e] += sa[a] * qb[e];
        }
    }
  }
#pragma unroll
  for (int a = 0; a < G::CN; ++a) {
    const int64_t j = j0 + ty + TG * a;
    if (j >= t) continue;
#pragma unroll
    for (int e = 0; e < G::DN; ++e) {
      const int d = tx + TG * e;
      if (d >= hd) continue;
      float* row = dqkv + (bi * t + j) * ld + h * hd + d;
      row[c] = dk[a][e];
      row[2 * c] = dv[a][e];
    }
  }
}

template <int D, int BR, int BC>
__global__ void __launch_bounds__(NT)
    k_flash_backward_dq(float* dqkv, const float* dout, const float* qkv, const float* lse, const float* dsum,
                        int64_t t, int64_t c, int64_t nh, int hd, float scale, CudaDropout drop, float keep_scale) {
  using G = Geo<D, BR, BC>;
  extern __shared__ float smem[];
  float* Qs = smem;                 // (BR, DP)
  float* dOs = Qs + BR * G::DP;     // (BR, DP)
  float* Ks = dOs + BR * G::DP;     // (BC, DP)
  float* Vs = Ks + BC * G::DP;      // (BC, DP)
  float* dSs = Vs + BC * G::DP;     // (BR, SP)
  float* Ls = dSs + BR * G::SP;     // (BR)
  float* Ds = Ls + BR;              // (BR)
  const int64_t bh = blockIdx.x, bi = bh / nh, h = bh % nh;
  const int64_t i0 = (int64_t)(gridDim.y - 1 - blockIdx.y) * BR;  // the longest (last) tiles start first
  const int64_t ld = 3 * c;
  const float* q = qkv + bi * t * ld + h * hd;
  const float* k = q + c;
  const float* v = q + 2 * c;
  const float* dO = dout + bi * t * c + h * hd;
  const int tx = threadIdx.x % TG, ty = threadIdx.x / TG;

  load_rows<BR, D>(Qs, q, ld, i0, t, hd);
  load_rows<BR, D>(dOs, dO, c, i0, t, hd);
  load_row_values<BR>(Ls, lse, bh, i0, t);
  load_row_values<BR>(Ds, dsum, bh, i0, t);
  float dq[G::RM][G::DN];  // query rows ty + 16a, head-dim columns tx + 16e
#pragma unroll
  for (int a = 0; a < G::RM; ++a)
#pragma unroll
    for (int e = 0; e < G::DN; ++e) dq[a][e] = 0.0f;

  const int64_t kend = i0 + BR < t ? i0 + BR : t;
  for (int64_t j0 = 0; j0 < kend; j0 += BC) {
    __syncthreads();  // the previous tile's reads of Ks, dSs are done (first: Qs, dOs, Ls, Ds written)
    load_rows<BC, D>(Ks, k, ld, j0, t, hd);
    load_rows<BC, D>(Vs, v, ld, j0, t, hd);
    __syncthreads();
    tile_grads<D, BR, BC>(nullptr, dSs, Qs, dOs, Ks, Vs, Ls, Ds, i0, j0, t, bh, scale, drop, keep_scale);
    __syncthreads();
    // dQ += dS k over the tile's keys in order (the scale is inside dS)
    tile_product_add<D, BR, BC>(dq, dSs, Ks);
  }
#pragma unroll
  for (int a = 0; a < G::RM; ++a) {
    const int64_t i = i0 + ty + TG * a;
    if (i >= t) continue;
#pragma unroll
    for (int e = 0; e < G::DN; ++e) {
      const int d = tx + TG * e;
      if (d < hd) dqkv[(bi * t + i) * ld + h * hd + d] = dq[a][e];
    }
  }
}

CudaStatus invalid(const char* why) {
  CudaStatus s;
  s.cuda = cudaErrorInvalidValue;
  s.step = why;
  return s;
}

CudaStatus check_shape(int64_t b, int64_t t, int64_t c, int64_t nh) {
  if (b < 0 || t < 0 || c <= 0 || nh <= 0 || c % nh != 0)
    return invalid("attention: shape (B, T, C, H) must have C a positive multiple of H");
  if (c / nh > CUDA_ATTENTION_MAX_HEAD_DIM) return invalid("attention: head dim C / H > 128 is not supported");
  if (b * nh > 0x7fffffffLL) return invalid("attention: B * H exceeds the grid's x limit");
  if ((t + 31) / 32 > 65535) return invalid("attention: T exceeds the grid's y limit (65535 tiles)");
  return CudaStatus{};
}

// The bf16 mode's packed heads (in att and the workspace): present and 16-byte aligned (their tiles
// are copied in 16-byte chunks).
CudaStatus check_aligned(const void* p, const char* why) {
  if (!p || !aligned16(p)) return invalid(why);
  return CudaStatus{};
}

template <int D, int BR, int BC>
CudaStatus forward_tiles(cudaStream_t s, float* out, float* lse, const float* qkv, int64_t b, int64_t t, int64_t c,
                         int64_t nh, float scale, const CudaDropout& drop, float keep_scale) {
  using G = Geo<D, BR, BC>;
  const int bytes = G::FWD * (int)sizeof(float);
  auto kernel = k_flash_forward<D, BR, BC>;
  MIRA_CUDA_TRY(allow_smem(kernel, bytes, "attention forward shared-memory attribute"));
  const dim3 grid((unsigned)(b * nh), (unsigned)((t + BR - 1) / BR));
  kernel<<<grid, NT, bytes, s>>>(out, lse, qkv, t, c, nh, (int)(c / nh), scale, drop, keep_scale);
  return cuda_status_launch("attention flash forward kernel");
}

template <int D, int BR, int BC>
CudaStatus backward_tiles(cudaStream_t s, float* dqkv, const float* dsum, const float* dout, const float* qkv,
                          const float* lse, int64_t b, int64_t t, int64_t c, int64_t nh, float scale,
                          const CudaDropout& drop, float keep_scale) {
  using G = Geo<D, BR, BC>;
  const int hd = (int)(c / nh);
  const int dkv_bytes = G::DKV * (int)sizeof(float), dq_bytes = G::DQ * (int)sizeof(float);
  auto dkv = k_flash_backward_dkv<D, BR, BC>;
  auto dq = k_flash_backward_dq<D, BR, BC>;
  MIRA_CUDA_TRY(allow_smem(dkv, dkv_bytes, "attention backward dK/dV shared-memory attribute"));
  MIRA_CUDA_TRY(allow_smem(dq, dq_bytes, "attention backward dQ shared-memory attribute"));
  dkv<<<dim3((unsigned)(b * nh), (unsigned)((t + BC - 1) / BC)), NT, dkv_bytes, s>>>(dqkv, dout, qkv, lse, dsum, t, c,
                                                                                    nh, hd, scale, drop, keep_scale);
  MIRA_CUDA_TRY(cuda_status_launch("attention flash backward dK/dV kernel"));
  dq<<<dim3((unsigned)(b * nh), (unsigned)((t + BR - 1) / BR)), NT, dq_bytes, s>>>(dqkv, dout, qkv, lse, dsum, t, c, nh,
                                                                                  hd, scale, drop, keep_scale);
  return cuda_status_launch("attention flash backward dQ kernel");
}

}  // namespace

CudaStatus cuda_attention_forward(cudaStream_t s, float* out, float* att, const float* qkv, int64_t b, int64_t t,
                                  int64_t c, int64_t nh, const CudaDropout& drop, bool bf16) {
  MIRA_CUDA_TRY(check_shape(b, t, c, nh));
  if (b == 0 || t == 0) return CudaStatus{};
  if (bf16) {  // attention_bf16.cu
    MIRA_CUDA_TRY(check_aligned(att, "attention bf16: the saved state att is not 16-byte aligned"));
    return cuda_attention_forward_bf16(s, out, att, qkv, b, t, c, nh, drop);
  }
  const int64_t hd = c / nh;
  const float scale = 1.0f / std::sqrt((float)hd);  // as the CPU: (T)1 / std::sqrt((T)hd)
  float* lse = att;
  const float ks = keep_scale_of(drop);
  if (hd <= 32) return forward_tiles<32, 64, 64>(s, out, lse, qkv, b, t, c, nh, scale, drop, ks);
  if (hd <= 64) return forward_tiles<64, 64, 64>(s, out, lse, qkv, b, t, c, nh, scale, drop, ks);
  return forward_tiles<128, 32, 32>(s, out, lse, qkv, b, t, c, nh, scale, drop, ks);
}

CudaStatus cuda_attention_forward(cudaStream_t s, __nv_bfloat16* out, float* att, const float* qkv, int64_t b,
                                  int64_t t, int64_t c, int64_t nh, const CudaDropout& drop) {
  MIRA_CUDA_TRY(check_shape(b, t, c, nh));
  if (b == 0 || t == 0) return CudaStatus{};
  MIRA_CUDA_TRY(check_aligned(att, "attention bf16: the saved state att is not 16-byte aligned"));
  return cuda_attention_forward_bf16(s, out, att, qkv, b, t, c, nh, drop);
}

CudaStatus cuda_attention_backward(cudaStream_t s, float* dqkv, float* scratch, const float* dout,
                                   const __nv_bfloat16* out, const float* att, int64_t b, int64_t t, int64_t c,
                                   int64_t nh, const CudaDropout& drop, __nv_bfloat16* ws16) {
  MIRA_CUDA_TRY(check_shape(b, t, c, nh));
  if (b == 0 || t == 0) return CudaStatus{};
  MIRA_CUDA_TRY(check_aligned(att, "attention bf16: the saved state att is not 16-byte aligned"));
  MIRA_CUDA_TRY(check_aligned(ws16, "attention bf16: the workspace (cuda_attention_bf16_workspace) is missing or not "
                                    "16-byte aligned"));
  return cuda_attention_backward_bf16(s, dqkv, scratch, dout, out, att, ws16, b, t, c, nh, drop);
}

CudaStatus cuda_attention_backward(cudaStream_t s, float* dqkv, float* scratch, const float* dout, const float* qkv,
                                   const float* out, const float* att, int64_t b, int64_t t, int64_t c, int64_t nh,
                                   const CudaDropout& drop, bool bf16, __nv_bfloat16* ws16) {
  MIRA_CUDA_TRY(check_shape(b, t, c, nh));
  if (b == 0 || t == 0) return CudaStatus{};
  if (bf16) {
    MIRA_CUDA_TRY(check_aligned(att, "attention bf16: the saved state att is not 16-byte aligned"));
    MIRA_CUDA_TRY(check_aligned(ws16, "attention bf16: the workspace (cuda_attention_bf16_workspace) is missing or not "
                                      "16-byte aligned"));
    return cuda_attention_backward_bf16(s, dqkv, scratch, dout, out, att, ws16, b, t, c, nh, drop);
  }
  const int64_t hd = c / nh, rows = b * nh * t;
  const float scale = 1.0f / std::sqrt((float)hd);
  const float* lse = att;
  float* dsum = scratch;  // D = rowsum(dout * out) (B, H, T)
  k_row_dot<<<grid_for(rows, NWARP), NT, 0, s>>>(dsum, dout, out, rows, t, c, nh, (int)hd);
  MIRA_CUDA_TRY(cuda_status_launch("attention backward row-dot kernel"));
  const float ks = keep_scale_of(drop);
  if (hd <= 32) return backward_tiles<32, 64, 64>(s, dqkv, dsum, dout, qkv, lse, b, t, c, nh, scale, drop, ks);
  if (hd <= 64) return backward_tiles<64, 64, 64>(s, dqkv, dsum, dout, qkv, lse, b, t, c, nh, scale, drop, ks);
  return backward_tiles<128, 32, 32>(s, dqkv, dsum, dout, qkv, lse, b, t, c, nh, scale, drop, ks);
}

}  // namespace mira
