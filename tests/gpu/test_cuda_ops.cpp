// Every op of the CUDA backend against the CPU backend (the oracle) on random inputs. Each test skips
// with "no CUDA device: <reason>" when no device is usable. Tolerances: ops that run the same float
// operations in the same order on both sides (embeddings, bias, add, scale, dropout, column sums,
// the fixed-order double sums) must match exactly; GELU and Adam replicate the CPU's operation
// order with round-to-nearest intrinsics and are expected to match bitwise, tested with a 2-ulp
// slack until verified on a device; ops whose reductions run in another order (GEMM, LayerNorm,
// softmax, cross-entropy) get bounds from float rounding given with each test.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <tuple>

#include "backend/backend_check.h"
#include "gpu_test_util.h"
#include "kernels/cpu/bf16.h"
#include "kernels/cpu/lm_head_ce.h"

using namespace mira;
using mira_gpu_test::CudaVsCpu;
using mira_gpu_test::random_vec;
using mira_gpu_test::Twin;
using mira_gpu_test::TwinI;

namespace {

constexpr double ULP2 = 2.4e-7;  // 2 ulps of float, relative: 2 * 2^-23

// Element-wise bound on |C_gpu - C_cpu| for a GEMM: each side is within k*u*(|alpha| sum|a||b| +
// |beta||c|) of the exact result (u = 2^-24, standard dot-product error bound), so their
// difference is within twice that. Row-major, as Backend::gemm.
std::vector<double> gemm_bound(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                               const std::vector<float>& a, int64_t lda, const std::vector<float>& b, int64_t ldb,
                               float beta, const std::vector<float>& c, int64_t ldc) {
  std::vector<double> bound((size_t)(m * ldc), 0.0);
  const double u = std::ldexp(1.0, -24);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t l = 0; l < k; ++l) {
        const double av = ta ? a[(size_t)(l * lda + i)] : a[(size_t)(i * lda + l)];
        const double bv = tb ? b[(size_t)(j * ldb + l)] : b[(size_t)(l * ldb + j)];
        s += std::fabs(av * bv);
      }
      bound[(size_t)(i * ldc + j)] = 2.0 * (double)(k + 2) * u * (std::fabs(alpha) * s + std::fabs(beta) * std::fabs(c[(size_t)(i * ldc + j)]));
    }
  return bound;
}

}  // namespace

TEST_F(CudaVsCpu, AllocationsAreZeroAndCopiesRoundTrip) {
  Twin z = zeros(1000);
  for (float x : host_gpu(z)) ASSERT_EQ(x, 0.0f);
  const std::vector<float> h = random_vec(1000, 1);
  Twin a = f32(h);
  EXPECT_EQ(host_gpu(a), h);
  gpu_->copy(z.g, a.g);
  EXPECT_EQ(host_gpu(z), h);
  gpu_->zero(a.g.slice(10, 20));
  const std::vector<float> after = host_gpu(a);
  for (int64_t i = 0; i < 1000; ++i) EXPECT_EQ(after[(size_t)i], (i >= 10 && i < 30) ? 0.0f : h[(size_t)i]);
  gpu_->release(a.g);
  DInt e = gpu_->alloc_i32(0);  // empty allocations are valid
  gpu_->release(e);
}

TEST_F(CudaVsCpu, GemmAllTransposesWithLeadingDimensions) {
  const int64_t m = 37, n = 53, k = 29;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;  // padded rows
      const std::vector<float> ha = random_vec((ta ? k : m) * lda, 10 + ta), hb = random_vec((tb ? n : k) * ldb, 20 + tb);
      const std::vector<float> hc = random_vec(m * ldc, 30);
      const float alpha = 0.75f, beta = -0.5f;
      Twin a = f32(ha), b = f32(hb), c = f32(hc);
      cpu_->gemm(ta, tb, m, n, k, alpha, a.c, lda, b.c, ldb, beta, c.c, ldc);
      gpu_->gemm(ta, tb, m, n, k, alpha, a.g, lda, b.g, ldb, beta, c.g, ldc);
      const std::vector<double> bound = gemm_bound(ta, tb, m, n, k, alpha, ha, lda, hb, ldb, beta, hc, ldc);
      const std::vector<float> rc = host_cpu(c), rg = host_gpu(c);
      int64_t bad = 0;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < ldc; ++j) {
          const size_t e = (size_t)(i * ldc + j);
          if (j >= n) {
            bad += rg[e] != hc[e];  // padding columns untouched
          } else {
            bad += !(std::fabs((double)rg[e] - rc[e]) <= bound[e]);
          }
        }
      EXPECT_EQ(bad, 0) << "trans_a " << ta << " trans_b " << tb;
    }
}

TEST_F(CudaVsCpu, LayerNormForwardBackward) {
  // 300 rows: two 256-row blocks in the CUDA parameter-gradient sums; C = 72 is not a multiple of 32.
  const int64_t n = 300, c = 72;
  Twin x = f32(random_vec(n * c, 40, -2, 3)), w = f32(random_vec(c, 41)), b = f32(random_vec(c, 42));
  Twin y = zeros(n * c), mean = zeros(n), rstd = zeros(n);
  cpu_->layernorm_forward(y.c, mean.c, rstd.c, x.c, w.c, b.c, n, c, 1e-5);
  gpu_->layernorm_forward(y.g, mean.g, rstd.g, x.g, w.g, b.g, n, c, 1e-5);
  // Row sums of 72 terms in another order: relative error <= 72 * 2^-24 = 4.3e-6 on the mean and the
  // variance (worst case); y = xhat * w + b with |xhat * w| <= ~3 and FMA contraction on the GPU:
  // a few 1e-6 absolute at worst. Bugs (wrong row, wrong eps, tail columns) give errors >= 1e-3.
  expect_close(mean, 1e-6, 1e-5, "layernorm mean");
  expect_close(rstd, 0, 1e-5, "layernorm rstd");
  expect_close(y, 3e-5, 3e-5, "layernorm y");
  Twin dy = f32(random_vec(n * c, 43)), dx = f32(random_vec(n * c, 44)), dw = f32(random_vec(c, 45)),
       db = f32(random_vec(c, 46));
  // Both sides use the CPU's saved statistics, so only the backward's own rounding is compared.
  const std::vector<float> hm = host_cpu(mean), hr = host_cpu(rstd);
  gpu_->upload(mean.g, hm.data());
  gpu_->upload(rstd.g, hr.data());
  cpu_->layernorm_backward(dx.c, dw.c, db.c, dy.c, x.c, w.c, mean.c, rstd.c, n, c);
  gpu_->layernorm_backward(dx.g, dw.g, db.g, dy.g, x.g, w.g, mean.g, rstd.g, n, c);
  expect_close(dx, 3e-5, 3e-5, "layernorm dx (accumulated)");  // two 72-term row sums, as y
  // Column sums over 300 rows (CPU: one 4096-row block; CUDA: 256-row blocks): 300 * 2^-24 * sum|.|
  // with |terms| <= ~3: about 5e-5 worst case.
  expect_close(dw, 1e-4, 1e-5, "layernorm dw");
  expect_close(db, 1e-4, 1e-5, "layernorm db");
  Twin dx2 = zeros(n * c);
  cpu_->layernorm_backward(dx2.c, DFloat(), DFloat(), dy.c, x.c, w.c, mean.c, rstd.c, n, c);
  gpu_->layernorm_backward(dx2.g, DFloat(), DFloat(), dy.g, x.g, w.g, mean.g, rstd.g, n, c);
  expect_close(dx2, 3e-5, 3e-5, "layernorm dx without parameter gradients");
}

