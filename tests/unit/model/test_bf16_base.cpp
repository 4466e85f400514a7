// The model in the bf16 frozen-base-weight mode (Gpt2Model::set_base_precision, model.base_precision)
// on the CPU backend, the oracle: a LoRA training step against fp32 mode, which weights are frozen,
// and what is refused.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernels/cpu/bf16.h"
#include "model_test_util.h"
#include "runtime/error.h"
#include "runtime/rng.h"
#include "tests/support/random_batch.h"

using namespace mira;

namespace {

struct StepRun {
  std::vector<double> losses;
  std::vector<float> grad, adapter, weights;
};

// The tiny preset with LoRA on c_attn, c_proj, c_fc, LoRA and base dropout on, clipping active: one
// gradient pass, then two AdamW steps.
StepRun run(WeightPrecision p, bool unrelated_frozen = false) {
  auto be = backend_create_cpu();
  DFloat other = be->alloc_f32(1000);  // a frozen range the model never reads: lookups run, never match
  if (unrelated_frozen) be->freeze_weights(other, WeightPrecision::BF16);
  LoraConfig lc;
  lc.r = 4, lc.alpha = 8, lc.dropout = 0.1;
  lc.target_modules = {"c_attn", "c_proj", "c_fc"};
  OptimConfig oc;
  oc.kind = OptimKind::ADAMW, oc.lr = 1e-3, oc.clip = 0.5;
  Gpt2Model m(*be, gpt2_init_preset(gpt2_config_preset("tiny", 259), 5), lc, oc, 5);
  m.set_base_dropout({0.1, 0.1, 0.1});
  m.set_base_precision(p);
  EXPECT_EQ(m.base_precision(), p);
  std::vector<float> a((size_t)m.adapter_size());
  m.initial_adapter(a.data());
  for (size_t i = 0; i < a.size(); ++i) a[i] += 0.01f * (float)((i * 7919) % 13) - 0.06f;  // non-zero B
  m.set_adapter(a.data());
  mira_test::RandomBatch sb(3, 40, 259, 41);
  StepRun r;
  r.losses.push_back(m.compute_gradient(sb.b, StepContext{2, 0}, true));
  r.grad.resize(a.size());
  m.get_gradient(r.grad.data());
  for (int s = 0; s < 2; ++s) r.losses.push_back(m.train_step(sb.b, StepContext{2, s}));
  r.adapter.resize(a.size());
  m.get_adapter(r.adapter.data());
  r.weights.resize((size_t)gpt2_param_count(m.config()));
  m.get_base_weights(r.weights.data());
  return r;
}

bool is_bf16(float x) { return bf16_round(x) == x; }

}  // namespace

// (2) A LoRA step in bf16 mode against fp32 mode. Loss tolerance 5e-4 relative: |d loss| <= 2 max_j
// |d logit_j|, and bf16 operands (8 significant bits, 2^-9 relative rounding) move a logit by at most
// ~2 * 2^-9 * sum_i |h_i wte_ji|; at this init (|h| ~ 1 after ln_f, |wte| ~ 0.016 on average, C = 64)
// that sum is ~1, so the worst case is ~8e-3 absolute = 1.4e-3 relative of the loss (~5.6), plus
// what the 2 blocks add; rounding errors of random sign cancel like 1/sqrt(C), giving ~2e-4 (measured
// 2e-6 .. 2e-5: the near-uniform predictions of a fresh model are insensitive). A broken operand (a
// weight read as zero, a wrong slice) moves the loss by > 5e-3 relative. The LoRA gradient, through
// every rounded GEMM of the backward, within 2e-2 relative L2 (a few times 2^-9 per GEMM; measured
// 4e-3).
TEST(Bf16Base, LoraStepCloseToFp32ButNotEqual) {
  const StepRun f = run(WeightPrecision::FP32), h = run(WeightPrecision::BF16);
  ASSERT_EQ(f.losses.size(), h.losses.size());
  for (size_t i = 0; i < f.losses.size(); ++i) {
    std::printf("[ compare  ] loss %zu: fp32 %.9g bf16 %.9g (rel %.3g)\n", i, f.losses[i], h.losses[i],
                std::fabs(h.losses[i] - f.losses[i]) / f.losses[i]);
    EXPECT_TRUE(std::isfinite(h.losses[i]));
    EXPECT_NEAR(h.losses[i], f.losses[i], 5e-4 * std::fabs(f.losses[i])) << "loss " << i;
    EXPECT_NE(h.losses[i], f.losses[i]) << "loss " << i << ": the bf16 mode changed nothing";
  }
  for (float g : h.grad) ASSERT_TRUE(std::isfinite(g));
  const double eg = mira_test::rel_l2(h.grad.data(), f.grad.data(), f.grad.size());
  std::printf("[ compare  ] LoRA gradient rel L2 bf16 vs fp32: %.3g\n", eg);
  EXPECT_LT(eg, 2e-2);
  EXPECT_GT(eg, 0.0);
  // LoRA parameters and Adam state stay fp32: the adapter after two steps is not bf16-valued.
  int64_t not_bf16 = 0;
  for (float x : h.adapter) not_bf16 += !is_bf16(x);
  EXPECT_GT(not_bf16, (int64_t)h.adapter.size() / 2);
}

