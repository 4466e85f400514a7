// Flash-style causal attention on tensor cores: the bf16 operand mode (AttentionPrecision::BF16;
// cuda_attention_forward/backward with bf16 = true, kernels/cuda/attention.h). Every matmul is an
// mma.sync m16n8k16 with bf16 operands and fp32 accumulators (kernels/cuda/mma_bf16.cuh), and the
// scores, probabilities and score gradients never leave the registers: the C fragments of one
// product, rounded to bf16 and packed, are the A fragments of the next. Softmax, logsumexp, masks,
// dropout and the score gradients are fp32. The roundings are exactly those of the CPU oracle
// (kernels/cpu/attention.h, bf16 = true): q, k, v, dO rounded to bf16 once (k_pack_heads),
// the dropped probabilities Pd = z P and the score gradients dS rounded before their products. So
// CPU bf16 and CUDA bf16 differ only by the fp32 summation order (and the rare bf16 rounding flip
// of a P or dS that the fp32 differences push across a rounding boundary).
//
// Inputs: k_pack_heads copies q, k, v (forward) and dO (backward) into a padded head-major bf16
// layout (B*H, TP, D): TP = T rounded up to 64, D = hd rounded up to 32, 64 or 128, zeros in the
// padding. q, k, v go into the saved state att (before the logsumexp), where the backward reads them
// (it never reads qkv: Backend::attention_backward_reads_qkv); dO into the bf16 workspace. So every
// tile is a whole, aligned (64, D) block that 16-byte cp.async copies bring into shared memory
// (double-buffered: the next tile streams in while this one is used), with no bounds checks in the
// kernels; any T and head dims up to 128 work.
// Kernels (128 threads = 4 warps; tiles of 64 queries / 64 keys; warp w owns 16 rows of its block's
// tile):
//  - k_bf16_forward: one block per (query tile, batch*head), longest tiles first. Two passes over
//    the key tiles up to the causal limit. Pass 1: S = scale q k^T, the exact row max m and row sum l
//    (online, fp32). Pass 2: S again, P = exp(S - m) / l, Pd = z P rounded to bf16, O += Pd v. Two
//    passes because the oracle rounds the normalised P: a one-pass (online-rescaled) kernel would
//    round exp(S - m_running), a different value. Writes out and the row logsumexp L = m + log l
//    (the saved state of attention.h).
//  - k_bf16_row_dot: D_i = sum_d bf16(dO_id) O_id (the oracle's D, attention.h).
//  - k_bf16_backward_dkv: one block per (key tile, batch*head); walks the query tiles from the
//    diagonal to T, 32 queries per register step: S^T = k q^T, dPd^T = v dO^T, P = exp(S - L),
//    dS = P (z dPd - D) scale, then dV += bf16(Pd)^T bf16(dO) and dK += bf16(dS)^T bf16(q).
//  - k_bf16_backward_dq: one block per (query tile, batch*head); walks the key tiles up to the
//    causal limit, 32 keys per register step: S, dPd, dS as above, dQ += bf16(dS) bf16(k).
// n-tiles (8 keys or queries) that lie wholly outside the causal triangle or past T are skipped;
// register tiles wholly below the diagonal (all rows < T) skip the per-element mask tests (MASK).
// Deterministic: fixed tile orders, fixed in-fragment sums, no atomics.
// Shared memory: the forward 5 tiles (q, k x2, v x2), the backward 6 (+ 1 KB of row values); a tile
// is (64, D + 8) bf16: D = 64: 46 / 56 KB; D = 128: 85 / 103 KB (opted in with cudaFuncSetAttribute).
// Measured: the previous WMMA version (shared-memory score tiles) ran 0.54 ms forward, 1.19 ms
// backward per GPT-2 layer on an H200 (docs/results.md); this version is not yet timed on a GPU.
#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_launch.cuh"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/mma_bf16.cuh"

