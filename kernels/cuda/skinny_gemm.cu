// Skinny fp32 GEMMs for the LoRA products (see skinny_gemm.h for the three families and why).
#include <algorithm>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/skinny_gemm.h"

namespace mira {

using namespace cuda_detail;

namespace {

constexpr int64_t MIN_BIG = 256;  // below this a big dimension leaves the custom kernels idle: cuBLAS
constexpr int TO_WARPS = 8;       // thin output: warps per block
constexpr int LK_KCH = 128;       // long k: rows of k per chunk (one partial per chunk)
constexpr int RU_ROWS = 32;       // rank update: rows of C per block (one thread per column)

// Element `idx` of a value read through a packed dropout mask: v * keep_scale if its keep bit is
// set, else 0 (the operations of cuda_dropout: a round-to-nearest product, no FMA contraction).
__device__ inline float masked(float v, const uint32_t* mask, int64_t idx, float keep_scale) {
  return (mask[idx >> 5] >> (idx & 31)) & 1u ? __fmul_rn(v, keep_scale) : 0.0f;
}

// An operand element in fp32 or bf16 storage (SkinnyBf16: the bf16 activation read in place).
__device__ inline float elem(const float* p, int64_t i) { return p[i]; }
__device__ inline float elem(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }

// The register width for a small dimension s <= CUDA_SKINNY_MAX: 16, 32 or 64.
int width_for(int64_t s) { return s <= 16 ? 16 : s <= 32 ? 32 : 64; }

// Thin output: C (m, n <= R) = alpha A (m, k) op(B) + beta C. Warp w of block b owns rows
// (b * TO_WARPS + w) * ROWS .. + ROWS - 1; lane l sums k indices l, l + 32, ...; then one butterfly
// per (row, column) gives every lane the total. op(B)[kk, q] = tb ? b[q ldb + kk] : b[kk ldb + q],
// staged KC rows at a time in shared memory (coalesced loads for either layout; row stride R + 1 so
// the 32 lanes reading one column hit 32 banks). KC is a multiple of 32, so lane l still sums the
// k indices l mod 32 in ascending order.
// mask (non-null): A's element (i, kk) is read as dropout_keep ? a * keep_scale : 0, with the keep
// flag bit (i k + kk) of the packed mask (the LoRA-input dropout, fused: no dropped-out copy of A).
template <int R, typename TA>
__global__ void k_thin_output(float* c, const TA* a, const float* b, int64_t m, int n, int64_t k, int64_t lda,
                              int64_t ldb, int64_t ldc, bool tb, float alpha, float beta, const uint32_t* mask,
                              float keep_scale) {
  constexpr int ROWS = 64 / R;   // 64 accumulators per lane
  constexpr int KC = 4096 / R;   // staged rows of op(B): KC (R + 1) floats, about 17 KB
  __shared__ float sb[KC][R + 1];
  const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
  const int64_t i0 = ((int64_t)blockIdx.x * TO_WARPS + warp) * ROWS;
  float acc[ROWS][R];
#pragma unroll
  for (int r = 0; r < ROWS; ++r)
#pragma unroll
    for (int q = 0; q < R; ++q) acc[r][q] = 0.0f;
  for (int64_t k0 = 0; k0 < k; k0 += KC) {
    const int kc = (int)(k - k0 < KC ? k - k0 : KC);
    __syncthreads();  // every warp is done with the previous chunk
    for (int e = threadIdx.x; e < KC * R; e += blockDim.x) {
      const int kk = tb ? e % KC : e / R, q = tb ? e / KC : e % R;  // consecutive threads, consecutive addresses
      sb[kk][q] = kk < kc && q < n ? (tb ? b[q * ldb + k0 + kk] : b[(k0 + kk) * ldb + q]) : 0.0f;
    }
    __syncthreads();
    if (i0 >= m) continue;  // a warp past the last row still takes part in the barriers
    for (int kk = lane; kk < kc; kk += WARP) {
      float bv[R];
#pragma unroll
      for (int q = 0; q < R; ++q) bv[q] = sb[kk][q];
#pragma unroll
      for (int r = 0; r < ROWS; ++r) {
        float av = i0 + r < m ? elem(a, (i0 + r) * lda + k0 + kk) : 0.0f;
        if (mask) av = masked(av, mask, (i0 + r) * k + k0 + kk, keep_scale);
#pragma unroll
        for (int q = 0; q < R; ++q) acc[r][q] = fmaf(av, bv[q], acc[r][q]);
      }
    }
  }
  if (i0 >= m) return;  // after the last barrier; the whole warp leaves together
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
#pragma unroll
    for (int q = 0; q < R; ++q) {
      const float v = warp_sum(acc[r][q]);  // every lane of the warp takes part
      if (q < n && lane == q % WARP && i0 + r < m) {
        float* out = c + (i0 + r) * ldc + q;
        *out = beta == 0.0f ? alpha * v : alpha * v + beta * *out;
      }
    }
  }
}

// Long k, pass 1: partial[(chunk * s + q) * g + j] = sum over the chunk's rows kk of
// big[kk * ldg + j] * small[kk * lds + q], for the big column j of this thread (g columns in all)
// and every q < s <= R. The chunk's small rows are staged in shared memory.
// mask (non-null): big's element (kk, j) is read through the packed dropout mask, bit kk g + j (as
// k_thin_output's A).
template <int R, typename TG>
__global__ void k_long_k_partial(float* partial, const TG* big, int64_t ldg, const float* small, int64_t lds,
                                 int64_t k, int64_t g, int s, const uint32_t* mask, float keep_scale) {
  __shared__ float ss[LK_KCH][R];
  const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  const int64_t chunk = blockIdx.y, k0 = chunk * LK_KCH;
  const int64_t rows = k - k0 < LK_KCH ? k - k0 : LK_KCH;
  for (int e = threadIdx.x; e < LK_KCH * R; e += blockDim.x) {
    const int kk = e / R, q = e % R;
    ss[kk][q] = kk < rows && q < s ? small[(k0 + kk) * lds + q] : 0.0f;
  }
  __syncthreads();
  if (j >= g) return;  // after the only barrier
  float acc[R];
#pragma unroll
  for (int q = 0; q < R; ++q) acc[q] = 0.0f;
  for (int64_t kk = 0; kk < rows; ++kk) {
    float v = elem(big, (k0 + kk) * ldg + j);
    if (mask) v = masked(v, mask, (k0 + kk) * g + j, keep_scale);
#pragma unroll
    for (int q = 0; q < R; ++q) acc[q] = fmaf(v, ss[kk][q], acc[q]);
  }
#pragma unroll
  for (int q = 0; q < R; ++q)
    if (q < s) partial[(chunk * s + q) * g + j] = acc[q];
}

// Long k, pass 2: the chunks of element (q, j) added in chunk order, then C = alpha sum + beta C at
// C[j ldc + q] (small_is_n: C is (g, s)) or C[q ldc + j] (C is (s, g)).
__global__ void k_long_k_reduce(float* c, const float* partial, int64_t chunks, int64_t g, int s, int64_t ldc,
                                bool small_is_n, float alpha, float beta) {
  const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (int64_t)s * g) return;
  const int64_t q = e / g, j = e % g;
  float v = 0.0f;
  for (int64_t ch = 0; ch < chunks; ++ch) v += partial[(ch * s + q) * g + j];
  float* out = small_is_n ? c + j * ldc + q : c + q * ldc + j;
  *out = beta == 0.0f ? alpha * v : alpha * v + beta * *out;
}