TEST_F(CudaVsCpu, ResidualLayerNormForward) {
  // The residual add fused into the LayerNorm; sum aliasing its first input, as the interface allows.
  const int64_t n = 300, c = 72;
  Twin a = f32(random_vec(n * c, 47, -2, 3)), r = f32(random_vec(n * c, 48)), w = f32(random_vec(c, 41)),
       b = f32(random_vec(c, 42));
  Twin y = zeros(n * c), mean = zeros(n), rstd = zeros(n);
  cpu_->residual_layernorm_forward(a.c, y.c, mean.c, rstd.c, a.c, r.c, w.c, b.c, n, c, 1e-5);
  gpu_->residual_layernorm_forward(a.g, y.g, mean.g, rstd.g, a.g, r.g, w.g, b.g, n, c, 1e-5);
  expect_equal(a, "residual sum");  // one round-to-nearest add per element on both sides
  // The LayerNorm of the same sums: the tolerances of LayerNormForwardBackward, for the same reasons.
  expect_close(mean, 1e-6, 1e-5, "residual layernorm mean");
  expect_close(rstd, 0, 1e-5, "residual layernorm rstd");
  expect_close(y, 3e-5, 3e-5, "residual layernorm y");
}

// The start-up check the app runs before it takes a GPU (backend/backend_check.h), at the GPT-2
// 124M shape: it must pass on a correct backend (a failure here means `run.backend = auto` would
// fall back to the CPU on this device).
TEST_F(CudaVsCpu, StartupCheckPassesAtGpt2Shape) {
  mira::BackendCheckShape shape;
  shape.c = 768, shape.nh = 12, shape.vocab = 50257;
  const mira::BackendCheckReport rep = mira::backend_check(*gpu_, *cpu_, shape);
  for (const auto& o : rep.ops) std::printf("[ check    ] %-36s relative error %.3g\n", o.op.c_str(), o.rel_error);
  EXPECT_TRUE(rep.ok()) << rep.failures();
}

TEST_F(CudaVsCpu, GeluForwardBackward) {
  const int64_t n = 5000;
  Twin x = f32(random_vec(n, 50, -12, 12)), y = zeros(n), dy = f32(random_vec(n, 51)), dx = zeros(n);
  cpu_->gelu_forward(y.c, x.c, n);
  gpu_->gelu_forward(y.g, x.g, n);
  expect_close(y, 1e-30, ULP2, "gelu forward (same operations as the CPU: bitwise expected)");
  cpu_->gelu_backward(dx.c, dy.c, x.c, n);
  gpu_->gelu_backward(dx.g, dy.g, x.g, n);
  expect_close(dx, 1e-30, ULP2, "gelu backward (bitwise expected)");
  gpu_->gelu_backward(dy.g, dy.g, x.g, n);  // dx may alias dy
  EXPECT_EQ(host_gpu(dy), host_gpu(dx));
}

class CudaAttention : public CudaVsCpu, public ::testing::WithParamInterface<std::tuple<float, int64_t, int64_t>> {};

// out and dqkv only: `att` and `scratch` are backend-defined state (Backend::attention_saved_floats):
// the CPU keeps the (B, H, T, T) probabilities, the CUDA flash kernels the row logsumexp, a copy of
// out and rowsum(dout * out), so they have different sizes and meanings and are not compared. Each
// side gets its own, sized by its own query. A wrong dropout mask index shows in out and dqkv (errors
// of the size of a probability times |v|, >> the tolerances).
TEST_P(CudaAttention, ForwardBackward) {
  const float p = std::get<0>(GetParam());
  // (T, C): T = 13 is one partial tile; 130 = three query/key tiles of 64 with a partial last one
  // (causal limits at tile edges). C = 24 with 3 heads gives hd = 8 (the hd <= 32 kernels); 192 with
  // 3 heads gives hd = 64 (GPT-2's); 300 with 3 heads gives hd = 100 (the hd <= 128 kernels with
  // 32-row tiles, a head dim that is not a power of two).
  const int64_t b = 2, t = std::get<1>(GetParam()), c = std::get<2>(GetParam()), nh = 3;
  const DropoutSite drop{p, rng_stream(3, RngPurpose::BASE_DROPOUT, 1, 2), 7};  // base 7: not a multiple of 4
  Twin qkv = f32(random_vec(b * t * 3 * c, 60, -2, 2)), out = zeros(b * t * c);
  const auto F32 = AttentionPrecision::FP32;
  Twin att{cpu_->alloc_f32(cpu_->attention_saved_floats(b, t, c, nh, F32)),
           gpu_->alloc_f32(gpu_->attention_saved_floats(b, t, c, nh, F32))};
  Twin scratch{cpu_->alloc_f32(cpu_->attention_scratch_floats(b, t, c, nh)),
               gpu_->alloc_f32(gpu_->attention_scratch_floats(b, t, c, nh))};
  cpu_->attention_forward(out.c, att.c, qkv.c, b, t, c, nh, scratch.c, drop, AttentionPrecision::FP32);
  gpu_->attention_forward(out.g, att.g, qkv.g, b, t, c, nh, scratch.g, drop, AttentionPrecision::FP32);
  // Scores: |S| <= hd * 2 * 2 / sqrt(hd); a probability's relative error is about the absolute error
  // of S (2 hd 2^-24 |S|-ish: 1e-5 at hd = 8 up to ~1e-4 worst case at hd = 100, typically 10x
  // less), plus expf vs the CPU's exp_f32 (~1e-7) and the online-softmax rescaling (a few ulp).
  // out: sums of <= T probabilities times |v| <= 2. Bugs (mask, row, scale, head offset, tile edge)
  // give errors of the size of a probability.
  expect_close(out, 2e-5, 1e-4, "attention out");
  Twin dout = f32(random_vec(b * t * c, 61)), dqkv = f32(random_vec(b * t * 3 * c, 62));  // overwritten
  cpu_->attention_backward(dqkv.c, scratch.c, dout.c, qkv.c, out.c, att.c, b, t, c, nh, drop, AttentionPrecision::FP32);
  gpu_->attention_backward(dqkv.g, scratch.g, dout.g, qkv.g, out.g, att.g, b, t, c, nh, drop, AttentionPrecision::FP32);
  // Chains of two products on the probabilities above and the softmax backward (D = rowsum(dO O) on
  // the GPU, sum_j P dP on the CPU: equal up to rounding); relative error with an absolute floor for
  // the near-cancelling entries.
  expect_close(dqkv, 1e-4, 2e-4, "attention dqkv");
}

INSTANTIATE_TEST_SUITE_P(Dropout, CudaAttention,
                         ::testing::Combine(::testing::Values(0.0f, 0.25f), ::testing::Values<int64_t>(1, 13, 130),
                                            ::testing::Values<int64_t>(24, 192, 300)),
                         [](const ::testing::TestParamInfo<CudaAttention::ParamType>& info) {
                           return std::string(std::get<0>(info.param) > 0 ? "drop" : "nodrop") + "_T" +
                                  std::to_string(std::get<1>(info.param)) + "_C" +
                                  std::to_string(std::get<2>(info.param));
                         });