namespace mira {

using namespace cuda_detail;

namespace {

using bf16 = __nv_bfloat16;
constexpr int NW = 4;          // warps per block
constexpr int NT = NW * WARP;  // threads per block
constexpr int BR = 16 * NW;    // query rows per tile
constexpr int BC = 64;         // keys per tile
constexpr int STEP = 32;       // keys (dQ) or queries (dK/dV) per register step of the backward
static_assert(BR == BC, "the padded length TP is a multiple of both; the backward starts on the diagonal tile");

// The padded head dimension of hd (the kernels' template parameter).
inline int padded_head_dim(int64_t hd) { return hd <= 32 ? 32 : hd <= 64 ? 64 : 128; }
// T rounded up to whole tiles: the row count of a padded head.
inline int64_t padded_len(int64_t t) { return (t + BC - 1) / BC * BC; }

template <int D>
struct Geo {
  static constexpr int LDH = D + 8;          // row stride (elements) of a (64, LDH) shared tile: rows 16-byte
                                             // aligned, and the 8 rows of an ldmatrix hit distinct banks
  static constexpr int TILE = 64 * LDH * 2;  // bytes of a tile (a multiple of 128)
  static constexpr int FWD = 5 * TILE;                // q, k x2, v x2
  static constexpr int BWD = 6 * TILE + 4 * BR * 4;   // 2 resident + 2 x2 streamed tiles, L and D x2
  static_assert(D % 32 == 0, "ldmatrix x4 covers 32 columns of A / B^T per call");
};

// dst (sections, B*H, TP, D) bf16 from src (B, T, ld) fp32: section s, head h of batch bi is columns
// s*c + h*hd .. + hd of each row; zeros past row t and column hd. One thread per 8 elements (one
// 16-byte store).
template <int D>
__global__ void k_pack_heads(bf16* dst, const float* src, int64_t ld, int64_t sections, int64_t bnh, int64_t t,
                             int64_t tp, int64_t c, int64_t nh, int hd) {
  constexpr int CH = D / 8;
  const int64_t n = sections * bnh * tp * CH;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const int d0 = (int)(e % CH) * 8;
    const int64_t r = e / CH, row = r % tp, bh = (r / tp) % bnh, s = r / tp / bnh;
    float v[8];
#pragma unroll
    for (int x = 0; x < 8; ++x) v[x] = 0.0f;
    if (row < t) {
      const float* g = src + ((bh / nh) * t + row) * ld + s * c + (bh % nh) * hd;
#pragma unroll
      for (int x = 0; x < 8; ++x)
        if (d0 + x < hd) v[x] = g[d0 + x];
    }
    uint4 o;
    o.x = pack_bf16x2(v[0], v[1]);
    o.y = pack_bf16x2(v[2], v[3]);
    o.z = pack_bf16x2(v[4], v[5]);
    o.w = pack_bf16x2(v[6], v[7]);
    *reinterpret_cast<uint4*>(dst + e * 8) = o;
  }
}

// Block-level: rows [r0, r0 + 64) of a padded head g (TP, D) into the shared tile s (64, LDH), as
// 16-byte cp.async copies of this thread (the caller commits and waits).
template <int D>
__device__ inline void load_tile_async(bf16* s, const bf16* g, int64_t r0) {
  constexpr int CH = D / 8;
  for (int e = threadIdx.x; e < 64 * CH; e += NT) {
    const int r = e / CH, x = (e % CH) * 8;
    cp_async16(s + r * Geo<D>::LDH + x, g + (r0 + r) * D + x);
  }
}

// Per-row values of (B*H, T) arrays for rows [i0, i0 + 64) of head bh (zero past t).
__device__ inline void load_row_values(float* s, const float* g, int64_t bh, int64_t i0, int64_t t) {
  for (int r = threadIdx.x; r < BR; r += NT) s[r] = i0 + r < t ? g[bh * t + i0 + r] : 0.0f;
}

// Zeroed C fragments of a (16, 8 N) accumulator.
template <int N>
__device__ inline void zero_frags(float (&acc)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[i][e] = 0.0f;
}

// The double-buffered loops' wait: this thread's copies of the current tile have landed, the next
// tile's group (when one was just issued) stays in flight. A __syncthreads must follow.
__device__ inline void wait_current_tile(bool next_in_flight) {
  if (next_in_flight)
    cp_async_wait<1>();
  else
    cp_async_wait<0>();
}

// Warp-level: the A fragments of rows [r0, r0 + 16) of a shared tile, a[kk] = columns 16kk..16kk+15.
template <int D>
__device__ inline void load_a_frags(uint32_t (&a)[D / 16][4], const bf16* s, int r0) {
  const int lane = threadIdx.x % WARP;
  const bf16* p = s + (r0 + (lane & 7) + 8 * ((lane >> 3) & 1)) * Geo<D>::LDH + 8 * (lane >> 4);
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) ldmatrix_x4(a[kk], p + 16 * kk);
}

// Warp-level: acc (16, 8 NN) = A B^T, A the warp's fragments (16, D), B rows [n0, n0 + 8 NN) of a
// shared tile (the keys of S = q k^T, the queries of S^T = k q^T). n-tiles nt >= nn_end (warp-
// uniform) are not computed and left zero.
template <int D, int NN>
__device__ inline void product_abt(float (&acc)[NN][4], const uint32_t (&a)[D / 16][4], const bf16* s, int n0,
                                   int nn_end) {
  const int lane = threadIdx.x % WARP;
  zero_frags(acc);
#pragma unroll
  for (int nt = 0; nt < NN; ++nt) {
    if (nt >= nn_end) continue;
    const bf16* p = s + (n0 + 8 * nt + (lane & 7)) * Geo<D>::LDH + 8 * (lane >> 3);
#pragma unroll
    for (int kk = 0; kk < D / 16; kk += 2) {
      uint32_t b[4];  // B^T (k, n) = B[n][k]: b[0..1] for columns 16kk.., b[2..3] for 16(kk + 1)..
      ldmatrix_x4(b, p + 16 * kk);
      mma_bf16_16816(acc[nt], a[kk], b[0], b[1]);
      mma_bf16_16816(acc[nt], a[kk + 1], b[2], b[3]);
    }
  }
}

// Warp-level: acc (16, D as D/8 n-tiles) += A (16, 16 KK; fragments pa) times rows [k0, k0 + 16 KK)
// of a shared tile (V, dO, q or k: (rows, D) row-major, read transposed by ldmatrix). k-steps
// kk >= kk_end (warp-uniform; their A is zero) are skipped.
template <int D, int KK>
__device__ inline void product_add_av(float (&acc)[D / 8][4], const uint32_t (&pa)[KK][4], const bf16* s, int k0,
                                      int kk_end) {
  const int lane = threadIdx.x % WARP;
#pragma unroll
  for (int kk = 0; kk < KK; ++kk) {
    if (kk >= kk_end) continue;
    const bf16* p = s + (k0 + 16 * kk + (lane & 15)) * Geo<D>::LDH + 8 * (lane >> 4);
#pragma unroll
    for (int dd = 0; dd < D / 8; dd += 2) {
      uint32_t b[4];  // b[0..1]: columns 8dd..8dd+7, b[2..3]: the next 8
      ldmatrix_x4_trans(b, p + 8 * dd);
      mma_bf16_16816(acc[dd], pa[kk], b[0], b[1]);
      mma_bf16_16816(acc[dd + 1], pa[kk], b[2], b[3]);
    }
  }
}

