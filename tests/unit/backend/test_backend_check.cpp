// The start-up backend check (backend/backend_check.h) on the CPU: the CPU backend passes against
// itself at several model shapes, and a backend with one subtly wrong op fails with that op named
// while every other op still passes. The CUDA backend goes through the same function at start-up.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <tuple>

#include "backend/backend.h"
#include "backend/backend_check.h"
#include "backend/backend_timed.h"

namespace mira {
namespace {

// The CPU backend with GELU's output scaled by `factor` (a wrong constant in a kernel, say).
class ScaledGelu : public TimedBackend {
 public:
  explicit ScaledGelu(float factor) : TimedBackend(backend_create_cpu()), factor_(factor) {}
  void gelu_forward(DAct y, DAct x, int64_t n) override {
    TimedBackend::gelu_forward(y, x, n);
    if (!y.is_bf16()) scale(y.f32(), factor_);  // the fp32 kernel (a bf16 y is checked apart)
  }

 private:
  float factor_;
};

// The CPU backend whose attention forward loses the first output element (an off-by-one at a tile edge).
class DropsFirstAttentionOutput : public TimedBackend {
 public:
  DropsFirstAttentionOutput() : TimedBackend(backend_create_cpu()) {}
  void attention_forward(DAct out, DFloat att, DFloat qkv, int64_t b, int64_t t, int64_t c, int64_t nh,
                         DFloat scratch, const DropoutSite& drop, AttentionPrecision prec) override {
    TimedBackend::attention_forward(out, att, qkv, b, t, c, nh, scratch, drop, prec);
    if (!out.is_bf16()) zero(out.f32().slice(0, 1));
  }
};

const BackendCheckOp* find_op(const BackendCheckReport& r, const std::string& op) {
  for (const auto& o : r.ops)
    if (o.op == op) return &o;
  return nullptr;
}

TEST(BackendCheck, CpuAgainstItselfPassesEveryOpExactly) {
  for (const auto& [c, nh, v] : {std::tuple<int64_t, int64_t, int64_t>{64, 4, 256}, {80, 5, 1000}, {48, 1, 97}}) {
    auto a = backend_create_cpu(), b = backend_create_cpu();
    BackendCheckShape shape;
    shape.c = c, shape.nh = nh, shape.vocab = v;
    const BackendCheckReport r = backend_check(*a, *b, shape);
    EXPECT_TRUE(r.ok()) << r.failures();
    EXPECT_EQ(r.failures(), "");
    // Two identical deterministic backends agree bit for bit on the same inputs.
    for (const auto& o : r.ops) EXPECT_EQ(o.rel_error, 0.0) << o.op;
    // Every op family of the interface is covered.
    for (const char* op : {"gemm(NN)", "gemm(NT)", "gemm(TN)", "gemm(TT)", "linear_forward(lora)", "linear_forward",
                           "layernorm_forward", "residual_layernorm_forward", "layernorm_backward", "gelu_forward", "gelu_backward",
                           "attention_forward", "attention_backward", "attention_forward(dropout)",
                           "attention_backward(dropout)", "attention_forward(bf16)", "attention_backward(bf16)",
                           "attention_forward(dropout, bf16)", "attention_backward(dropout, bf16)", "embedding_forward", "embedding_backward", "bias_broadcast",
                           "add+scale", "dropout", "colsum_accumulate", "sum", "sum_squares", "lm_head_ce(loss)",
                           "lm_head_ce(dh, dwte)", "adam_step", "gemm(NN, bf16 weight)", "gemm(NT, bf16 weight)",
                           "linear_forward(lora, bf16 weight)", "linear_forward(bf16 weight)", "lm_head_ce(bf16 wte)",
                           "lora_down(dropout)", "layernorm_forward(bf16 y)", "gelu_forward(bf16)",
                           "linear_forward(lora, bf16 x)", "linear_forward(bf16 x, bf16 y)",
                           "attention_forward(bf16, bf16 out)",
                           "lora_down_grad(dropout)", "lora_input_grad(dropout)", "lora_down/grad/input_grad"})
      EXPECT_NE(find_op(r, op), nullptr) << op;
    EXPECT_EQ(r.count_ok(), static_cast<int>(r.ops.size()));
  }
}

TEST(BackendCheck, WrongConstantIsCaughtAndNamed) {
  ScaledGelu wrong(1.001f);  // 0.1% off: relative error 1e-3, ten times the tolerance
  auto ref = backend_create_cpu();
  const BackendCheckReport r = backend_check(wrong, *ref, BackendCheckShape());
  EXPECT_FALSE(r.ok());
  const BackendCheckOp* g = find_op(r, "gelu_forward");
  ASSERT_NE(g, nullptr);
  EXPECT_FALSE(g->ok);
  EXPECT_NEAR(g->rel_error, 1e-3, 1e-5);
  EXPECT_EQ(r.count_ok(), static_cast<int>(r.ops.size()) - 1);  // only that op
  EXPECT_NE(r.failures().find("gelu_forward: relative error 0.001 > 0.0001"), std::string::npos) << r.failures();
}

TEST(BackendCheck, FloatRoundingDifferencesPass) {
  ScaledGelu close(1.0f + 4.0f / 16777216.0f);  // a few units in the last place: reordered fp32 sums
  auto ref = backend_create_cpu();
  const BackendCheckReport r = backend_check(close, *ref, BackendCheckShape());
  EXPECT_TRUE(r.ok()) << r.failures();
  EXPECT_GT(find_op(r, "gelu_forward")->rel_error, 0.0);  // it did differ
}

TEST(BackendCheck, OneWrongElementIsCaught) {
  DropsFirstAttentionOutput wrong;
  auto ref = backend_create_cpu();
  const BackendCheckReport r = backend_check(wrong, *ref, BackendCheckShape());
  EXPECT_FALSE(find_op(r, "attention_forward")->ok);
  EXPECT_FALSE(find_op(r, "attention_forward(dropout)")->ok);
  EXPECT_FALSE(find_op(r, "attention_forward(bf16)")->ok);
  EXPECT_TRUE(find_op(r, "attention_backward")->ok);  // the backward does not read the output
  EXPECT_NE(r.failures().find("attention_forward"), std::string::npos);
}

}  // namespace
}  // namespace mira
