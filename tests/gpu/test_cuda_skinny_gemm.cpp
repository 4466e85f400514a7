// The skinny GEMM kernels (kernels/cuda/skinny_gemm.h) that CudaBackend::gemm takes for the LoRA
// products: each family, at ranks 1 to 64 (every register width, partly filled), odd sizes, padded
// leading dimensions, both op(B) layouts where the family has two, beta 0 and not, against the CPU
// backend within the fp32 dot-product error bound. Also checks that the shapes really take the
// custom path (a changed dispatch rule would otherwise silently test cuBLAS) and that beta == 0
// never reads C (NaN there must not leak). The dispatch checks need the CUDA kernels' host
// functions: without a CUDA backend (or the emulator) they compile out and the comparisons skip.
#include <cmath>

#include "gpu_test_util.h"
#if defined(MIRA_HAVE_CUDA) || defined(MIRA_CUDA_EMU)
#include "kernels/cuda/skinny_gemm.h"
#define MIRA_SKINNY_DISPATCH 1
#endif

using namespace mira;
using namespace mira_gpu_test;

namespace {

struct Shape {
  bool ta, tb;
  int64_t m, n, k;
};

// |C_gpu - C_cpu| bound per element: each side is within (k + 2) u (|alpha| sum |a b| + |beta c|)
// of the exact result (u = 2^-24, the standard dot-product bound), so the difference is within
// twice that.
double bound_at(const Shape& s, float alpha, const std::vector<float>& a, int64_t lda, const std::vector<float>& b,
                int64_t ldb, float beta, float c, int64_t i, int64_t j) {
  double sum = 0;
  for (int64_t l = 0; l < s.k; ++l) {
    const double av = s.ta ? a[(size_t)(l * lda + i)] : a[(size_t)(i * lda + l)];
    const double bv = s.tb ? b[(size_t)(j * ldb + l)] : b[(size_t)(l * ldb + j)];
    sum += std::fabs(av * bv);
  }
  return 2.0 * (double)(s.k + 2) * std::ldexp(1.0, -24) * (std::fabs(alpha) * sum + std::fabs(beta) * std::fabs(c));
}

}  // namespace

TEST_F(CudaVsCpu, SkinnyGemmsMatchCpuWithinTheDotProductBound) {
  const std::vector<Shape> shapes = {
      // thin output: u = x A^T (tb) and du = s dy B (!tb); m = 300 is no multiple of a block's rows
      {false, true, 300, 16, 768}, {false, false, 300, 16, 257}, {false, true, 257, 1, 40},
      {false, false, 300, 17, 100}, {false, true, 300, 40, 33}, {false, false, 300, 64, 129},
      // rank update: y += s u B^T (tb) and dx += du A (!tb)
      {false, true, 300, 260, 16}, {false, false, 300, 700, 16}, {false, false, 259, 256, 1},
      {false, true, 300, 300, 33}, {false, false, 300, 257, 64},
      // long k: gB = s dy^T u (small n) and gA = du^T x (small m); k not a multiple of the chunk
      {true, false, 300, 16, 1000}, {true, false, 16, 300, 1000}, {true, false, 700, 3, 256},
      {true, false, 5, 260, 300}, {true, false, 256, 40, 513}, {true, false, 64, 300, 700},
  };
  for (const Shape& s : shapes) {
#ifdef MIRA_SKINNY_DISPATCH
    ASSERT_TRUE(cuda_skinny_gemm_applies(s.ta, s.tb, s.m, s.n, s.k))
        << "m " << s.m << " n " << s.n << " k " << s.k << " no longer takes the skinny kernels";
#endif
    for (float beta : {0.0f, -0.5f}) {
      const int64_t a_rows = s.ta ? s.k : s.m, a_cols = s.ta ? s.m : s.k;
      const int64_t b_rows = s.tb ? s.n : s.k, b_cols = s.tb ? s.k : s.n;
      const int64_t lda = a_cols + 3, ldb = b_cols + 1, ldc = s.n + 2;  // padded rows
      const uint64_t key = (uint64_t)(s.m * 7 + s.n * 13 + s.k * 17 + (beta != 0));
      const std::vector<float> ha = random_vec(a_rows * lda, key), hb = random_vec(b_rows * ldb, key + 1);
      const std::vector<float> hc = random_vec(s.m * ldc, key + 2);
      const float alpha = 0.625f;
      Twin a = f32(ha), b = f32(hb), c = f32(hc);
      cpu_->gemm(s.ta, s.tb, s.m, s.n, s.k, alpha, a.c, lda, b.c, ldb, beta, c.c, ldc);
      gpu_->gemm(s.ta, s.tb, s.m, s.n, s.k, alpha, a.g, lda, b.g, ldb, beta, c.g, ldc);
      const std::vector<float> rc = host_cpu(c), rg = host_gpu(c);
      int64_t bad = 0;
      for (int64_t i = 0; i < s.m; ++i)
        for (int64_t j = 0; j < ldc; ++j) {
          const size_t e = (size_t)(i * ldc + j);
          if (j >= s.n) {
            bad += rg[e] != hc[e];  // padding columns untouched
          } else {
            bad += !(std::fabs((double)rg[e] - rc[e]) <= bound_at(s, alpha, ha, lda, hb, ldb, beta, hc[e], i, j));
          }
        }
      EXPECT_EQ(bad, 0) << "ta " << s.ta << " tb " << s.tb << " m " << s.m << " n " << s.n << " k " << s.k << " beta "
                        << beta;
    }
  }
}

