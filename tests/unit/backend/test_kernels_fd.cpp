// Finite-difference checks of every differentiable CPU kernel, in double precision: for a random
// input x and a random projection R, the analytic gradient of f(x) = sum(R * op(x)) must match the
// central difference (f(x + h e_i) - f(x - h e_i)) / 2h element by element.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/gelu.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/lm_head_ce.h"
#include "runtime/rng.h"

using namespace mira;

namespace {

// h = 1e-5: central differences have truncation error O(h^2 f''') ~ 1e-10 and rounding error
// ~ eps_double * |f| / h ~ 1e-11 for |f| ~ 1, so agreement to 1e-7 (absolute, gradients are O(1))
// separates a correct gradient from a wrong one by many orders of magnitude.
constexpr double FD_H = 1e-5;
constexpr double FD_TOL = 1e-7;

std::vector<double> randn(size_t n, uint64_t key, double scale = 1.0) {
  Rng r(1234, RngPurpose::DATA_SYNTH, key);
  std::vector<double> v(n);
  for (auto& x : v) x = scale * r.normal();
  return v;
}

// Checks d f / d x[i] == grad[i] for all i by central differences.
void expect_grad(std::vector<double>& x, const std::vector<double>& grad, const std::function<double()>& f,
                 const char* what) {
  ASSERT_EQ(x.size(), grad.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + FD_H;
    const double fp = f();
    x[i] = x0 - FD_H;
    const double fm = f();
    x[i] = x0;
    EXPECT_NEAR(grad[i], (fp - fm) / (2 * FD_H), FD_TOL) << what << " element " << i;
  }
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

TEST(KernelFd, LayerNorm) {
  const int64_t n = 3, c = 7;
  auto x = randn(n * c, 1), w = randn(c, 2), b = randn(c, 3), R = randn(n * c, 4);
  std::vector<double> y(n * c), mean(n), rstd(n);
  auto f = [&] {
    cpu_layernorm_forward<double>(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), n, c, 1e-5);
    return dot(y, R);
  };
  f();
  std::vector<double> dx(n * c, 0.0), dw(c, 0.0), db(c, 0.0);
  cpu_layernorm_backward<double>(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), mean.data(),
                                 rstd.data(), n, c);
  expect_grad(x, dx, f, "dx");
  expect_grad(w, dw, f, "dw");
  expect_grad(b, db, f, "db");
}

// The AVX-512 GELU loops against the portable ones, bit for bit, over every float regime of tanh_f32
// (the |x| < 0.25 polynomial, the exp branch, saturation above 9.02, signed zeros, the vector tail).
TEST(Kernels, GeluAvx512MatchesPortableBitwise) {
  if (!cpu_gelu_avx512_available()) GTEST_SKIP() << "this CPU has no AVX-512F: the portable loops are the only path";
  std::vector<float> x;
  for (float v = -30.0f; v <= 30.0f; v += 0.0013f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 0.25f, -0.25f, 9.02f, -9.02f, 10.0f, 1e-30f, -1e-30f, 3.4e38f, -3.4e38f}) x.push_back(v);
  x.push_back(0.7f);  // an odd count: the masked tail
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> dy(x.size());
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = std::sin(0.1f * i);
  std::vector<float> y0(x.size()), y1(x.size()), d0(x.size()), d1(x.size());
  cpu_gelu_forward_portable<float>(y0.data(), x.data(), n);
  cpu_gelu_forward<float>(y1.data(), x.data(), n);
  cpu_gelu_backward_portable<float>(d0.data(), dy.data(), x.data(), n);
  cpu_gelu_backward<float>(d1.data(), dy.data(), x.data(), n);
  int64_t diff_y = 0, diff_d = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff_y += std::memcmp(&y0[i], &y1[i], 4) != 0;
    diff_d += std::memcmp(&d0[i], &d1[i], 4) != 0;
  }
  EXPECT_EQ(diff_y, 0) << "forward elements differing in some bit, of " << n;
  EXPECT_EQ(diff_d, 0) << "backward elements differing in some bit, of " << n;
  std::vector<float> in_place = dy;  // dx aliasing dy
  cpu_gelu_backward<float>(in_place.data(), in_place.data(), x.data(), n);
  EXPECT_EQ(std::memcmp(in_place.data(), d0.data(), d0.size() * 4), 0);
}

