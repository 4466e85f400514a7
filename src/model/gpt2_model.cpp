// GPT-2 forward, LoRA-only backward, clipping and Adam/AdamW on a Backend (see gpt2_model.h).
// Block (pre-LayerNorm, HF GPT2Block):  a = x + c_proj(attn(c_attn(ln_1(x))))
//                                       y = a + mlp.c_proj(gelu(mlp.c_fc(ln_2(a))))
// Head: logits = ln_f(h) wte^T (tied), fused with the cross-entropy in the backend.
#include "model/gpt2_model.h"

#include <algorithm>
#include <cmath>

#include "runtime/error.h"
#include "runtime/rng.h"

namespace mira {

struct Gpt2Model::Layer {
  DFloat ln1_w, ln1_b, attn_w, attn_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, fcproj_w, fcproj_b;
};

// Views into one activation arena, sized for cap_bt_ = B*T rows, cap_att_ floats of attention saved
// state per layer and cap_att_scratch_ floats of attention scratch (both from the backend's
// queries); a smaller batch uses prefixes of each view. The DAct views (the activations the base
// GEMMs read, the attention output and the c_fc output) live in a second, bf16 arena when the base
// weights are bf16 (bf16_activations()), else in the fp32 one.
struct Gpt2Model::Acts {
  struct PerLayer {
    DAct ln1;                        // (N, C)
    DFloat ln1_mean, ln1_rstd;       // (N), (N)
    DFloat qkv;                      // (N, 3C); one buffer for all layers when the backend's attention
                                     // backward does not read it (Backend::attention_backward_reads_qkv)
    DFloat att;                      // attention saved state (Backend::attention_saved_floats)
    DAct atty;                       // (N, C) attention output before c_proj
    DFloat resid_mid;                // (N, C) x + attention branch
    DAct ln2;                        // (N, C)
    DFloat ln2_mean, ln2_rstd;       // (N), (N)
    DAct fc;                         // (N, F) c_fc output (GELU's input)
    DFloat u[LORA_MODULE_COUNT];     // (N, r) LoRA intermediate dropout(x) A^T
    // The LoRA-input dropout's packed keep mask of each LoRA module (dropout_mask_words(N * in)
    // words, only with LoRA dropout): made by the forward, read by the fused LoRA ops of the forward
    // and the backward (Backend::lora_down etc.), 1 bit per input element instead of a dropped copy.
    DInt mask[LORA_MODULE_COUNT];
  };
  std::vector<DFloat> resid;  // L+1 of (N, C): input of each layer, then the final hidden state
  std::vector<PerLayer> layer;
  DFloat lnf, lnf_mean, lnf_rstd;  // (N, C), (N), (N)
  DFloat tmp;                      // (N, C) branch output before the residual add
  // (N, F) gelu(fc) of the layer at hand: written by the forward for mlp.c_proj, recomputed by the
  // backward from the layer's saved fc when mlp.c_proj's input is needed there (its LoRA gA, or
  // full fine-tuning). Not kept per layer: the same bits again, 4C of each layer's ~17C floats.
  DAct fc_gelu;
  DFloat weight, loss_rows;        // (N) loss weight mask/sum(mask), CE per row
  // backward
  DFloat dres, dtmp;  // (N, C)
  DFloat dbranch;     // (N, C) residual gradient through a branch's dropout mask
  DFloat dqkv;        // (N, 3C)
  DFloat datty;       // (N, C)
  DFloat dfc;         // (N, F)
  DFloat du;          // (N, r)
  DFloat datt;        // attention scratch (Backend::attention_scratch_floats)
  DFloat ce_scratch;  // lm_head_ce scratch
};

namespace {
double mask_value(const BatchView& b, int64_t i) {
  return b.loss_mask ? (double)b.loss_mask[i] : (double)b.loss_mask_u8[i];
}
}  // namespace

Gpt2Model::Gpt2Model(Backend& backend, const Gpt2HostModel& host, const LoraConfig& lora, const OptimConfig& optim,
                     uint64_t seed)
    : be_(backend), cfg_(host.config), lora_(lora), optim_(optim), seed_(seed) {
  gpt2_config_validate(cfg_);
  layout_ = lora_layout(cfg_, lora_);
  for (LoraModule m : layout_.modules) lora_on_[(int)m] = true;
  MIRA_CHECK((int64_t)host.weights.size() == gpt2_param_count(cfg_), "host weights do not match the config");
  weights_ = be_.alloc_f32((int64_t)host.weights.size());
  be_.upload(weights_, host.weights.data());
  table_ = host.table;
  wte_ = weights_.slice(table_[0].offset, table_[0].numel);
  wpe_ = weights_.slice(table_[1].offset, table_[1].numel);
  const ParamInfo& lw = table_[table_.size() - 2];
  const ParamInfo& lb = table_[table_.size() - 1];
  MIRA_CHECK(lw.name == "ln_f.weight" && lb.name == "ln_f.bias", "unexpected parameter table order");
  lnf_w_ = weights_.slice(lw.offset, lw.numel);
  lnf_b_ = weights_.slice(lb.offset, lb.numel);
  for (int64_t l = 0; l < cfg_.n_layer; ++l) layers_.push_back(layer_views(weights_, l));
  adapter_ = be_.alloc_f32(layout_.total);
  grad_ = be_.alloc_f32(layout_.total);
  adam_m_ = be_.alloc_f32(layout_.total);
  adam_v_ = be_.alloc_f32(layout_.total);
  std::vector<float> init((size_t)layout_.total);
  initial_adapter(init.data());
  be_.upload(adapter_, init.data());
}

// Views of layer l's tensors inside a flat buffer laid out like the weights (weights or gradients).
Gpt2Model::Layer Gpt2Model::layer_views(DFloat base, int64_t l) const {
  const size_t first = 2 + (size_t)l * 12;  // wte, wpe, then 12 tensors per layer (gpt2_param_table)
  DFloat v[12];
  for (size_t i = 0; i < 12; ++i) v[i] = base.slice(table_[first + i].offset, table_[first + i].numel);
  MIRA_CHECK(table_[first].name == "h." + std::to_string(l) + ".ln_1.weight", "unexpected parameter table order");
  Layer L;
  L.ln1_w = v[0], L.ln1_b = v[1], L.attn_w = v[2], L.attn_b = v[3], L.proj_w = v[4], L.proj_b = v[5];
  L.ln2_w = v[6], L.ln2_b = v[7], L.fc_w = v[8], L.fc_b = v[9], L.fcproj_w = v[10], L.fcproj_b = v[11];
  return L;
}

Gpt2Model::~Gpt2Model() {
  if (!wgrad_.empty()) {
    be_.release(wgrad_);
    be_.release(wm_);
    be_.release(wv_);
  }
  be_.release(weights_);
  be_.release(adapter_);
  be_.release(grad_);
  be_.release(adam_m_);
  be_.release(adam_v_);
  release_activations();
}

void Gpt2Model::release_activations() {
  if (!act_arena_.empty()) be_.release(act_arena_);
  if (!act16_arena_.empty()) be_.release(act16_arena_);
  if (!mask_arena_.empty()) be_.release(mask_arena_);
  if (!ids_.empty()) be_.release(ids_);
  if (!tgt_.empty()) be_.release(tgt_);
  act_arena_ = DFloat(), act16_arena_ = DBf16(), mask_arena_ = DInt(), ids_ = DInt(), tgt_ = DInt();
  cap_bt_ = cap_att_ = cap_att_scratch_ = 0;
  acts_.reset();
}

void Gpt2Model::initial_adapter(float* host_flat) const { lora_init_adapter(layout_, seed_, host_flat); }
void Gpt2Model::set_adapter(const float* host_flat) { be_.upload(adapter_, host_flat); }
void Gpt2Model::get_adapter(float* host_flat) { be_.download(host_flat, adapter_); }
void Gpt2Model::get_gradient(float* host_flat) { be_.download(host_flat, grad_); }

void Gpt2Model::reset_optimizer() {
  be_.zero(adam_m_);
  be_.zero(adam_v_);
  adam_step_ = 0;
}

void Gpt2Model::get_optimizer_state(float* m, float* v, int64_t* step) {
  be_.download(m, adam_m_);
  be_.download(v, adam_v_);
  *step = adam_step_;
}

void Gpt2Model::set_optimizer_state(const float* m, const float* v, int64_t step) {
  be_.upload(adam_m_, m);
  be_.upload(adam_v_, v);
  adam_step_ = step;
}

void Gpt2Model::ensure_activations(int64_t b, int64_t t) {
  // The attention sizes are compared with their own capacities (they are functions of b and t, not
  // of b * t alone), so any shape sequence keeps every view large enough.
  const int64_t n = b * t, att = be_.attention_saved_floats(b, t, cfg_.n_embd, cfg_.n_head, attention_precision()),
                att_scratch = be_.attention_scratch_floats(b, t, cfg_.n_embd, cfg_.n_head);
  MIRA_CHECK(att >= 0 && att_scratch >= 0, "backend returned a negative attention size");
  if (n <= cap_bt_ && att <= cap_att_ && att_scratch <= cap_att_scratch_) return;
  const int64_t keep_bt = std::max(cap_bt_, n), keep_att = std::max(cap_att_, att),
                keep_att_scratch = std::max(cap_att_scratch_, att_scratch);
  release_activations();
  cap_bt_ = keep_bt, cap_att_ = keep_att, cap_att_scratch_ = keep_att_scratch;
  const int64_t N = cap_bt_, A = cap_att_, AS = cap_att_scratch_, C = cfg_.n_embd, F = cfg_.n_inner, L = cfg_.n_layer;
  const int64_t r = lora_.r;
  const bool drop = lora_.dropout > 0;
  // Two passes: count, then slice. Every view starts on a 64-byte boundary (16 floats): vectorised
  // kernels and the bf16 attention state (16-byte copies) need aligned starts.
  int64_t total = 0, total16 = 0;
  bool slicing = false;
  auto take = [&](DFloat& v, int64_t count) {
    total = (total + 15) / 16 * 16;
    if (slicing) v = act_arena_.slice(total, count);
    total += count;
  };
  const bool bf16 = bf16_activations();
  auto take_act = [&](DAct& v, int64_t count) {
    if (!bf16) {
      DFloat f;
      take(f, count);
      v = f;
      return;
    }
    total16 = (total16 + 31) / 32 * 32;  // 64 bytes
    if (slicing) v = act16_arena_.slice(total16, count);
    total16 += count;
  };
  // A backend whose attention backward does not read qkv (it keeps its own copy in att) lets the
  // layers share one qkv buffer instead of keeping one each.
  const bool shared_qkv = !be_.attention_backward_reads_qkv(attention_precision());
  acts_ = std::make_unique<Acts>();
  Acts& a = *acts_;
  a.resid.resize((size_t)L + 1);
  a.layer.resize((size_t)L);
  for (int pass = 0; pass < 2; ++pass) {
    total = total16 = 0;
    slicing = pass == 1;
    for (auto& rr : a.resid) take(rr, N * C);
    if (shared_qkv) take(a.layer[0].qkv, N * 3 * C);
    for (auto& pl : a.layer) {
      take_act(pl.ln1, N * C), take(pl.ln1_mean, N), take(pl.ln1_rstd, N);
      if (shared_qkv)
        pl.qkv = a.layer[0].qkv;
      else
        take(pl.qkv, N * 3 * C);
      take(pl.att, A), take_act(pl.atty, N * C), take(pl.resid_mid, N * C);
      take_act(pl.ln2, N * C), take(pl.ln2_mean, N), take(pl.ln2_rstd, N);
      take_act(pl.fc, N * F);
      for (LoraModule m : layout_.modules) take(pl.u[(int)m], N * r);
    }
    take(a.lnf, N * C), take(a.lnf_mean, N), take(a.lnf_rstd, N), take(a.tmp, N * C), take_act(a.fc_gelu, N * F);
    take(a.weight, N), take(a.loss_rows, N);
    take(a.dres, N * C), take(a.dtmp, N * C), take(a.dbranch, N * C), take(a.dqkv, N * 3 * C);
    take(a.datty, N * C), take(a.dfc, N * F);
    take(a.du, N * r), take(a.datt, AS);
    take(a.ce_scratch, be_.lm_head_ce_scratch(C, cfg_.vocab_size));
    if (pass == 0) {
      act_arena_ = be_.alloc_f32(total);
      if (bf16) act16_arena_ = be_.alloc_bf16(total16);
    }
  }
  if (drop) {  // the LoRA dropout masks, in their own (int) arena
    int64_t words = 0;
    for (int pass = 0; pass < 2; ++pass) {
      words = 0;
      for (auto& pl : a.layer)
        for (LoraModule m : layout_.modules) {
          const int64_t w = dropout_mask_words(N * layout_.find(m, false)->cols);  // lora_A: (r, in)
          if (pass == 1) pl.mask[(int)m] = mask_arena_.slice(words, w);
          words += w;
        }
      if (pass == 0) mask_arena_ = be_.alloc_i32(words);
    }
  }
  ids_ = be_.alloc_i32(N);
  tgt_ = be_.alloc_i32(N);
  host_weight_.assign((size_t)N, 0.0f);
  host_loss_.assign((size_t)N, 0.0f);
  host_mask_.assign((size_t)N, 0.0);
}

void Gpt2Model::upload_batch(const BatchView& batch, bool need_targets) {
  const int64_t B = batch.B, T = batch.T, N = B * T;
  if (B <= 0 || T <= 0)
    throw UserError("batch shape must be positive, got B=" + std::to_string(B) + " T=" + std::to_string(T));
  if (T > cfg_.n_positions)
    throw UserError("sequence length " + std::to_string(T) + " exceeds the model's n_positions " +
                    std::to_string(cfg_.n_positions) + " (" + cfg_.source + ")");
  ensure_activations(B, T);
  auto check_ids = [&](const int32_t* ids, const char* what) {
    for (int64_t i = 0; i < N; ++i)
      if (ids[i] < 0 || ids[i] >= cfg_.vocab_size)
        throw UserError(std::string(what) + " token id " + std::to_string(ids[i]) + " at (" + std::to_string(i / T) +
                        ", " + std::to_string(i % T) + ") is outside the vocabulary [0, " +
                        std::to_string(cfg_.vocab_size) + ")");
  };
  check_ids(batch.inputs, "input");
  be_.upload(ids_.slice(0, N), batch.inputs);
  if (!need_targets) return;
  MIRA_CHECK(batch.targets && (batch.loss_mask || batch.loss_mask_u8), "batch needs targets and a loss mask");
  check_ids(batch.targets, "target");
  be_.upload(tgt_.slice(0, N), batch.targets);
  weight_sum_ = 0;
  for (int64_t i = 0; i < N; ++i) {
    host_mask_[(size_t)i] = mask_value(batch, i);
    weight_sum_ += host_mask_[(size_t)i];
  }
  for (int64_t i = 0; i < N; ++i)
    host_weight_[(size_t)i] = weight_sum_ > 0 ? (float)(mask_value(batch, i) / weight_sum_) : 0.0f;
  be_.upload(acts_->weight.slice(0, N), host_weight_.data());
}

uint64_t Gpt2Model::dropout_stream(const StepContext& ctx) const {
  return rng_stream(seed_, RngPurpose::LORA_DROPOUT, (uint64_t)ctx.client, (uint64_t)ctx.step);
}

namespace {
// Index base of the dropout mask of (layer, module) inside the step's stream: 2^40 elements each.
uint64_t dropout_base(int64_t layer, LoraModule m) { return ((uint64_t)layer * LORA_MODULE_COUNT + (uint64_t)m) << 40; }
// Base-model dropout sites (index spaces of 2^40 inside the BASE_DROPOUT stream of the step).
constexpr int SITE_EMBD = 0, SITE_ATTN = 1, SITE_RESID_ATTN = 2, SITE_RESID_MLP = 3;
}  // namespace

void Gpt2Model::set_base_dropout(const BaseDropout& d) {
  for (double p : {d.embd, d.attn, d.resid})
    if (!(p >= 0 && p < 1)) throw UserError("base-model dropout probabilities must be in [0, 1)");
  base_drop_ = d;
}

void Gpt2Model::set_base_precision(WeightPrecision p) {
  if (p == base_precision_) return;
  MIRA_CHECK(base_precision_ == WeightPrecision::FP32,
             "set_base_precision: bf16 base weights are already rounded; they cannot go back to fp32");
  MIRA_CHECK(wgrad_.empty(), "set_base_precision: bf16 after full fine-tuning (its weights are trained)");
  // The GEMM weights and the embeddings; LayerNorm parameters and biases (0.1% of GPT-2) stay fp32.
  be_.freeze_weights(wte_, p);
  be_.freeze_weights(wpe_, p);
  for (const Layer& L : layers_)
    for (DFloat w : {L.attn_w, L.proj_w, L.fc_w, L.fcproj_w}) be_.freeze_weights(w, p);
  base_precision_ = p;
  release_activations();  // sized again for bf16 activations and the bf16 attention state
}

DropoutSite Gpt2Model::base_site(double p, bool dropout, const StepContext& ctx, int64_t layer, int site) const {
  DropoutSite s;
  if (!dropout || p <= 0) return s;
  s.p = (float)p;
  s.stream = rng_stream(seed_, RngPurpose::BASE_DROPOUT, (uint64_t)ctx.client, (uint64_t)ctx.step);
  s.base = ((uint64_t)layer * 4 + (uint64_t)site) << 40;
  return s;
}

// y (n, out) = x W + bias [+ scale * dropout(x) A^T B^T]: u = dropout(x) A^T first (the dropout
// fused as a packed keep mask, kept for the backward), then the base product, the bias and the LoRA
// term s u B^T in one backend op (alpha/r folded into the product's scale; the CPU backend makes it
// one pass over y).
void Gpt2Model::linear_forward(DAct y, DAct x, DFloat w, DFloat bias, int64_t n, int64_t in, int64_t out,
                               int64_t layer, LoraModule m, bool dropout, const StepContext& ctx) {
  if (!lora_on_[(int)m]) {
    be_.linear_forward(y, x, w, bias, DFloat(), DFloat(), 0.0f, n, in, out, 0);
    return;
  }
  const int64_t r = lora_.r;
  const AdapterBlock* ab = layout_.find(m, false);
  const AdapterBlock* bb = layout_.find(m, true);
  DFloat A = adapter_.slice(ab->layer_offset(layer), r * in);   // (r, in)
  DFloat Bm = adapter_.slice(bb->layer_offset(layer), out * r); // (out, r)
  Acts::PerLayer& pl = acts_->layer[(size_t)layer];
  const DropoutMask mask = lora_mask(layer, m, n * in, dropout);
  if (!mask.bits.empty())
    be_.dropout_mask(mask.bits, n * in, mask.p, dropout_stream(ctx), dropout_base(layer, m));
  DFloat u = pl.u[(int)m];
  be_.lora_down(u, x, A, mask, n, in, r);                                          // u = dropout(x) A^T (n, r)
  be_.linear_forward(y, x, w, bias, u, Bm, (float)layout_.scale, n, in, out, r);  // y = x W + bias + s u B^T
}

// The LoRA-input dropout mask of (layer, module) for n_in input elements (empty without dropout).
DropoutMask Gpt2Model::lora_mask(int64_t layer, LoraModule m, int64_t n_in, bool dropout) const {
  if (!dropout || lora_.dropout <= 0) return DropoutMask{};
  return DropoutMask{acts_->layer[(size_t)layer].mask[(int)m].slice(0, dropout_mask_words(n_in)),
                     (float)lora_.dropout};
}

// dx (n, in) = dy W^T [+ LoRA path]; LoRA gradients written into grad_ (A: (r, in), B: (out, r)).
void Gpt2Model::linear_backward(DFloat dx, DFloat dy, DAct x, DFloat w, DFloat gw, DFloat gb, int64_t n, int64_t in,
                                int64_t out, int64_t layer, LoraModule m, bool dropout, bool need_dx) {
  if (need_dx) be_.gemm(false, true, n, in, out, 1.0f, dy, out, w, out, 0.0f, dx, in);
  if (!gw.empty()) {  // full fine-tuning: gW (in, out) += x^T dy, gb (out) += column sums of dy
    be_.gemm(true, false, in, out, n, 1.0f, x.f32(), in, dy, out, 1.0f, gw, out);  // fp32 (bf16 refuses full FT)
    be_.colsum_accumulate(gb, dy, n, out);
  }
  if (!lora_on_[(int)m]) return;
  const int64_t r = lora_.r;
  const float s = (float)layout_.scale;
  const AdapterBlock* ab = layout_.find(m, false);
  const AdapterBlock* bb = layout_.find(m, true);
  DFloat A = adapter_.slice(ab->layer_offset(layer), r * in);
  DFloat Bm = adapter_.slice(bb->layer_offset(layer), out * r);
  DFloat gA = grad_.slice(ab->layer_offset(layer), r * in);
  DFloat gB = grad_.slice(bb->layer_offset(layer), out * r);
  Acts::PerLayer& pl = acts_->layer[(size_t)layer];
  const DropoutMask mask = lora_mask(layer, m, n * in, dropout);
  DFloat u = pl.u[(int)m];
  DFloat du = acts_->du;
  be_.gemm(true, false, out, r, n, s, dy, out, u, r, 0.0f, gB, r);    // gB = s dy^T u   (out, r)
  be_.gemm(false, false, n, r, out, s, dy, out, Bm, r, 0.0f, du, r);  // du = s dy B     (n, r)
  be_.lora_down_grad(gA, du, x, mask, n, in, r);                      // gA = du^T dropout(x)  (r, in)
  if (need_dx) be_.lora_input_grad(dx, du, A, mask, n, in, r);        // dx += dropout(du A)
}

void Gpt2Model::forward(int64_t b, int64_t t, bool dropout, const StepContext& ctx) {
  Acts& a = *acts_;
  const int64_t N = b * t, C = cfg_.n_embd, F = cfg_.n_inner, H = cfg_.n_head;
  const double eps = cfg_.layer_norm_epsilon;
  be_.embedding_forward(a.resid[0], ids_, wte_, wpe_, b, t, C);
  const DropoutSite de = base_site(base_drop_.embd, dropout, ctx, 0, SITE_EMBD);
  if (de.p > 0) be_.dropout(a.resid[0].slice(0, N * C), a.resid[0].slice(0, N * C), de.p, de.stream, de.base, false);
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    const DropoutSite da = base_site(base_drop_.attn, dropout, ctx, l, SITE_ATTN);
    const DropoutSite dr1 = base_site(base_drop_.resid, dropout, ctx, l, SITE_RESID_ATTN);
    const DropoutSite dr2 = base_site(base_drop_.resid, dropout, ctx, l, SITE_RESID_MLP);
    const Layer& W = layers_[(size_t)l];
    Acts::PerLayer& p = a.layer[(size_t)l];
    DFloat x = a.resid[(size_t)l].slice(0, N * C);
    // ln_1 of layer 0 here; of later layers fused into the previous layer's last residual add.
    if (l == 0) be_.layernorm_forward(p.ln1, p.ln1_mean, p.ln1_rstd, x, W.ln1_w, W.ln1_b, N, C, eps);
    linear_forward(p.qkv, p.ln1, W.attn_w, W.attn_b, N, C, 3 * C, l, LoraModule::C_ATTN, dropout, ctx);
    be_.attention_forward(p.atty, p.att, p.qkv, b, t, C, H, a.datt, da, attention_precision());
    linear_forward(a.tmp, p.atty, W.proj_w, W.proj_b, N, C, C, l, LoraModule::ATTN_C_PROJ, dropout, ctx);
    if (dr1.p > 0) be_.dropout(a.tmp.slice(0, N * C), a.tmp.slice(0, N * C), dr1.p, dr1.stream, dr1.base, false);
    be_.residual_layernorm_forward(p.resid_mid.slice(0, N * C), p.ln2, p.ln2_mean, p.ln2_rstd, x,
                                   a.tmp.slice(0, N * C), W.ln2_w, W.ln2_b, N, C, eps);
    linear_forward(p.fc, p.ln2, W.fc_w, W.fc_b, N, C, F, l, LoraModule::MLP_C_FC, dropout, ctx);
    be_.gelu_forward(a.fc_gelu.slice(0, N * F), p.fc.slice(0, N * F), N * F);
    linear_forward(a.tmp, a.fc_gelu, W.fcproj_w, W.fcproj_b, N, F, C, l, LoraModule::MLP_C_PROJ, dropout, ctx);
    if (dr2.p > 0) be_.dropout(a.tmp.slice(0, N * C), a.tmp.slice(0, N * C), dr2.p, dr2.stream, dr2.base, false);
    // resid[l + 1] = resid_mid + mlp output, with the next LayerNorm (ln_1 of layer l + 1, or ln_f).
    DFloat next = a.resid[(size_t)l + 1].slice(0, N * C);
    if (l + 1 < cfg_.n_layer) {
      Acts::PerLayer& q = a.layer[(size_t)l + 1];
      const Layer& V = layers_[(size_t)l + 1];
      be_.residual_layernorm_forward(next, q.ln1, q.ln1_mean, q.ln1_rstd, p.resid_mid.slice(0, N * C),
                                     a.tmp.slice(0, N * C), V.ln1_w, V.ln1_b, N, C, eps);
    } else {
      be_.residual_layernorm_forward(next, a.lnf, a.lnf_mean, a.lnf_rstd, p.resid_mid.slice(0, N * C),
                                     a.tmp.slice(0, N * C), lnf_w_, lnf_b_, N, C, eps);
    }
  }
}