// Rank update: C (m, n) = alpha A (m, k <= K) op(B) + beta C [+ bias (n) on every row; beta is 0
// then: the bias and the LoRA term of a linear layer in one write]. Thread j of block (x, y) owns column
// blockIdx.x * blockDim.x + j, keeps its op(B) column in registers and walks RU_ROWS rows of C
// starting at blockIdx.y * RU_ROWS; the rows of A are staged in shared memory. mask (non-null, no
// bias): C (i, j) += dropout_keep ? (alpha v) * keep_scale : 0 with bit i n + j of the packed mask
// (the LoRA input gradient through the dropout, fused: no product buffer); beta is ignored.
template <int K>
__global__ void k_rank_update(float* c, const float* a, const float* b, const float* bias, int64_t m, int64_t n, int k,
                              int64_t lda, int64_t ldb, int64_t ldc, bool tb, float alpha, float beta,
                              const uint32_t* mask, float keep_scale) {
  __shared__ float sa[RU_ROWS][K];
  const int64_t i0 = (int64_t)blockIdx.y * RU_ROWS;
  const int rows = (int)(m - i0 < RU_ROWS ? m - i0 : RU_ROWS);
  for (int e = threadIdx.x; e < RU_ROWS * K; e += blockDim.x) {
    const int r = e / K, q = e % K;
    sa[r][q] = r < rows && q < k ? a[(i0 + r) * lda + q] : 0.0f;
  }
  __syncthreads();
  const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n) return;  // after the only barrier
  float bc[K];