// The A fragments (16, 16 KK) of a (16, 8 * 2KK) tile of C fragments, rounded to bf16 (the register
// layouts line up: n-tiles 2kk and 2kk + 1 are the left and right halves of k-step kk).
template <int KK>
__device__ inline void to_a_frags(uint32_t (&a)[KK][4], const float (&v)[2 * KK][4]) {
#pragma unroll
  for (int kk = 0; kk < KK; ++kk) {
    a[kk][0] = pack_bf16x2(v[2 * kk][0], v[2 * kk][1]);
    a[kk][1] = pack_bf16x2(v[2 * kk][2], v[2 * kk][3]);
    a[kk][2] = pack_bf16x2(v[2 * kk + 1][0], v[2 * kk + 1][1]);
    a[kk][3] = pack_bf16x2(v[2 * kk + 1][2], v[2 * kk + 1][3]);
  }
}

// The attention output in fp32 or bf16 storage (bf16 activations, Backend DAct: rounded to nearest).
__device__ inline void store_out(float* p, float v) { *p = v; }
__device__ inline void store_out(bf16* p, float v) { *p = __float2bfloat16_rn(v); }
__device__ inline float load_out(const float* p) { return *p; }
__device__ inline float load_out(const bf16* p) { return __bfloat162float(*p); }

// Warp-level: the (16, D) accumulator into rows r0..r0+15 (those < t), columns < hd, of g
// (leading dimension ld; g points at the head's column 0 of row 0).
template <int D, typename TO>
__device__ inline void write_rows(const float (&acc)[D / 8][4], TO* g, int64_t ld, int64_t r0, int64_t t, int hd) {
  const int lane = threadIdx.x % WARP;
#pragma unroll
  for (int dd = 0; dd < D / 8; ++dd)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t r = r0 + lane / 4 + 8 * (e / 2);
      const int col = 8 * dd + 2 * (lane % 4) + e % 2;
      if (r >= t || col >= hd) continue;
      store_out(g + r * ld + col, acc[dd][e]);
    }
}

// The dropout keep factor of (bh, i, j): keep_scale or 0 (attention.h, CudaDropout), with the last
// rng_at draw cached: one draw holds the 16-bit lanes of 4 consecutive mask indices, so a lane that
// walks a row's columns in order (the forward, dQ) draws about once per 2-4 elements; the dK/dV
// kernel walks a column (indices t apart) and draws every time. The same bits as dropout_keep_dev.
struct KeepCache {
  uint64_t group = ~0ull, bits = 0;
  __device__ float factor(const CudaDropout& drop, float keep_scale, int64_t bh, int64_t t, int64_t i, int64_t j) {
    const uint64_t idx = drop.base + ((uint64_t)(bh * t + i) * (uint64_t)t + (uint64_t)j);
    if ((idx >> 2) != group) group = idx >> 2, bits = rng_at(drop.stream, group);
    return ((bits >> (16 * (idx & 3))) & 0xFFFFu) >= drop.threshold ? keep_scale : 0.0f;
  }
};

// The element (n-tile nt, register e) of a warp's C fragments: its row (0..15) and column offset.
__device__ inline int frag_row(int e) { return (threadIdx.x % WARP) / 4 + 8 * (e / 2); }
__device__ inline int frag_col(int nt, int e) { return 8 * nt + 2 * (threadIdx.x % 4) + e % 2; }

// Whether query i sees key j (causal, inside the sequence). MASK = false: the caller knows the whole
// register tile is visible (a tile below the diagonal, all rows < t), so no element is tested.
template <bool MASK>
__device__ inline bool visible(int64_t i, int64_t j, int64_t t) {
  return !MASK || (i < t && j <= i);
}

// The forward's pass 1 on one key tile: the online row max m and row sum l of exp(S scale - m) of
// the lane's two rows (row[r]), over the tile's visible scores s (C fragments, unscaled).
template <bool MASK>
__device__ inline void online_max_sum(const float (&s)[8][4], const int64_t (&row)[2], int64_t j0, int64_t t,
                                      float scale, float (&m)[2], float (&l)[2]) {
  float mt[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (visible<MASK>(row[e / 2], j0 + frag_col(nt, e), t)) mt[e / 2] = fmaxf(mt[e / 2], s[nt][e] * scale);
  float ps[2] = {0.0f, 0.0f}, m_new[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    mt[r] = fmaxf(mt[r], __shfl_xor_sync(0xffffffffu, mt[r], 1));
    mt[r] = fmaxf(mt[r], __shfl_xor_sync(0xffffffffu, mt[r], 2));
    m_new[r] = fmaxf(m[r], mt[r]);
  }
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (visible<MASK>(row[e / 2], j0 + frag_col(nt, e), t)) ps[e / 2] += expf(s[nt][e] * scale - m_new[e / 2]);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    ps[r] += __shfl_xor_sync(0xffffffffu, ps[r], 1);
    ps[r] += __shfl_xor_sync(0xffffffffu, ps[r], 2);
    l[r] = (m[r] == -INFINITY ? 0.0f : l[r] * expf(m[r] - m_new[r])) + ps[r];
    m[r] = m_new[r];
  }
}

