// Model behaviour beyond the golden fixtures: thread-count invariance, presets, LoRA target
// resolution and adapter layout, dropout keyed by (client, step), masks, generation.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>

#include "model_test_util.h"
#include "runtime/error.h"
#include "runtime/rng.h"

using namespace mira;

namespace {

struct SynthBatch {  // a deterministic batch for a vocabulary of v tokens
  std::vector<int32_t> in, tgt;
  std::vector<float> mask;
  BatchView b;
  SynthBatch(int64_t B, int64_t T, int64_t v, uint64_t key) {
    Rng r(7, RngPurpose::DATA_SYNTH, key);
    std::vector<int32_t> seq((size_t)(B * (T + 1)));
    for (auto& s : seq) s = (int32_t)r.below((uint64_t)v);
    for (int64_t i = 0; i < B; ++i)
      for (int64_t t = 0; t < T; ++t) {
        in.push_back(seq[(size_t)(i * (T + 1) + t)]);
        tgt.push_back(seq[(size_t)(i * (T + 1) + t + 1)]);
        mask.push_back(t >= T / 3 && !(i == 1 && t >= T - 3) ? 1.0f : 0.0f);
      }
    b.B = B, b.T = T, b.inputs = in.data(), b.targets = tgt.data(), b.loss_mask = mask.data();
  }
};

// Three training steps with LoRA and base-model dropout; returns the losses and the final adapter.
std::pair<std::vector<double>, std::vector<float>> run_steps(int threads) {
  omp_set_num_threads(threads);
  auto be = backend_create_cpu();
  LoraConfig lc;
  lc.r = 4, lc.alpha = 8, lc.dropout = 0.1;
  lc.target_modules = {"c_attn", "c_proj", "c_fc"};
  OptimConfig oc;
  oc.kind = OptimKind::ADAMW, oc.lr = 1e-2, oc.clip = 0.5;
  Gpt2Model m(*be, gpt2_init_preset(gpt2_config_preset("tiny", 259), 5), lc, oc, 5);
  m.set_base_dropout({0.1, 0.1, 0.1});  // every dropout site active
  // A non-zero B so that every path carries gradient from the first step.
  std::vector<float> a((size_t)m.adapter_size());
  m.initial_adapter(a.data());
  for (size_t i = 0; i < a.size(); ++i) a[i] += 0.01f * (float)((i * 7919) % 13) - 0.06f;
  m.set_adapter(a.data());
  SynthBatch sb(3, 40, 259, 1);  // B*H*T = 480 attention rows, 120 CE rows: several blocks/chunks
  std::vector<double> losses;
  for (int s = 0; s < 3; ++s) losses.push_back(m.train_step(sb.b, StepContext{2, s}));
  m.get_adapter(a.data());
  omp_set_num_threads(1);
  return {losses, a};
}

TEST(Gpt2Model, ThreadCountInvariantBitwise) {
  const auto one = run_steps(1);
  const auto two = run_steps(2);
  for (size_t i = 0; i < one.first.size(); ++i) EXPECT_EQ(one.first[i], two.first[i]) << "step " << i;
  ASSERT_EQ(one.second.size(), two.second.size());
  EXPECT_EQ(0, std::memcmp(one.second.data(), two.second.data(), 4 * one.second.size()));
}

TEST(Gpt2Model, PresetsAndInit) {
  const Gpt2Config tiny = gpt2_config_preset("tiny", 259);
  EXPECT_EQ(tiny.n_layer, 2);
  EXPECT_EQ(tiny.n_inner, 256);
  const Gpt2Config big = gpt2_config_preset("gpt2-124m-shape", 50257);
  EXPECT_EQ(gpt2_param_count(big), 124439808);  // HF GPT-2 small without the tied lm_head
  EXPECT_THROW(gpt2_config_preset("gpt3", 10), UserError);
  const Gpt2HostModel a = gpt2_init_preset(tiny, 3), b = gpt2_init_preset(tiny, 3), c = gpt2_init_preset(tiny, 4);
  EXPECT_EQ(a.weights, b.weights);
  EXPECT_NE(a.weights, c.weights);
  // wte ~ N(0, 0.02): sample std within 5% (65k samples: standard error of the std is ~0.3%).
  double s2 = 0;
  const ParamInfo& wte = a.table[0];
  for (int64_t i = 0; i < wte.numel; ++i) s2 += (double)a.weights[(size_t)i] * a.weights[(size_t)i];
  EXPECT_NEAR(std::sqrt(s2 / (double)wte.numel), 0.02, 0.001);
  for (const ParamInfo& p : a.table) {
    if (p.name == "h.0.ln_1.weight") {
      EXPECT_EQ(a.weights[(size_t)p.offset], 1.0f);
    }
    if (p.name == "h.0.attn.c_attn.bias") {
      EXPECT_EQ(a.weights[(size_t)p.offset], 0.0f);
    }
  }
}

TEST(Lora, PeftSuffixMatchingAndLayout) {
  LoraConfig lc;  // paper default ["c_attn", "c_proj"]
  auto mods = lora_resolve_targets(lc);
  ASSERT_EQ(mods.size(), 3u);
  EXPECT_EQ(mods[0], LoraModule::C_ATTN);
  EXPECT_EQ(mods[1], LoraModule::ATTN_C_PROJ);
  EXPECT_EQ(mods[2], LoraModule::MLP_C_PROJ);
  lc.target_modules = {"attn.c_proj"};
  EXPECT_EQ(lora_resolve_targets(lc).size(), 1u);
  lc.target_modules = {"q_proj"};
  EXPECT_THROW(lora_resolve_targets(lc), UserError);
  lc.target_modules = {"c_attn", "c_proj"};
  lc.r = 16;
  const Gpt2Config cfg = gpt2_config_preset("gpt2-124m-shape", 50257);
  const AdapterLayout L = lora_layout(cfg, lc);
  // c_attn: A 12*16*768 + B 12*2304*16; attn.c_proj: 2 * 12*16*768; mlp.c_proj: 12*16*3072 + 12*768*16.
  EXPECT_EQ(L.total, 12 * 16 * (768 + 2304) + 2 * 12 * 16 * 768 + 12 * 16 * (3072 + 768));
  EXPECT_EQ(L.blocks[0].peft_name(3), "base_model.model.transformer.h.3.attn.c_attn.lora_A.weight");
  EXPECT_EQ(L.blocks[1].offset, 12 * 16 * 768);
  EXPECT_DOUBLE_EQ(L.scale, 0.5);
  std::vector<float> a((size_t)L.total);
  lora_init_adapter(L, 9, a.data());
  const double bound = 1.0 / std::sqrt(768.0);
  float amax = 0;
  for (int64_t i = 0; i < L.blocks[0].layers * 16 * 768; ++i) amax = std::max(amax, std::fabs(a[(size_t)i]));
  EXPECT_LE(amax, bound);
  EXPECT_GT(amax, 0.99 * bound);  // 147k uniform draws reach the bound
  for (int64_t i = L.blocks[1].offset; i < L.blocks[2].offset; ++i) ASSERT_EQ(a[(size_t)i], 0.0f);  // B = 0
}

TEST(Gpt2Model, DropoutKeyedByClientAndStepAndMasks) {
  auto be = backend_create_cpu();
  LoraConfig lc;
  lc.r = 4, lc.dropout = 0.3;
  Gpt2Model m(*be, gpt2_init_preset(gpt2_config_preset("tiny", 259), 1), lc, OptimConfig{}, 1);
  std::vector<float> a((size_t)m.adapter_size());
  m.initial_adapter(a.data());
  for (auto& x : a) x += 0.05f;  // non-zero B
  m.set_adapter(a.data());
  SynthBatch sb(2, 16, 259, 3);
  const double l00 = m.compute_gradient(sb.b, StepContext{0, 0}, true);
  const double l00b = m.compute_gradient(sb.b, StepContext{0, 0}, true);
  const double l01 = m.compute_gradient(sb.b, StepContext{0, 1}, true);
  const double l10 = m.compute_gradient(sb.b, StepContext{1, 0}, true);
  const double nod = m.compute_gradient(sb.b, StepContext{0, 0}, false);
  EXPECT_EQ(l00, l00b);
  EXPECT_NE(l00, l01);
  EXPECT_NE(l00, l10);
  EXPECT_NE(l00, nod);
  // eval_loss = no dropout; sum and count consistent; a uint8 mask gives the same numbers.
  const LossSum ls = m.eval_loss(sb.b);
  EXPECT_NEAR(ls.sum / ls.tokens, nod, 1e-12);
  std::vector<uint8_t> m8(sb.mask.begin(), sb.mask.end());
  BatchView b8 = sb.b;
  b8.loss_mask = nullptr, b8.loss_mask_u8 = m8.data();
  const LossSum ls8 = m.eval_loss(b8);
  EXPECT_EQ(ls8.sum, ls.sum);
  EXPECT_EQ(ls8.tokens, ls.tokens);
  // Right padding does not change the loss of the other tokens (causal attention).
  std::vector<int32_t> in2 = sb.in;
  in2[(size_t)(1 * 16 + 15)] = 7;  // a masked padding position of row 1
  BatchView bp = sb.b;
  bp.inputs = in2.data();
  EXPECT_EQ(m.eval_loss(bp).sum, ls.sum);
}

// Directional finite difference of the whole model: with every dropout on (LoRA and base-model,
// masks fixed by the step key), L(a + eps g) - L(a - eps g) = 2 eps ||g||^2 + O(eps^3) for the
// gradient g the backward pass returns. This checks the backward through all dropout masks, the
// LoRA paths and every layer at once, in float: eps is chosen so that the loss change (~1e-2) is
// far above float noise (~1e-6), and the O(eps^2) curvature term stays below 1%.
TEST(Gpt2Model, DirectionalDerivativeWithAllDropouts) {
  auto be = backend_create_cpu();
  LoraConfig lc;
  lc.r = 4, lc.alpha = 8, lc.dropout = 0.1;
  lc.target_modules = {"c_attn", "c_proj", "c_fc"};
  Gpt2Model m(*be, gpt2_init_preset(gpt2_config_preset("tiny", 259), 4), lc, OptimConfig{}, 4);
  m.set_base_dropout({0.1, 0.1, 0.1});
  std::vector<float> a((size_t)m.adapter_size()), g(a.size()), ap(a.size()), am(a.size());
  m.initial_adapter(a.data());
  Rng r(4, RngPurpose::DATA_SYNTH, 99);
  for (auto& x : a) x += 0.2f * (float)(r.uniform() - 0.5);  // non-zero B everywhere
  m.set_adapter(a.data());
  SynthBatch sb(2, 24, 259, 6);
  const StepContext ctx{3, 5};
  const double base = m.compute_gradient(sb.b, ctx, true);
  m.get_gradient(g.data());
  double g2 = 0;
  for (float x : g) g2 += (double)x * x;
  const double eps = 1e-2 / g2;  // loss change 2 eps ||g||^2 = 2e-2
  for (size_t i = 0; i < a.size(); ++i) ap[i] = a[i] + (float)(eps * g[i]), am[i] = a[i] - (float)(eps * g[i]);
  m.set_adapter(ap.data());
  const double lp = m.compute_gradient(sb.b, ctx, true);
  m.set_adapter(am.data());
  const double lm = m.compute_gradient(sb.b, ctx, true);
  EXPECT_NEAR((lp - lm) / (2 * eps * g2), 1.0, 0.01) << "loss " << base;
  // The masks matter: another step key gives another loss; no dropout gives another loss.
  m.set_adapter(a.data());
  EXPECT_NE(m.compute_gradient(sb.b, StepContext{3, 6}, true), base);
  EXPECT_NE(m.compute_gradient(sb.b, ctx, false), base);
  EXPECT_THROW(m.set_base_dropout({0.0, 1.0, 0.0}), UserError);
}

TEST(Gpt2Model, TrainStepReducesLossAndResetOptimizer) {
  auto be = backend_create_cpu();
  LoraConfig lc;
  lc.r = 4;
  OptimConfig oc;
  oc.lr = 1e-2;
  Gpt2Model m(*be, gpt2_init_preset(gpt2_config_preset("tiny", 259), 1), lc, oc, 1);
  SynthBatch sb(2, 16, 259, 4);
  const double first = m.train_step(sb.b, StepContext{});
  double last = first;
  for (int s = 1; s < 8; ++s) last = m.train_step(sb.b, StepContext{0, s});
  EXPECT_LT(last, first);
  std::vector<float> mm((size_t)m.adapter_size()), vv(mm.size());
  int64_t step = -1;
  m.get_optimizer_state(mm.data(), vv.data(), &step);
  EXPECT_EQ(step, 8);
  m.reset_optimizer();
  m.get_optimizer_state(mm.data(), vv.data(), &step);
  EXPECT_EQ(step, 0);
  EXPECT_EQ(mm[0], 0.0f);
}

TEST(Gpt2Model, BadBatchesRefused) {
  auto be = backend_create_cpu();
  Gpt2Model m(*be, gpt2_init_preset(gpt2_config_preset("tiny", 259), 1), LoraConfig{}, OptimConfig{}, 1);
  SynthBatch sb(1, 8, 259, 5);
  sb.in[3] = 259;
  EXPECT_THROW(m.eval_loss(sb.b), UserError);
  SynthBatch lng(1, 129, 259, 5);  // n_positions of tiny is 128
  EXPECT_THROW(m.eval_loss(lng.b), UserError);
}

TEST(Gpt2Model, GreedyGenerationMatchesArgmaxOfLogits) {
  auto be = backend_create_cpu();
  Gpt2Model m(*be, gpt2_init_preset(gpt2_config_preset("tiny", 259), 2), LoraConfig{}, OptimConfig{}, 2);
  const std::vector<int32_t> prompt = {5, 9, 200, 17};
  const auto out = m.generate_greedy(prompt, 5, -1);
  ASSERT_EQ(out.size(), 5u);
  // Each generated token is the argmax of the logits of the sequence so far.
  std::vector<int32_t> seq = prompt;
  for (int32_t tok : out) {
    std::vector<float> logits(seq.size() * 259);
    BatchView b;
    b.B = 1, b.T = (int64_t)seq.size(), b.inputs = seq.data();
    m.forward_logits(b, logits.data());
    const float* last = logits.data() + (seq.size() - 1) * 259;
    EXPECT_EQ(tok, (int32_t)(std::max_element(last, last + 259) - last));
    seq.push_back(tok);
  }
}

}  // namespace