#pragma unroll
  for (int q = 0; q < K; ++q) bc[q] = q < k ? (tb ? b[j * ldb + q] : b[q * ldb + j]) : 0.0f;
  const float bj = bias ? bias[j] : 0.0f;
  for (int r = 0; r < rows; ++r) {
    float v = 0.0f;
#pragma unroll
    for (int q = 0; q < K; ++q) v = fmaf(sa[r][q], bc[q], v);
    float* out = c + (i0 + r) * ldc + j;
    if (mask)  // the same operations as cuda_dropout(accumulate) on alpha v
      *out = __fadd_rn(*out, masked(alpha * v, mask, (i0 + r) * n + j, keep_scale));
    else
      *out = bias ? alpha * v + bj : beta == 0.0f ? alpha * v : alpha * v + beta * *out;
  }
}

enum class Family { NONE, THIN_OUTPUT, RANK_UPDATE, LONG_K };

constexpr int64_t MAX_GRID_Y = 65535;  // CUDA's grid.y limit: the rank update's row blocks, long k's chunks

Family family_of(bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
  if (m <= 0 || n <= 0 || k <= 0) return Family::NONE;
  if (!ta && n <= CUDA_SKINNY_MAX && m >= MIN_BIG) return Family::THIN_OUTPUT;
  if (!ta && k <= CUDA_SKINNY_MAX && m >= MIN_BIG && n >= MIN_BIG && (m + RU_ROWS - 1) / RU_ROWS <= MAX_GRID_Y)
    return Family::RANK_UPDATE;
  if (ta && !tb && std::min(m, n) <= CUDA_SKINNY_MAX && std::max(m, n) >= MIN_BIG && k >= MIN_BIG &&
      (k + LK_KCH - 1) / LK_KCH <= MAX_GRID_Y)
    return Family::LONG_K;
  return Family::NONE;  // cuBLAS
}

int64_t long_k_chunks(int64_t k) { return (k + LK_KCH - 1) / LK_KCH; }

CudaStatus rank_update(cudaStream_t s, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                       int64_t lda, const float* b, int64_t ldb, const float* bias, float beta, float* c, int64_t ldc,
                       const SkinnyMask& mk) {
  const int w = width_for(k);
  const dim3 grid((unsigned)((n + BLOCK - 1) / BLOCK), (unsigned)((m + RU_ROWS - 1) / RU_ROWS));
  const int kk = (int)k;
  const uint32_t* mb = mk.bits;
  const float ks = mk.keep_scale;
  if (w == 16)
    k_rank_update<16><<<grid, BLOCK, 0, s>>>(c, a, b, bias, m, n, kk, lda, ldb, ldc, tb, alpha, beta, mb, ks);
  if (w == 32)
    k_rank_update<32><<<grid, BLOCK, 0, s>>>(c, a, b, bias, m, n, kk, lda, ldb, ldc, tb, alpha, beta, mb, ks);
  if (w == 64)
    k_rank_update<64><<<grid, BLOCK, 0, s>>>(c, a, b, bias, m, n, kk, lda, ldb, ldc, tb, alpha, beta, mb, ks);
  return cuda_status_launch("skinny gemm (rank update) kernel");
}

}  // namespace

