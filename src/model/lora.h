// LoRA for GPT-2's Conv1D layers exactly as PEFT does it (fan_in_fan_out=True):
//   h = x W0 + b + (alpha / r) * dropout(x) A^T B^T,  lora_A.weight (r, in), lora_B.weight (out, r).
// Targets are resolved from PEFT target_modules names by suffix match; the adapter of one client
// is ONE contiguous float32 buffer whose layout (AdapterLayout) is fixed: for each enabled module
// type in the order c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj: lora_A of all layers (L, r, in), then
// lora_B of all layers (L, out, r).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/gpt2_config.h"

namespace mira {

enum class LoraModule : int { C_ATTN = 0, ATTN_C_PROJ = 1, MLP_C_FC = 2, MLP_C_PROJ = 3 };
constexpr int LORA_MODULE_COUNT = 4;

// "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj".
const char* lora_module_name(LoraModule m);

struct LoraConfig {
  int64_t r = 16;
  double alpha = 8.0;
  double dropout = 0.0;                                        // LoRA dropout on the LoRA input only
  std::vector<std::string> target_modules{"c_attn", "c_proj"};  // PEFT names (paper default)
  double scale() const { return alpha / (double)r; }
};

// PEFT suffix matching: a target t selects module m when m's name ("attn.c_attn", ...) equals t or
// ends with "." + t; so "c_proj" selects attn.c_proj AND mlp.c_proj. Returns the enabled modules in
// the fixed order; an empty list means no adapter (P = 0, e.g. for full fine-tuning). UserError for
// a target that matches no module, and for r <= 0, alpha <= 0 or a
// dropout outside [0, 1).
std::vector<LoraModule> lora_resolve_targets(const LoraConfig& cfg);

// One block of the flat adapter: a module type's lora_A or lora_B for all layers.
struct AdapterBlock {
  LoraModule module;
  std::string module_name;  // "attn.c_attn"
  std::string kind;         // "lora_A" or "lora_B"
  int64_t layers = 0;       // L
  int64_t rows = 0;         // A: r, B: out
  int64_t cols = 0;         // A: in, B: r
  int64_t offset = 0;       // first float of layer 0 in the flat adapter
  int64_t layer_offset(int64_t layer) const { return offset + layer * rows * cols; }
  // "base_model.model.transformer.h.{layer}.attn.c_attn.lora_A.weight" (PEFT's saved name).
  std::string peft_name(int64_t layer) const;
};

struct AdapterLayout {
  std::vector<LoraModule> modules;  // enabled, fixed order
  std::vector<AdapterBlock> blocks;  // per enabled module: lora_A block then lora_B block
  int64_t total = 0;                 // P floats per client
  int64_t r = 0;
  double scale = 0;                  // alpha / r
  // The block of (module, A or B); nullptr when the module is not a target.
  const AdapterBlock* find(LoraModule m, bool is_b) const;
};

AdapterLayout lora_layout(const Gpt2Config& model, const LoraConfig& cfg);

// The initial adapter, identical for every client (keyed only by seed): lora_A uniform in
// [-1/sqrt(in), 1/sqrt(in)) (PEFT: kaiming_uniform_(a=sqrt(5)) on a (r, in) weight gives
// bound = gain*sqrt(3/fan_in) with gain = sqrt(2/(1+5)), i.e. 1/sqrt(in)), lora_B zero.
// Element i of block (module m, layer l) uses Rng(seed, LORA_INIT, l, m) draw i.
void lora_init_adapter(const AdapterLayout& layout, uint64_t seed, float* host);

}  // namespace mira
