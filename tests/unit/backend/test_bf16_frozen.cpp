// The bf16 frozen-weight mode of the CPU backend, the oracle (Backend::freeze_weights, backend.h):
// freezing rounds the weight to bf16 in place; a GEMM / linear layer / LM head reading a frozen
// weight rounds its other operand to bf16 and accumulates in fp32. References are computed in double
// from explicitly bf16-rounded operands; products of two bf16 values are exact in fp32 (8 + 8
// significant bits), so the only difference left is the fp32 summation, bounded per element by the
// standard dot-product bound (k + 2) u sum|terms| (u = 2^-24; + 2 for alpha and beta).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/backend.h"
#include "kernels/cpu/bf16.h"
#include "runtime/error.h"
#include "runtime/rng.h"

using namespace mira;

namespace {

std::vector<float> random_vec(int64_t n, uint64_t key, float lo = -1.0f, float hi = 1.0f) {
  Rng r(321, RngPurpose::DATA_SYNTH, 77, key);
  std::vector<float> v((size_t)n);
  for (auto& x : v) x = lo + (hi - lo) * r.uniform();
  return v;
}

std::vector<float> rounded(std::vector<float> v) {
  for (auto& x : v) x = bf16_round(x);
  return v;
}

DFloat upload(Backend& be, const std::vector<float>& h) {
  DFloat d = be.alloc_f32((int64_t)h.size());
  be.upload(d, h.data());
  return d;
}

std::vector<float> download(Backend& be, DFloat d) {
  std::vector<float> h((size_t)d.size());
  be.download(h.data(), d);
  return h;
}

// C = alpha op(A) op(B) + beta C in double with the bound (k + 2) u (|alpha| sum|a b| + |beta c|).
void gemm_ref(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const std::vector<float>& a, int64_t lda,
              const std::vector<float>& b, int64_t ldb, double beta, const std::vector<float>& c, int64_t ldc,
              std::vector<double>& ref, std::vector<double>& bound) {
  const double u = std::ldexp(1.0, -24);
  ref.assign(c.begin(), c.end());
  bound.assign(c.size(), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0, sa = 0;
      for (int64_t l = 0; l < k; ++l) {
        const double av = ta ? a[(size_t)(l * lda + i)] : a[(size_t)(i * lda + l)];
        const double bv = tb ? b[(size_t)(j * ldb + l)] : b[(size_t)(l * ldb + j)];
        s += av * bv;
        sa += std::fabs(av * bv);
      }
      const size_t e = (size_t)(i * ldc + j);
      ref[e] = alpha * s + beta * c[e];
      bound[e] = (double)(k + 2) * u * (std::fabs(alpha) * sa + std::fabs(beta) * std::fabs(c[e]));
    }
}

}  // namespace