bool cuda_skinny_gemm_applies(bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
  return family_of(ta, tb, m, n, k) != Family::NONE;
}

int64_t cuda_skinny_gemm_scratch(bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
  return family_of(ta, tb, m, n, k) == Family::LONG_K ? long_k_chunks(k) * m * n : 0;
}

bool cuda_skinny_gemm_takes_mask(const SkinnyMask& mask, bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
  switch (family_of(ta, tb, m, n, k)) {
    case Family::THIN_OUTPUT: return mask.where == SkinnyMask::A;
    case Family::LONG_K: return mask.where == SkinnyMask::B && n > CUDA_SKINNY_MAX;  // small m: B is the big one
    case Family::RANK_UPDATE: return mask.where == SkinnyMask::ACCUMULATE;
    case Family::NONE: break;
  }
  return false;
}

namespace {

template <typename TA>
void launch_thin_output(cudaStream_t s, int w, unsigned grid, float* c, const TA* a, const float* b, int64_t m, int n,
                        int64_t k, int64_t lda, int64_t ldb, int64_t ldc, bool tb, float alpha, float beta,
                        const uint32_t* mb, float ks) {
  const int nt = TO_WARPS * WARP;
  if (w == 16) k_thin_output<16, TA><<<grid, nt, 0, s>>>(c, a, b, m, n, k, lda, ldb, ldc, tb, alpha, beta, mb, ks);
  if (w == 32) k_thin_output<32, TA><<<grid, nt, 0, s>>>(c, a, b, m, n, k, lda, ldb, ldc, tb, alpha, beta, mb, ks);
  if (w == 64) k_thin_output<64, TA><<<grid, nt, 0, s>>>(c, a, b, m, n, k, lda, ldb, ldc, tb, alpha, beta, mb, ks);
}

template <typename TG>
void launch_long_k_partial(cudaStream_t s, int w, dim3 grid, float* partial, const TG* big, int64_t ldg,
                           const float* small, int64_t lds, int64_t k, int64_t g, int sm, const uint32_t* mb,
                           float ks) {
  if (w == 16) k_long_k_partial<16, TG><<<grid, BLOCK, 0, s>>>(partial, big, ldg, small, lds, k, g, sm, mb, ks);
  if (w == 32) k_long_k_partial<32, TG><<<grid, BLOCK, 0, s>>>(partial, big, ldg, small, lds, k, g, sm, mb, ks);
  if (w == 64) k_long_k_partial<64, TG><<<grid, BLOCK, 0, s>>>(partial, big, ldg, small, lds, k, g, sm, mb, ks);
}

CudaStatus invalid_call(const char* why) {
  CudaStatus st;
  st.step = why;
  st.cuda = cudaErrorInvalidValue;
  return st;
}

}  // namespace

bool cuda_skinny_gemm_takes_bf16(const SkinnyBf16& in16, bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
  if (!in16.a && !in16.b) return true;
  switch (family_of(ta, tb, m, n, k)) {
    case Family::THIN_OUTPUT: return in16.a && !in16.b;
    case Family::LONG_K: return in16.b && !in16.a && n > CUDA_SKINNY_MAX;  // B the big operand
    default: return false;
  }
}