void Gpt2Model::backward(int64_t b, int64_t t, bool dropout, const StepContext& ctx, bool full) {
  Acts& a = *acts_;
  const int64_t N = b * t, C = cfg_.n_embd, F = cfg_.n_inner, H = cfg_.n_head;
  const size_t nt = table_.size();
  DFloat g_lnf_w = full ? wgrad_.slice(table_[nt - 2].offset, C) : DFloat();
  DFloat g_lnf_b = full ? wgrad_.slice(table_[nt - 1].offset, C) : DFloat();
  // a.dtmp holds d loss / d lnf (from the fused head); into the residual stream:
  DFloat dres = a.dres.slice(0, N * C);
  be_.zero(dres);
  be_.layernorm_backward(dres, g_lnf_w, g_lnf_b, a.dtmp, a.resid[(size_t)cfg_.n_layer], lnf_w_, a.lnf_mean,
                         a.lnf_rstd, N, C);
  for (int64_t l = cfg_.n_layer - 1; l >= 0; --l) {
    const Layer& W = layers_[(size_t)l];
    const Layer G = full ? layer_views(wgrad_, l) : Layer{};
    Acts::PerLayer& p = a.layer[(size_t)l];
    const DropoutSite da = base_site(base_drop_.attn, dropout, ctx, l, SITE_ATTN);
    const DropoutSite dr1 = base_site(base_drop_.resid, dropout, ctx, l, SITE_RESID_ATTN);
    const DropoutSite dr2 = base_site(base_drop_.resid, dropout, ctx, l, SITE_RESID_MLP);
    // The gradient reaching a branch passes its resid dropout mask (when on).
    auto branch_grad = [&](const DropoutSite& d) {
      if (d.p <= 0) return dres;
      DFloat g = a.dbranch.slice(0, N * C);
      be_.dropout(g, dres, d.p, d.stream, d.base, false);
      return g;
    };
    // MLP branch: resid[l+1] = resid_mid + drop(c_proj(gelu(c_fc(ln_2(resid_mid)))))
    if (full || lora_on_[(int)LoraModule::MLP_C_PROJ])  // its input, recomputed (Acts::fc_gelu)
      be_.gelu_forward(a.fc_gelu.slice(0, N * F), p.fc.slice(0, N * F), N * F);
    linear_backward(a.dfc, branch_grad(dr2), a.fc_gelu, W.fcproj_w, G.fcproj_w, G.fcproj_b, N, F, C, l,
                    LoraModule::MLP_C_PROJ, dropout, true);
    be_.gelu_backward(a.dfc.slice(0, N * F), a.dfc.slice(0, N * F), p.fc.slice(0, N * F), N * F);
    linear_backward(a.dtmp, a.dfc, p.ln2, W.fc_w, G.fc_w, G.fc_b, N, C, F, l, LoraModule::MLP_C_FC, dropout, true);
    be_.layernorm_backward(dres, G.ln2_w, G.ln2_b, a.dtmp, p.resid_mid, W.ln2_w, p.ln2_mean, p.ln2_rstd, N, C);
    // Attention branch: resid_mid = resid[l] + drop(c_proj(attn(c_attn(ln_1(resid[l])))))
    linear_backward(a.datty, branch_grad(dr1), p.atty, W.proj_w, G.proj_w, G.proj_b, N, C, C, l,
                    LoraModule::ATTN_C_PROJ, dropout, true);
    be_.attention_backward(a.dqkv, a.datt, a.datty, p.qkv, p.atty, p.att, b, t, C, H, da, attention_precision());
    // Below layer 0's c_attn only the embeddings remain: LoRA training gives them no gradient.
    const bool need_dx = l > 0 || full;
    linear_backward(a.dtmp, a.dqkv, p.ln1, W.attn_w, G.attn_w, G.attn_b, N, C, 3 * C, l, LoraModule::C_ATTN, dropout,
                    need_dx);
    if (need_dx)
      be_.layernorm_backward(dres, G.ln1_w, G.ln1_b, a.dtmp, a.resid[(size_t)l], W.ln1_w, p.ln1_mean, p.ln1_rstd, N,
                             C);
  }
  const DropoutSite de = base_site(base_drop_.embd, dropout, ctx, 0, SITE_EMBD);
  if (full && de.p > 0) be_.dropout(dres, dres, de.p, de.stream, de.base, false);
  if (full)  // the tied wte gets the embedding's scatter-add on top of the LM head's gradient
    be_.embedding_backward(wgrad_.slice(table_[0].offset, table_[0].numel),
                           wgrad_.slice(table_[1].offset, table_[1].numel), dres, ids_, b, t, C);
}

