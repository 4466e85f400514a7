// Activations in bf16 storage (Backend DAct, backend.h) on the CPU backend, the oracle: every op that
// takes a DAct gives, with a bf16 output, exactly the bf16 rounding (ties to even) of its fp32
// output, and with a bf16 input, exactly its fp32 result on the widened values. Both sides run the
// same fp32 kernels, so every comparison here is bitwise.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "backend/backend.h"
#include "kernels/cpu/bf16.h"
#include "runtime/rng.h"

using namespace mira;

namespace {

std::vector<float> random_vec(int64_t n, uint64_t key, float lo = -1.0f, float hi = 1.0f) {
  Rng r(4242, RngPurpose::DATA_SYNTH, 9, key);
  std::vector<float> v((size_t)n);
  for (auto& x : v) x = lo + (hi - lo) * r.uniform();
  return v;
}

class Bf16Activations : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = backend_create_cpu();

  DFloat f32(const std::vector<float>& h) {
    DFloat d = be->alloc_f32((int64_t)h.size());
    be->upload(d, h.data());
    return d;
  }
  // A bf16 tensor holding bf16(h) and the fp32 tensor of the same (rounded) values.
  DBf16 bf16(const std::vector<float>& h) {
    std::vector<uint16_t> bits(h.size());
    for (size_t i = 0; i < h.size(); ++i) bits[i] = bf16_bits(h[i]);
    DBf16 d = be->alloc_bf16((int64_t)h.size());
    be->upload(d, bits.data());
    return d;
  }
  std::vector<float> rounded(std::vector<float> v) {
    for (auto& x : v) x = bf16_round(x);
    return v;
  }
  std::vector<float> get(DFloat d) {
    std::vector<float> h((size_t)d.size());
    be->download(h.data(), d);
    return h;
  }
  std::vector<float> get(DBf16 d) {
    std::vector<uint16_t> bits((size_t)d.size());
    be->download(bits.data(), d);
    std::vector<float> h(bits.size());
    for (size_t i = 0; i < h.size(); ++i) h[i] = bf16_value(bits[i]);
    return h;
  }
  // Bitwise: a bf16 output equals the rounded fp32 output (the first n elements; the rest untouched).
  void expect_rounding_of(DBf16 got, DFloat fp32, int64_t n, const char* what) {
    const std::vector<float> g = get(got), f = get(fp32);
    int64_t bad = 0;
    for (int64_t i = 0; i < (int64_t)g.size(); ++i) {
      const float want = i < n ? bf16_round(f[(size_t)i]) : 0.0f;
      bad += std::memcmp(&g[(size_t)i], &want, 4) != 0;
    }
    EXPECT_EQ(bad, 0) << what;
  }
  void expect_bitwise(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    EXPECT_EQ(std::memcmp(a.data(), b.data(), 4 * a.size()), 0) << what;
  }
};

