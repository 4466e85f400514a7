// AVX-512 float GEMM (see sgemm_avx512.h for the loop nest and why it is thread-count invariant).
// Only the microkernel uses AVX-512 instructions, and only inside functions marked
// MIRA_TARGET_AVX512, so the rest of this file (and every inline function it instantiates) stays
// baseline x86-64: the binary still runs on CPUs without AVX-512, which never reach the kernel.
#include "kernels/cpu/sgemm_avx512.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#define MIRA_TARGET_AVX512 __attribute__((target("avx512f")))

namespace mira {

namespace {

constexpr int64_t MR = 12;    // microkernel rows: 12 x 2 accumulators + 2 B vectors of the 32 zmm registers
constexpr int64_t NR = 32;    // microkernel columns: two 16-float vectors (one for products with n <= 16)
constexpr int64_t KC = 256;   // K block: an A micro-panel (MR x KC, 12 KiB) stays in L1
constexpr int64_t MC = 96;    // rows per packed A block (MC x KC, 96 KiB, in L2)
constexpr int64_t NT = 256;   // columns per task strip (at most): its packed B (KC x NT, 256 KiB) stays in L2
constexpr int64_t MIN_NT = 64;             // narrowest strip
constexpr int64_t MIN_GROUP_ROWS = 4 * MC; // fewest rows per task (unless m is smaller)
constexpr int64_t TASKS = 16;              // tasks wanted per call, for balance between threads
constexpr int64_t LONG_K_RATIO = 16;       // k >= 16 max(m, n): split K rather than narrow strips

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

// A grow-only 64-byte aligned float buffer, one per thread (packing space).
struct PackBuffer {
  float* p = nullptr;
  size_t cap = 0;
  ~PackBuffer() { std::free(p); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      const size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) throw std::bad_alloc();
      cap = bytes / sizeof(float);
    }
    return p;
  }
};
thread_local PackBuffer tl_pack_a, tl_pack_b, tl_partial;

// 16 x 16 transpose in registers: v[r] holds row r on entry and column r on exit. Four butterfly
// stages (block sizes 8, 4, 2, 1), each swapping the off-diagonal b x b blocks of every 2b x 2b
// block with two-source permutes.
struct TransposeIndex {
  alignas(64) int32_t lo[4][16];
  alignas(64) int32_t hi[4][16];
};
constexpr TransposeIndex make_transpose_index() {
  TransposeIndex t{};
  for (int stage = 0, b = 8; stage < 4; ++stage, b /= 2)
    for (int p = 0; p < 16; ++p) {
      const int s = p & ~(2 * b - 1), w = p & (2 * b - 1);
      t.lo[stage][p] = w < b ? s + w : 16 + s + w - b;  // first half of the pair's 2b block
      t.hi[stage][p] = w < b ? s + b + w : 16 + s + w;  // second half
    }
  return t;
}
constexpr TransposeIndex TRANSPOSE_INDEX = make_transpose_index();

MIRA_TARGET_AVX512 inline void transpose16(__m512 v[16]) {
#pragma GCC unroll 4
  for (int stage = 0; stage < 4; ++stage) {
    const int b = 8 >> stage;
    const __m512i ilo = _mm512_load_si512(TRANSPOSE_INDEX.lo[stage]);
    const __m512i ihi = _mm512_load_si512(TRANSPOSE_INDEX.hi[stage]);
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) {
      if (i & b) continue;
      const __m512 x = v[i], y = v[i + b];
      v[i] = _mm512_permutex2var_ps(x, ilo, y);
      v[i + b] = _mm512_permutex2var_ps(x, ihi, y);
    }
  }
}

// dst[c * dst_ld + r] = src[r * src_ld + c] for r < rows (<= 16), c < cols (<= 16); rows past
// `rows` read as zero, so a short block still writes zero-padded columns up to dst_cols (<= 16).
MIRA_TARGET_AVX512 void transpose_block(const float* src, int64_t src_ld, int64_t rows, int64_t cols, float* dst,
                                        int64_t dst_ld, int64_t dst_cols) {
  __m512 v[16];
  const __mmask16 mc = (__mmask16)(cols >= 16 ? 0xFFFF : (1u << cols) - 1u);
  for (int r = 0; r < 16; ++r) v[r] = r < rows ? _mm512_maskz_loadu_ps(mc, src + r * src_ld) : _mm512_setzero_ps();
  transpose16(v);
  const __mmask16 md = (__mmask16)(dst_cols >= 16 ? 0xFFFF : (1u << dst_cols) - 1u);
  for (int64_t c = 0; c < cols; ++c) _mm512_mask_storeu_ps(dst + c * dst_ld, md, v[c]);
}