double Gpt2Model::loss_from_rows(int64_t n) {
  be_.download(host_loss_.data(), acts_->loss_rows.slice(0, n));
  double s = 0;  // sum(mask * CE), sequential over rows: a fixed order
  for (int64_t i = 0; i < n; ++i) s += host_mask_[(size_t)i] * (double)host_loss_[(size_t)i];
  return s;
}

double Gpt2Model::gradient_pass(const BatchView& batch, const StepContext& ctx, bool dropout, bool full) {
  upload_batch(batch, true);
  const int64_t N = batch.B * batch.T, C = cfg_.n_embd;
  forward(batch.B, batch.T, dropout, ctx);
  be_.zero(grad_);
  if (full) be_.zero(wgrad_);
  if (weight_sum_ <= 0) return 0.0;  // nothing counted: zero loss and gradient
  Acts& a = *acts_;
  be_.lm_head_ce(a.loss_rows, a.dtmp.slice(0, N * C), full ? wgrad_.slice(0, table_[0].numel) : DFloat(), a.lnf, wte_,
                 tgt_, a.weight, N, C, cfg_.vocab_size, a.ce_scratch);
  const double loss = loss_from_rows(N) / weight_sum_;
  backward(batch.B, batch.T, dropout, ctx, full);
  return loss;
}