TEST_F(Bf16Activations, StorageRoundTripsBitPatterns) {
  std::vector<uint16_t> bits = {0x0000, 0x8000, 0x3f80, 0xbf80, 0x7f80, 0xff80, 0x7fc0, 0x0001, 0x7f7f};
  DBf16 d = be->alloc_bf16((int64_t)bits.size());
  be->upload(d, bits.data());
  std::vector<uint16_t> back(bits.size());
  be->download(back.data(), d);
  EXPECT_EQ(back, bits);
  // Ties to even, overflow to infinity, NaN kept: the rule of bf16_round.
  EXPECT_EQ(bf16_bits(1.0f + std::ldexp(1.0f, -8)), 0x3f80);                        // tie, even below
  EXPECT_EQ(bf16_bits(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);                    // tie, even above
  EXPECT_EQ(bf16_bits(3.4e38f), 0x7f80);
  EXPECT_TRUE(std::isnan(bf16_value(bf16_bits(std::nanf("")))));
  be->release(d);
}

TEST_F(Bf16Activations, LayerNormOutputsAreTheRoundedFp32Outputs) {
  const int64_t n = 37, c = 48, cap = n * c + 5;  // views longer than the op: the tail stays zero
  const std::vector<float> hx = random_vec(n * c, 1, -3, 3), ha = random_vec(n * c, 2), hw = random_vec(c, 3),
                           hb = random_vec(c, 4);
  DFloat x = f32(hx), a = f32(ha), w = f32(hw), b = f32(hb), mean = f32(std::vector<float>(n)),
         rstd = f32(std::vector<float>(n)), y32 = f32(std::vector<float>(cap)), sum = f32(std::vector<float>(n * c));
  DBf16 y16 = be->alloc_bf16(cap);
  be->layernorm_forward(y32, mean, rstd, x, w, b, n, c, 1e-5);
  const std::vector<float> m32 = get(mean);
  be->layernorm_forward(y16, mean, rstd, x, w, b, n, c, 1e-5);
  expect_rounding_of(y16, y32, n * c, "layernorm_forward");
  expect_bitwise(get(mean), m32, "mean unchanged by the output's storage");
  be->residual_layernorm_forward(sum, y32, mean, rstd, x, a, w, b, n, c, 1e-5);
  be->residual_layernorm_forward(sum, y16, mean, rstd, x, a, w, b, n, c, 1e-5);
  expect_rounding_of(y16, y32, n * c, "residual_layernorm_forward");
}

TEST_F(Bf16Activations, GeluReadsAndWritesBf16) {
  const int64_t n = 1001;
  const std::vector<float> hx = random_vec(n, 5, -6, 6), hdy = random_vec(n, 6);
  DFloat xr = f32(rounded(hx)), y32 = f32(std::vector<float>(n)), dy = f32(hdy), dx32 = f32(std::vector<float>(n)),
         dx = f32(std::vector<float>(n));
  DBf16 x16 = bf16(hx), y16 = be->alloc_bf16(n);
  be->gelu_forward(y32, xr, n);
  be->gelu_forward(y16, x16, n);
  expect_rounding_of(y16, y32, n, "gelu_forward(bf16 -> bf16)");
  be->gelu_backward(dx32, dy, xr, n);
  be->gelu_backward(dx, dy, x16, n);
  expect_bitwise(get(dx), get(dx32), "gelu_backward(bf16 x)");
}

TEST_F(Bf16Activations, LinearLayerAndLoraOpsOnBf16Inputs) {
  const int64_t n = 29, in = 40, out = 24, r = 4;
  const std::vector<float> hx = random_vec(n * in, 7), hw = random_vec(in * out, 8), hb = random_vec(out, 9),
                           ha = random_vec(r * in, 10), hbl = random_vec(out * r, 11), hdu = random_vec(n * r, 12);
  for (int frozen = 0; frozen < 2; ++frozen) {
    DFloat xr = f32(rounded(hx)), w = f32(hw), bias = f32(hb), A = f32(ha), bl = f32(hbl), du = f32(hdu);
    DBf16 x16 = bf16(hx), y16 = be->alloc_bf16(n * out);
    if (frozen) be->freeze_weights(w, WeightPrecision::BF16);
    DFloat u32 = f32(std::vector<float>(n * r)), u = f32(std::vector<float>(n * r)),
           y32 = f32(std::vector<float>(n * out)), y = f32(std::vector<float>(n * out));
    DInt bits = be->alloc_i32(dropout_mask_words(n * in));
    be->dropout_mask(bits, n * in, 0.25f, 99, 0);
    const DropoutMask mask{bits, 0.25f};
    be->lora_down(u32, xr, A, mask, n, in, r);
    be->lora_down(u, x16, A, mask, n, in, r);
    expect_bitwise(get(u), get(u32), "lora_down(bf16 x)");
    be->linear_forward(y32, xr, w, bias, u32, bl, 2.0f, n, in, out, r);
    be->linear_forward(y, x16, w, bias, u, bl, 2.0f, n, in, out, r);
    expect_bitwise(get(y), get(y32), frozen ? "linear_forward(bf16 x, bf16 w)" : "linear_forward(bf16 x)");
    be->linear_forward(y16, xr, w, bias, DFloat(), DFloat(), 0.0f, n, in, out, 0);
    be->linear_forward(y32, xr, w, bias, DFloat(), DFloat(), 0.0f, n, in, out, 0);
    expect_rounding_of(y16, y32, n * out, "linear_forward(bf16 y)");
    DFloat ga32 = f32(std::vector<float>(r * in)), ga = f32(std::vector<float>(r * in));
    be->lora_down_grad(ga32, du, xr, mask, n, in, r);
    be->lora_down_grad(ga, du, x16, mask, n, in, r);
    expect_bitwise(get(ga), get(ga32), "lora_down_grad(bf16 x)");
  }
}

TEST_F(Bf16Activations, AttentionOutputInBf16) {
  const int64_t b = 2, t = 19, c = 32, nh = 4;
  const std::vector<float> hq = random_vec(b * t * 3 * c, 13);
  for (AttentionPrecision prec : {AttentionPrecision::FP32, AttentionPrecision::BF16}) {
    DFloat qkv = f32(hq), out32 = f32(std::vector<float>(b * t * c)),
           att = f32(std::vector<float>(be->attention_saved_floats(b, t, c, nh, prec))),
           scratch = f32(std::vector<float>(be->attention_scratch_floats(b, t, c, nh)));
    DBf16 out16 = be->alloc_bf16(b * t * c);
    const DropoutSite drop{0.1f, 5, 0};
    be->attention_forward(out32, att, qkv, b, t, c, nh, scratch, drop, prec);
    be->attention_forward(out16, att, qkv, b, t, c, nh, scratch, drop, prec);
    expect_rounding_of(out16, out32, b * t * c, attention_precision_name(prec));
  }
}

TEST_F(Bf16Activations, DActKnowsItsStorage) {
  DFloat f = be->alloc_f32(8);
  DBf16 h = be->alloc_bf16(6);
  const DAct af = f, ah = h, none;
  EXPECT_FALSE(af.is_bf16());
  EXPECT_TRUE(ah.is_bf16());
  EXPECT_EQ(af.size(), 8);
  EXPECT_EQ(ah.slice(2, 3).size(), 3);
  EXPECT_TRUE(none.empty());
  EXPECT_THROW(ah.f32(), std::logic_error);
  EXPECT_THROW(af.bf16(), std::logic_error);
  EXPECT_THROW(ah.slice(4, 3), std::out_of_range);
}

}  // namespace