// The forward's pass 2 on one key tile: s := Pd = z exp(S scale - m) / l (0 where not visible).
template <bool MASK>
__device__ inline void dropped_probabilities(float (&s)[8][4], const int64_t (&row)[2], int64_t j0, int64_t t,
                                             float scale, const float (&m)[2], const float (&inv_l)[2],
                                             const CudaDropout& drop, float keep_scale, int64_t bh) {
  const bool dropping = drop.p > 0.0f;
  KeepCache kc[2];
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t i = row[e / 2], j = j0 + frag_col(nt, e);
      float p = 0.0f;
      if (visible<MASK>(i, j, t)) {
        p = expf(s[nt][e] * scale - m[e / 2]) * inv_l[e / 2];  // as the CPU: exp(S - max) * (1 / sum)
        if (dropping) p *= kc[e / 2].factor(drop, keep_scale, bh, t, i, j);
      }
      s[nt][e] = p;
    }
}

template <int D, typename TO>
__global__ void __launch_bounds__(NT)
    k_bf16_forward(TO* out, float* lse, const bf16* q16, const bf16* k16, const bf16* v16, int64_t t,
                   int64_t tp, int64_t c, int64_t nh, int hd, float scale, CudaDropout drop, float keep_scale) {
  using G = Geo<D>;
  extern __shared__ float4 smem4[];
  unsigned char* sm = reinterpret_cast<unsigned char*>(smem4);
  // Shared tiles (64, LDH): q, then k and v of buffer x (pointer arithmetic, not arrays of pointers:
  // a runtime index into a local array would put it in local memory).
  bf16* Qs = reinterpret_cast<bf16*>(sm);
  auto Ks = [&](int x) { return reinterpret_cast<bf16*>(sm + (1 + x) * G::TILE); };
  auto Vs = [&](int x) { return reinterpret_cast<bf16*>(sm + (3 + x) * G::TILE); };
  const int warp = threadIdx.x / WARP;
  const int64_t bh = blockIdx.x, bi = bh / nh, h = bh % nh;
  const int64_t i0 = (int64_t)(gridDim.y - 1 - blockIdx.y) * BR;  // the longest (last) tiles start first
  const int64_t iw = i0 + 16 * warp;                               // this warp's first row
  const bf16 *qg = q16 + bh * tp * D, *kg = k16 + bh * tp * D, *vg = v16 + bh * tp * D;
  const int64_t kend = i0 + BR < t ? i0 + BR : t;  // keys [0, kend) are visible to some row of the tile
  const int ntile = (int)((kend + BC - 1) / BC);
  const int steps = 2 * ntile;  // pass 1 over the k tiles, then pass 2 over the k and v tiles
  const bool active = iw < t;   // warp-uniform: the warp has rows to compute
  int64_t row[2];
  for (int r = 0; r < 2; ++r) row[r] = iw + frag_row(2 * r);

  // Step st's tiles into buffer st % 2 (one commit group).
  auto issue = [&](int st) {
    const int jt = st < ntile ? st : st - ntile;
    load_tile_async<D>(Ks(st & 1), kg, (int64_t)jt * BC);
    if (st >= ntile) load_tile_async<D>(Vs(st & 1), vg, (int64_t)jt * BC);
    cp_async_commit();
  };
  load_tile_async<D>(Qs, qg, i0);
  issue(0);  // one group with q

  uint32_t qa[D / 16][4];
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, inv_l[2] = {0.0f, 0.0f};
  float o[D / 8][4];
  zero_frags(o);
  for (int st = 0; st < steps; ++st) {
    if (st + 1 < steps) issue(st + 1);
    wait_current_tile(st + 1 < steps);
    __syncthreads();  // step st's tiles (and q) visible to every warp
    if (st == 0) load_a_frags<D>(qa, Qs, 16 * warp);
    const int64_t j0 = (int64_t)(st < ntile ? st : st - ntile) * BC;
    if (active && j0 <= iw + 15) {  // warp-uniform: some key of the tile is visible to the warp
      const int nn_end = (int)((iw + 15 - j0) / 8 + 1 < 8 ? (iw + 15 - j0) / 8 + 1 : 8);
      float s[8][4];
      product_abt<D, 8>(s, qa, Ks(st & 1), 0, nn_end);
      // warp-uniform: the whole (16, 64) tile lies below the diagonal, every row < t: no masking
      const bool full = j0 + BC - 1 <= iw && iw + 15 < t;
      if (st < ntile) {  // pass 1: online row max and row sum
        if (full)
          online_max_sum<false>(s, row, j0, t, scale, m, l);
        else
          online_max_sum<true>(s, row, j0, t, scale, m, l);
      } else {  // pass 2: Pd = z exp(S - m) / l in bf16, O += Pd v
        if (full)
          dropped_probabilities<false>(s, row, j0, t, scale, m, inv_l, drop, keep_scale, bh);
        else
          dropped_probabilities<true>(s, row, j0, t, scale, m, inv_l, drop, keep_scale, bh);
        uint32_t pa[4][4];
        to_a_frags<4>(pa, s);
        product_add_av<D, 4>(o, pa, Vs(st & 1), 0, (nn_end + 1) / 2);
      }
    }
    if (st == ntile - 1)
      for (int r = 0; r < 2; ++r) inv_l[r] = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;  // l >= 1 for rows < t
    __syncthreads();  // reads of buffer st % 2 done before step st + 2 streams into it
  }
  if (threadIdx.x % 4 == 0)
    for (int r = 0; r < 2; ++r)
      if (row[r] < t) lse[bh * t + row[r]] = m[r] + logf(l[r]);
  write_rows<D, TO>(o, out + bi * t * c + h * hd, c, iw, t, hd);
}

