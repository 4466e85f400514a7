// Our AVX-512 sgemm (kernels/cpu/sgemm_avx512.h) against a double-precision reference, for every
// transpose combination, edge sizes around its 12 x 32 microkernel, 96-row blocks, 256-deep K
// blocks and 256-column strips, one- and two-vector panels, alpha/beta cases and padded leading dimensions; plus bitwise
// thread-count invariance and equality of a call nested in a parallel region. Skipped (with the
// reason) on CPUs without AVX-512F, where cpu_gemm never calls it.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/sgemm_avx512.h"
#include "runtime/rng.h"

using namespace mira;

namespace {

std::vector<float> uniform(size_t n, uint64_t key) {
  Rng r(77, RngPurpose::DATA_SYNTH, key);
  std::vector<float> v(n);
  for (auto& x : v) x = (float)(r.uniform() * 2.0 - 1.0);
  return v;
}

struct Case {
  bool ta, tb;
  int64_t m, n, k;
  float alpha, beta;
  int64_t pad;  // extra leading-dimension elements on every operand
};

// Runs one case and compares with the same product in double. Tolerance: each output is a sum of
// k products of values in [-1, 1], accumulated in float in blocks: the error bound is
// ~ k * eps_float * max|a_ik b_kj| ~ k * 6e-8; 2e-7 * k + 1e-6 leaves a margin of ~3x and still
// catches any wrong or missing term (at least ~1e-3 for these inputs).
void check(const Case& cs) {
  const int64_t ar = cs.ta ? cs.k : cs.m, ac = cs.ta ? cs.m : cs.k;  // stored shape of A
  const int64_t br = cs.tb ? cs.n : cs.k, bc = cs.tb ? cs.k : cs.n;
  const int64_t lda = ac + cs.pad, ldb = bc + cs.pad, ldc = cs.n + cs.pad;
  const auto a = uniform((size_t)(ar * lda), 1), b = uniform((size_t)(br * ldb), 2);
  auto c = uniform((size_t)(cs.m * ldc), 3);
  if (cs.beta == 0.0f)  // beta == 0 must not read C
    for (auto& x : c) x = std::numeric_limits<float>::quiet_NaN();
  const auto c0 = c;
  sgemm_avx512(cs.ta, cs.tb, cs.m, cs.n, cs.k, cs.alpha, a.data(), lda, b.data(), ldb, cs.beta, c.data(), ldc);
  const double tol = 2e-7 * (double)cs.k + 1e-6;
  for (int64_t i = 0; i < cs.m; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      const float got = c[(size_t)(i * ldc + j)];
      if (j >= cs.n) {  // padding columns untouched
        ASSERT_TRUE(std::isnan(got) ? std::isnan(c0[(size_t)(i * ldc + j)]) : got == c0[(size_t)(i * ldc + j)]);
        continue;
      }
      double ref = 0;
      for (int64_t p = 0; p < cs.k; ++p) {
        const double av = cs.ta ? a[(size_t)(p * lda + i)] : a[(size_t)(i * lda + p)];
        const double bv = cs.tb ? b[(size_t)(j * ldb + p)] : b[(size_t)(p * ldb + j)];
        ref += av * bv;
      }
      ref *= cs.alpha;
      if (cs.beta != 0.0f) ref += (double)cs.beta * c0[(size_t)(i * ldc + j)];
      ASSERT_NEAR(got, ref, tol) << "ta " << cs.ta << " tb " << cs.tb << " m " << cs.m << " n " << cs.n << " k "
                                 << cs.k << " at (" << i << ", " << j << ")";
    }
}

#define SKIP_WITHOUT_AVX512() \
  if (!sgemm_avx512_available()) GTEST_SKIP() << "this CPU has no AVX-512F: cpu_gemm uses OpenBLAS only"

}  // namespace

TEST(SgemmAvx512, EdgeSizesAllTransposes) {
  SKIP_WITHOUT_AVX512();
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int64_t m : {1, 11, 12, 13, 97})
        for (int64_t n : {1, 15, 17, 31, 32, 33})
          for (int64_t k : {1, 16, 17})
            check({ta != 0, tb != 0, m, n, k, 1.0f, 0.0f, 0});
}

TEST(SgemmAvx512, BlocksStripsAndScalars) {
  SKIP_WITHOUT_AVX512();
  // m past one 96-row block and several row groups, n past one 256-column strip, k past one and two
  // 256-deep blocks (the later blocks accumulate into C).
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      check({ta != 0, tb != 0, 200, 300, 600, 1.0f, 0.0f, 0});
      check({ta != 0, tb != 0, 193, 290, 257, 0.5f, 1.0f, 3});   // accumulate (beta 1), padded
      check({ta != 0, tb != 0, 130, 70, 513, -1.5f, 0.25f, 5});  // general alpha, beta
      check({ta != 0, tb != 0, 300, 16, 513, 0.5f, 1.0f, 2});    // one-vector panels (n <= 16)
    }
  check({false, false, 40, 40, 0, 1.0f, 0.5f, 0});  // k == 0: C = beta C
  check({false, true, 40, 40, 8, 0.0f, 2.0f, 1});   // alpha == 0: C = beta C
}

