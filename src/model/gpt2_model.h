// GPT-2 (as Hugging Face GPT2LMHeadModel computes it) with per-client LoRA adapters on a Backend:
// one object per rank holds the frozen base weights, the activation buffers (allocated once per
// shape, reused by every step), one adapter slot with its gradient and Adam moments. Clients share
// it by swapping their adapters in and out (set_adapter / get_adapter / reset_optimizer).
// Training computes gradients for the LoRA parameters only; base weights get none.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/gpt2_config.h"
#include "model/gpt2_weights.h"
#include "model/lora.h"
#include "model/optim.h"

namespace mira {

// A view of one batch (the data module's Batch, src/data/batch.h, without ownership). Right padding;
// targets[b*T+t] is the token to predict at position t (the input shifted by one). Exactly one of
// loss_mask / loss_mask_u8 is set; 1 = counted.
// Loss = sum(mask * CE) / sum(mask) (HF labels=-100 semantics: mean over counted tokens of the batch).
struct BatchView {
  int64_t B = 0, T = 0;
  const int32_t* inputs = nullptr;        // (B*T)
  const int32_t* targets = nullptr;       // (B*T)
  const float* loss_mask = nullptr;       // (B*T)
  const uint8_t* loss_mask_u8 = nullptr;  // (B*T)
};

// Keys the LoRA dropout stream: Rng(seed, LORA_DROPOUT, client, step).
struct StepContext {
  int64_t client = 0;
  int64_t step = 0;
};

struct LossSum {
  double sum = 0;     // sum over counted tokens of mask * CE
  double tokens = 0;  // sum of the mask (the number of counted tokens for a 0/1 mask)
};

// Base-model dropout as HF applies it in training mode (embd_pdrop after the embeddings, attn_pdrop
// on the attention probabilities, resid_pdrop on each branch output before the residual add). Off
// by default; masks from Rng(seed, BASE_DROPOUT, client, step). Active in train_step /
// full_train_step / compute_gradient(dropout = true) only.
struct BaseDropout {
  double embd = 0, attn = 0, resid = 0;
};

class Gpt2Model {
 public:
  Gpt2Model(Backend& backend, const Gpt2HostModel& host, const LoraConfig& lora, const OptimConfig& optim,
            uint64_t seed);
  ~Gpt2Model();
  Gpt2Model(const Gpt2Model&) = delete;
  Gpt2Model& operator=(const Gpt2Model&) = delete;

  const Gpt2Config& config() const { return cfg_; }
  const AdapterLayout& adapter_layout() const { return layout_; }
  int64_t adapter_size() const { return layout_.total; }

  // The common initial adapter (seed only; identical for all clients).
  void initial_adapter(float* host_flat) const;
  void set_adapter(const float* host_flat);  // adapter_size() floats
  void get_adapter(float* host_flat);
  // Zeroes the Adam moments and the step count (the authors re-create Adam every round).
  void reset_optimizer();
  // Optimiser state for checkpoints: moments m, v (adapter_size() floats each) and the step count.
  void get_optimizer_state(float* m, float* v, int64_t* step);
  void set_optimizer_state(const float* m, const float* v, int64_t step);
  // The same four from BACKEND memory of adapter_size() floats each (device-resident adapter stores,
  // src/fed/device_store.h): copies within the backend, in its stream order, no host round trip.
  void set_adapter(DFloat src) { be_.copy(adapter_, src); }
  void get_adapter(DFloat dst) { be_.copy(dst, adapter_); }
  void get_optimizer_state(DFloat m, DFloat v, int64_t* step) {
    be_.copy(m, adam_m_);
    be_.copy(v, adam_v_);
    *step = adam_step_;
  }
  void set_optimizer_state(DFloat m, DFloat v, int64_t step) {
    be_.copy(adam_m_, m);
    be_.copy(adam_v_, v);
    adam_step_ = step;
  }
  void set_optim_config(const OptimConfig& o) { optim_ = o; }
  // UserError for a probability outside [0, 1). E.g. set_base_dropout({cfg.embd_pdrop,
  // cfg.attn_pdrop, cfg.resid_pdrop}) trains like HF's model.train().
  void set_base_dropout(const BaseDropout& d);
  // Storage precision of the frozen base weights (model.base_precision; Backend::freeze_weights gives
  // the exact semantics). BF16 freezes wte, wpe and every block's attn.c_attn, attn.c_proj, mlp.c_fc
  // and mlp.c_proj weight in bf16: their values are rounded to bf16 (irreversibly) and the GEMMs
  // reading them (linear layers, input gradients dy W^T, the tied LM head) take bf16 inputs with fp32
  // accumulation. LayerNorm parameters, biases, LoRA adapters, gradients and Adam state stay fp32.
  // The attention matmuls follow: BF16 gives them bf16 operands too (AttentionPrecision::BF16,
  // attention_precision()); softmax and sums stay fp32. So do the activations: with BF16 the
  // outputs of ln_1, ln_2, the attention and c_fc, and GELU's output, are stored in bf16 (each the
  // fp32 result rounded to nearest even; bf16_activations(), Backend DAct); the residual stream,
  // LayerNorm statistics, the linear layers' other outputs, gradients and every sum stay fp32.
  // FP32 (the default) changes nothing. Call it before training; BF16 then FP32 is refused
  // (InternalError), and so is BF16 after full_train_step, whose weights are trained, not frozen.
  void set_base_precision(WeightPrecision p);
  WeightPrecision base_precision() const { return base_precision_; }
  // The operand precision of the attention matmuls, from the base precision.
  AttentionPrecision attention_precision() const {
    return base_precision_ == WeightPrecision::BF16 ? AttentionPrecision::BF16 : AttentionPrecision::FP32;
  }
  bool bf16_activations() const { return base_precision_ == WeightPrecision::BF16; }