// D[bh*T + i] = sum_{d < hd} bf16(dout[bi, i, h*hd + d]) * o[bi, i, h*hd + d]; one warp per row.
template <typename TO>
__global__ void k_bf16_row_dot(float* dsum, const float* dout, const TO* o, int64_t rows, int64_t t, int64_t c,
                               int64_t nh, int hd) {
  const int64_t r = blockIdx.x * (int64_t)(BLOCK / WARP) + threadIdx.x / WARP;
  const int lane = threadIdx.x % WARP;
  if (r >= rows) return;  // the same for the whole warp
  const int64_t bh = r / t, i = r % t, bi = bh / nh, h = bh % nh;
  const int64_t off = (bi * t + i) * c + h * hd;
  float s = 0.0f;
  for (int d = lane; d < hd; d += WARP)
    s += __bfloat162float(__float2bfloat16_rn(dout[off + d])) * load_out(o + off + d);
  s = warp_sum(s);
  if (lane == 0) dsum[r] = s;
}

// The backward's padded bf16 inputs of head bh, each (TP, D): q, k, v from the forward's packed heads
// (qkv16: 3 sections of B*H heads, kept in its saved state) and dO (do16: B*H heads).
struct HeadInputs16 {
  const bf16 *q, *k, *v, *dO;
};
template <int D>
__device__ inline HeadInputs16 head_inputs(const bf16* qkv16, const bf16* do16, int64_t bnh, int64_t tp, int64_t bh) {
  const int64_t per = bnh * tp * D, off = bh * tp * D;
  return HeadInputs16{qkv16 + off, qkv16 + per + off, qkv16 + 2 * per + off, do16 + off};
}

// The per-element step of both backward kernels on one register step (16 rows x STEP columns): from
// the scores s (unscaled) and dPd (C fragments), the bf16 A fragments of Pd = z P and of
// dS = P (z dPd - D) scale (the dQ kernel ignores pda: the compiler drops its packing).
// TRANSPOSED (dK/dV): rows are keys r0.., columns queries c0..; else rows are queries r0.., columns
// keys c0... Lq, Dq: L and D of the step's queries (indexed by column when TRANSPOSED, by row
// otherwise). MASK: test each element's visibility (false: the caller knows all are visible).
template <bool TRANSPOSED, bool MASK>
__device__ inline void step_grads(uint32_t (&pda)[STEP / 16][4], uint32_t (&dsa)[STEP / 16][4], float (&s)[STEP / 8][4],
                                  float (&dp)[STEP / 8][4], const float* Lq, const float* Dq, int64_t r0, int64_t c0,
                                  int64_t t, int64_t bh, float scale, const CudaDropout& drop, float keep_scale) {
  const bool dropping = drop.p > 0.0f;
  KeepCache kc[2];
#pragma unroll
  for (int nt = 0; nt < STEP / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int a = frag_row(e), b = frag_col(nt, e);
      const int64_t i = TRANSPOSED ? c0 + b : r0 + a, j = TRANSPOSED ? r0 + a : c0 + b;
      const int qi = TRANSPOSED ? b : a;  // the query's index in Lq, Dq
      float pd = 0.0f, ds = 0.0f;
      if (visible<MASK>(i, j, t)) {
        const float p = expf(s[nt][e] * scale - Lq[qi]);
        const float z = dropping ? kc[e / 2].factor(drop, keep_scale, bh, t, i, j) : 1.0f;
        pd = p * z;
        ds = p * (dp[nt][e] * z - Dq[qi]) * scale;
      }
      s[nt][e] = pd;
      dp[nt][e] = ds;
    }
  to_a_frags<STEP / 16>(pda, s);
  to_a_frags<STEP / 16>(dsa, dp);
}