// fp32 mode is the parity mode: its bits do not depend on whether the backend holds frozen ranges
// (the GEMMs then look their operands up, find nothing, and take the unchanged fp32 path).
TEST(Bf16Base, Fp32ModeBitwiseUnchangedByLookups) {
  const StepRun a = run(WeightPrecision::FP32), b = run(WeightPrecision::FP32, true);
  EXPECT_EQ(a.losses, b.losses);
  EXPECT_EQ(a.grad, b.grad);
  EXPECT_EQ(a.adapter, b.adapter);
}

// Which base tensors are frozen: wte, wpe and the four GEMM weights per block hold bf16 values after
// set_base_precision(BF16); LayerNorm parameters and biases are untouched (fp32).
TEST(Bf16Base, GemmWeightsAndEmbeddingsRoundedOthersUntouched) {
  const Gpt2Config cfg = gpt2_config_preset("tiny", 259);
  const Gpt2HostModel host = gpt2_init_preset(cfg, 5);
  const StepRun h = run(WeightPrecision::BF16);
  for (const ParamInfo& p : host.table) {
    const bool frozen = p.name == "wte" || p.name == "wpe" ||
                        (p.name.size() > 7 && p.name.compare(p.name.size() - 7, 7, ".weight") == 0 &&
                         p.name.find(".ln_") == std::string::npos);
    int64_t changed = 0, non_bf16 = 0;
    for (int64_t i = p.offset; i < p.offset + p.numel; ++i) {
      const float w = h.weights[(size_t)i], w0 = host.weights[(size_t)i];
      non_bf16 += !is_bf16(w);
      changed += frozen ? w != bf16_round(w0) : w != w0;
    }
    EXPECT_EQ(changed, 0) << p.name;
    if (frozen) {
      EXPECT_EQ(non_bf16, 0) << p.name;
    }
  }
}

TEST(Bf16Base, RefusedCombinations) {
  auto be = backend_create_cpu();
  const Gpt2HostModel host = gpt2_init_preset(gpt2_config_preset("tiny", 259), 5);
  LoraConfig no_lora;
  no_lora.target_modules.clear();
  mira_test::RandomBatch sb(2, 16, 259, 41);
  {
    Gpt2Model m(*be, host, no_lora, OptimConfig{}, 5);
    m.set_base_precision(WeightPrecision::BF16);
    m.set_base_precision(WeightPrecision::BF16);  // again: no-op
    EXPECT_THROW(m.full_train_step(sb.b, StepContext{}), UserError);  // full fine-tuning trains them
    EXPECT_THROW(m.set_base_precision(WeightPrecision::FP32), InternalError);  // already rounded
    EXPECT_TRUE(std::isfinite(m.eval_loss(sb.b).sum));  // evaluation works
  }
  {
    Gpt2Model m(*be, host, no_lora, OptimConfig{}, 5);  // the same backend: the old freeze ended
    m.full_train_step(sb.b, StepContext{});
    EXPECT_THROW(m.set_base_precision(WeightPrecision::BF16), InternalError);  // after full fine-tuning
  }
}

// Logits through forward_logits (a plain gemm with wte) and greedy generation agree in bf16 mode, as
// in fp32 mode: the LM head's bf16 path and the gemm's bf16 path compute the same products.
TEST(Bf16Base, LogitsAndLossConsistent) {
  auto be = backend_create_cpu();
  LoraConfig lc;
  lc.r = 4, lc.alpha = 8, lc.dropout = 0;
  lc.target_modules = {"c_attn"};
  Gpt2Model m(*be, gpt2_init_preset(gpt2_config_preset("tiny", 259), 5), lc, OptimConfig{}, 5);
  m.set_base_precision(WeightPrecision::BF16);
  mira_test::RandomBatch sb(2, 16, 259, 41);
  std::vector<float> logits((size_t)(2 * 16 * 259));
  m.forward_logits(sb.b, logits.data());
  double sum = 0;
  for (int64_t i = 0; i < 2 * 16; ++i) {
    const float* l = logits.data() + i * 259;
    double mx = -1e300, z = 0;
    for (int64_t j = 0; j < 259; ++j) mx = std::max(mx, (double)l[j]);
    for (int64_t j = 0; j < 259; ++j) z += std::exp((double)l[j] - mx);
    sum += sb.mask[(size_t)i] * (mx + std::log(z) - l[sb.tgt[(size_t)i]]);
  }
  const LossSum ls = m.eval_loss(sb.b);
  EXPECT_NEAR(ls.sum, sum, 1e-5 * std::fabs(sum));  // the same bf16 logits, fp32 softmax vs double
}