// Every element is summed the same way whatever thread or tile computes it: bitwise equal results
// with 1, 2 and 8 threads (8 cut C into smaller tiles) and when called from inside a parallel region
// (where it runs on one thread).
TEST(SgemmAvx512, ThreadCountInvariantAndNestedCallsEqual) {
  SKIP_WITHOUT_AVX512();
  const int64_t m = 517, k = 600;
  for (int64_t n : {700, 16}) {  // two-vector and one-vector panels
    const auto a = uniform((size_t)(m * k), 4), b = uniform((size_t)(n * k), 5);
    std::vector<float> c1((size_t)(m * n)), c2((size_t)(m * n)), c3((size_t)(m * n));
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    sgemm_avx512(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c1.data(), n);
    omp_set_num_threads(2);
    sgemm_avx512(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c2.data(), n);
    std::vector<float> c8((size_t)(m * n));  // 8 threads cut C into more, smaller tiles
    omp_set_num_threads(8);
    sgemm_avx512(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c8.data(), n);
#pragma omp parallel num_threads(2)
    {
#pragma omp single
      sgemm_avx512(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c3.data(), n);
    }
    omp_set_num_threads(saved);
    for (size_t i = 0; i < c1.size(); ++i) {
      ASSERT_EQ(c1[i], c2[i]) << "n " << n << ": element " << i << " differs between 1 and 2 threads";
      ASSERT_EQ(c1[i], c8[i]) << "n " << n << ": element " << i << " differs between 1 and 8 threads";
      ASSERT_EQ(c1[i], c3[i]) << "n " << n << ": element " << i << " differs when called inside a parallel region";
    }
  }
}

// cpu_gemm<float> routes products of at least 32 x 32 here and thinner ones to OpenBLAS; both must
// give the product (the dispatch itself is what the model tests exercise bitwise).
TEST(SgemmAvx512, CpuGemmDispatchGivesTheProduct) {
  const int64_t m = 64, k = 40;
  for (int64_t n : {16, 64}) {
    const auto a = uniform((size_t)(m * k), 6), b = uniform((size_t)(k * n), 7);
    std::vector<float> c((size_t)(m * n), 0.0f);
    cpu_gemm<float>(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double ref = 0;
        for (int64_t p = 0; p < k; ++p) ref += (double)a[(size_t)(i * k + p)] * b[(size_t)(p * n + j)];
        ASSERT_NEAR(c[(size_t)(i * n + j)], ref, 2e-7 * (double)k + 1e-6);  // as in check()
      }
  }
}

// The fused linear layer (bias + base product + LoRA term in one pass) gives exactly the bits of
// the unfused steps "y = bias; y += x W (beta 1); y += s u bl^T (beta 1)" through sgemm_avx512,
// for two- and one-vector panels, edge sizes, K past one block, and without bias or LoRA term.
TEST(SgemmAvx512, FusedLinearEqualsTheStepsBitwise) {
  SKIP_WITHOUT_AVX512();
  struct Shape {
    int64_t m, n, k, r;
    bool bias, lora;
  };
  for (const Shape& sh : {Shape{200, 300, 600, 16, true, true}, Shape{97, 33, 257, 4, true, true},
                          Shape{130, 16, 100, 8, true, true}, Shape{50, 70, 40, 16, false, true},
                          Shape{64, 96, 300, 16, true, false}}) {
    const auto x = uniform((size_t)(sh.m * sh.k), 11), w = uniform((size_t)(sh.k * sh.n), 12);
    const auto bias = uniform((size_t)sh.n, 13), u = uniform((size_t)(sh.m * sh.r), 14),
               bl = uniform((size_t)(sh.n * sh.r), 15);
    const float s = 0.37f;
    std::vector<float> fused((size_t)(sh.m * sh.n), std::numeric_limits<float>::quiet_NaN());
    sgemm_avx512_linear(sh.m, sh.n, sh.k, x.data(), sh.k, w.data(), sh.n, sh.bias ? bias.data() : nullptr,
                        sh.lora ? u.data() : nullptr, sh.r, bl.data(), s, fused.data(), sh.n);
    std::vector<float> steps((size_t)(sh.m * sh.n));
    for (int64_t i = 0; i < sh.m; ++i)
      for (int64_t j = 0; j < sh.n; ++j) steps[(size_t)(i * sh.n + j)] = sh.bias ? bias[(size_t)j] : 0.0f;
    sgemm_avx512(false, false, sh.m, sh.n, sh.k, 1.0f, x.data(), sh.k, w.data(), sh.n, 1.0f, steps.data(), sh.n);
    if (sh.lora)
      sgemm_avx512(false, true, sh.m, sh.n, sh.r, s, u.data(), sh.r, bl.data(), sh.r, 1.0f, steps.data(), sh.n);
    for (size_t i = 0; i < fused.size(); ++i)
      ASSERT_EQ(fused[i], steps[i]) << "m " << sh.m << " n " << sh.n << " k " << sh.k << ": element " << i;
  }
}