TEST(Bf16Frozen, RoundingIsNearestEven) {
  EXPECT_EQ(bf16_round(1.0f), 1.0f);
  EXPECT_EQ(bf16_round(1.0f + std::ldexp(1.0f, -8)), 1.0f);  // tie: to even (1.0)
  EXPECT_EQ(bf16_round(1.0f + 3 * std::ldexp(1.0f, -8)), 1.0f + std::ldexp(1.0f, -6));  // tie: to even (up)
  EXPECT_EQ(bf16_round(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 1.0f + std::ldexp(1.0f, -7));
  EXPECT_EQ(bf16_round(-2.5f), -2.5f);
  EXPECT_TRUE(std::isinf(bf16_round(3.4e38f)));  // above the largest bf16: overflows as __float2bfloat16_rn
  EXPECT_TRUE(std::isnan(bf16_round(std::nanf(""))));
}

// (1) gemm with a frozen-bf16 operand equals the double reference on bf16-rounded operands, for
// every transpose, padded leading dimensions, alpha/beta, either operand frozen, on both GEMM
// routes of the CPU (our AVX-512 sgemm for m >= 32, OpenBLAS for thin products).
TEST(Bf16Frozen, GemmMatchesBf16RoundedReference) {
  auto be = backend_create_cpu();
  for (int64_t m : {7, 45})
    for (int frozen_b = 0; frozen_b < 2; ++frozen_b)
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb) {
          const int64_t n = 40, k = 67;
          const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;
          const std::vector<float> ha = random_vec((ta ? k : m) * lda, 10 + ta), hb = random_vec((tb ? n : k) * ldb, 20 + tb);
          const std::vector<float> hc = random_vec(m * ldc, 30);
          const float alpha = 0.75f, beta = -0.5f;
          DFloat a = upload(*be, ha), b = upload(*be, hb), c = upload(*be, hc), c32 = upload(*be, hc);
          be->gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c32, ldc);  // before freezing: fp32
          be->freeze_weights(frozen_b ? b : a, WeightPrecision::BF16);
          // Freezing rounded the weight in place; the other operand is untouched.
          EXPECT_EQ(download(*be, frozen_b ? b : a), rounded(frozen_b ? hb : ha));
          EXPECT_EQ(download(*be, frozen_b ? a : b), frozen_b ? ha : hb);
          be->gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
          std::vector<double> ref, bound;
          gemm_ref(ta, tb, m, n, k, alpha, rounded(ha), lda, rounded(hb), ldb, beta, hc, ldc, ref, bound);
          const std::vector<float> rc = download(*be, c), r32 = download(*be, c32);
          int64_t bad = 0, differ = 0;
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < ldc; ++j) {
              const size_t e = (size_t)(i * ldc + j);
              if (j >= n) {
                bad += rc[e] != hc[e];  // padding columns untouched
              } else {
                bad += !(std::fabs((double)rc[e] - ref[e]) <= bound[e]);
                differ += rc[e] != r32[e];
              }
            }
          const std::string tag = "m " + std::to_string(m) + " frozen " + (frozen_b ? "B" : "A") + " ta " +
                                  std::to_string(ta) + " tb " + std::to_string(tb);
          EXPECT_EQ(bad, 0) << tag;
          EXPECT_GT(differ, m * n / 2) << tag << ": the bf16 mode should change most results";
          be->release(a), be->release(b), be->release(c), be->release(c32);
        }
}

// (1) linear_forward with a frozen W: y = bias + bf16(x) bf16(W) + s u bl^T, the LoRA term in fp32
// (u, bl not rounded). Both CPU routes: the fused AVX-512 pass (n >= 32) and the three steps.
TEST(Bf16Frozen, LinearForwardMatchesBf16RoundedReference) {
  auto be = backend_create_cpu();
  for (int64_t n : {5, 64}) {
    const int64_t in = 48, out = 72, r = 4;
    const float s = 2.0f;
    const std::vector<float> hx = random_vec(n * in, 40), hw = random_vec(in * out, 41), hbias = random_vec(out, 42),
                             hu = random_vec(n * r, 43), hbl = random_vec(out * r, 44);
    DFloat x = upload(*be, hx), w = upload(*be, hw), bias = upload(*be, hbias), u = upload(*be, hu),
           bl = upload(*be, hbl), y = be->alloc_f32(n * out), y32 = be->alloc_f32(n * out);
    be->linear_forward(y32, x, w, bias, u, bl, s, n, in, out, r);
    be->freeze_weights(w, WeightPrecision::BF16);
    be->linear_forward(y, x, w, bias, u, bl, s, n, in, out, r);
    EXPECT_EQ(download(*be, x), hx);  // the activation is rounded in scratch, not in place
    const std::vector<float> xr = rounded(hx), wr = rounded(hw), ry = download(*be, y), r32 = download(*be, y32);
    const double uu = std::ldexp(1.0, -24);
    int64_t bad = 0, differ = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < out; ++j) {
        double acc = hbias[(size_t)j], mag = std::fabs(hbias[(size_t)j]);
        for (int64_t l = 0; l < in; ++l) {
          const double t = (double)xr[(size_t)(i * in + l)] * wr[(size_t)(l * out + j)];
          acc += t, mag += std::fabs(t);
        }
        for (int64_t q = 0; q < r; ++q) {
          const double t = (double)s * ((double)hu[(size_t)(i * r + q)] * hbl[(size_t)(j * r + q)]);
          acc += t, mag += 2 * std::fabs(t);  // s * (u bl): one more rounding per LoRA product
        }
        const size_t e = (size_t)(i * out + j);
        bad += !(std::fabs((double)ry[e] - acc) <= (double)(in + r + 3) * uu * mag);
        differ += ry[e] != r32[e];
      }
    EXPECT_EQ(bad, 0) << "n " << n;
    EXPECT_GT(differ, n * out / 2) << "n " << n;
  }
}