template <int D>
__global__ void __launch_bounds__(NT)
    k_bf16_backward_dkv(float* dqkv, const bf16* qkv16, const bf16* do16, const float* lse, const float* dsum,
                        int64_t t, int64_t tp, int64_t c, int64_t nh, int hd, float scale, CudaDropout drop,
                        float keep_scale) {
  using G = Geo<D>;
  extern __shared__ float4 smem4[];
  unsigned char* sm = reinterpret_cast<unsigned char*>(smem4);
  auto tile = [&](int n) { return reinterpret_cast<bf16*>(sm + n * G::TILE); };
  bf16 *Ks = tile(0), *Vs = tile(1);                // this block's keys (resident)
  auto Qs = [&](int x) { return tile(2 + x); };   // streamed query tiles, buffer x
  auto dOs = [&](int x) { return tile(4 + x); };
  float* rows = reinterpret_cast<float*>(sm + 6 * G::TILE);
  auto Ls = [&](int x) { return rows + x * BR; };  // L and D of the query tile in buffer x
  auto Ds = [&](int x) { return rows + (2 + x) * BR; };
  const int warp = threadIdx.x / WARP;
  const int64_t bh = blockIdx.x, bi = bh / nh, h = bh % nh;
  const int64_t j0 = (int64_t)blockIdx.y * BC;  // the first key tiles (most query tiles) start first
  const int64_t jw = j0 + 16 * warp;            // this warp's first key
  const HeadInputs16 in = head_inputs<D>(qkv16, do16, (int64_t)gridDim.x, tp, bh);
  const int nq = (int)((t - j0 + BR - 1) / BR);  // query tiles from the diagonal one (rows i < j0 see no key here)

  auto issue = [&](int n) {  // query tile n's q and dO into buffer n % 2
    const int64_t i0 = j0 + (int64_t)n * BR;
    load_tile_async<D>(Qs(n & 1), in.q, i0);
    load_tile_async<D>(dOs(n & 1), in.dO, i0);
    cp_async_commit();
  };
  // Query tile n's row values: thread x < BR holds L of row x, thread BR + x D of row x. Fetched
  // into a register when the tile's copies are issued, stored to shared memory after this
  // iteration's compute (the global load's latency overlaps it).
  static_assert(NT == 2 * BR, "one row value per thread");
  const int rv = threadIdx.x % BR;
  auto fetch_row_value = [&](int n) {
    const int64_t i = j0 + (int64_t)n * BR + rv;
    return i < t ? (threadIdx.x < BR ? lse : dsum)[bh * t + i] : 0.0f;
  };
  auto stash_row_value = [&](int n, float v) { (threadIdx.x < BR ? Ls(n & 1) : Ds(n & 1))[rv] = v; };
  load_tile_async<D>(Ks, in.k, j0);
  load_tile_async<D>(Vs, in.v, j0);
  issue(0);
  stash_row_value(0, fetch_row_value(0));

  // The warp's key rows as A fragments: kept in registers for D <= 64; for D = 128 (64 more registers
  // each) reloaded from shared memory per register step, which keeps the kernel from spilling.
  constexpr bool CACHE_KV = D <= 64;
  uint32_t ka[D / 16][4], va[D / 16][4];
  float dk[D / 8][4], dv[D / 8][4];
  zero_frags(dk), zero_frags(dv);
  for (int n = 0; n < nq; ++n) {
    float next_rv = 0.0f;
    if (n + 1 < nq) issue(n + 1), next_rv = fetch_row_value(n + 1);
    wait_current_tile(n + 1 < nq);
    __syncthreads();
    if (CACHE_KV && n == 0) load_a_frags<D>(ka, Ks, 16 * warp), load_a_frags<D>(va, Vs, 16 * warp);
    const int64_t i0 = j0 + (int64_t)n * BR;
    const int b = n & 1;
#pragma unroll
    for (int hh = 0; hh < BR / STEP; ++hh) {
      const int64_t ih = i0 + hh * STEP;  // the step's first query
      if (jw >= t || ih >= t || ih + STEP - 1 < jw) continue;  // warp-uniform: no query here sees the warp's keys
      const int nn_end = (int)((t - 1 - ih) / 8 + 1 < STEP / 8 ? (t - 1 - ih) / 8 + 1 : STEP / 8);
      float st[STEP / 8][4], dpt[STEP / 8][4];
      if (!CACHE_KV) load_a_frags<D>(ka, Ks, 16 * warp);
      product_abt<D, STEP / 8>(st, ka, Qs(b), hh * STEP, nn_end);    // S^T = k q^T
      if (!CACHE_KV) load_a_frags<D>(ka, Vs, 16 * warp);             // (ka holds v's rows now)
      product_abt<D, STEP / 8>(dpt, CACHE_KV ? va : ka, dOs(b), hh * STEP, nn_end);  // dPd^T = v dO^T
      uint32_t pda[STEP / 16][4], dsa[STEP / 16][4];
      // warp-uniform: every query of the step is < t and after every key of the warp: no masking
      if (ih + STEP - 1 < t && jw + 15 <= ih)
        step_grads<true, false>(pda, dsa, st, dpt, Ls(b) + hh * STEP, Ds(b) + hh * STEP, jw, ih, t, bh, scale, drop,
                                keep_scale);
      else
        step_grads<true, true>(pda, dsa, st, dpt, Ls(b) + hh * STEP, Ds(b) + hh * STEP, jw, ih, t, bh, scale, drop,
                               keep_scale);
      product_add_av<D, STEP / 16>(dv, pda, dOs(b), hh * STEP, (nn_end + 1) / 2);  // dV += bf16(Pd)^T bf16(dO)
      product_add_av<D, STEP / 16>(dk, dsa, Qs(b), hh * STEP, (nn_end + 1) / 2);   // dK += bf16(dS)^T bf16(q)
    }
    if (n + 1 < nq) stash_row_value(n + 1, next_rv);  // buffer (n + 1) % 2's last reads were before the last barrier
    __syncthreads();  // reads of buffer n % 2 done before tile n + 2 streams into it
  }
  float* g = dqkv + bi * t * 3 * c + h * hd;
  write_rows<D>(dk, g + c, 3 * c, jw, t, hd);
  write_rows<D>(dv, g + 2 * c, 3 * c, jw, t, hd);
}