TEST_F(CudaVsCpu, SkinnyGemmsDoNotReadCWhenBetaIsZero) {
  const std::vector<Shape> shapes = {{false, true, 300, 16, 50}, {false, false, 300, 300, 16}, {true, false, 300, 16, 300}};
  for (const Shape& s : shapes) {
    const int64_t a_size = s.m * s.k, b_size = s.k * s.n;
    Twin a = f32(random_vec(a_size, 70)), b = f32(random_vec(b_size, 71));
    Twin c = f32(std::vector<float>((size_t)(s.m * s.n), NAN));
    gpu_->gemm(s.ta, s.tb, s.m, s.n, s.k, 1.0f, a.g, s.ta ? s.m : s.k, b.g, s.tb ? s.k : s.n, 0.0f, c.g, s.n);
    int64_t nan = 0;
    for (float x : host_gpu(c)) nan += std::isnan(x);
    EXPECT_EQ(nan, 0) << "m " << s.m << " n " << s.n << " k " << s.k;
  }
}

TEST_F(CudaVsCpu, LoraLinearForwardWritesBiasAndLoraTermBeforeTheBaseGemm) {
  // n, out >= 256: CudaBackend::linear_forward takes cuda_rank_update_bias, then the base GEMM.
  const int64_t n = 300, in = 96, out = 260, r = 16;
  const float s = 0.5f;
#ifdef MIRA_SKINNY_DISPATCH
  ASSERT_TRUE(cuda_rank_update_bias_applies(n, out, r));
#endif
  const std::vector<float> hx = random_vec(n * in, 250), hw = random_vec(in * out, 251), hb = random_vec(out, 252),
                           hu = random_vec(n * r, 253), hbl = random_vec(out * r, 254);
  Twin x = f32(hx), w = f32(hw), bias = f32(hb), u = f32(hu), bl = f32(hbl), y = f32(random_vec(n * out, 255));
  cpu_->linear_forward(y.c, x.c, w.c, bias.c, u.c, bl.c, s, n, in, out, r);
  gpu_->linear_forward(y.g, x.g, w.g, bias.g, u.g, bl.g, s, n, in, out, r);
  // y = bias + x W + s u bl^T, in + r + 3 terms summed in different orders on each side: within
  // 2 (in + r + 3) 2^-24 of the sum of magnitudes each, so twice that apart.
  const std::vector<float> rc = host_cpu(y), rg = host_gpu(y);
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < out; ++j) {
      double mag = std::fabs(hb[(size_t)j]);
      for (int64_t l = 0; l < in; ++l) mag += std::fabs((double)hx[(size_t)(i * in + l)] * hw[(size_t)(l * out + j)]);
      for (int64_t q = 0; q < r; ++q) mag += std::fabs((double)s * hu[(size_t)(i * r + q)] * hbl[(size_t)(j * r + q)]);
      const size_t e = (size_t)(i * out + j);
      bad += !(std::fabs((double)rg[e] - rc[e]) <= 2.0 * (double)(in + r + 3) * std::ldexp(1.0, -24) * mag);
    }
  EXPECT_EQ(bad, 0);
}

#ifdef MIRA_SKINNY_DISPATCH
TEST(SkinnyGemmShapes, BeyondTheGridLimitsTheShapesGoToCublas) {
  // Decided on the host (no device needed): 65535 blocks of 32 rows, 65535 chunks of 128 rows of k.
  EXPECT_TRUE(cuda_skinny_gemm_applies(false, false, 65535LL * 32, 768, 16));
  EXPECT_FALSE(cuda_skinny_gemm_applies(false, false, 65535LL * 32 + 1, 768, 16));
  EXPECT_TRUE(cuda_skinny_gemm_applies(true, false, 768, 16, 65535LL * 128));
  EXPECT_FALSE(cuda_skinny_gemm_applies(true, false, 768, 16, 65535LL * 128 + 1));
  EXPECT_FALSE(cuda_skinny_gemm_applies(false, false, 255, 16, 768));  // too few rows to pay
  EXPECT_FALSE(cuda_skinny_gemm_applies(true, true, 768, 16, 8192));   // no kernel for A^T B^T
}
#endif