double Gpt2Model::compute_gradient(const BatchView& batch, const StepContext& ctx, bool dropout) {
  return gradient_pass(batch, ctx, dropout, false);
}

double Gpt2Model::full_train_step(const BatchView& batch, const StepContext& ctx) {
  if (base_precision_ != WeightPrecision::FP32)
    throw UserError(std::string("full fine-tuning trains the base weights, but they are frozen in ") +
                    weight_precision_name(base_precision_) + " (model.base_precision): use fp32");
  if (wgrad_.empty()) {
    wgrad_ = be_.alloc_f32(weights_.size());
    wm_ = be_.alloc_f32(weights_.size());
    wv_ = be_.alloc_f32(weights_.size());
  }
  const double loss = gradient_pass(batch, ctx, true, true);  // base dropout (if set) is active
  if (optim_.clip > 0) {  // torch.nn.utils.clip_grad_norm_ over all base parameters
    const double norm = std::sqrt(be_.sum_squares(wgrad_));
    const double coef = optim_.clip / (norm + 1e-6);
    if (coef < 1.0) be_.scale(wgrad_, (float)coef);
  }
  ++wstep_;
  const double bc1 = 1.0 - std::pow(optim_.beta1, (double)wstep_);
  const double bc2 = 1.0 - std::pow(optim_.beta2, (double)wstep_);
  be_.adam_step(weights_, wgrad_, wm_, wv_, optim_.lr, optim_.beta1, optim_.beta2, optim_.eps, optim_.weight_decay,
                optim_.kind == OptimKind::ADAMW, bc1, bc2);
  return loss;
}