// The residual variant is the same float operations as an add followed by the LayerNorm, also when
// the sum overwrites one of its inputs (as the model does not, but the interface allows).
TEST(Kernels, ResidualLayerNormEqualsAddThenLayerNorm) {
  const int64_t n = 5, c = 83;  // c not a multiple of the 16-lane row sums
  std::vector<float> a(n * c), r(n * c), w(c), b(c);
  for (size_t i = 0; i < a.size(); ++i) a[i] = std::sin(0.37f * i) * 3.0f, r[i] = std::cos(0.11f * i);
  for (int64_t j = 0; j < c; ++j) w[j] = 1.0f + 0.01f * j, b[j] = 0.5f - 0.02f * j;
  std::vector<float> sum0(n * c), y0(n * c), m0(n), s0(n);
  for (size_t i = 0; i < a.size(); ++i) sum0[i] = a[i] + r[i];
  cpu_layernorm_forward<float>(y0.data(), m0.data(), s0.data(), sum0.data(), w.data(), b.data(), n, c, 1e-5);
  std::vector<float> sum1(n * c), y1(n * c), m1(n), s1(n);
  cpu_residual_layernorm_forward<float>(sum1.data(), y1.data(), m1.data(), s1.data(), a.data(), r.data(), w.data(),
                                        b.data(), n, c, 1e-5);
  EXPECT_EQ(std::memcmp(sum0.data(), sum1.data(), sum0.size() * 4), 0);
  EXPECT_EQ(std::memcmp(y0.data(), y1.data(), y0.size() * 4), 0);
  EXPECT_EQ(std::memcmp(m0.data(), m1.data(), m0.size() * 4), 0);
  EXPECT_EQ(std::memcmp(s0.data(), s1.data(), s0.size() * 4), 0);
  std::vector<float> in_place = a, y2(n * c), m2(n), s2(n);  // sum aliases a
  cpu_residual_layernorm_forward<float>(in_place.data(), y2.data(), m2.data(), s2.data(), in_place.data(), r.data(),
                                        w.data(), b.data(), n, c, 1e-5);
  EXPECT_EQ(std::memcmp(in_place.data(), sum0.data(), sum0.size() * 4), 0);
  EXPECT_EQ(std::memcmp(y2.data(), y0.data(), y0.size() * 4), 0);
}

TEST(KernelFd, Gelu) {
  const int64_t n = 11;
  auto x = randn(n, 5, 2.0), R = randn(n, 6);
  std::vector<double> y(n), dx(n);
  auto f = [&] {
    cpu_gelu_forward<double>(y.data(), x.data(), n);
    return dot(y, R);
  };
  cpu_gelu_backward<double>(dx.data(), R.data(), x.data(), n);
  expect_grad(x, dx, f, "dx");
}

TEST(KernelFd, GeluFloatMatchesDouble) {
  // The float path uses a vectorisable tanh (gelu.cpp); against the double path (std::tanh) it must
  // stay within float rounding: 2e-7 relative to max(1, |x|) (tanh_f32 is good to 1.1e-7 abs).
  const int64_t n = 24001;
  std::vector<float> xf(n), yf(n), dyf(n, 1.0f), df(n);
  std::vector<double> xd(n), yd(n), dyd(n, 1.0), dd(n);
  for (int64_t i = 0; i < n; ++i) xf[i] = (float)(i - n / 2) * 1e-3f, xd[i] = xf[i];
  cpu_gelu_forward<float>(yf.data(), xf.data(), n);
  cpu_gelu_forward<double>(yd.data(), xd.data(), n);
  cpu_gelu_backward<float>(df.data(), dyf.data(), xf.data(), n);
  cpu_gelu_backward<double>(dd.data(), dyd.data(), xd.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const double s = std::max(1.0, std::fabs(xd[i]));
    ASSERT_NEAR(yf[i], yd[i], 2e-7 * s) << "x = " << xd[i];
    // The derivative contains 0.5 x K (1 + 3c x^2) (1 - tanh^2): one float ulp of tanh near +-1
    // (1.2e-7 in 1 - tanh^2) is amplified by that factor, in our float path as in torch's.
    const double amp = 0.5 * std::fabs(xd[i]) * 0.7978845608 * (1 + 3 * 0.044715 * xd[i] * xd[i]);
    ASSERT_NEAR(df[i], dd[i], 4e-7 * s + 1.2e-7 * amp) << "x = " << xd[i];
  }
}

