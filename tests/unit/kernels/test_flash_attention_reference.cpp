// The flash-style attention algorithm of kernels/cuda/attention.cu, replayed on the CPU. The CUDA
// kernels cannot run on a machine without a GPU, so this test checks their maths: a host version of
// exactly their tiling (query tiles of BR rows, key tiles of BC keys, the causal tile limits, the
// online softmax with running max / sum and the -inf guards, the logsumexp, the dropout mask
// recomputed from (b, h, i, j) in the forward and in both backward passes, D = rowsum(dO * O), the
// dK/dV pass over query tiles from the diagonal and the dQ pass over key tiles up to the diagonal)
// against the CPU oracle cpu_attention_forward / cpu_attention_backward (in double, and in float).
// The per-thread work split of the kernels (16 x 16 threads, warp butterflies) changes only the
// order of float additions inside a tile and is not replayed; everything that decides which terms
// are added, and with which factors, is. Keep this file in step with attention.cu.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/elementwise.h"
#include "runtime/rng.h"

using namespace mira;

namespace {

struct Drop {
  float p = 0.0f;
  uint32_t threshold = 0;
  uint64_t stream = 0, base = 0;
};

// keep_factor of attention.cu: keep scale or 0 from the mask index of probability (bh, i, j).
float keep_factor(const Drop& d, float keep_scale, int64_t bh, int64_t t, int64_t i, int64_t j) {
  const uint64_t idx = d.base + ((uint64_t)(bh * t + i) * (uint64_t)t + (uint64_t)j);
  return dropout_keep(d.stream, idx, d.threshold) ? keep_scale : 0.0f;
}

// k_flash_forward, one block per (bh, query tile), in float. lse (B*H, T); out and out_copy (B, T, C).
void flash_forward(std::vector<float>& out, std::vector<float>& lse, std::vector<float>& out_copy,
                   const std::vector<float>& qkv, int64_t b, int64_t t, int64_t c, int64_t nh, const Drop& drop,
                   int BR, int BC) {
  const int64_t hd = c / nh, ld = 3 * c;
  const float scale = 1.0f / std::sqrt((float)hd);
  const float keep_scale = drop.p > 0.0f ? 1.0f / (1.0f - drop.p) : 1.0f;
  const float NEG_INF = -std::numeric_limits<float>::infinity();
  for (int64_t bh = 0; bh < b * nh; ++bh) {
    const int64_t bi = bh / nh, h = bh % nh;
    const float* q = qkv.data() + bi * t * ld + h * hd;
    const float* k = q + c;
    const float* v = q + 2 * c;
    const int64_t ntiles = (t + BR - 1) / BR;
    for (int64_t y = 0; y < ntiles; ++y) {
      const int64_t i0 = (ntiles - 1 - y) * BR;
      std::vector<float> m((size_t)BR, NEG_INF), l((size_t)BR, 0.0f), acc((size_t)(BR * hd), 0.0f);
      std::vector<float> S((size_t)(BR * BC)), alpha((size_t)BR);
      const int64_t kend = i0 + BR < t ? i0 + BR : t;
      for (int64_t j0 = 0; j0 < kend; j0 += BC) {
        for (int r = 0; r < BR; ++r)
          for (int cc = 0; cc < BC; ++cc) {
            const int64_t i = i0 + r, j = j0 + cc;
            float s = 0.0f;
            if (i < t && j <= i) {
              for (int64_t d = 0; d < hd; ++d) s += q[i * ld + d] * k[j * ld + d];
              S[(size_t)(r * BC + cc)] = s * scale;
            } else {
              S[(size_t)(r * BC + cc)] = NEG_INF;
            }
          }
        for (int r = 0; r < BR; ++r) {  // online softmax
          const int64_t i = i0 + r;
          float mt = NEG_INF;
          for (int cc = 0; cc < BC; ++cc) mt = std::fmax(mt, S[(size_t)(r * BC + cc)]);
          const float m_new = std::fmax(m[(size_t)r], mt);
          float psum = 0.0f;
          for (int cc = 0; cc < BC; ++cc) {
            float& sv = S[(size_t)(r * BC + cc)];
            float p = sv == NEG_INF ? 0.0f : std::exp(sv - m_new);
            psum += p;
            if (drop.p > 0.0f && p != 0.0f) p *= keep_factor(drop, keep_scale, bh, t, i, j0 + cc);
            sv = p;
          }
          const float a = m[(size_t)r] == NEG_INF ? 0.0f : std::exp(m[(size_t)r] - m_new);
          l[(size_t)r] = l[(size_t)r] * a + psum;
          m[(size_t)r] = m_new;
          alpha[(size_t)r] = a;
        }
        for (int r = 0; r < BR; ++r)
          for (int64_t d = 0; d < hd; ++d) {
            float o = acc[(size_t)(r * hd + d)] * alpha[(size_t)r];
            for (int cc = 0; cc < BC; ++cc) {
              const int64_t j = j0 + cc;
              // the kernel reads zero-padded v rows past t (their P is 0)
              const float vv = j < t ? v[j * ld + d] : 0.0f;
              o += S[(size_t)(r * BC + cc)] * vv;
            }
            acc[(size_t)(r * hd + d)] = o;
          }
      }
      for (int r = 0; r < BR; ++r) {
        const int64_t i = i0 + r;
        if (i >= t) continue;
        lse[(size_t)(bh * t + i)] = m[(size_t)r] + std::log(l[(size_t)r]);
        const float inv = 1.0f / l[(size_t)r];
        for (int64_t d = 0; d < hd; ++d) {
          const size_t o = (size_t)((bi * t + i) * c + h * hd + d);
          out[o] = acc[(size_t)(r * hd + d)] * inv;
          out_copy[o] = out[o];
        }
      }
    }
  }
}

// tile_grads of attention.cu for one (row i, key j) entry: P_dropped and dS.
void entry_grads(float* pd, float* ds, const float* q, const float* k, const float* v, const float* dO,
                 int64_t ld, int64_t ldo, int64_t hd, int64_t i, int64_t j, int64_t t, int64_t bh, float L, float D,
                 float scale, const Drop& drop, float keep_scale) {
  *pd = 0.0f, *ds = 0.0f;
  if (!(i < t && j <= i)) return;
  float s = 0.0f, dp = 0.0f;
  for (int64_t d = 0; d < hd; ++d) {
    s += q[i * ld + d] * k[j * ld + d];
    dp += dO[i * ldo + d] * v[j * ld + d];
  }
  const float p = std::exp(s * scale - L);
  const float z = drop.p > 0.0f ? keep_factor(drop, keep_scale, bh, t, i, j) : 1.0f;
  *pd = p * z;
  *ds = p * (dp * z - D) * scale;
}

// k_row_dot + k_flash_backward_dkv + k_flash_backward_dq, in float; dqkv overwritten.
void flash_backward(std::vector<float>& dqkv, const std::vector<float>& dout, const std::vector<float>& qkv,
                    const std::vector<float>& lse, const std::vector<float>& out_copy, int64_t b, int64_t t, int64_t c,
                    int64_t nh, const Drop& drop, int BR, int BC) {
  const int64_t hd = c / nh, ld = 3 * c;
  const float scale = 1.0f / std::sqrt((float)hd);
  const float keep_scale = drop.p > 0.0f ? 1.0f / (1.0f - drop.p) : 1.0f;
  std::vector<float> dsum((size_t)(b * nh * t));
  for (int64_t r = 0; r < b * nh * t; ++r) {  // k_row_dot
    const int64_t bh = r / t, i = r % t, bi = bh / nh, h = bh % nh;
    const int64_t off = (bi * t + i) * c + h * hd;
    float s = 0.0f;
    for (int64_t d = 0; d < hd; ++d) s += dout[(size_t)(off + d)] * out_copy[(size_t)(off + d)];
    dsum[(size_t)r] = s;
  }
  for (int64_t bh = 0; bh < b * nh; ++bh) {
    const int64_t bi = bh / nh, h = bh % nh;
    const float* q = qkv.data() + bi * t * ld + h * hd;
    const float* k = q + c;
    const float* v = q + 2 * c;
    const float* dO = dout.data() + bi * t * c + h * hd;
    float* dq = dqkv.data() + bi * t * ld + h * hd;
    const float* L = lse.data() + bh * t;
    const float* D = dsum.data() + bh * t;
    // dK/dV: one block per key tile, query tiles from the one holding row j0 to T, in order.
    for (int64_t j0 = 0; j0 < t; j0 += BC) {
      std::vector<float> dk((size_t)(BC * hd), 0.0f), dv((size_t)(BC * hd), 0.0f);
      for (int64_t i0 = (j0 / BR) * BR; i0 < t; i0 += BR) {
        std::vector<float> P((size_t)(BR * BC)), dS((size_t)(BR * BC));
        for (int r = 0; r < BR; ++r)
          for (int cc = 0; cc < BC; ++cc) {
            const int64_t i = i0 + r;
            entry_grads(&P[(size_t)(r * BC + cc)], &dS[(size_t)(r * BC + cc)], q, k, v, dO, ld, c, hd, i, j0 + cc, t,
                        bh, i < t ? L[i] : 0.0f, i < t ? D[i] : 0.0f, scale, drop, keep_scale);
          }
        for (int cc = 0; cc < BC; ++cc)
          for (int64_t d = 0; d < hd; ++d)
            for (int r = 0; r < BR; ++r) {
              const int64_t i = i0 + r;
              const float qv = i < t ? q[i * ld + d] : 0.0f, ov = i < t ? dO[i * c + d] : 0.0f;
              dv[(size_t)(cc * hd + d)] += P[(size_t)(r * BC + cc)] * ov;
              dk[(size_t)(cc * hd + d)] += dS[(size_t)(r * BC + cc)] * qv;
            }
      }
      for (int cc = 0; cc < BC; ++cc) {
        const int64_t j = j0 + cc;
        if (j >= t) continue;
        for (int64_t d = 0; d < hd; ++d) {
          dq[j * ld + c + d] = dk[(size_t)(cc * hd + d)];
          dq[j * ld + 2 * c + d] = dv[(size_t)(cc * hd + d)];
        }
      }
    }
    // dQ: one block per query tile, key tiles up to the causal limit, in order.
    for (int64_t i0 = 0; i0 < t; i0 += BR) {
      std::vector<float> acc((size_t)(BR * hd), 0.0f);
      const int64_t kend = i0 + BR < t ? i0 + BR : t;
      for (int64_t j0 = 0; j0 < kend; j0 += BC) {
        std::vector<float> dS((size_t)(BR * BC));
        for (int r = 0; r < BR; ++r)
          for (int cc = 0; cc < BC; ++cc) {
            const int64_t i = i0 + r;
            float pd;
            entry_grads(&pd, &dS[(size_t)(r * BC + cc)], q, k, v, dO, ld, c, hd, i, j0 + cc, t, bh,
                        i < t ? L[i] : 0.0f, i < t ? D[i] : 0.0f, scale, drop, keep_scale);
          }
        for (int r = 0; r < BR; ++r)
          for (int64_t d = 0; d < hd; ++d)
            for (int cc = 0; cc < BC; ++cc) {
              const int64_t j = j0 + cc;
              acc[(size_t)(r * hd + d)] += dS[(size_t)(r * BC + cc)] * (j < t ? k[j * ld + d] : 0.0f);
            }
      }
      for (int r = 0; r < BR; ++r) {
        const int64_t i = i0 + r;
        if (i >= t) continue;
        for (int64_t d = 0; d < hd; ++d) dq[i * ld + d] = acc[(size_t)(r * hd + d)];
      }
    }
  }
}

std::vector<float> uniform(size_t n, uint64_t key, double lo, double hi) {
  Rng r(77, RngPurpose::DATA_SYNTH, key);
  std::vector<float> v(n);
  for (auto& x : v) x = (float)(lo + (hi - lo) * r.uniform_double());
  return v;
}

// (T, C, H, p, BR, BC): the kernels' tiles (64/64 for hd <= 64, 32/32 for hd <= 128) and unequal
// ones (16/48, 48/16: tiles that are entirely above the diagonal for some rows, key tiles that
// start inside a query tile), T = 1, T below / at / just above / well above a tile, head dims 8,
// 24, 64 and 100 (not powers of two), with and without dropout.
using Case = std::tuple<int64_t, int64_t, int64_t, float, int, int>;
class FlashAttentionReference : public ::testing::TestWithParam<Case> {};

TEST_P(FlashAttentionReference, MatchesCpuOracle) {
  const auto [t, c, nh, p, BR, BC] = GetParam();
  const int64_t b = 2, hd = c / nh;
  Drop drop;
  drop.p = p;
  drop.threshold = dropout_threshold(p);
  drop.stream = rng_stream(5, RngPurpose::BASE_DROPOUT, 3, 4);
  drop.base = 7;  // not a multiple of 4: the 16-bit lanes start mid-draw
  const DropoutKey key{p, drop.stream, drop.base};
  const std::vector<float> qkv = uniform((size_t)(b * t * 3 * c), 1, -2, 2), dout = uniform((size_t)(b * t * c), 2, -1, 1);

  // The oracle in double (same inputs, converted exactly).
  const std::vector<double> qkv_d(qkv.begin(), qkv.end()), dout_d(dout.begin(), dout.end());
  std::vector<double> out_d((size_t)(b * t * c)), att_d((size_t)(b * nh * t * t)), scr_d(att_d.size()),
      dqkv_d(qkv.size());
  cpu_attention_forward<double>(out_d.data(), att_d.data(), qkv_d.data(), b, t, c, nh, scr_d.data(), key);
  cpu_attention_backward<double>(dqkv_d.data(), scr_d.data(), dout_d.data(), qkv_d.data(), att_d.data(), b, t, c, nh,
                                 key);
  // The float CPU backend's path (what test_gpu compares the device with).
  std::vector<float> out_f((size_t)(b * t * c)), att_f((size_t)(b * nh * t * t)), scr_f(att_f.size()),
      dqkv_f(qkv.size());
  cpu_attention_forward<float>(out_f.data(), att_f.data(), qkv.data(), b, t, c, nh, scr_f.data(), key);
  cpu_attention_backward<float>(dqkv_f.data(), scr_f.data(), dout.data(), qkv.data(), att_f.data(), b, t, c, nh, key);

  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> out(out_f.size(), nan), lse((size_t)(b * nh * t), nan), out_copy(out_f.size(), nan),
      dqkv(qkv.size(), nan);  // NaN: every element must be written
  flash_forward(out, lse, out_copy, qkv, b, t, c, nh, drop, BR, BC);
  flash_backward(dqkv, dout, qkv, lse, out_copy, b, t, c, nh, drop, BR, BC);

  // Float rounding only (|S| <= ~6, sums of <= 130 terms of size <= 2): agreement with the double
  // oracle to 2e-5 absolute + 2e-5 relative on out, 1e-4 + 1e-4 on dqkv; a wrong mask bit, tile
  // limit or missing term gives errors of the size of a probability times |v| (>= 1e-3 here).
  auto check = [](const std::vector<float>& got, const std::vector<double>& ref, const std::vector<float>& cpu_f,
                  double atol, double rtol, const char* what) {
    int64_t bad = 0, bad_f = 0;
    double worst = 0, worst_f = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const double d = std::fabs((double)got[i] - ref[i]), lim = atol + rtol * std::fabs(ref[i]);
      if (!(d <= lim)) ++bad;  // NaN (an element never written) counts
      worst = std::max(worst, d);
      const double df = std::fabs((double)got[i] - (double)cpu_f[i]);
      if (!(df <= 2 * lim)) ++bad_f;
      worst_f = std::max(worst_f, df);
    }
    EXPECT_EQ(bad, 0) << what << " vs the double oracle: worst |d| " << worst;
    EXPECT_EQ(bad_f, 0) << what << " vs the float CPU backend: worst |d| " << worst_f;
  };
  check(out, out_d, out_f, 2e-5, 2e-5, "out");
  check(dqkv, dqkv_d, dqkv_f, 1e-4, 1e-4, "dqkv");
  EXPECT_EQ(out, out_copy);
  // logsumexp against the oracle's probabilities: P_ii... every row's P_i0 = exp(S_i0 - L_i).
  for (int64_t bh = 0; bh < b * nh; ++bh) {
    const int64_t bi = bh / nh, h = bh % nh;
    for (int64_t i = 0; i < t; ++i) {
      double s = 0;
      for (int64_t d = 0; d < hd; ++d)
        s += qkv_d[(size_t)((bi * t + i) * 3 * c + h * hd + d)] * qkv_d[(size_t)((bi * t) * 3 * c + c + h * hd + d)];
      const double p0 = std::exp(s / std::sqrt((double)hd) - lse[(size_t)(bh * t + i)]);
      ASSERT_NEAR(p0, att_d[(size_t)((bh * t + i) * t)], 1e-5 * std::max(1.0, p0)) << "row " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Tiles, FlashAttentionReference,
    ::testing::Values(Case{1, 24, 3, 0.0f, 64, 64}, Case{1, 24, 3, 0.25f, 64, 64}, Case{13, 24, 3, 0.0f, 64, 64},
                      Case{13, 24, 3, 0.25f, 64, 64}, Case{64, 128, 2, 0.0f, 64, 64}, Case{65, 128, 2, 0.25f, 64, 64},
                      Case{130, 128, 2, 0.0f, 64, 64}, Case{130, 128, 2, 0.25f, 64, 64},
                      Case{100, 200, 2, 0.0f, 32, 32}, Case{100, 200, 2, 0.25f, 32, 32},
                      Case{33, 48, 2, 0.25f, 32, 32}, Case{70, 16, 2, 0.25f, 16, 48}, Case{70, 16, 2, 0.0f, 48, 16},
                      Case{97, 48, 2, 0.25f, 48, 16}));

// The dropout derivation (attention.cu, top comment): with the keep mask, the softmax backward's
// row term sum_j P_ij dP_ij equals rowsum(dO_i * O_i) = D_i. Checked in double on the oracle.
TEST(FlashAttentionReference, RowTermEqualsRowsumOfDoutTimesOut) {
  const int64_t b = 1, t = 40, c = 16, nh = 2, hd = c / nh;
  const float p = 0.3f;
  const DropoutKey key{p, rng_stream(6, RngPurpose::BASE_DROPOUT, 1, 1), 3};
  const uint32_t thr = dropout_threshold(p);
  const double ks = 1.0 / (1.0 - (double)(float)p);
  std::vector<float> qf = uniform((size_t)(b * t * 3 * c), 3, -1, 1), df = uniform((size_t)(b * t * c), 4, -1, 1);
  const std::vector<double> qkv(qf.begin(), qf.end()), dout(df.begin(), df.end());
  std::vector<double> out((size_t)(b * t * c)), att((size_t)(b * nh * t * t)), scr(att.size());
  cpu_attention_forward<double>(out.data(), att.data(), qkv.data(), b, t, c, nh, scr.data(), key);
  for (int64_t h = 0; h < nh; ++h)
    for (int64_t i = 0; i < t; ++i) {
      double row = 0;  // sum_j P_ij z_ij (dO_i . v_j)
      for (int64_t j = 0; j <= i; ++j) {
        double dpd = 0;
        for (int64_t d = 0; d < hd; ++d) dpd += dout[(size_t)(i * c + h * hd + d)] * qkv[(size_t)(j * 3 * c + 2 * c + h * hd + d)];
        const bool keep = dropout_keep(key.stream, key.base + (uint64_t)((h * t + i) * t + j), thr);
        row += att[(size_t)((h * t + i) * t + j)] * (keep ? ks : 0.0) * dpd;
      }
      double dsum = 0;
      for (int64_t d = 0; d < hd; ++d) dsum += dout[(size_t)(i * c + h * hd + d)] * out[(size_t)(i * c + h * hd + d)];
      ASSERT_NEAR(row, dsum, 1e-12) << "head " << h << " row " << i;
    }
}

}  // namespace