// The LoRA ops with the packed dropout mask fused into the skinny kernels (Backend::lora_down,
// lora_down_grad, lora_input_grad; SkinnyMask): on the device, bitwise equal to their definition on
// the same device (dropout() into a buffer, then gemm(): the same skinny kernel reads the same
// values in the same order), and within the fp32 summation-order tolerance of the CPU backend. Shapes:
// n 300 / in 260 take all three fused kernels; n 300 / in 40 (an input narrower than the skinny
// kernels' 256: long k and rank update do not apply, the thin output does), and n 40 (too few rows:
// every product goes to cuBLAS via the composed path). Mask index base 3: draws straddle words.
TEST_F(CudaVsCpu, LoraOpsWithFusedDropoutMaskEqualDropoutThenGemm) {
  struct Case {
    int64_t n, in, r;
  };
  for (const Case cs : {Case{300, 260, 16}, Case{300, 40, 8}, Case{40, 24, 4}, Case{257, 768, 64}}) {
    const int64_t n = cs.n, in = cs.in, r = cs.r;
    const float p = 0.25f;
    const uint64_t stream = 777, base = 3;
    const std::string tag = "n " + std::to_string(n) + " in " + std::to_string(in) + " r " + std::to_string(r);
#ifdef MIRA_SKINNY_DISPATCH
    if (cs.in == 260) {  // the shape must reach every fused kernel, else this tests the fallback only
      EXPECT_TRUE(cuda_skinny_gemm_takes_mask(SkinnyMask{nullptr, 1.0f, SkinnyMask::A}, false, true, n, r, in));
      EXPECT_TRUE(cuda_skinny_gemm_takes_mask(SkinnyMask{nullptr, 1.0f, SkinnyMask::B}, true, false, r, in, n));
      EXPECT_TRUE(
          cuda_skinny_gemm_takes_mask(SkinnyMask{nullptr, 1.0f, SkinnyMask::ACCUMULATE}, false, false, n, in, r));
    }
#endif
    Twin x = f32(random_vec(n * in, 11)), a = f32(random_vec(r * in, 12)), du = f32(random_vec(n * r, 13));
    const std::vector<float> dx0 = random_vec(n * in, 14);
    TwinI bits = i32(std::vector<int32_t>((size_t)dropout_mask_words(n * in), -1));
    cpu_->dropout_mask(bits.c, n * in, p, stream, base);
    gpu_->dropout_mask(bits.g, n * in, p, stream, base);
    Twin u = zeros(n * r), ga = zeros(r * in), dx = f32(dx0);
    for (int side = 0; side < 2; ++side) {
      Backend& be = side == 0 ? *cpu_ : *gpu_;
      const DropoutMask mask{side == 0 ? bits.c : bits.g, p};
      be.lora_down(side == 0 ? u.c : u.g, side == 0 ? x.c : x.g, side == 0 ? a.c : a.g, mask, n, in, r);
      be.lora_down_grad(side == 0 ? ga.c : ga.g, side == 0 ? du.c : du.g, side == 0 ? x.c : x.g, mask, n, in, r);
      be.lora_input_grad(side == 0 ? dx.c : dx.g, side == 0 ? du.c : du.g, side == 0 ? a.c : a.g, mask, n, in, r);
    }
    // The definition on the device.
    DFloat xd = gpu_->alloc_f32(n * in), t = gpu_->alloc_f32(n * in), u_ref = gpu_->alloc_f32(n * r),
           ga_ref = gpu_->alloc_f32(r * in), dx_ref = gpu_->alloc_f32(n * in);
    gpu_->upload(dx_ref, dx0.data());
    gpu_->dropout(xd, x.g, p, stream, base, false);
    gpu_->gemm(false, true, n, r, in, 1.0f, xd, in, a.g, in, 0.0f, u_ref, r);
    gpu_->gemm(true, false, r, in, n, 1.0f, du.g, r, xd, in, 0.0f, ga_ref, in);
    gpu_->gemm(false, false, n, in, r, 1.0f, du.g, r, a.g, in, 0.0f, t, in);
    gpu_->dropout(dx_ref, t, p, stream, base, true);
    auto down = [&](DFloat d) {
      std::vector<float> h((size_t)d.size());
      gpu_->download(h.data(), d);
      return h;
    };
    EXPECT_EQ(host_gpu(u), down(u_ref)) << tag;
    EXPECT_EQ(host_gpu(ga), down(ga_ref)) << tag;
    EXPECT_EQ(host_gpu(dx), down(dx_ref)) << tag;
    // Against the CPU: fp32 sums of up to 768 products below 1 / (1 - p) in size, in a different
    // order (and with FMA on the device): within (terms + 2) 2^-24 of the sum of magnitudes each,
    // below 1e-4 here (the emulator measures at most 0.45 of 2e-5 + 2e-5 |ref|); a wrong mask bit
    // moves an element by a whole product, ~0.3.
    expect_close(u, 1e-4, 1e-4, "lora_down " + tag);
    expect_close(ga, 1e-4, 1e-4, "lora_down_grad " + tag);
    expect_close(dx, 1e-4, 1e-4, "lora_input_grad " + tag);
    for (DFloat d : {xd, t, u_ref, ga_ref, dx_ref}) gpu_->release(d);
  }
}