// The bf16 operand mode (AttentionPrecision::BF16): the tensor-core kernels (kernels/cuda/
// attention_bf16.cu) against the CPU's bf16 oracle, which rounds the same operands (q, k, v, Pd, dO,
// dS) to bf16 and sums in fp32. Params: dropout p, T, C (3 heads: hd 8, 32, 64, 100, 128; hd 8 and
// 100 are padded to 32 and 128 with zeros).
class CudaAttentionBf16 : public CudaVsCpu,
                          public ::testing::WithParamInterface<std::tuple<float, int64_t, int64_t>> {
 protected:
  // ||x - y|| / ||y|| over the backend buffers (norm-wise: see the tolerance below).
  static double rel_err(const std::vector<float>& x, const std::vector<float>& y) {
    double num = 0, den = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double d = (double)x[i] - (double)y[i];
      num += d * d, den += (double)y[i] * y[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  }
};

TEST_P(CudaAttentionBf16, MatchesCpuBf16Oracle) {
  const float p = std::get<0>(GetParam());
  const int64_t b = 2, t = std::get<1>(GetParam()), c = std::get<2>(GetParam()), nh = 3;
  const DropoutSite drop{p, rng_stream(3, RngPurpose::BASE_DROPOUT, 1, 2), 7};
  const auto BF = AttentionPrecision::BF16;
  Twin qkv = f32(random_vec(b * t * 3 * c, 80, -2, 2)), out = zeros(b * t * c);
  Twin att{cpu_->alloc_f32(cpu_->attention_saved_floats(b, t, c, nh, BF)),
           gpu_->alloc_f32(gpu_->attention_saved_floats(b, t, c, nh, BF))};
  Twin scratch{cpu_->alloc_f32(cpu_->attention_scratch_floats(b, t, c, nh)),
               gpu_->alloc_f32(gpu_->attention_scratch_floats(b, t, c, nh))};
  cpu_->attention_forward(out.c, att.c, qkv.c, b, t, c, nh, scratch.c, drop, BF);
  gpu_->attention_forward(out.g, att.g, qkv.g, b, t, c, nh, scratch.g, drop, BF);
  const std::vector<float> out_cpu = host_cpu(out), out_gpu = host_gpu(out);
  Twin dout = f32(random_vec(b * t * c, 81)), dqkv = f32(random_vec(b * t * 3 * c, 82));  // overwritten
  cpu_->attention_backward(dqkv.c, scratch.c, dout.c, qkv.c, out.c, att.c, b, t, c, nh, drop, BF);
  // The device keeps q, k, v in att (attention_backward_reads_qkv): NaN in qkv must not reach dqkv.
  ASSERT_FALSE(gpu_->attention_backward_reads_qkv(BF));
  gpu_->upload(qkv.g, std::vector<float>((size_t)qkv.size(), NAN).data());
  gpu_->attention_backward(dqkv.g, scratch.g, dout.g, qkv.g, out.g, att.g, b, t, c, nh, drop, BF);
  const std::vector<float> dqkv_cpu = host_cpu(dqkv), dqkv_gpu = host_gpu(dqkv);
  // The fp32 CPU result: how far the bf16 roundings move the result (about 2^-9 relative).
  Twin out32 = zeros(b * t * c), dqkv32 = zeros(b * t * 3 * c);
  cpu_->attention_forward(out32.c, att.c, qkv.c, b, t, c, nh, scratch.c, drop, AttentionPrecision::FP32);
  cpu_->attention_backward(dqkv32.c, scratch.c, dout.c, qkv.c, out32.c, att.c, b, t, c, nh, drop,
                           AttentionPrecision::FP32);
  const double e_out = rel_err(out_gpu, out_cpu), e_dqkv = rel_err(dqkv_gpu, dqkv_cpu);
  const double s_out = rel_err(host_cpu(out32), out_cpu), s_dqkv = rel_err(host_cpu(dqkv32), dqkv_cpu);
  std::printf("[ compare  ] bf16 attention: out %.3g (bf16 vs fp32 %.3g), dqkv %.3g (bf16 vs fp32 %.3g)\n", e_out,
              s_out, e_dqkv, s_dqkv);
  // Norm-wise, not per element: both sides round the same operands, so they differ by the fp32
  // summation order (~1e-6) plus the rare element whose fp32 value the two sides round to different
  // bf16 neighbours (a P or dS a few fp32 ulp from a bf16 rounding midpoint: probability ~2^-15 per
  // element, each off by 2^-8 relative; an element-wise bound would have to allow that 2^-8 on every
  // element). dS = P (z dPd - D) scale cancels near dPd = D, so its fp32 differences are relatively
  // larger and cross midpoints more often: the emulator measures out <= 1.1e-5, dqkv <= 5.3e-5 at
  // T = 130. 1e-4 (the start-up check's bound) keeps a margin; a missing rounding (an fp32
  // operand) gives the bf16-vs-fp32 distance, ~3e-3, and an indexing or mask bug far more.
  EXPECT_LT(e_out, 1e-4);
  EXPECT_LT(e_dqkv, 1e-4);
  // The comparison is sharp: the bf16 roundings themselves move the result far more than the CUDA
  // and CPU bf16 results differ (t = 1: one probability of exactly 1, out = bf16(v) is exact on both).
  if (t > 1) {
    EXPECT_GT(s_out, 1e-4);
    EXPECT_GT(s_dqkv, 1e-4);
    EXPECT_LT(e_out, s_out / 20);
    EXPECT_LT(e_dqkv, s_dqkv / 20);
  }
}

INSTANTIATE_TEST_SUITE_P(Dropout, CudaAttentionBf16,
                         ::testing::Combine(::testing::Values(0.0f, 0.25f), ::testing::Values<int64_t>(1, 13, 130),
                                            ::testing::Values<int64_t>(24, 96, 192, 300, 384)),
                         [](const ::testing::TestParamInfo<CudaAttentionBf16::ParamType>& info) {
                           return std::string(std::get<0>(info.param) > 0 ? "drop" : "nodrop") + "_T" +
                                  std::to_string(std::get<1>(info.param)) + "_C" +
                                  std::to_string(std::get<2>(info.param));
                         });

// Times the attention kernels at GPT-2 124M's shape (B 8, T 1024, C 768, 12 heads, attention dropout
// 0.1): fp32 vs bf16 operand mode, forward and backward, ms per call (mean of 10 after 2 warm-up
// calls). Disabled: a measurement, not a check (on the emulator it would take hours); on a GPU run
// test_gpu --gtest_also_run_disabled_tests --gtest_filter='*AttentionTiming*'.
TEST_F(CudaVsCpu, DISABLED_AttentionTimingGpt2) {
  const int64_t b = 8, t = 1024, c = 768, nh = 12;
  const DropoutSite drop{0.1f, 5, 0};
  DFloat qkv = gpu_->alloc_f32(b * t * 3 * c), out = gpu_->alloc_f32(b * t * c), dout = gpu_->alloc_f32(b * t * c),
         dqkv = gpu_->alloc_f32(b * t * 3 * c),
         att = gpu_->alloc_f32(std::max(gpu_->attention_saved_floats(b, t, c, nh, AttentionPrecision::FP32),
                                        gpu_->attention_saved_floats(b, t, c, nh, AttentionPrecision::BF16))),
         scr = gpu_->alloc_f32(gpu_->attention_scratch_floats(b, t, c, nh));
  gpu_->upload(qkv, random_vec(b * t * 3 * c, 90, -2, 2).data());
  gpu_->upload(dout, random_vec(b * t * c, 91).data());
  auto sync = [&] {
    float x;
    gpu_->download(&x, out.slice(0, 1));
  };
  for (const AttentionPrecision prec : {AttentionPrecision::FP32, AttentionPrecision::BF16}) {
    double ms[2];
    for (int pass = 0; pass < 2; ++pass) {
      auto call = [&] {
        if (pass == 0) gpu_->attention_forward(out, att, qkv, b, t, c, nh, scr, drop, prec);
        else gpu_->attention_backward(dqkv, scr, dout, qkv, out, att, b, t, c, nh, drop, prec);
      };
      call(), call(), sync();
      const auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < 10; ++r) call();
      sync();
      ms[pass] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 10;
    }
    // Causal flops as executed by the fp32 kernels' formula: 2 products forward, 5 backward, each
    // 2 * B * H * T^2 / 2 * hd.
    const double unit = 2.0 * b * nh * (double)t * t / 2 * (c / nh);
    std::printf("[ timing   ] attention %s: forward %.3f ms (%.1f TFLOP/s at 2 products), backward %.3f ms (%.1f at 5)\n",
                attention_precision_name(prec), ms[0], 2 * unit / ms[0] / 1e9, ms[1], 5 * unit / ms[1] / 1e9);
  }
  for (DFloat x : {qkv, out, dout, dqkv, att, scr}) gpu_->release(x);
}

