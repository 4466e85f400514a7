// GPT-2 architecture description: shapes from a Hugging Face config.json or a named preset.
// The architecture itself is the fixed composition in gpt2_model.cpp of shared backend ops
// (LayerNorm, attention, GELU, linear with LoRA, fused LM head); a LLaMA-family sibling would add
// its own description (RMSNorm, RoPE, SwiGLU) and reuse the same ops and LoRA/optimiser code.
#pragma once
#include <cstdint>
#include <string>

namespace mira {

struct Gpt2Config {
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_embd = 0;
  int64_t n_positions = 0;
  int64_t vocab_size = 0;
  int64_t n_inner = 0;              // MLP width; config.json null means 4 * n_embd
  double layer_norm_epsilon = 1e-5;
  // HF's dropout probabilities from config.json (HF default 0.1 when absent). Informational: the
  // model applies base-model dropout only when asked (Gpt2Model::set_base_dropout), off by default.
  double embd_pdrop = 0.1, attn_pdrop = 0.1, resid_pdrop = 0.1;
  std::string source;               // where it came from (file path or "preset:<name>"), for messages
};

// Reads <path> (a GPT-2 config.json). UserError for missing/invalid keys and for values we do not
// implement, named: activation_function other than gelu_new/gelu_pytorch_tanh,
// scale_attn_by_inverse_layer_idx=true, reorder_and_upcast_attn=true, scale_attn_weights=false,
// model_type other than gpt2, tie_word_embeddings=false.
Gpt2Config gpt2_config_load(const std::string& path);

// Named presets: "tiny" (2 layers, 4 heads, 64 wide, 128 positions) and "gpt2-124m-shape"
// (12/12/768, 1024 positions). vocab_size is a parameter (e.g. 259 for a byte tokenizer, 50257 for
// GPT-2's BPE). UserError for an unknown name.
Gpt2Config gpt2_config_preset(const std::string& name, int64_t vocab_size);

// Checks positivity and n_embd % n_head == 0 (UserError naming the source).
void gpt2_config_validate(const Gpt2Config& cfg);

}  // namespace mira