TEST(KernelFd, CausalAttention) {
  const int64_t b = 2, t = 4, c = 6, nh = 2;  // head dim 3
  auto qkv = randn(b * t * 3 * c, 7), R = randn(b * t * c, 8);
  std::vector<double> out(b * t * c), att(b * nh * t * t), scratch(b * nh * t * t), dqkv(b * t * 3 * c);
  auto f = [&] {
    cpu_attention_forward<double>(out.data(), att.data(), qkv.data(), b, t, c, nh, scratch.data(), DropoutKey{});
    return dot(out, R);
  };
  f();
  cpu_attention_backward<double>(dqkv.data(), scratch.data(), R.data(), qkv.data(), att.data(), b, t, c, nh,
                                 DropoutKey{});
  expect_grad(qkv, dqkv, f, "dqkv");
  // With attention dropout (fixed mask: same key each call) the gradient must still match.
  const DropoutKey drop{0.3f, 77, 4096};
  auto fd = [&] {
    cpu_attention_forward<double>(out.data(), att.data(), qkv.data(), b, t, c, nh, scratch.data(), drop);
    return dot(out, R);
  };
  const double no_drop = f();
  EXPECT_NE(fd(), no_drop);
  cpu_attention_backward<double>(dqkv.data(), scratch.data(), R.data(), qkv.data(), att.data(), b, t, c, nh, drop);
  expect_grad(qkv, dqkv, fd, "dqkv with dropout");
  // Causality: the output at position 0 must not depend on later positions.
  f();
  (void)fd;
  const double o0 = out[0];
  qkv[(t - 1) * 3 * c + c] += 1.0;  // a key of the last position of batch 0
  f();
  EXPECT_EQ(out[0], o0);
}

TEST(KernelFd, LmHeadCrossEntropy) {
  const int64_t n = 5, c = 4, v = 9;
  auto h = randn(n * c, 9), wte = randn(v * c, 10);
  std::vector<int32_t> tgt = {1, 8, 0, 3, 3};
  std::vector<double> weight = {0.5, 0.0, 0.25, 0.25, 0.0};  // rows 1 and 4 are masked out
  std::vector<double> loss(n), dh(n * c), scratch(cpu_lm_head_ce_scratch(c, v));
  auto f = [&] {
    cpu_lm_head_ce<double>(loss.data(), nullptr, nullptr, h.data(), wte.data(), tgt.data(), weight.data(), n, c, v,
                           scratch.data());
    return dot(loss, weight);
  };
  cpu_lm_head_ce<double>(loss.data(), dh.data(), nullptr, h.data(), wte.data(), tgt.data(), weight.data(), n, c, v,
                         scratch.data());
  // The loss of a row is logsumexp(logits) - logit[target], computed here directly.
  for (int64_t i : {0, 2}) {
    double mx = -1e300, s = 0, lt = 0;
    std::vector<double> l(v);
    for (int64_t j = 0; j < v; ++j) {
      for (int64_t k = 0; k < c; ++k) l[j] += h[i * c + k] * wte[j * c + k];
      mx = std::max(mx, l[j]);
    }
    for (int64_t j = 0; j < v; ++j) s += std::exp(l[j] - mx);
    lt = l[tgt[i]];
    EXPECT_NEAR(loss[i], mx + std::log(s) - lt, 1e-12);  // same math in double: rounding only
  }
  EXPECT_EQ(loss[1], 0.0);
  expect_grad(h, dh, f, "dh");
}

// Bitwise thread-count invariance of the BLAS calls at GPT-2 124M shapes (the model-level tests use
// small shapes where OpenBLAS may not thread at all): forward x W, input gradient dy W^T, weight
// gradient x^T dy, the skinny LoRA products (r = 16) and the fused LM head over a 50257-token
// vocabulary.
TEST(Kernels, GemmAndLmHeadThreadInvariantAtGpt2Shapes) {
  const int64_t n = 256, c = 768, o = 2304, v = 50257, cs = 64;
  auto rnd = [](int64_t count, uint64_t key) {
    Rng r(5, RngPurpose::DATA_SYNTH, key);
    std::vector<float> x((size_t)count);
    for (auto& e : x) e = (float)(r.uniform() - 0.5);
    return x;
  };
  const auto x = rnd(n * c, 1), w = rnd(c * o, 2), dy = rnd(n * o, 3), h = rnd(n * cs, 4), wte = rnd(v * cs, 5);
  std::vector<int32_t> tgt((size_t)n);
  std::vector<float> weight((size_t)n, 1.0f / (float)n);
  for (int64_t i = 0; i < n; ++i) tgt[(size_t)i] = (int32_t)((i * 7919) % v);
  std::vector<float> res[2];
  for (int k = 0; k < 2; ++k) {
    omp_set_num_threads(k + 1);
    std::vector<float> y((size_t)(n * o)), dx((size_t)(n * c)), gw((size_t)(c * o)), loss((size_t)n),
        dh((size_t)(n * cs)), dw((size_t)(v * cs), 0.0f), scratch((size_t)cpu_lm_head_ce_scratch(cs, v));
    cpu_gemm<float>(false, false, n, o, c, 1.0f, x.data(), c, w.data(), o, 0.0f, y.data(), o);
    cpu_gemm<float>(false, true, n, c, o, 1.0f, dy.data(), o, w.data(), o, 0.0f, dx.data(), c);
    cpu_gemm<float>(true, false, c, o, n, 1.0f, x.data(), c, dy.data(), o, 0.0f, gw.data(), o);
    cpu_lm_head_ce<float>(loss.data(), dh.data(), dw.data(), h.data(), wte.data(), tgt.data(), weight.data(), n, cs,
                          v, scratch.data());
    // LoRA, r = 16: du = dy B (n, 16) with K = 2304; gA = du^T x (16, 768) with K = n.
    std::vector<float> du((size_t)(n * 16)), ga((size_t)(16 * c));
    cpu_gemm<float>(false, false, n, 16, o, 1.0f, dy.data(), o, w.data(), 16, 0.0f, du.data(), 16);
    cpu_gemm<float>(true, false, 16, c, n, 1.0f, du.data(), 16, x.data(), c, 0.0f, ga.data(), c);
    for (auto* part : {&y, &dx, &gw, &loss, &dh, &dw, &du, &ga})
      res[k].insert(res[k].end(), part->begin(), part->end());
  }
  omp_set_num_threads(1);
  ASSERT_EQ(res[0].size(), res[1].size());
  const char* names[] = {"x W", "dy W^T", "x^T dy", "loss", "dh", "dwte", "du", "gA"};
  const size_t sizes[] = {(size_t)(n * o), (size_t)(n * c), (size_t)(c * o), (size_t)n,
                          (size_t)(n * cs), (size_t)(v * cs), (size_t)(n * 16), (size_t)(16 * c)};
  size_t off = 0;
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(0, std::memcmp(res[0].data() + off, res[1].data() + off, 4 * sizes[i])) << names[i];
    off += sizes[i];
  }
}