TEST_F(CudaVsCpu, ElementwiseOpsAreExact) {
  const int64_t b = 3, t = 7, c = 20, v = 11;
  std::vector<int32_t> ids((size_t)(b * t));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = (int32_t)((i * 5) % v);  // repeated ids: scatter-add collisions
  auto tid = i32(ids);
  Twin wte = f32(random_vec(v * c, 70)), wpe = f32(random_vec(t * c, 71)), out = zeros(b * t * c);
  cpu_->embedding_forward(out.c, tid.c, wte.c, wpe.c, b, t, c);
  gpu_->embedding_forward(out.g, tid.g, wte.g, wpe.g, b, t, c);
  expect_equal(out, "embedding_forward");  // one float add per element on both sides
  Twin dout = f32(random_vec(b * t * c, 72)), dwte = f32(random_vec(v * c, 73)), dwpe = f32(random_vec(t * c, 74));
  cpu_->embedding_backward(dwte.c, dwpe.c, dout.c, tid.c, b, t, c);
  gpu_->embedding_backward(dwte.g, dwpe.g, dout.g, tid.g, b, t, c);
  expect_equal(dwte, "embedding_backward dwte");  // same token order per element
  expect_equal(dwpe, "embedding_backward dwpe");

  const int64_t n = 45, m = 70;
  Twin bias = f32(random_vec(m, 75)), y = zeros(n * m);
  cpu_->bias_broadcast(y.c, bias.c, n, m);
  gpu_->bias_broadcast(y.g, bias.g, n, m);
  expect_equal(y, "bias_broadcast");
  Twin a = f32(random_vec(n * m, 76)), s = zeros(n * m);
  cpu_->add(s.c, a.c, y.c);
  gpu_->add(s.g, a.g, y.g);
  expect_equal(s, "add");
  cpu_->add(s.c, s.c, a.c);  // y aliasing a
  gpu_->add(s.g, s.g, a.g);
  expect_equal(s, "add in place");
  cpu_->scale(s.c, -0.37f);
  gpu_->scale(s.g, -0.37f);
  expect_equal(s, "scale");
  Twin db = f32(random_vec(m, 77));
  cpu_->colsum_accumulate(db.c, a.c, n, m);
  gpu_->colsum_accumulate(db.g, a.g, n, m);
  expect_equal(db, "colsum_accumulate");  // rows summed in order in float on both sides
}

TEST_F(CudaVsCpu, DropoutMaskAndScaleAreExact) {
  const int64_t n = 1001;  // not a multiple of 4; base 6 starts mid-draw
  const uint64_t stream = rng_stream(9, RngPurpose::LORA_DROPOUT, 4, 5);
  Twin x = f32(random_vec(n, 80)), y = zeros(n), acc = f32(random_vec(n, 81));
  for (float p : {0.1f, 0.5f}) {
    cpu_->dropout(y.c, x.c, p, stream, 6, false);
    gpu_->dropout(y.g, x.g, p, stream, 6, false);
    expect_equal(y, "dropout p=" + std::to_string(p));
    cpu_->dropout(acc.c, x.c, p, stream, 6, true);
    gpu_->dropout(acc.g, x.g, p, stream, 6, true);
    expect_equal(acc, "dropout accumulate p=" + std::to_string(p));
  }
  const std::vector<float> hy = host_gpu(y);
  const auto kept = std::count_if(hy.begin(), hy.end(), [](float v) { return v != 0.0f; });
  EXPECT_GT(kept, n / 4);  // p = 0.5: about half kept (a mask of all zeros would pass the equality too)
  EXPECT_LT(kept, 3 * n / 4);
}

class CudaLmHead : public CudaVsCpu, public ::testing::WithParamInterface<int> {};

TEST_P(CudaLmHead, LossAndGradients) {
  const int mode = GetParam();  // 0: loss only, 1: + dh, 2: + dh + dwte
  // 1100 rows, 1000 of them weighted: several CPU chunks (256) and two CUDA chunks (1024).
  const int64_t n = 1100, c = 16, v = 300;
  std::vector<float> wt = random_vec(n, 90, 0.5f, 2.0f);
  for (int64_t i = 0; i < n; i += 11) wt[(size_t)i] = 0.0f;  // skipped rows
  std::vector<int32_t> tg((size_t)n);
  for (int64_t i = 0; i < n; ++i) tg[(size_t)i] = (int32_t)((i * 37) % v);
  auto targets = i32(tg);
  Twin h = f32(random_vec(n * c, 91, -2, 2)), wte = f32(random_vec(v * c, 92)), weight = f32(wt);
  Twin loss = f32(random_vec(n, 93));  // overwritten
  Twin dh = mode >= 1 ? f32(random_vec(n * c, 94)) : empty();
  Twin dwte = mode >= 2 ? f32(random_vec(v * c, 95)) : empty();
  Twin sc{cpu_->alloc_f32(cpu_->lm_head_ce_scratch(c, v)), gpu_->alloc_f32(gpu_->lm_head_ce_scratch(c, v))};
  cpu_->lm_head_ce(loss.c, dh.c, dwte.c, h.c, wte.c, targets.c, weight.c, n, c, v, sc.c);
  gpu_->lm_head_ce(loss.g, dh.g, dwte.g, h.g, wte.g, targets.g, weight.g, n, c, v, sc.g);
  // Losses ~ log(300) = 5.7 plus the logit spread: logits from 16-term dot products (|l| <= 32,
  // worst-case error 2 * 18 * 2^-24 * 32 = 7e-5 on the max and target logits, typically ~1e-6),
  // expf/logf within 2 ulp, sums of 300 exponentials in another order (<= 1.8e-5 on the log).
  expect_close(loss, 1e-4, 1e-5, "lm_head_ce loss rows");
  const std::vector<float> lg = host_gpu(loss);
  for (int64_t i = 0; i < n; i += 11) EXPECT_EQ(lg[(size_t)i], 0.0f) << "skipped row " << i;
  // dlogits are probabilities times the weight (<= 2) with ~1e-5 relative error (logit errors);
  // dh sums 300 of them times wte (<= 1): sum of |terms| <= ~4, so ~4e-5; dwte sums ~1000 rows in
  // chunks (sum of |terms| ~17 per element: ~2e-4). Bugs (row mapping, target, weight) give >= 1e-2.
  if (mode >= 1) expect_close(dh, 1e-4, 1e-4, "lm_head_ce dh");
  if (mode >= 2) expect_close(dwte, 5e-4, 1e-4, "lm_head_ce dwte (accumulated)");
}