// Rows [i0, i0 + mc) and K range [k0, k0 + kc) of op(A) into ceil(mc / MR) panels of MR rows, each
// row KC floats apart (row r of panel p at out + (p * MR + r) * KC): the microkernel broadcasts
// a[r * KC + kk] with constant offsets. Rows past mc are zero.
MIRA_TARGET_AVX512 void pack_a(bool ta, const float* a, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                               float* out) {
  const int64_t padded = round_up(mc, MR);
  if (!ta) {
    for (int64_t r = 0; r < mc; ++r) std::memcpy(out + r * KC, a + (i0 + r) * lda + k0, sizeof(float) * (size_t)kc);
  } else {  // op(A)(i, k) = a[k * lda + i]: transpose 16 x 16 blocks (k rows, i columns of a)
    for (int64_t r = 0; r < mc; r += 16)
      for (int64_t kk = 0; kk < kc; kk += 16)
        transpose_block(a + (k0 + kk) * lda + i0 + r, lda, std::min<int64_t>(16, kc - kk),
                        std::min<int64_t>(16, mc - r), out + r * KC + kk, KC, std::min<int64_t>(16, kc - kk));
  }
  for (int64_t r = mc; r < padded; ++r) std::memset(out + r * KC, 0, sizeof(float) * (size_t)kc);
}

// Columns [j, j + cols) (cols <= W) and K range [k0, k0 + kc) of op(B) into one (kc, W) panel,
// k-major; columns past cols are zero. W = NR, or 16 for narrow products.
template <int64_t W>
MIRA_TARGET_AVX512 void pack_b_panel(bool tb, const float* b, int64_t ldb, int64_t k0, int64_t kc, int64_t j,
                                     int64_t cols, float* o) {
  if (!tb) {
    for (int64_t kk = 0; kk < kc; ++kk) {
      std::memcpy(o + kk * W, b + (k0 + kk) * ldb + j, sizeof(float) * (size_t)cols);
      for (int64_t q = cols; q < W; ++q) o[kk * W + q] = 0.0f;
    }
  } else {  // op(B)(k, j) = b[j * ldb + k]: transpose 16 x 16 blocks (j rows, k columns of b)
    for (int64_t q = 0; q < W; q += 16)
      for (int64_t kk = 0; kk < kc; kk += 16)
        transpose_block(b + (j + q) * ldb + k0 + kk, ldb, std::max<int64_t>(0, std::min<int64_t>(16, cols - q)),
                        std::min<int64_t>(16, kc - kk), o + kk * W + q, W, 16);
  }
}

// One MR x NR tile: acc = sum over kk of a[kk] (x) b[kk] (zero start, ascending kk, one FMA each),
// then C = alpha * acc (+ beta * C) on the first K block, C += alpha * acc on later ones. Only
// `rows` x `cols` of C are touched (masked columns, skipped rows); the arithmetic of a kept element
// does not depend on them.
template <int NV>  // vectors of 16 columns: 2 (NR), or 1 for narrow products
MIRA_TARGET_AVX512 void microkernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int64_t rows,
                                    int64_t cols, float alpha, float beta, bool first, const float* bias) {
  // The C tile is read after the K loop: start fetching its rows now (C rows are far apart, so
  // the hardware prefetcher does not; without this the loads stall for ~half the kernel's time).
  if (!(first && (beta == 0.0f || bias)))
    for (int64_t i = 0; i < rows; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
    }
  __m512 acc[MR][NV];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t kk = 0; kk < kc; ++kk) {
    __m512 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i * KC]);
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += 1;
    b += 16 * NV;
  }
  const __mmask16 m0 = (__mmask16)(cols >= 16 ? 0xFFFF : (1u << cols) - 1u);
  const __mmask16 m1 = (__mmask16)(NV < 2 || cols <= 16 ? 0u : cols >= 32 ? 0xFFFF : (1u << (cols - 16)) - 1u);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  // First K block: C = alpha acc + beta C, or + bias (the tile's columns of a row vector) instead
  // of beta C when a bias is given (C is then not read).
  const bool overwrite = first && beta == 0.0f && !bias;
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    if (i >= rows) break;
    float* row = c + i * ldc;
    for (int v = 0; v < NV; ++v) {
      const __mmask16 mv = v == 0 ? m0 : m1;
      __m512 r = _mm512_mul_ps(va, acc[i][v]);
      if (!overwrite) {
        __m512 cv;
        if (first && bias) {
          cv = _mm512_maskz_loadu_ps(mv, bias + 16 * v);
        } else {
          cv = _mm512_maskz_loadu_ps(mv, row + 16 * v);
          if (first) cv = _mm512_mul_ps(vb, cv);
        }
        r = _mm512_fmadd_ps(va, acc[i][v], cv);
      }
      _mm512_mask_storeu_ps(row + 16 * v, mv, r);
    }
  }
}