TEST(Kernels, DropoutRateMaskReuseAndOffsets) {
  // 100k elements at p = 0.25: the dropped fraction is within 1% of p (binomial sd 0.14%); the same
  // (stream, index) always gives the same mask, also when the range starts at another offset.
  const int64_t n = 100000;
  std::vector<float> x(n, 1.0f), y(n), z(n);
  cpu_dropout<float>(y.data(), x.data(), n, 0.25f, 99, 1000, false);
  int64_t dropped = 0;
  for (float v : y) {
    dropped += v == 0.0f;
    if (v != 0.0f) {
      ASSERT_EQ(v, 1.0f / 0.75f);
    }
  }
  EXPECT_NEAR((double)dropped / n, 0.25, 0.01);
  cpu_dropout<float>(z.data(), x.data() + 7, n - 7, 0.25f, 99, 1007, false);  // unaligned start
  for (int64_t i = 0; i < n - 7; ++i) ASSERT_EQ(z[i], y[i + 7]);
  cpu_dropout<float>(z.data(), x.data(), n, 0.25f, 100, 1000, false);  // another stream differs
  EXPECT_NE(0, std::memcmp(z.data(), y.data(), 4 * n));
}

}  // namespace

namespace {

// T = 300 spans three 128-row query blocks of the causal blocking in attention.cpp: a directional
// finite difference (one random direction over every qkv element) checks the blocked backward in
// double, and the float path must agree with the double path on the same inputs.
TEST(KernelFd, CausalAttentionAcrossQueryBlocks) {
  const int64_t b = 1, t = 300, c = 8, nh = 2;
  auto qkv = randn(b * t * 3 * c, 21, 0.5), R = randn(b * t * c, 22), dir = randn(b * t * 3 * c, 23);
  std::vector<double> out(b * t * c), att(b * nh * t * t), scratch(b * nh * t * t), dqkv(b * t * 3 * c);
  auto f = [&](const std::vector<double>& x) {
    cpu_attention_forward<double>(out.data(), att.data(), x.data(), b, t, c, nh, scratch.data(), DropoutKey{});
    return dot(out, R);
  };
  f(qkv);
  cpu_attention_backward<double>(dqkv.data(), scratch.data(), R.data(), qkv.data(), att.data(), b, t, c, nh,
                                 DropoutKey{});
  const double eps = 1e-6;  // central difference in double: truncation ~eps^2, rounding ~1e-16/eps
  std::vector<double> plus = qkv, minus = qkv;
  for (size_t i = 0; i < qkv.size(); ++i) plus[i] += eps * dir[i], minus[i] -= eps * dir[i];
  const double numeric = (f(plus) - f(minus)) / (2 * eps);
  const double analytic = dot(dqkv, dir);
  EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::fabs(numeric)));
  // Float vs double forward: the float softmax uses a polynomial exp (1.1e-7 relative) and float
  // accumulation over up to 300 keys: agreement to 1e-5 relative to the output scale.
  f(qkv);
  std::vector<float> qf(qkv.begin(), qkv.end()), of(out.size()), af(att.size()), sf(scratch.size());
  cpu_attention_forward<float>(of.data(), af.data(), qf.data(), b, t, c, nh, sf.data(), DropoutKey{});
  double worst = 0;
  for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::fabs(of[i] - out[i]));
  EXPECT_LT(worst, 1e-5);
}

}  // namespace