INSTANTIATE_TEST_SUITE_P(Modes, CudaLmHead, ::testing::Values(0, 1, 2));

TEST_F(CudaVsCpu, AdamStepBothVariants) {
  const int64_t n = 3000;
  for (bool decoupled : {false, true}) {
    Twin p = f32(random_vec(n, 100)), g = f32(random_vec(n, 101, -1e-3f, 1e-3f)), m = f32(random_vec(n, 102, -1e-3f, 1e-3f)),
         v = f32(random_vec(n, 103, 0.0f, 1e-6f));
    for (int step = 1; step <= 3; ++step) {
      const double bc1 = 1 - std::pow(0.9, step), bc2 = 1 - std::pow(0.999, step);
      cpu_->adam_step(p.c, g.c, m.c, v.c, 1e-3, 0.9, 0.999, 1e-8, 0.01, decoupled, bc1, bc2);
      gpu_->adam_step(p.g, g.g, m.g, v.g, 1e-3, 0.9, 0.999, 1e-8, 0.01, decoupled, bc1, bc2);
    }
    // Same float operations in the same order with correctly rounded sqrt and division on both
    // sides: bitwise expected; 2-ulp slack until verified on a device.
    const std::string tag = decoupled ? "adamw " : "adam ";
    expect_close(p, 1e-30, ULP2, tag + "param");
    expect_close(m, 1e-30, ULP2, tag + "m");
    expect_close(v, 1e-30, ULP2, tag + "v");
  }
}

TEST_F(CudaVsCpu, SumsAreBitwiseEqualToCpu) {
  for (int64_t n : {0, 1, 4096, 10001}) {  // 10001: three 4096-blocks, the last partial
    std::vector<float> h = random_vec(n, 110, -3, 5);
    Twin x = f32(h);
    // Fixed 4096-element blocks summed sequentially in double, blocks in order: the CPU's exact order.
    EXPECT_EQ(gpu_->sum(x.g), cpu_->sum(x.c)) << "n " << n;
    EXPECT_EQ(gpu_->sum_squares(x.g), cpu_->sum_squares(x.c)) << "n " << n;
  }
}

// ---- bf16 frozen-weight mode (Backend::freeze_weights): CUDA (bf16 copy, cublasGemmEx with bf16
// inputs, fp32 accumulation on tensor cores) against the CPU oracle (bf16 values in fp32 storage,
// other operand rounded, fp32 GEMM). Products of two bf16 values are exact in fp32 on both sides, so
// they differ only in how the same exact products are summed. Bound per element: each side within
// (k + 2) u_acc (|alpha| sum|a_r b_r| + |beta c|) of the exact sum (a_r, b_r the bf16-rounded
// operands), so the difference within twice that; u_acc = 2^-23 (twice fp32's unit roundoff) because
// tensor-core adders may align and truncate instead of rounding to nearest (Fasi et al., "Numerical
// behavior of NVIDIA tensor cores", 2021). A missing or wrong rounding of an operand gives errors of
// 2^-9 of sum|a b|, ~100x above these bounds for the sizes below.
namespace {

std::vector<float> bf16_rounded(std::vector<float> v) {
  for (auto& x : v) x = bf16_round(x);
  return v;
}

}  // namespace

TEST_F(CudaVsCpu, Bf16GemmWithFrozenOperand) {
  const int64_t m = 37, n = 53, k = 129;
  for (int frozen_b = 0; frozen_b < 2; ++frozen_b)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;
        const std::vector<float> ha = random_vec((ta ? k : m) * lda, 210 + ta), hb = random_vec((tb ? n : k) * ldb, 220 + tb);
        const std::vector<float> hc = random_vec(m * ldc, 230);
        const float alpha = 0.75f, beta = -0.5f;
        Twin a = f32(ha), b = f32(hb), c = f32(hc);
        Twin& w = frozen_b ? b : a;
        cpu_->freeze_weights(w.c, WeightPrecision::BF16);
        gpu_->freeze_weights(w.g, WeightPrecision::BF16);
        expect_equal(w, "frozen weight rounded in place (round to nearest even on both sides)");
        cpu_->gemm(ta, tb, m, n, k, alpha, a.c, lda, b.c, ldb, beta, c.c, ldc);
        gpu_->gemm(ta, tb, m, n, k, alpha, a.g, lda, b.g, ldb, beta, c.g, ldc);
        std::vector<double> bound = gemm_bound(ta, tb, m, n, k, alpha, bf16_rounded(ha), lda, bf16_rounded(hb), ldb,
                                               beta, hc, ldc);
        for (double& x : bound) x *= 2;  // u_acc = 2^-23 (see above)
        const std::vector<float> rc = host_cpu(c), rg = host_gpu(c);
        int64_t bad = 0;
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < ldc; ++j) {
            const size_t e = (size_t)(i * ldc + j);
            bad += j >= n ? rg[e] != hc[e] : !(std::fabs((double)rg[e] - rc[e]) <= bound[e]);
          }
        EXPECT_EQ(bad, 0) << "frozen " << (frozen_b ? "B" : "A") << " trans_a " << ta << " trans_b " << tb;
        // A slice of the frozen weight (rows 1.. of B as stored, or of A) takes the bf16 path too.
        if (frozen_b && !tb && !ta) {
          Twin c2 = f32(hc);
          cpu_->gemm(false, false, m, n, k - 1, 1.0f, a.c, lda, b.c.slice(ldb, (k - 1) * ldb), ldb, 0.0f, c2.c, ldc);
          gpu_->gemm(false, false, m, n, k - 1, 1.0f, a.g, lda, b.g.slice(ldb, (k - 1) * ldb), ldb, 0.0f, c2.g, ldc);
          // sum|a b| <= k over these [-1, 1) operands: 2 * (k + 1) * 2^-23 * k absolute at most.
          expect_close(c2, 2.0 * (double)(k + 1) * std::ldexp(1.0, -23) * (double)k, 0, "bf16 gemm on a slice");
        }
      }
}