CudaStatus cuda_skinny_gemm(cudaStream_t s, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                            const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                            int64_t ldc, float* scratch, const SkinnyMask& mk, const SkinnyBf16& in16) {
  if (mk.bits && (!cuda_skinny_gemm_takes_mask(mk, ta, tb, m, n, k) ||
                  (mk.where == SkinnyMask::ACCUMULATE && beta != 1.0f)))
    return invalid_call("skinny gemm: the dropout mask does not apply to this shape (check cuda_skinny_gemm_takes_mask)");
  if (!cuda_skinny_gemm_takes_bf16(in16, ta, tb, m, n, k))
    return invalid_call("skinny gemm: a bf16 operand this shape does not take (check cuda_skinny_gemm_takes_bf16)");
  const uint32_t* mb = mk.bits;
  const float ks = mk.keep_scale;
  switch (family_of(ta, tb, m, n, k)) {
    case Family::THIN_OUTPUT: {
      const int w = width_for(n);
      const int64_t rows_per_block = (int64_t)TO_WARPS * (64 / w);
      const unsigned grid = (unsigned)((m + rows_per_block - 1) / rows_per_block);
      if (in16.a)
        launch_thin_output(s, w, grid, c, in16.a, b, m, (int)n, k, lda, ldb, ldc, tb, alpha, beta, mb, ks);
      else
        launch_thin_output(s, w, grid, c, a, b, m, (int)n, k, lda, ldb, ldc, tb, alpha, beta, mb, ks);
      return cuda_status_launch("skinny gemm (thin output) kernel");
    }
    case Family::RANK_UPDATE:
      return rank_update(s, tb, m, n, k, alpha, a, lda, b, ldb, nullptr, beta, c, ldc, mk);
    case Family::LONG_K: {
      // op(A) = A^T with A stored (k, m); B stored (k, n). The big operand is the one whose
      // dimension is not the small one.
      const bool small_is_n = n <= CUDA_SKINNY_MAX;  // else m is (family_of: exactly one is small)
      const int64_t g = small_is_n ? m : n;
      const int sm = (int)(small_is_n ? n : m);
      const float* big = small_is_n ? a : b;
      const uint32_t* bmask = small_is_n ? nullptr : mb;  // the mask is B's (SkinnyMask::B: small m)
      const int64_t ldg = small_is_n ? lda : ldb;
      const float* small = small_is_n ? b : a;
      const int64_t lds = small_is_n ? ldb : lda;
      const int64_t chunks = long_k_chunks(k);
      const dim3 grid((unsigned)((g + BLOCK - 1) / BLOCK), (unsigned)chunks);
      const int w = width_for(sm);
      if (in16.b)
        launch_long_k_partial(s, w, grid, scratch, in16.b, ldg, small, lds, k, g, sm, bmask, ks);
      else
        launch_long_k_partial(s, w, grid, scratch, big, ldg, small, lds, k, g, sm, bmask, ks);
      CudaStatus st = cuda_status_launch("skinny gemm (long k, partial sums) kernel");
      if (!st.ok()) return st;
      k_long_k_reduce<<<grid_for((int64_t)sm * g), BLOCK, 0, s>>>(c, scratch, chunks, g, sm, ldc, small_is_n, alpha,
                                                                   beta);
      return cuda_status_launch("skinny gemm (long k, reduce) kernel");
    }
    case Family::NONE:
      break;
  }
  return invalid_call("skinny gemm: shape not handled (check cuda_skinny_gemm_applies first)");
}

bool cuda_rank_update_bias_applies(int64_t m, int64_t n, int64_t k) {
  return family_of(false, true, m, n, k) == Family::RANK_UPDATE;
}

CudaStatus cuda_rank_update_bias(cudaStream_t s, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                                 int64_t lda, const float* b, int64_t ldb, const float* bias, float* c, int64_t ldc) {
  return rank_update(s, tb, m, n, k, alpha, a, lda, b, ldb, bias, 0.0f, c, ldc, SkinnyMask{});
}

}  // namespace mira
