// GPT-2 base weights on the host: the parameter table (HF names without the "transformer." prefix,
// HF Conv1D layouts [in, out]) with offsets into one flat float32 buffer, filled either from a
// Hugging Face folder (config.json + model.safetensors) or by GPT-2 initialisation from the seed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/gpt2_config.h"

namespace mira {

struct ParamInfo {
  std::string name;            // e.g. "h.3.attn.c_attn.weight"
  std::vector<int64_t> shape;  // HF shape, e.g. (C, 3C)
  int64_t offset = 0;          // into the flat buffer
  int64_t numel = 0;
};

// Order: wte, wpe, then per layer ln_1.{weight,bias}, attn.c_attn.{weight,bias},
// attn.c_proj.{weight,bias}, ln_2.{weight,bias}, mlp.c_fc.{weight,bias}, mlp.c_proj.{weight,bias},
// then ln_f.{weight,bias}.
std::vector<ParamInfo> gpt2_param_table(const Gpt2Config& cfg);
int64_t gpt2_param_count(const Gpt2Config& cfg);

struct Gpt2HostModel {
  Gpt2Config config;
  std::vector<ParamInfo> table;
  std::vector<float> weights;  // flat, gpt2_param_count(config) floats
};

// Loads <dir>/config.json and <dir>/model.safetensors (F32/F16/BF16 converted to float32). Names may
// carry the "transformer." prefix; attn.bias / attn.masked_bias buffers are ignored; lm_head.weight
// is accepted only if it equals wte. UserError (naming file and tensor) for a missing tensor, a wrong
// shape, an unsupported dtype or a malformed/truncated file.
Gpt2HostModel gpt2_load_hf(const std::string& dir);

// Writes <dir>/config.json and <dir>/model.safetensors (F32, "transformer."-prefixed HF names, LM
// head tied) so that transformers' GPT2LMHeadModel.from_pretrained(dir) and gpt2_load_hf read it;
// config.json keeps the model's layer_norm_epsilon, n_inner and dropout rates (embd/attn/resid_pdrop).
// dir must exist. Used by `pretrain` to save the demo's base model.
void gpt2_save_hf(const std::string& dir, const Gpt2HostModel& model);

// GPT-2 initialisation (HF GPT2PreTrainedModel._init_weights) from Rng(seed, MODEL_INIT, tensor index):
// weights and embeddings normal(0, 0.02), attn.c_proj/mlp.c_proj weights normal(0, 0.02/sqrt(2L)),
// biases 0, LayerNorm weight 1 and bias 0.
Gpt2HostModel gpt2_init_preset(const Gpt2Config& cfg, uint64_t seed);

}  // namespace mira