void Gpt2Model::get_base_weights(float* host) { be_.download(host, weights_); }

void Gpt2Model::get_base_gradient(float* host) {
  MIRA_CHECK(!wgrad_.empty(), "no base gradient: full_train_step was never called");
  be_.download(host, wgrad_);
}

Gpt2HostModel Gpt2Model::base_model_host() {
  Gpt2HostModel h;
  h.config = cfg_;
  h.table = table_;
  h.weights.resize((size_t)weights_.size());
  get_base_weights(h.weights.data());
  return h;
}

double Gpt2Model::train_step(const BatchView& batch, const StepContext& ctx) {
  const double loss = gradient_pass(batch, ctx, true, false);
  if (optim_.clip > 0) {  // torch.nn.utils.clip_grad_norm_
    const double norm = std::sqrt(be_.sum_squares(grad_));
    const double coef = optim_.clip / (norm + 1e-6);  // torch's 1e-6 guard
    if (coef < 1.0) be_.scale(grad_, (float)coef);
  }
  ++adam_step_;
  const double bc1 = 1.0 - std::pow(optim_.beta1, (double)adam_step_);
  const double bc2 = 1.0 - std::pow(optim_.beta2, (double)adam_step_);
  be_.adam_step(adapter_, grad_, adam_m_, adam_v_, optim_.lr, optim_.beta1, optim_.beta2, optim_.eps,
                optim_.weight_decay, optim_.kind == OptimKind::ADAMW, bc1, bc2);
  return loss;
}

