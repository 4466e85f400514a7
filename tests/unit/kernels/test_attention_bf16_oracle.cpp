// The bf16 operand mode of the CPU attention (kernels/cpu/attention.h, bf16 = true), the oracle of
// the CUDA tensor-core kernels: it really rounds the matmul operands (its results equal a
// hand-written reference built from the rounding rules on a small case, and differ from the fp32
// mode by the order of bf16's unit roundoff), and it leaves the fp32 mode alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/bf16.h"
#include "kernels/cpu/elementwise.h"
#include "runtime/rng.h"

using namespace mira;

namespace {

std::vector<float> random_vec(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Rng r(seed, RngPurpose::BACKEND_CHECK);
  std::vector<float> v(n);
  for (auto& x : v) x = lo + (hi - lo) * (float)r.uniform();
  return v;
}

double rel_err(const std::vector<float>& x, const std::vector<double>& y) {
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) num += (x[i] - y[i]) * (x[i] - y[i]), den += y[i] * y[i];
  return std::sqrt(num / den);
}
double rel_err(const std::vector<float>& x, const std::vector<float>& y) {
  return rel_err(x, std::vector<double>(y.begin(), y.end()));
}

struct Case {
  int64_t b = 2, t = 6, c = 8, nh = 2;
  DropoutKey drop;
  std::vector<float> qkv, dout;
  std::vector<float> out, att, scr, dqkv;
  void run(bool bf16) {
    out.assign((size_t)(b * t * c), 0.0f);
    att.assign((size_t)(b * nh * t * t), 0.0f);
    scr.assign((size_t)(b * nh * t * t), 0.0f);
    dqkv.assign((size_t)(b * t * 3 * c), 0.0f);
    cpu_attention_forward<float>(out.data(), att.data(), qkv.data(), b, t, c, nh, scr.data(), drop, bf16);
    cpu_attention_backward<float>(dqkv.data(), scr.data(), dout.data(), qkv.data(), att.data(), b, t, c, nh, drop,
                                  bf16);
  }
};

Case make_case(float p) {
  Case k;
  k.qkv = random_vec((size_t)(k.b * k.t * 3 * k.c), 11, -2.0f, 2.0f);
  k.dout = random_vec((size_t)(k.b * k.t * k.c), 12);
  k.drop.p = p;
  k.drop.stream = 99;
  k.drop.base = 5;
  return k;
}

// The rules of attention.h written out element by element in double, from the oracle's own fp32
// probabilities P (att) for the roundings of Pd and dS: every operand rounded with bf16_round, every
// sum in double. The oracle sums in fp32 (BLAS order), so the two agree to ~1e-7 relative, unless
// an fp32 difference moves a dS across a bf16 rounding midpoint (not the case for this input).
void reference(const Case& k, std::vector<double>& out, std::vector<double>& dqkv, std::vector<double>& att) {
  const int64_t b = k.b, t = k.t, c = k.c, nh = k.nh, hd = c / nh;
  const float scale = 1.0f / std::sqrt((float)hd);
  const bool dropping = k.drop.p > 0.0f;
  const uint32_t thr = dropout_threshold(k.drop.p);
  const float ks = dropping ? 1.0f / (1.0f - k.drop.p) : 1.0f;
  out.assign((size_t)(b * t * c), 0.0);
  dqkv.assign((size_t)(b * t * 3 * c), 0.0);
  att.assign((size_t)(b * nh * t * t), 0.0);
  auto R = [](float x) { return (double)bf16_round(x); };
  for (int64_t bh = 0; bh < b * nh; ++bh) {
    const int64_t bi = bh / nh, h = bh % nh;
    auto q = [&](int64_t i, int64_t d) { return R(k.qkv[(size_t)((bi * t + i) * 3 * c + h * hd + d)]); };
    auto kk = [&](int64_t i, int64_t d) { return R(k.qkv[(size_t)((bi * t + i) * 3 * c + c + h * hd + d)]); };
    auto v = [&](int64_t i, int64_t d) { return R(k.qkv[(size_t)((bi * t + i) * 3 * c + 2 * c + h * hd + d)]); };
    auto dO = [&](int64_t i, int64_t d) { return R(k.dout[(size_t)((bi * t + i) * c + h * hd + d)]); };
    auto z = [&](int64_t i, int64_t j) -> float {
      return !dropping ? 1.0f
                       : dropout_keep(k.drop.stream, k.drop.base + (uint64_t)((bh * t + i) * t + j), thr) ? ks : 0.0f;
    };
    auto P = [&](int64_t i, int64_t j) { return k.att[(size_t)((bh * t + i) * t + j)]; };  // the oracle's fp32 P
    auto Pd = [&](int64_t i, int64_t j) { return R(P(i, j) * z(i, j)); };
    std::vector<double> dS((size_t)(t * t), 0.0);
    for (int64_t i = 0; i < t; ++i) {
      // P from S = scale bf16(q) bf16(k)^T, softmax in double
      std::vector<double> s((size_t)(i + 1));
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < hd; ++d) dot += q(i, d) * kk(j, d);
        s[(size_t)j] = scale * dot;
        mx = std::max(mx, s[(size_t)j]);
      }
      for (int64_t j = 0; j <= i; ++j) sum += std::exp(s[(size_t)j] - mx);
      for (int64_t j = 0; j <= i; ++j) att[(size_t)((bh * t + i) * t + j)] = std::exp(s[(size_t)j] - mx) / sum;
      for (int64_t d = 0; d < hd; ++d) {
        double o = 0;
        for (int64_t j = 0; j <= i; ++j) o += Pd(i, j) * v(j, d);
        out[(size_t)((bi * t + i) * c + h * hd + d)] = o;
      }
      std::vector<double> dPd((size_t)(i + 1));
      double D = 0;
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < hd; ++d) dot += dO(i, d) * v(j, d);
        dPd[(size_t)j] = dot;
        D += Pd(i, j) * dot;
      }
      for (int64_t j = 0; j <= i; ++j)
        dS[(size_t)(i * t + j)] = R(P(i, j) * ((float)dPd[(size_t)j] * z(i, j) - (float)D) * scale);
    }
    for (int64_t i = 0; i < t; ++i)
      for (int64_t d = 0; d < hd; ++d) {
        double dq = 0, dk = 0, dv = 0;
        for (int64_t j = 0; j <= i; ++j) dq += dS[(size_t)(i * t + j)] * kk(j, d);
        for (int64_t r = i; r < t; ++r) dk += dS[(size_t)(r * t + i)] * q(r, d), dv += Pd(r, i) * dO(r, d);
        double* row = &dqkv[(size_t)((bi * t + i) * 3 * c + h * hd + d)];
        row[0] = dq, row[c] = dk, row[2 * c] = dv;
      }
  }
}

