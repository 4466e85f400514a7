// Row-major GEMM: our AVX-512 sgemm for large float products, else OpenBLAS cblas on fixed tiles;
// thread-count invariant either way (see gemm.h).
#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/sgemm_avx512.h"

namespace mira {

namespace {

// Output tiles: C is split along its longer side into at most GEMM_MAX_TILES tiles of at least
// GEMM_MIN_TILE rows (or columns) - a function of the shape only - and each tile is one
// single-threaded BLAS call inside our parallel loop. OpenBLAS's own threading is not thread-count
// invariant: with (m, n, k) = (256, 64, 50257) its 1- and 2-thread results differ in the last bits,
// found by Kernels.GemmAndLmHeadThreadInvariantAtGpt2Shapes. Each tile re-packs the other operand,
// so tiles are few and large: 8 tiles give every thread of a 2-8 thread rank work at GPT-2 shapes
// while the re-packing stays a few percent of the GEMM (16 tiles of 128 rows cost ~5% more).
constexpr int64_t GEMM_MAX_TILES = 8;
constexpr int64_t GEMM_MIN_TILE = 128;

template <typename T>
void blas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b, int64_t ldb,
          T beta, T* c, int64_t ldc);

template <>
void blas<float>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
              alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

template <>
void blas<double>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                  const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
              alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

// Our AVX-512 sgemm (sgemm_avx512.h) for float products with at least 32 rows and either at least
// 32 columns, or at most 16 (one-vector panels) with op(A) = A - a function of the shape and
// flags only, so the choice never depends on the thread count. The rest stays with OpenBLAS: m < 32
// or 16 < n < 32 would leave much of the 12 x 16/32 register tile empty, and a narrow product with
// op(A) = A^T (the LoRA gradient gB = s dy^T u) would spend more on transposing A into panels
// than on its 16 FMAs per element. MIRA_CPU_GEMM=openblas turns it off (for comparisons); read once.
bool use_own_sgemm(bool ta, int64_t m, int64_t n) {
  static const bool enabled = [] {
    const char* v = std::getenv("MIRA_CPU_GEMM");
    return sgemm_avx512_available() && !(v && std::strcmp(v, "openblas") == 0);
  }();
  return enabled && m >= 32 && (n >= 32 || (n <= 16 && !ta));
}

template <typename T>
bool own_gemm(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, T*, int64_t) {
  return false;  // double (finite-difference checks) always goes to OpenBLAS dgemm
}

template <>
bool own_gemm<float>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                     const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (!use_own_sgemm(ta, m, n)) return false;
  sgemm_avx512(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  return true;
}

}  // namespace

template <typename T>
void cpu_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
              int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (own_gemm<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) return;
  const bool by_rows = m >= n;
  const int64_t extent = by_rows ? m : n;
  const int64_t per = (extent + GEMM_MAX_TILES - 1) / GEMM_MAX_TILES;
  const int64_t tile_len = std::max(GEMM_MIN_TILE, (per + 15) / 16 * 16);  // multiple of 16: SIMD-friendly
  const int64_t tiles = (extent + tile_len - 1) / tile_len;
  // One tile: rows [i0, i0+len) of C use rows of op(A); columns use columns of op(B).
  auto tile = [&](int64_t t) {
    const int64_t i0 = t * tile_len, len = std::min(tile_len, extent - i0);
    if (by_rows) {
      const T* at = ta ? a + i0 : a + i0 * lda;  // op(A) row i0: column i0 of A when transposed
      blas<T>(ta, tb, len, n, k, alpha, at, lda, b, ldb, beta, c + i0 * ldc, ldc);
    } else {
      const T* bt = tb ? b + i0 * ldb : b + i0;  // op(B) column i0: row i0 of B when transposed
      blas<T>(ta, tb, m, len, k, alpha, a, lda, bt, ldb, beta, c + i0, ldc);
    }
  };
  // Always from a parallel region, even for one tile: OpenBLAS (OpenMP build) threads any call made
  // outside an active parallel region with omp_get_max_threads() threads, and its threaded results
  // differ. Nested inside a kernel's own parallel loop this region is inactive and runs inline.
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tiles; ++t) tile(t);
}

void cpu_linear_forward(float* y, const float* x, const float* w, const float* bias, const float* u, const float* bl,
                        float s, int64_t n, int64_t in, int64_t out, int64_t r) {
  if (n == 0 || out == 0) return;
  if (use_own_sgemm(false, n, out)) {  // the LoRA product (n, out, k = r) takes the same route
    sgemm_avx512_linear(n, out, in, x, in, w, out, bias, u, r, bl, s, y, out);
    return;
  }
  if (bias)
    cpu_bias_broadcast<float>(y, bias, n, out);
  else
    std::memset(y, 0, sizeof(float) * (size_t)(n * out));
  cpu_gemm<float>(false, false, n, out, in, 1.0f, x, in, w, out, 1.0f, y, out);
  if (u && r > 0) cpu_gemm<float>(false, true, n, out, r, s, u, r, bl, r, 1.0f, y, out);
}

template void cpu_gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                              int64_t, float, float*, int64_t);
template void cpu_gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                               int64_t, double, double*, int64_t);

}  // namespace mira