LossSum Gpt2Model::eval_loss(const BatchView& batch) {
  upload_batch(batch, true);
  const int64_t N = batch.B * batch.T, C = cfg_.n_embd;
  LossSum out;
  out.tokens = weight_sum_;
  if (weight_sum_ <= 0) return out;
  forward(batch.B, batch.T, false, StepContext{});
  Acts& a = *acts_;
  be_.lm_head_ce(a.loss_rows, DFloat(), DFloat(), a.lnf, wte_, tgt_, a.weight, N, C, cfg_.vocab_size, a.ce_scratch);
  out.sum = loss_from_rows(N);
  return out;
}

void Gpt2Model::forward_logits(const BatchView& batch, float* host_logits) {
  upload_batch(batch, false);
  const int64_t N = batch.B * batch.T, C = cfg_.n_embd, V = cfg_.vocab_size;
  forward(batch.B, batch.T, false, StepContext{});
  // Logits in row chunks through the CE scratch: (rows, V) = lnf wte^T.
  DFloat scratch = acts_->ce_scratch;
  const int64_t rows = std::max<int64_t>(1, scratch.size() / V);
  for (int64_t r0 = 0; r0 < N; r0 += rows) {
    const int64_t m = std::min(rows, N - r0);
    DFloat chunk = scratch.slice(0, m * V);
    be_.gemm(false, true, m, V, C, 1.0f, acts_->lnf.slice(r0 * C, m * C), C, wte_, C, 0.0f, chunk, V);
    be_.download(host_logits + r0 * V, chunk);
  }
}