// Three paths of the CUDA linear_forward: with a LoRA term (bias + LoRA written first, GEMM with
// beta 1), without one (the bias in cuBLASLt's epilogue, y written once), and without one at a shape
// cuBLASLt takes no kernel for (out = 83: leading dimensions not a multiple of 8 bytes, which the
// emulated heuristic refuses; the composed fallback). y starts as NaN: no path may read it.
TEST_F(CudaVsCpu, Bf16LinearForwardWithFrozenWeight) {
  struct Case {
    int64_t out, r;
  };
  for (const Case cs : {Case{80, 4}, Case{80, 0}, Case{83, 0}}) {
    const int64_t n = 70, in = 96, out = cs.out, r = cs.r;
    const float s = 2.0f;
    const std::vector<float> hx = random_vec(n * in, 240), hw = random_vec(in * out, 241),
                             hb = random_vec(out, 242), hu = random_vec(n * std::max<int64_t>(r, 1), 243),
                             hbl = random_vec(out * std::max<int64_t>(r, 1), 244);
    Twin x = f32(hx), w = f32(hw), bias = f32(hb), u = f32(hu), bl = f32(hbl),
         y = f32(std::vector<float>((size_t)(n * out), std::nanf("")));
    cpu_->freeze_weights(w.c, WeightPrecision::BF16);
    gpu_->freeze_weights(w.g, WeightPrecision::BF16);
    const DFloat uc = r ? u.c : DFloat(), ug = r ? u.g : DFloat(), blc = r ? bl.c : DFloat(), blg = r ? bl.g : DFloat();
    cpu_->linear_forward(y.c, x.c, w.c, bias.c, uc, blc, s, n, in, out, r);
    gpu_->linear_forward(y.g, x.g, w.g, bias.g, ug, blg, s, n, in, out, r);
    expect_equal(x, "activation not rounded in place");
    // y = bias + sum_in bf16(x) bf16(W) + s * sum_r u bl (fp32): per element the bound above over the
    // in + r + 3 summed terms (the CPU may fuse the three steps into one pass, the GPU runs them in turn).
    const std::vector<float> xr = bf16_rounded(hx), wr = bf16_rounded(hw), rc = host_cpu(y), rg = host_gpu(y);
    const double ua = std::ldexp(1.0, -23);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < out; ++j) {
        double mag = std::fabs(hb[(size_t)j]);
        for (int64_t l = 0; l < in; ++l)
          mag += std::fabs((double)xr[(size_t)(i * in + l)] * wr[(size_t)(l * out + j)]);
        for (int64_t q = 0; q < r; ++q)
          mag += 2 * std::fabs((double)s * hu[(size_t)(i * r + q)] * hbl[(size_t)(j * r + q)]);
        const size_t e = (size_t)(i * out + j);
        bad += !(std::fabs((double)rg[e] - rc[e]) <= 2.0 * (double)(in + r + 3) * ua * mag);
      }
    EXPECT_EQ(bad, 0) << "out " << out << ", r " << r;
  }
}

// The LM head with a frozen wte (bf16 logits and dh GEMMs). Loss: as CudaLmHead, with the logits'
// summation term doubled (u_acc): 2e-4 absolute. dh: both sides round their own fp32 dlogits (which
// agree to ~1e-5 relative) to bf16 before the dh GEMM, so a dlogit lying within 1e-5 of a bf16
// rounding boundary may round differently: one bf16 ulp (2^-8 relative) of that single term, at most
// 2^-8 * weight (<= 2) * |wte| (<= 1) = 7.8e-3. That happens to ~1e-5 / 2^-8 = 0.3% of the terms, so
// every dh element must lie within that one-term allowance and the fp32 bound (1e-4 abs + 1e-4 rel as
// CudaLmHead), and at most 2% of the elements may need more than the fp32 bound.
TEST_F(CudaVsCpu, Bf16LmHeadWithFrozenWte) {
  const int64_t n = 1100, c = 16, v = 300;
  std::vector<float> wt = random_vec(n, 250, 0.5f, 2.0f);
  for (int64_t i = 0; i < n; i += 11) wt[(size_t)i] = 0.0f;
  std::vector<int32_t> tg((size_t)n);
  for (int64_t i = 0; i < n; ++i) tg[(size_t)i] = (int32_t)((i * 37) % v);
  auto targets = i32(tg);
  Twin h = f32(random_vec(n * c, 251, -2, 2)), wte = f32(random_vec(v * c, 252)), weight = f32(wt);
  Twin loss = f32(random_vec(n, 253)), dh = f32(random_vec(n * c, 254));
  Twin sc{cpu_->alloc_f32(cpu_->lm_head_ce_scratch(c, v)), gpu_->alloc_f32(gpu_->lm_head_ce_scratch(c, v))};
  cpu_->freeze_weights(wte.c, WeightPrecision::BF16);
  gpu_->freeze_weights(wte.g, WeightPrecision::BF16);
  cpu_->lm_head_ce(loss.c, dh.c, DFloat(), h.c, wte.c, targets.c, weight.c, n, c, v, sc.c);
  gpu_->lm_head_ce(loss.g, dh.g, DFloat(), h.g, wte.g, targets.g, weight.g, n, c, v, sc.g);
  expect_close(loss, 2e-4, 1e-5, "bf16 lm_head_ce loss rows");
  const std::vector<float> a = host_cpu(dh), b = host_gpu(dh);
  int64_t beyond_fp32 = 0, bad = 0;
  for (size_t e = 0; e < a.size(); ++e) {
    const double d = std::fabs((double)b[e] - a[e]), fp32 = 1e-4 + 1e-4 * std::fabs(a[e]);
    beyond_fp32 += !(d <= fp32);
    bad += !(d <= fp32 + std::ldexp(2.0, -8));
  }
  std::printf("[ compare  ] bf16 lm_head_ce dh: %zu elements, %lld beyond the fp32 bound\n", a.size(),
              (long long)beyond_fp32);
  EXPECT_EQ(bad, 0);
  EXPECT_LE(beyond_fp32, (int64_t)a.size() / 50);
  // loss only (eval): the same path without the dh GEMM.
  Twin loss2 = zeros(n);
  cpu_->lm_head_ce(loss2.c, DFloat(), DFloat(), h.c, wte.c, targets.c, weight.c, n, c, v, sc.c);
  gpu_->lm_head_ce(loss2.g, DFloat(), DFloat(), h.g, wte.g, targets.g, weight.g, n, c, v, sc.g);
  expect_close(loss2, 2e-4, 1e-5, "bf16 lm_head_ce loss rows without dh");
}

// ---- bf16 activations (Backend DAct): the ops the model runs with bf16 base weights, CUDA (native
// bf16 loads/stores in LayerNorm, GELU, the base GEMM; fp32 scratch elsewhere) against the CPU
// oracle (fp32 kernels, then the output rounded / the input widened).
namespace {

struct Twin16 {
  DBf16 c, g;
};

}  // namespace