// C = beta * C (alpha == 0 or k == 0).
void scale_c(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (beta == 0.0f)
      std::memset(row, 0, sizeof(float) * (size_t)n);
    else
      for (int64_t j = 0; j < n; ++j) row[j] *= beta;
  }
}

}  // namespace

bool sgemm_avx512_available() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

namespace {

// What sgemm_avx512_linear fuses into the task loop: a bias row in place of beta C on the first K
// block, and a second product alpha2 A2 op(B2) (A2 (m, k2) row-major, op(B2) (k2, n)) as one more
// K block after the last. Empty for plain GEMMs.
struct SgemmFusion {
  const float* bias = nullptr;
  const float* a2 = nullptr;
  int64_t lda2 = 0;
  const float* b2 = nullptr;
  int64_t ldb2 = 0;
  bool tb2 = false;
  int64_t k2 = 0;
  float alpha2 = 0.0f;
};

// The task loop of sgemm_avx512 for panels of W = 16 * NV columns.
//
// Tasks: row groups (a multiple of MC rows) x column strips (nt columns) x K segments (a multiple
// of KC) (dynamic schedule: a thread slowed by another process on its core just takes fewer). A
// task owns its part of C (or of a partial sum) for its whole K range, so threads never wait on
// each other. Each task packs its own B strip and A rows: copies costing about 10 / rows (B) and
// 10 / nt (A) of the task's FMA time, hence
//  * a long K (k >= LONG_K_RATIO * max(m, n), e.g. the LM head's input gradient (256, 768) with
//    K = 50257) is split into segments rather than into narrow tasks: segment s > 0 goes to its own
//    (m, n) partial buffer, and C = ((C_0 + P_1) + P_2) + ... is summed in segment order after the
//    loop. Segments change the summation, so their number is a function of (m, n, k) only;
//  * otherwise C is cut into at least max(TASKS, 4 x threads) tasks where the shape allows: groups
//    of MIN_GROUP_ROWS rows (fewer when m is smaller), strips narrowing from NT down to MIN_NT, then
//    groups shrinking to MC rows. This spatial cut may follow the thread count (so that 64 threads
//    find work): every element of C is computed the same way whichever tile holds it.
template <int NV>
void sgemm_tasks(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc, const SgemmFusion& fx) {
  constexpr int64_t W = 16 * NV;
  int64_t groups = (m + MIN_GROUP_ROWS - 1) / MIN_GROUP_ROWS;
  int64_t group_rows = round_up((m + groups - 1) / groups, MC);
  int64_t nt = NT, segments = 1;
  if (k >= LONG_K_RATIO * std::max(m, n) && !fx.bias && fx.k2 == 0) {  // (fusions need one segment)
    const int64_t grid = groups * ((n + nt - 1) / nt);
    segments = std::min((TASKS + grid - 1) / grid, std::max<int64_t>(1, k / (4 * KC)));
  } else {
    const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    const int64_t wanted = std::max<int64_t>(TASKS, 4 * threads);
    while (nt > MIN_NT && nt > W && ((n + nt - 1) / nt) * groups < wanted) nt /= 2;
    while (group_rows > MC && ((n + nt - 1) / nt) * groups < wanted) {
      group_rows = round_up(group_rows / 2, MC);
      groups = (m + group_rows - 1) / group_rows;
    }
  }
  const int64_t strips = (n + nt - 1) / nt;
  const int64_t seg_len = round_up((k + segments - 1) / segments, KC);
  segments = (k + seg_len - 1) / seg_len;
  // Partial sums of segments 1.. (segment 0 accumulates into C itself): (segments - 1, m, n).
  float* partial = segments > 1 ? tl_partial.get((size_t)((segments - 1) * m * n)) : nullptr;
  const int64_t tasks = groups * strips * segments;
  // Nested inside an active parallel region this region is inactive: one thread runs every task.
#pragma omp parallel
  {
    float* apack = tl_pack_a.get((size_t)(MC * KC));  // MC is a multiple of MR
    float* bpack = tl_pack_b.get((size_t)(KC * NT));  // NT is a multiple of W
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t seg = t / (groups * strips), cell = t % (groups * strips);
      const int64_t r0 = (cell / strips) * group_rows, rows = std::min(group_rows, m - r0);
      const int64_t j0 = (cell % strips) * nt, cols = std::min(nt, n - j0);
      const int64_t k0 = seg * seg_len, k1 = std::min(k, k0 + seg_len);
      float* out = seg == 0 ? c : partial + (seg - 1) * m * n;
      const int64_t ldo = seg == 0 ? ldc : n;
      const float seg_beta = seg == 0 ? beta : 0.0f;
      for (int64_t pc = k0; pc < k1; pc += KC) {
        const int64_t kc = std::min(KC, k1 - pc);
        const bool first = pc == k0;
        for (int64_t q = 0; q < cols; q += W)
          pack_b_panel<W>(tb, b, ldb, pc, kc, j0 + q, std::min(W, cols - q), bpack + q * kc);
        for (int64_t i0 = r0; i0 < r0 + rows; i0 += MC) {
          const int64_t mc = std::min(MC, r0 + rows - i0);
          pack_a(ta, a, lda, i0, mc, pc, kc, apack);
          // An A micro-panel (MR x KC, 12 KiB) stays in L1 while the strip's B panels (KC x nt,
          // at most 256 KiB) stream from L2.
          for (int64_t ir = 0; ir < mc; ir += MR)
            for (int64_t jr = 0; jr < cols; jr += W)
              microkernel<NV>(kc, apack + ir * KC, bpack + jr * kc, out + (i0 + ir) * ldo + j0 + jr, ldo,
                              std::min(MR, mc - ir), std::min(W, cols - jr), alpha, seg_beta, first,
                              fx.bias ? fx.bias + j0 + jr : nullptr);
        }
      }
      if (fx.k2 > 0) {  // the fused second product, one more K block after the last: C += alpha2 A2 op(B2)
        for (int64_t q = 0; q < cols; q += W)
          pack_b_panel<W>(fx.tb2, fx.b2, fx.ldb2, 0, fx.k2, j0 + q, std::min(W, cols - q), bpack + q * fx.k2);
        for (int64_t i0 = r0; i0 < r0 + rows; i0 += MC) {
          const int64_t mc = std::min(MC, r0 + rows - i0);
          pack_a(false, fx.a2, fx.lda2, i0, mc, 0, fx.k2, apack);
          for (int64_t ir = 0; ir < mc; ir += MR)
            for (int64_t jr = 0; jr < cols; jr += W)
              microkernel<NV>(fx.k2, apack + ir * KC, bpack + jr * fx.k2, c + (i0 + ir) * ldc + j0 + jr, ldc,
                              std::min(MR, mc - ir), std::min(W, cols - jr), fx.alpha2, 1.0f, false, nullptr);
        }
      }
    }
    if (segments > 1) {  // C += P_1, then += P_2, ...: rows shared out, segment order kept per element
#pragma omp for schedule(static)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t s = 1; s < segments; ++s) {
          const float* p = partial + (s - 1) * m * n + i * n;
          float* row = c + i * ldc;
          for (int64_t j = 0; j < n; ++j) row[j] += p[j];
        }
    }
  }
}

}  // namespace