  // Forward + backward (LoRA only) + clipping + one optimiser step; returns the batch loss
  // (computed before the update). LoRA dropout is active (when configured) keyed by ctx.
  double train_step(const BatchView& batch, const StepContext& ctx);
  // Forward only, no dropout: {sum of mask * CE, sum of mask}.
  LossSum eval_loss(const BatchView& batch);
  // Forward + backward without an update; the gradient (adapter layout, before clipping) is then
  // available from get_gradient. Returns the loss. dropout: whether LoRA dropout is applied.
  double compute_gradient(const BatchView& batch, const StepContext& ctx, bool dropout);
  void get_gradient(float* host_flat);
  // Logits (B, T, V) for every position, no dropout (tests, evaluation tools).
  void forward_logits(const BatchView& batch, float* host_logits);
  // Full fine-tuning of every base weight (LayerNorms and the tied embedding included), used by
  // `pretrain`: allocates base-weight gradients and Adam moments (3 x the weights) on first use.
  // One step: forward, backward into all base weights (LoRA adapters, if any, stay frozen), clipping
  // over all base gradients, then the optimiser (optim config) on the base weights. Returns the loss.
  // Refused (UserError) on a model whose base weights are frozen in bf16 (set_base_precision).
  double full_train_step(const BatchView& batch, const StepContext& ctx);
  // The current base weights (gpt2_param_count floats, gpt2_param_table order) / their gradient after
  // full_train_step (as the optimiser used it, i.e. after clipping when clipping is on).
  void get_base_weights(float* host);
  void get_base_gradient(float* host);
  // The base model as a host copy (config + table + weights), e.g. for gpt2_save_hf.
  Gpt2HostModel base_model_host();

  // Greedy decoding of up to max_new tokens after prompt (stops after eos when eos >= 0); returns
  // the new tokens. Recomputes the prefix each step (no KV cache).
  std::vector<int32_t> generate_greedy(const std::vector<int32_t>& prompt, int64_t max_new, int32_t eos);

 private:
  struct Layer;  // weight views of one block
  struct Acts;   // activation views
  void ensure_activations(int64_t b, int64_t t);
  void release_activations();  // the arenas, ids and targets; the next step sizes them again
  void upload_batch(const BatchView& batch, bool need_targets);
  void forward(int64_t b, int64_t t, bool dropout, const StepContext& ctx);  // fills the hidden state lnf
  void backward(int64_t b, int64_t t, bool dropout, const StepContext& ctx, bool full);
  double gradient_pass(const BatchView& batch, const StepContext& ctx, bool dropout, bool full);
  Layer layer_views(DFloat base, int64_t l) const;
  void linear_forward(DAct y, DAct x, DFloat w, DFloat bias, int64_t n, int64_t in, int64_t out, int64_t layer,
                      LoraModule m, bool dropout, const StepContext& ctx);
  // gw, gb: base-weight gradients (accumulated) in full fine-tuning, empty otherwise. dropout: the
  // forward's; its LoRA dropout masks (made by linear_forward of the same step) are reused.
  void linear_backward(DFloat dx, DFloat dy, DAct x, DFloat w, DFloat gw, DFloat gb, int64_t n, int64_t in,
                       int64_t out, int64_t layer, LoraModule m, bool dropout, bool need_dx);
  DropoutMask lora_mask(int64_t layer, LoraModule m, int64_t n_in, bool dropout) const;
  double loss_from_rows(int64_t n);
  uint64_t dropout_stream(const StepContext& ctx) const;
  DropoutSite base_site(double p, bool dropout, const StepContext& ctx, int64_t layer, int site) const;

  Backend& be_;
  Gpt2Config cfg_;
  LoraConfig lora_;
  BaseDropout base_drop_;
  WeightPrecision base_precision_ = WeightPrecision::FP32;
  OptimConfig optim_;
  uint64_t seed_;
  AdapterLayout layout_;
  bool lora_on_[LORA_MODULE_COUNT] = {false, false, false, false};

  std::vector<ParamInfo> table_;
  DFloat weights_;  // all base weights (gpt2_param_table order)
  DFloat wte_, wpe_, lnf_w_, lnf_b_;
  std::vector<Layer> layers_;
  // Full fine-tuning only (empty otherwise): gradients and Adam moments of the base weights.
  DFloat wgrad_, wm_, wv_;
  int64_t wstep_ = 0;
  DFloat adapter_, grad_, adam_m_, adam_v_;  // (P) each
  int64_t adam_step_ = 0;

  std::unique_ptr<Acts> acts_;
  // Capacities of the activation arena: B*T rows, the attention's saved state per layer and its
  // scratch (floats, from Backend::attention_saved_floats / attention_scratch_floats).
  int64_t cap_bt_ = 0, cap_att_ = 0, cap_att_scratch_ = 0;
  DFloat act_arena_;
  DBf16 act16_arena_;  // the DAct views of Acts when bf16_activations()
  DInt mask_arena_;  // the LoRA dropout masks (Acts::PerLayer::mask)
  DInt ids_, tgt_;
  std::vector<float> host_weight_, host_loss_;  // (B*T) staging, sized with the activations
  std::vector<double> host_mask_;               // (B*T) the batch's mask
  double weight_sum_ = 0;
};

}  // namespace mira