class CudaBf16Activations : public CudaVsCpu {
 protected:
  Twin16 bf16(const std::vector<float>& h) {
    std::vector<uint16_t> bits(h.size());
    for (size_t i = 0; i < h.size(); ++i) bits[i] = bf16_bits(h[i]);
    Twin16 t{cpu_->alloc_bf16((int64_t)h.size()), gpu_->alloc_bf16((int64_t)h.size())};
    cpu_->upload(t.c, bits.data());
    gpu_->upload(t.g, bits.data());
    return t;
  }
  Twin16 bf16_zeros(int64_t n) { return bf16(std::vector<float>((size_t)n, 0.0f)); }
  static std::vector<float> values(Backend& be, DBf16 d) {
    std::vector<uint16_t> bits((size_t)d.size());
    be.download(bits.data(), d);
    std::vector<float> v(bits.size());
    for (size_t i = 0; i < v.size(); ++i) v[i] = bf16_value(bits[i]);
    return v;
  }
  // bitwise when max_ulps = 0; else every element within max_ulps bf16 ulps (2^-7 relative each) of
  // the CPU's, and at most `max_differ` elements different at all.
  void expect_bf16(const Twin16& t, int max_ulps, int64_t max_differ, const std::string& what) {
    const std::vector<float> a = values(*cpu_, t.c), b = values(*gpu_, t.g);
    int64_t bad = 0, differ = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      differ += std::memcmp(&a[i], &b[i], 4) != 0;
      bad += !(std::fabs((double)a[i] - b[i]) <= max_ulps * std::ldexp(std::fabs((double)a[i]), -7));
    }
    std::printf("[ compare  ] %s: %zu bf16 elements, %lld differ\n", what.c_str(), a.size(), (long long)differ);
    EXPECT_EQ(bad, 0) << what;
    EXPECT_LE(differ, max_differ) << what;
  }
};

TEST_F(CudaBf16Activations, LayerNormAndGeluStoreBf16) {
  const int64_t n = 300, c = 72;
  Twin x = f32(random_vec(n * c, 300, -2, 3)), r = f32(random_vec(n * c, 301)), w = f32(random_vec(c, 302)),
       b = f32(random_vec(c, 303)), mean = zeros(n), rstd = zeros(n), sum = zeros(n * c);
  Twin16 y = bf16_zeros(n * c + 7);  // longer than the op: the tail stays zero
  cpu_->layernorm_forward(y.c, mean.c, rstd.c, x.c, w.c, b.c, n, c, 1e-5);
  gpu_->layernorm_forward(y.g, mean.g, rstd.g, x.g, w.g, b.g, n, c, 1e-5);
  // The fp32 values agree to ~3e-5 (LayerNormForwardBackward); rounded to bf16 they agree except
  // where the two fp32 values lie on either side of a bf16 rounding midpoint: 1 ulp, rarely (the
  // chance is ~3e-5 / 2^-8 per element, ~1%; 5% allowed).
  expect_bf16(y, 1, n * c / 20, "layernorm y (bf16)");
  cpu_->residual_layernorm_forward(sum.c, y.c, mean.c, rstd.c, x.c, r.c, w.c, b.c, n, c, 1e-5);
  gpu_->residual_layernorm_forward(sum.g, y.g, mean.g, rstd.g, x.g, r.g, w.g, b.g, n, c, 1e-5);
  expect_bf16(y, 1, n * c / 20, "residual layernorm y (bf16)");
  expect_equal(sum, "residual sum (fp32)");
  // GELU: the fp32 kernels are bitwise equal, so are their roundings; every alignment of the 8-byte
  // vector path and its tail (offsets 0-3 of the bf16 views).
  const int64_t m = 1003;
  const std::vector<float> hx = random_vec(m + 3, 304, -8, 8);
  Twin16 gx = bf16(hx), gy = bf16_zeros(m + 3);
  Twin dy = f32(random_vec(m, 305)), dx = zeros(m);
  for (int64_t off = 0; off < 4; ++off) {
    const int64_t len = m - off;
    cpu_->gelu_forward(gy.c.slice(off, len), gx.c.slice(off, len), len);
    gpu_->gelu_forward(gy.g.slice(off, len), gx.g.slice(off, len), len);
    expect_bf16(gy, 0, 0, "gelu bf16 -> bf16, offset " + std::to_string(off));
    cpu_->gelu_backward(dx.c.slice(0, len), dy.c.slice(0, len), gx.c.slice(off, len), len);
    gpu_->gelu_backward(dx.g.slice(0, len), dy.g.slice(0, len), gx.g.slice(off, len), len);
    expect_equal(dx, "gelu backward, bf16 x, offset " + std::to_string(off));
  }
  Twin gx32 = f32(random_vec(m, 306, -8, 8));
  cpu_->gelu_forward(gy.c, gx32.c, m);
  gpu_->gelu_forward(gy.g, gx32.g, m);
  expect_bf16(gy, 0, 0, "gelu fp32 -> bf16");
}

// The base GEMM reads a bf16 x in place (no conversion pass); with and without a LoRA term (the
// latter through cuBLASLt's bias epilogue), and a bf16 output through fp32 scratch. Bounds as
// Bf16LinearForwardWithFrozenWeight (x's values are bf16 on both sides).
TEST_F(CudaBf16Activations, LinearLayerReadsBf16Input) {
  const int64_t n = 70, in = 96, out = 80, r = 4;
  const std::vector<float> hx = random_vec(n * in, 310), hw = random_vec(in * out, 311), hb = random_vec(out, 312),
                           hu = random_vec(n * r, 313), hbl = random_vec(out * r, 314);
  Twin16 x = bf16(hx), y16 = bf16_zeros(n * out);
  Twin w = f32(hw), bias = f32(hb), u = f32(hu), bl = f32(hbl), y = zeros(n * out);
  cpu_->freeze_weights(w.c, WeightPrecision::BF16);
  gpu_->freeze_weights(w.g, WeightPrecision::BF16);
  std::vector<float> xr(hx.size()), wr(hw.size());
  for (size_t i = 0; i < hx.size(); ++i) xr[i] = bf16_round(hx[i]);
  for (size_t i = 0; i < hw.size(); ++i) wr[i] = bf16_round(hw[i]);
  for (int64_t rank : {r, int64_t(0)}) {
    const DFloat uc = rank ? u.c : DFloat(), ug = rank ? u.g : DFloat(), bc = rank ? bl.c : DFloat(),
                 bg = rank ? bl.g : DFloat();
    cpu_->linear_forward(y.c, x.c, w.c, bias.c, uc, bc, 2.0f, n, in, out, rank);
    gpu_->linear_forward(y.g, x.g, w.g, bias.g, ug, bg, 2.0f, n, in, out, rank);
    const std::vector<float> rc = host_cpu(y), rg = host_gpu(y);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < out; ++j) {
        double mag = std::fabs(hb[(size_t)j]);
        for (int64_t l = 0; l < in; ++l) mag += std::fabs((double)xr[(size_t)(i * in + l)] * wr[(size_t)(l * out + j)]);
        for (int64_t q = 0; q < rank; ++q)
          mag += 2 * std::fabs(2.0 * hu[(size_t)(i * r + q)] * hbl[(size_t)(j * r + q)]);
        const size_t e = (size_t)(i * out + j);
        bad += !(std::fabs((double)rg[e] - rc[e]) <= 2.0 * (double)(in + rank + 3) * std::ldexp(1.0, -23) * mag);
      }
    EXPECT_EQ(bad, 0) << "rank " << rank;
  }
  // bf16 output: the fp32 results agree to ~1e-6 relative, so their roundings agree but for the rare
  // midpoint case (1 ulp).
  cpu_->linear_forward(y16.c, x.c, w.c, bias.c, DFloat(), DFloat(), 0.0f, n, in, out, 0);
  gpu_->linear_forward(y16.g, x.g, w.g, bias.g, DFloat(), DFloat(), 0.0f, n, in, out, 0);
  expect_bf16(y16, 1, n * out / 50, "linear_forward bf16 y");
  // The LoRA products read the bf16 x (widened on the device) through the dropout mask.
  TwinI bits{cpu_->alloc_i32(dropout_mask_words(n * in)), gpu_->alloc_i32(dropout_mask_words(n * in))};
  Twin a = f32(random_vec(r * in, 315)), du = f32(random_vec(n * r, 316)), ud = zeros(n * r), ga = zeros(r * in);
  cpu_->dropout_mask(bits.c, n * in, 0.1f, 17, 0);
  gpu_->dropout_mask(bits.g, n * in, 0.1f, 17, 0);
  cpu_->lora_down(ud.c, x.c, a.c, DropoutMask{bits.c, 0.1f}, n, in, r);
  gpu_->lora_down(ud.g, x.g, a.g, DropoutMask{bits.g, 0.1f}, n, in, r);
  expect_close(ud, 1e-5, 1e-5, "lora_down, bf16 x");  // 96-term fp32 sums in another order
  cpu_->lora_down_grad(ga.c, du.c, x.c, DropoutMask{bits.c, 0.1f}, n, in, r);
  gpu_->lora_down_grad(ga.g, du.g, x.g, DropoutMask{bits.g, 0.1f}, n, in, r);
  expect_close(ga, 1e-5, 1e-5, "lora_down_grad, bf16 x");  // 70-term sums
}