template <int D>
__global__ void __launch_bounds__(NT)
    k_bf16_backward_dq(float* dqkv, const bf16* qkv16, const bf16* do16, const float* lse, const float* dsum,
                       int64_t t, int64_t tp, int64_t c, int64_t nh, int hd, float scale, CudaDropout drop,
                       float keep_scale) {
  using G = Geo<D>;
  extern __shared__ float4 smem4[];
  unsigned char* sm = reinterpret_cast<unsigned char*>(smem4);
  auto tile = [&](int n) { return reinterpret_cast<bf16*>(sm + n * G::TILE); };
  bf16 *Qs = tile(0), *dOs = tile(1);  // this block's queries (read once into registers)
  auto Ks = [&](int x) { return tile(2 + x); };  // streamed key tiles, buffer x
  auto Vs = [&](int x) { return tile(4 + x); };
  float* Ls = reinterpret_cast<float*>(sm + 6 * G::TILE);
  float* Ds = Ls + BR;
  const int warp = threadIdx.x / WARP;
  const int64_t bh = blockIdx.x, bi = bh / nh, h = bh % nh;
  const int64_t i0 = (int64_t)(gridDim.y - 1 - blockIdx.y) * BR;  // the longest (last) tiles start first
  const int64_t iw = i0 + 16 * warp;
  const HeadInputs16 in = head_inputs<D>(qkv16, do16, (int64_t)gridDim.x, tp, bh);
  const int64_t kend = i0 + BR < t ? i0 + BR : t;
  const int ntile = (int)((kend + BC - 1) / BC);

  auto issue = [&](int n) {  // key tile n into buffer n % 2
    load_tile_async<D>(Ks(n & 1), in.k, (int64_t)n * BC);
    load_tile_async<D>(Vs(n & 1), in.v, (int64_t)n * BC);
    cp_async_commit();
  };
  load_tile_async<D>(Qs, in.q, i0);
  load_tile_async<D>(dOs, in.dO, i0);
  issue(0);
  load_row_values(Ls, lse, bh, i0, t);
  load_row_values(Ds, dsum, bh, i0, t);

  uint32_t qa[D / 16][4], doa[D / 16][4];
  float dq[D / 8][4];
  zero_frags(dq);
  for (int n = 0; n < ntile; ++n) {
    if (n + 1 < ntile) issue(n + 1);
    wait_current_tile(n + 1 < ntile);
    __syncthreads();
    if (n == 0) load_a_frags<D>(qa, Qs, 16 * warp), load_a_frags<D>(doa, dOs, 16 * warp);
    const int64_t j0 = (int64_t)n * BC;
    if (iw < t) {
#pragma unroll
      for (int hh = 0; hh < BC / STEP; ++hh) {
        const int64_t jh = j0 + hh * STEP;  // the step's first key
        if (jh > iw + 15) continue;         // warp-uniform: every key here is after the warp's rows
        const int nn_end = (int)((iw + 15 - jh) / 8 + 1 < STEP / 8 ? (iw + 15 - jh) / 8 + 1 : STEP / 8);
        float s[STEP / 8][4], dp[STEP / 8][4];
        product_abt<D, STEP / 8>(s, qa, Ks(n & 1), hh * STEP, nn_end);    // S = q k^T
        product_abt<D, STEP / 8>(dp, doa, Vs(n & 1), hh * STEP, nn_end);  // dPd = dO v^T
        uint32_t pda[STEP / 16][4], dsa[STEP / 16][4];
        // warp-uniform: the warp's rows are < t and after every key of the step: no masking
        if (iw + 15 < t && jh + STEP - 1 <= iw)
          step_grads<false, false>(pda, dsa, s, dp, Ls + 16 * warp, Ds + 16 * warp, iw, jh, t, bh, scale, drop,
                                   keep_scale);
        else
          step_grads<false, true>(pda, dsa, s, dp, Ls + 16 * warp, Ds + 16 * warp, iw, jh, t, bh, scale, drop,
                                  keep_scale);
        product_add_av<D, STEP / 16>(dq, dsa, Ks(n & 1), hh * STEP, (nn_end + 1) / 2);  // dQ += bf16(dS) bf16(k)
      }
    }
    __syncthreads();  // reads of buffer n % 2 done before tile n + 2 streams into it
  }
  write_rows<D>(dq, dqkv + bi * t * 3 * c + h * hd, 3 * c, iw, t, hd);
}

// `sections` (B, T, ld) column blocks of src (q, k, v: 3 of qkv; dO: 1) into padded bf16 heads at dst.
template <int D>
CudaStatus pack_heads(cudaStream_t s, bf16* dst, const float* src, int64_t ld, int64_t sections, int64_t b,
                      int64_t t, int64_t c, int64_t nh, const char* step) {
  const int64_t tp = padded_len(t), chunks = sections * b * nh * tp * D / 8;
  const unsigned blocks = grid_for(chunks < (1 << 20) ? chunks : (1 << 20));  // grid-stride beyond 2^20 threads
  k_pack_heads<D><<<blocks, BLOCK, 0, s>>>(dst, src, ld, sections, b * nh, t, tp, c, nh, (int)(c / nh));
  return cuda_status_launch(step);
}

// The saved state of the bf16 mode (cuda_attention_bf16_saved_floats): the packed q, k, v heads
// (3 B*H (TP, D) bf16; 128-byte multiples), then the row logsumexp (B, H, T). Floats of the heads:
int64_t packed_qkv_floats(int64_t b, int64_t t, int64_t c, int64_t nh) {
  return 3 * b * nh * padded_len(t) * padded_head_dim(c / nh) / 2;
}

template <int D, typename TO>
CudaStatus forward_d(cudaStream_t s, TO* out, float* att, const float* qkv, int64_t b, int64_t t, int64_t c,
                     int64_t nh, const CudaDropout& drop) {
  const int64_t hd = c / nh, tp = padded_len(t), per = b * nh * tp * D;
  const float scale = 1.0f / std::sqrt((float)hd);  // as the CPU: (T)1 / std::sqrt((T)hd)
  bf16* qkv16 = reinterpret_cast<bf16*>(att);      // kept for the backward
  float* lse = att + packed_qkv_floats(b, t, c, nh);
  MIRA_CUDA_TRY(pack_heads<D>(s, qkv16, qkv, 3 * c, 3, b, t, c, nh, "attention bf16 q/k/v packing kernel"));
  auto kernel = k_bf16_forward<D, TO>;
  MIRA_CUDA_TRY(allow_smem(kernel, Geo<D>::FWD, "attention bf16 forward shared-memory attribute"));
  const dim3 grid((unsigned)(b * nh), (unsigned)(tp / BR));
  kernel<<<grid, NT, Geo<D>::FWD, s>>>(out, lse, qkv16, qkv16 + per, qkv16 + 2 * per, t, tp, c, nh, (int)hd, scale,
                                       drop, keep_scale_of(drop));
  return cuda_status_launch("attention bf16 forward kernel");
}