TEST(AttentionBf16Oracle, EqualsHandRoundedReference) {
  for (const float p : {0.0f, 0.3f}) {
    Case k = make_case(p);
    k.run(true);
    std::vector<double> out, dqkv, att;
    reference(k, out, dqkv, att);
    // att: the fp32 softmax of the bf16-operand scores (fp32 vs double: ~1e-7).
    EXPECT_LT(rel_err(k.att, att), 1e-6) << "p " << p;
    EXPECT_LT(rel_err(k.out, out), 1e-6) << "p " << p;
    EXPECT_LT(rel_err(k.dqkv, dqkv), 1e-6) << "p " << p;
  }
}

// Rounding the operands moves the results by about bf16's unit roundoff (2^-9 = 2e-3), norm-wise:
// far from fp32 (~1e-7) and from gross errors (~1).
TEST(AttentionBf16Oracle, DiffersFromFp32ByBf16Roundoff) {
  for (const float p : {0.0f, 0.3f}) {
    Case k32 = make_case(p), k16 = make_case(p);
    k32.t = k16.t = 40;
    k32.c = k16.c = 64, k32.nh = k16.nh = 2;
    k32.qkv = k16.qkv = random_vec((size_t)(k32.b * k32.t * 3 * k32.c), 21, -2.0f, 2.0f);
    k32.dout = k16.dout = random_vec((size_t)(k32.b * k32.t * k32.c), 22);
    k32.run(false);
    k16.run(true);
    for (const auto& [a, b, what] : {std::make_tuple(&k16.out, &k32.out, "out"),
                                     std::make_tuple(&k16.dqkv, &k32.dqkv, "dqkv")}) {
      const double e = rel_err(*a, *b);
      EXPECT_GT(e, 3e-4) << what << " p " << p;
      EXPECT_LT(e, 2e-2) << what << " p " << p;
    }
  }
}

// The default (bf16 = false) is the fp32 path, bit for bit, and the bf16 mode is deterministic.
TEST(AttentionBf16Oracle, Fp32ModeIsTheDefault) {
  Case a = make_case(0.2f), b = make_case(0.2f), c = make_case(0.2f), d = make_case(0.2f);
  a.run(false);
  b.out.assign((size_t)(b.b * b.t * b.c), 0.0f);
  b.att.assign((size_t)(b.b * b.nh * b.t * b.t), 0.0f);
  b.scr = b.att;
  b.dqkv.assign((size_t)(b.b * b.t * 3 * b.c), 0.0f);
  cpu_attention_forward<float>(b.out.data(), b.att.data(), b.qkv.data(), b.b, b.t, b.c, b.nh, b.scr.data(), b.drop);
  cpu_attention_backward<float>(b.dqkv.data(), b.scr.data(), b.dout.data(), b.qkv.data(), b.att.data(), b.b, b.t, b.c,
                                b.nh, b.drop);
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.dqkv, b.dqkv);
  c.run(true);
  d.run(true);
  EXPECT_EQ(c.out, d.out);
  EXPECT_EQ(c.dqkv, d.dqkv);
  EXPECT_NE(a.out, c.out);
}

}  // namespace