// The attention output stored in bf16, and the backward reading it: the CUDA backward forms
// D = rowsum(bf16(dout) * out) from the stored (now rounded) out, while the CPU oracle does not
// read out (it keeps the probabilities), so dqkv moves by D's rounding: up to 2^-8 of
// sum|dout * out| per row, i.e. ~1e-3 of dqkv norm-wise (the bf16 FlashAttention-2 does the same).
TEST_F(CudaBf16Activations, AttentionOutputInBf16) {
  const int64_t b = 2, t = 77, c = 96, nh = 3;
  const auto BF = AttentionPrecision::BF16;
  const DropoutSite drop{0.1f, rng_stream(3, RngPurpose::BASE_DROPOUT, 1, 2), 7};
  Twin qkv = f32(random_vec(b * t * 3 * c, 320, -2, 2)), dout = f32(random_vec(b * t * c, 321)),
       dqkv = zeros(b * t * 3 * c);
  Twin att{cpu_->alloc_f32(cpu_->attention_saved_floats(b, t, c, nh, BF)),
           gpu_->alloc_f32(gpu_->attention_saved_floats(b, t, c, nh, BF))};
  Twin scratch{cpu_->alloc_f32(cpu_->attention_scratch_floats(b, t, c, nh)),
               gpu_->alloc_f32(gpu_->attention_scratch_floats(b, t, c, nh))};
  Twin16 out = bf16_zeros(b * t * c);
  cpu_->attention_forward(out.c, att.c, qkv.c, b, t, c, nh, scratch.c, drop, BF);
  gpu_->attention_forward(out.g, att.g, qkv.g, b, t, c, nh, scratch.g, drop, BF);
  // fp32 outputs within ~1e-5 of each other (CudaAttentionBf16): 1-ulp roundings apart at most.
  expect_bf16(out, 1, b * t * c / 50, "attention out (bf16)");
  cpu_->attention_backward(dqkv.c, scratch.c, dout.c, qkv.c, out.c, att.c, b, t, c, nh, drop, BF);
  gpu_->attention_backward(dqkv.g, scratch.g, dout.g, qkv.g, out.g, att.g, b, t, c, nh, drop, BF);
  const std::vector<float> dc = host_cpu(dqkv), dg = host_gpu(dqkv);
  double num = 0, den = 0;
  for (size_t i = 0; i < dc.size(); ++i) num += ((double)dg[i] - dc[i]) * ((double)dg[i] - dc[i]), den += (double)dc[i] * dc[i];
  const double e = std::sqrt(num / den);
  std::printf("[ compare  ] attention dqkv from a bf16 out: %.3g norm-wise\n", e);
  EXPECT_LT(e, 1e-2);  // an indexing or mask bug gives O(1)
}

// The skinny LoRA kernels loading a bf16 x in place (shapes they take: >= 256 rows, in >= 256):
// bitwise the same kernels on the widened fp32 x (only the load differs), with and without the
// dropout mask; and close to the CPU (fp32 summation order).
TEST_F(CudaBf16Activations, SkinnyLoraKernelsReadBf16Input) {
  const int64_t n = 300, in = 272, r = 16;
  const std::vector<float> hx = random_vec(n * in, 330);
  std::vector<float> xr(hx.size());
  for (size_t i = 0; i < hx.size(); ++i) xr[i] = bf16_round(hx[i]);
  Twin16 x16 = bf16(hx);
  Twin x32 = f32(xr), a = f32(random_vec(r * in, 331)), du = f32(random_vec(n * r, 332));
  TwinI bits{cpu_->alloc_i32(dropout_mask_words(n * in)), gpu_->alloc_i32(dropout_mask_words(n * in))};
  cpu_->dropout_mask(bits.c, n * in, 0.2f, 21, 0);
  gpu_->dropout_mask(bits.g, n * in, 0.2f, 21, 0);
  for (bool with_mask : {true, false}) {
    const DropoutMask mc = with_mask ? DropoutMask{bits.c, 0.2f} : DropoutMask{},
                      mg = with_mask ? DropoutMask{bits.g, 0.2f} : DropoutMask{};
    const std::string tag = with_mask ? " (mask)" : " (no mask)";
    Twin u = zeros(n * r), u32 = zeros(n * r), ga = zeros(r * in), ga32 = zeros(r * in);
    gpu_->lora_down(u32.g, x32.g, a.g, mg, n, in, r);
    gpu_->lora_down(u.g, x16.g, a.g, mg, n, in, r);
    EXPECT_EQ(host_gpu(u), host_gpu(u32)) << "lora_down bf16 x vs widened" << tag;
    cpu_->lora_down(u.c, x16.c, a.c, mc, n, in, r);
    expect_close(u, 1e-5, 1e-5, "lora_down, bf16 x, vs CPU" + tag);  // 272-term sums in another order
    gpu_->lora_down_grad(ga32.g, du.g, x32.g, mg, n, in, r);
    gpu_->lora_down_grad(ga.g, du.g, x16.g, mg, n, in, r);
    EXPECT_EQ(host_gpu(ga), host_gpu(ga32)) << "lora_down_grad bf16 x vs widened" << tag;
    cpu_->lora_down_grad(ga.c, du.c, x16.c, mc, n, in, r);
    expect_close(ga, 1e-5, 1e-5, "lora_down_grad, bf16 x, vs CPU" + tag);  // 300-term sums
  }
}