// (3) A slice of a frozen weight (the weights live in one buffer; the model freezes tensors inside
// it and may read rows of one, e.g. the tied wte) is frozen too; an operand reaching past the end of
// a frozen range, and writes into one, are refused; releasing the buffer ends the freeze.
TEST(Bf16Frozen, SlicesOfAFrozenWeightAndMisuse) {
  auto be = backend_create_cpu();
  const int64_t rows = 50, c = 40, m = 6;
  std::vector<float> hbuf = random_vec(10 + rows * c + 30, 50);  // [10 floats][W (rows, c)][30 floats]
  DFloat buf = upload(*be, hbuf);
  DFloat w = buf.slice(10, rows * c);
  be->freeze_weights(w, WeightPrecision::BF16);
  be->freeze_weights(w, WeightPrecision::BF16);  // the same range again: no-op
  be->freeze_weights(buf.slice(0, 10), WeightPrecision::FP32);  // fp32: nothing happens
  const std::vector<float> after = download(*be, buf);
  for (int64_t i = 0; i < (int64_t)hbuf.size(); ++i) {
    const bool in_w = i >= 10 && i < 10 + rows * c;
    ASSERT_EQ(after[(size_t)i], in_w ? bf16_round(hbuf[(size_t)i]) : hbuf[(size_t)i]) << i;
  }
  // h (m, c) times rows 7..26 of W, transposed (as logits = h wte^T over a vocabulary slice).
  const int64_t r0 = 7, nr = 20;
  const std::vector<float> hh = random_vec(m * c, 51);
  DFloat h = upload(*be, hh), out = be->alloc_f32(m * nr);
  be->gemm(false, true, m, nr, c, 1.0f, h, c, w.slice(r0 * c, nr * c), c, 0.0f, out, nr);
  std::vector<float> wr(after.begin() + 10 + r0 * c, after.begin() + 10 + (r0 + nr) * c);
  std::vector<double> ref, bound;
  gemm_ref(false, true, m, nr, c, 1.0, rounded(hh), c, wr, c, 0.0, std::vector<float>((size_t)(m * nr), 0.0f), nr, ref,
           bound);
  const std::vector<float> ro = download(*be, out);
  for (size_t e = 0; e < ro.size(); ++e) EXPECT_LE(std::fabs((double)ro[e] - ref[e]), bound[e]) << e;
  // The slice as the A operand (dh = dlogits wte style, with wte rows as A^T): also the bf16 path.
  DFloat out2 = be->alloc_f32(nr * m);
  be->gemm(false, true, nr, m, c, 1.0f, w.slice(r0 * c, nr * c), c, h, c, 0.0f, out2, m);
  const std::vector<float> ro2 = download(*be, out2);
  for (int64_t i = 0; i < nr; ++i)
    for (int64_t j = 0; j < m; ++j) EXPECT_EQ(ro2[(size_t)(i * m + j)], ro[(size_t)(j * nr + i)]) << i << "," << j;
  // Misuse.
  EXPECT_THROW(be->gemm(false, true, m, 1, c, 1.0f, h, c, buf.slice(10 + (rows - 1) * c, c + 5), c, 0.0f, out, 1),
               InternalError);  // starts inside W, ends past it
  EXPECT_THROW(be->upload(w.slice(3, 4), hbuf.data()), InternalError);
  EXPECT_THROW(be->zero(buf.slice(5, 10)), InternalError);  // overlaps W's first 5 floats
  EXPECT_THROW(be->freeze_weights(buf.slice(5, 10), WeightPrecision::BF16), InternalError);  // overlaps W
  be->upload(buf.slice(0, 10), hbuf.data());  // next to W: fine
  be->release(buf);
  DFloat fresh = upload(*be, hbuf);  // may reuse the address: nothing of the old freeze remains
  be->upload(fresh, hbuf.data());
  EXPECT_EQ(download(*be, fresh), hbuf);
}