template <int D, typename TO>
CudaStatus backward_d(cudaStream_t s, float* dqkv, float* scratch, const float* dout, const TO* out,
                      const float* att, bf16* ws16, int64_t b, int64_t t, int64_t c, int64_t nh,
                      const CudaDropout& drop) {
  using G = Geo<D>;
  const int64_t hd = c / nh, rows = b * nh * t, tp = padded_len(t);
  const float scale = 1.0f / std::sqrt((float)hd);
  const bf16* qkv16 = reinterpret_cast<const bf16*>(att);  // the forward's packed heads
  const float* lse = att + packed_qkv_floats(b, t, c, nh);
  float* dsum = scratch;
  MIRA_CUDA_TRY(pack_heads<D>(s, ws16, dout, c, 1, b, t, c, nh, "attention bf16 dout packing kernel"));
  k_bf16_row_dot<TO><<<grid_for(rows, BLOCK / WARP), BLOCK, 0, s>>>(dsum, dout, out, rows, t, c, nh, (int)hd);
  MIRA_CUDA_TRY(cuda_status_launch("attention bf16 backward row-dot kernel"));
  const float ks = keep_scale_of(drop);
  auto dkv = k_bf16_backward_dkv<D>;
  auto dq = k_bf16_backward_dq<D>;
  MIRA_CUDA_TRY(allow_smem(dkv, G::BWD, "attention bf16 backward dK/dV shared-memory attribute"));
  MIRA_CUDA_TRY(allow_smem(dq, G::BWD, "attention bf16 backward dQ shared-memory attribute"));
  const dim3 grid((unsigned)(b * nh), (unsigned)(tp / BR));
  dkv<<<grid, NT, G::BWD, s>>>(dqkv, qkv16, ws16, lse, dsum, t, tp, c, nh, (int)hd, scale, drop, ks);
  MIRA_CUDA_TRY(cuda_status_launch("attention bf16 backward dK/dV kernel"));
  dq<<<grid, NT, G::BWD, s>>>(dqkv, qkv16, ws16, lse, dsum, t, tp, c, nh, (int)hd, scale, drop, ks);
  return cuda_status_launch("attention bf16 backward dQ kernel");
}

}  // namespace

int64_t cuda_attention_bf16_workspace(int64_t b, int64_t t, int64_t c, int64_t nh) {
  if (b <= 0 || t <= 0 || c <= 0 || nh <= 0) return 0;
  return b * nh * padded_len(t) * padded_head_dim(c / nh);  // dO's padded heads
}

int64_t cuda_attention_bf16_saved_floats(int64_t b, int64_t t, int64_t c, int64_t nh) {
  if (b <= 0 || t <= 0 || c <= 0 || nh <= 0) return 0;
  return packed_qkv_floats(b, t, c, nh) + b * nh * t;
}

namespace {

template <typename TO>
CudaStatus forward_any(cudaStream_t s, TO* out, float* att, const float* qkv, int64_t b, int64_t t, int64_t c,
                       int64_t nh, const CudaDropout& drop) {
  switch (padded_head_dim(c / nh)) {
    case 32: return forward_d<32>(s, out, att, qkv, b, t, c, nh, drop);
    case 64: return forward_d<64>(s, out, att, qkv, b, t, c, nh, drop);
    default: return forward_d<128>(s, out, att, qkv, b, t, c, nh, drop);
  }
}

template <typename TO>
CudaStatus backward_any(cudaStream_t s, float* dqkv, float* scratch, const float* dout, const TO* out,
                        const float* att, __nv_bfloat16* ws16, int64_t b, int64_t t, int64_t c, int64_t nh,
                        const CudaDropout& drop) {
  switch (padded_head_dim(c / nh)) {
    case 32: return backward_d<32>(s, dqkv, scratch, dout, out, att, ws16, b, t, c, nh, drop);
    case 64: return backward_d<64>(s, dqkv, scratch, dout, out, att, ws16, b, t, c, nh, drop);
    default: return backward_d<128>(s, dqkv, scratch, dout, out, att, ws16, b, t, c, nh, drop);
  }
}

}  // namespace

// Shapes are checked by the callers (cuda_attention_forward/backward, attention.cu); b, t > 0.
CudaStatus cuda_attention_forward_bf16(cudaStream_t s, float* out, float* att, const float* qkv, int64_t b, int64_t t,
                                       int64_t c, int64_t nh, const CudaDropout& drop) {
  return forward_any(s, out, att, qkv, b, t, c, nh, drop);
}
CudaStatus cuda_attention_forward_bf16(cudaStream_t s, __nv_bfloat16* out, float* att, const float* qkv, int64_t b,
                                       int64_t t, int64_t c, int64_t nh, const CudaDropout& drop) {
  return forward_any(s, out, att, qkv, b, t, c, nh, drop);
}

CudaStatus cuda_attention_backward_bf16(cudaStream_t s, float* dqkv, float* scratch, const float* dout,
                                        const float* out, const float* att, __nv_bfloat16* ws16, int64_t b, int64_t t,
                                        int64_t c, int64_t nh, const CudaDropout& drop) {
  return backward_any(s, dqkv, scratch, dout, out, att, ws16, b, t, c, nh, drop);
}
CudaStatus cuda_attention_backward_bf16(cudaStream_t s, float* dqkv, float* scratch, const float* dout,
                                        const __nv_bfloat16* out, const float* att, __nv_bfloat16* ws16, int64_t b,
                                        int64_t t, int64_t c, int64_t nh, const CudaDropout& drop) {
  return backward_any(s, dqkv, scratch, dout, out, att, ws16, b, t, c, nh, drop);
}

}  // namespace mira