std::vector<int32_t> Gpt2Model::generate_greedy(const std::vector<int32_t>& prompt, int64_t max_new, int32_t eos) {
  if (prompt.empty()) throw UserError("generation needs a non-empty prompt");
  std::vector<int32_t> seq = prompt, out;
  const int64_t C = cfg_.n_embd, V = cfg_.vocab_size;
  const int64_t limit = std::min<int64_t>((int64_t)prompt.size() + max_new, cfg_.n_positions);
  ensure_activations(1, limit);  // once for the longest sequence; shorter ones use prefixes
  std::vector<float> logits((size_t)V);
  while ((int64_t)seq.size() < limit && (int64_t)out.size() < max_new) {
    BatchView b;
    b.B = 1, b.T = (int64_t)seq.size(), b.inputs = seq.data();
    upload_batch(b, false);
    forward(1, b.T, false, StepContext{});
    DFloat chunk = acts_->ce_scratch.slice(0, V);
    be_.gemm(false, true, 1, V, C, 1.0f, acts_->lnf.slice((b.T - 1) * C, C), C, wte_, C, 0.0f, chunk, V);
    be_.download(logits.data(), chunk);
    const int32_t next = (int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(next);
    seq.push_back(next);
    if (next == eos) break;
  }
  return out;
}

}  // namespace mira
