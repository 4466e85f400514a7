// The LoRA ops with the LoRA-input dropout as a packed mask (Backend::dropout_mask, lora_down,
// lora_down_grad, lora_input_grad) on the CPU backend, against their definition written out with
// the older ops: dropout() of the input into a buffer, then gemm(). Bitwise: the mask must hold
// exactly dropout()'s keep flags (for any first index, also one that is not a multiple of 4, and a
// length that is not a multiple of 32) and the ops must do dropout()'s float operations. The CUDA
// backend's fused kernels are checked against this definition in tests/gpu/test_cuda_ops.cpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "runtime/rng.h"

namespace mira {
namespace {

std::vector<float> random_vec(int64_t n, uint64_t seed) {
  Rng rng(seed, RngPurpose::BACKEND_CHECK);
  std::vector<float> v((size_t)n);
  for (auto& x : v) x = 2.0f * rng.uniform() - 1.0f;
  return v;
}

struct Host {
  Backend& be;
  DFloat put(const std::vector<float>& h) {
    DFloat d = be.alloc_f32((int64_t)h.size());
    be.upload(d, h.data());
    return d;
  }
  std::vector<float> get(DFloat d) {
    std::vector<float> h((size_t)d.size());
    be.download(h.data(), d);
    return h;
  }
};

TEST(LoraOps, MaskedOpsEqualDropoutThenGemmBitwise) {
  auto be = backend_create_cpu();
  Host h{*be};
  for (const auto& [n, in, r, base] : {std::tuple<int64_t, int64_t, int64_t, uint64_t>{37, 24, 4, 3},
                                       {64, 33, 8, 1ull << 40}, {5, 7, 3, 6}}) {
    const float p = 0.3f;
    const uint64_t stream = 4242;
    DFloat x = h.put(random_vec(n * in, 1)), a = h.put(random_vec(r * in, 2)), du = h.put(random_vec(n * r, 3));
    DInt bits = be->alloc_i32(dropout_mask_words(n * in));
    be->dropout_mask(bits, n * in, p, stream, base);
    const DropoutMask mask{bits, p};

    // The definition: xd = dropout(x), then the plain products.
    DFloat xd = be->alloc_f32(n * in), u_ref = be->alloc_f32(n * r), ga_ref = be->alloc_f32(r * in);
    be->dropout(xd, x, p, stream, base, false);
    be->gemm(false, true, n, r, in, 1.0f, xd, in, a, in, 0.0f, u_ref, r);
    be->gemm(true, false, r, in, n, 1.0f, du, r, xd, in, 0.0f, ga_ref, in);
    const std::vector<float> dx0 = random_vec(n * in, 4);
    DFloat t = be->alloc_f32(n * in), dx_ref = h.put(dx0);
    be->gemm(false, false, n, in, r, 1.0f, du, r, a, in, 0.0f, t, in);
    be->dropout(dx_ref, t, p, stream, base, true);

    DFloat u = be->alloc_f32(n * r), ga = be->alloc_f32(r * in), dx = h.put(dx0);
    be->lora_down(u, x, a, mask, n, in, r);
    be->lora_down_grad(ga, du, x, mask, n, in, r);
    be->lora_input_grad(dx, du, a, mask, n, in, r);
    EXPECT_EQ(h.get(u), h.get(u_ref)) << "n " << n << " in " << in;
    EXPECT_EQ(h.get(ga), h.get(ga_ref)) << "n " << n << " in " << in;
    EXPECT_EQ(h.get(dx), h.get(dx_ref)) << "n " << n << " in " << in;

    // Every element of x enters gA = du^T dropout(x) (random du, no zero), so the equality above
    // holds only if every mask bit is dropout()'s. The comparison is not vacuous: some elements
    // are dropped and some kept.
    int64_t kept = 0;
    for (float v : h.get(xd)) kept += v != 0.0f;
    EXPECT_GT(kept, 0);
    EXPECT_LT(kept, n * in);

    // Without a mask: the plain products, dx accumulated with beta 1.
    DFloat u0 = be->alloc_f32(n * r), u0_ref = be->alloc_f32(n * r), dx1 = h.put(dx0), dx1_ref = h.put(dx0);
    be->lora_down(u0, x, a, DropoutMask{}, n, in, r);
    be->gemm(false, true, n, r, in, 1.0f, x, in, a, in, 0.0f, u0_ref, r);
    be->lora_input_grad(dx1, du, a, DropoutMask{}, n, in, r);
    be->gemm(false, false, n, in, r, 1.0f, du, r, a, in, 1.0f, dx1_ref, in);
    EXPECT_EQ(h.get(u0), h.get(u0_ref));
    EXPECT_EQ(h.get(dx1), h.get(dx1_ref));
  }
}

TEST(LoraOps, MaskTooSmallIsRefused) {
  auto be = backend_create_cpu();
  const int64_t n = 40, in = 16, r = 2;
  DFloat x = be->alloc_f32(n * in), a = be->alloc_f32(r * in), u = be->alloc_f32(n * r);
  DInt bits = be->alloc_i32(dropout_mask_words(n * in) - 1);
  EXPECT_ANY_THROW(be->dropout_mask(bits, n * in, 0.1f, 1, 0));
  EXPECT_ANY_THROW(be->lora_down(u, x, a, DropoutMask{bits, 0.1f}, n, in, r));
}

}  // namespace
}  // namespace mira