void sgemm_avx512(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) {
    scale_c(m, n, beta, c, ldc);
    return;
  }
  const SgemmFusion none;
  if (n <= 16)  // one-vector panels: the rank-r LoRA factors (n = r) do not pay for a half-empty tile
    sgemm_tasks<1>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, none);
  else
    sgemm_tasks<2>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, none);
}

void sgemm_avx512_linear(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw,
                         const float* bias, const float* u, int64_t r, const float* bl, float s, float* y,
                         int64_t ldy) {
  if (m <= 0 || n <= 0) return;
  SgemmFusion fx;
  fx.bias = bias;
  if (u && r > 0) fx.a2 = u, fx.lda2 = r, fx.b2 = bl, fx.ldb2 = r, fx.tb2 = true, fx.k2 = r, fx.alpha2 = s;
  if (k <= 0) {  // y = bias (+ s u Bl^T) as two plain steps
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) y[i * ldy + j] = bias ? bias[j] : 0.0f;
    if (fx.k2 > 0) sgemm_avx512(false, true, m, n, r, s, u, r, bl, r, 1.0f, y, ldy);
    return;
  }
  if (n <= 16)
    sgemm_tasks<1>(false, false, m, n, k, 1.0f, x, ldx, w, ldw, 0.0f, y, ldy, fx);
  else
    sgemm_tasks<2>(false, false, m, n, k, 1.0f, x, ldx, w, ldw, 0.0f, y, ldy, fx);
}

}  // namespace mira