// The LM head with a frozen wte: the loss of every row from bf16(h) bf16(wte)^T (fp32 softmax); dh
// from bf16(dlogits) bf16(wte). dlogits are rounded after the fp32 softmax, which the double
// reference reproduces exactly except next to a bf16 rounding boundary (see the dh bound).
TEST(Bf16Frozen, LmHeadWithFrozenWte) {
  auto be = backend_create_cpu();
  const int64_t n = 300, c = 24, v = 97;  // two CPU chunks of 256 rows
  const std::vector<float> hh = random_vec(n * c, 60, -2, 2), hw = random_vec(v * c, 61);
  std::vector<float> wt = random_vec(n, 62, 0.5f, 2.0f);
  for (int64_t i = 0; i < n; i += 7) wt[(size_t)i] = 0.0f;
  std::vector<int32_t> tg((size_t)n);
  for (int64_t i = 0; i < n; ++i) tg[(size_t)i] = (int32_t)((i * 31) % v);
  DFloat h = upload(*be, hh), wte = upload(*be, hw), weight = upload(*be, wt), loss = be->alloc_f32(n),
         dh = be->alloc_f32(n * c), loss32 = be->alloc_f32(n), dh32 = be->alloc_f32(n * c),
         sc = be->alloc_f32(be->lm_head_ce_scratch(c, v));
  DInt targets = be->alloc_i32(n);
  be->upload(targets, tg.data());
  be->lm_head_ce(loss32, dh32, DFloat(), h, wte, targets, weight, n, c, v, sc);
  be->freeze_weights(wte, WeightPrecision::BF16);
  be->lm_head_ce(loss, dh, DFloat(), h, wte, targets, weight, n, c, v, sc);
  EXPECT_THROW(be->lm_head_ce(loss, dh, be->alloc_f32(v * c), h, wte, targets, weight, n, c, v, sc), InternalError);
  const std::vector<float> hr = rounded(hh), wr = rounded(hw), rl = download(*be, loss), rd = download(*be, dh),
                           rl32 = download(*be, loss32), rd32 = download(*be, dh32);
  const double u = std::ldexp(1.0, -24);
  int64_t bad_loss = 0, bad_dh = 0, differ = 0, terms = 0, boundary_terms = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (wt[(size_t)i] == 0.0f) {
      EXPECT_EQ(rl[(size_t)i], 0.0f);
      continue;
    }
    std::vector<double> lg((size_t)v);
    double mx = -1e300, lmag = 0;
    for (int64_t j = 0; j < v; ++j) {
      double s = 0, sa = 0;
      for (int64_t l = 0; l < c; ++l) {
        const double t = (double)hr[(size_t)(i * c + l)] * wr[(size_t)(j * c + l)];
        s += t, sa += std::fabs(t);
      }
      lg[(size_t)j] = s, mx = std::max(mx, s), lmag = std::max(lmag, sa);
    }
    double z = 0;
    for (int64_t j = 0; j < v; ++j) z += std::exp(lg[(size_t)j] - mx);
    const double ref_loss = mx + std::log(z) - lg[(size_t)tg[(size_t)i]];
    // Logit errors <= (c + 2) u max sum|terms| (twice: max and target logit) plus expf/log rounding
    // and the 97-term float sum of exponentials (<= (v + 4) u relative on z).
    bad_loss += !(std::fabs(rl[(size_t)i] - ref_loss) <= 4 * (double)(c + 2) * u * lmag + (double)(v + 8) * u * 8);
    differ += rl[(size_t)i] != rl32[(size_t)i];
    for (int64_t l = 0; l < c; ++l) {
      double s = 0, tol = 0;
      for (int64_t j = 0; j < v; ++j) {
        const double p = std::exp(lg[(size_t)j] - mx) / z;
        const double dl = wt[(size_t)i] * (p - (j == tg[(size_t)i] ? 1.0 : 0.0));
        const double w = wr[(size_t)(j * c + l)];
        s += (double)bf16_round((float)dl) * w;
        // The backend rounds its float dlogit, within ~1e-5 relative of dl (the logits' errors):
        // the same bf16 value unless a rounding boundary lies within 1e-4 of dl, where one bf16 ulp
        // (2^-8 relative) is allowed. Plus the fp32 sum of v terms.
        const bool near_boundary = bf16_round((float)(dl * (1 + 1e-4))) != bf16_round((float)(dl * (1 - 1e-4)));
        tol += ((near_boundary ? std::ldexp(1.0, -7) : 0.0) + (double)(v + 2) * u) * std::fabs(dl * w);
        ++terms, boundary_terms += near_boundary;
      }
      bad_dh += !(std::fabs(rd[(size_t)(i * c + l)] - s) <= tol + 1e-12);
    }
  }
  EXPECT_EQ(bad_loss, 0);
  EXPECT_EQ(bad_dh, 0);
  // A 2e-4 window against a bf16 ulp of 2^-8..2^-7 relative: ~4% of the terms; the rest get the tight bound.
  EXPECT_LT(boundary_terms, terms / 10);
  EXPECT_GT(differ, n / 2);
  EXPECT_NE(rd, rd32);
}
