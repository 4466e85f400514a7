// LoRA targets, adapter layout and initialisation (see lora.h).
#include "model/lora.h"

#include <cmath>

#include "runtime/error.h"
#include "runtime/rng.h"

namespace mira {

const char* lora_module_name(LoraModule m) {
  switch (m) {
    case LoraModule::C_ATTN: return "attn.c_attn";
    case LoraModule::ATTN_C_PROJ: return "attn.c_proj";
    case LoraModule::MLP_C_FC: return "mlp.c_fc";
    case LoraModule::MLP_C_PROJ: return "mlp.c_proj";
  }
  return "?";
}

std::vector<LoraModule> lora_resolve_targets(const LoraConfig& cfg) {
  if (cfg.r <= 0) throw UserError("lora r must be positive, got " + std::to_string(cfg.r));
  if (!(cfg.alpha > 0)) throw UserError("lora alpha must be positive");
  if (!(cfg.dropout >= 0 && cfg.dropout < 1)) throw UserError("lora dropout must be in [0, 1)");
  if (cfg.target_modules.empty()) return {};  // no adapter (full fine-tuning only)
  bool on[LORA_MODULE_COUNT] = {false, false, false, false};
  for (const std::string& t : cfg.target_modules) {
    bool hit = false;
    for (int i = 0; i < LORA_MODULE_COUNT; ++i) {
      const std::string n = lora_module_name((LoraModule)i);
      const bool match = n == t || (n.size() > t.size() && n.compare(n.size() - t.size(), t.size(), t) == 0 &&
                                    n[n.size() - t.size() - 1] == '.');
      if (match) on[i] = hit = true;
    }
    if (!hit)
      throw UserError("lora target module '" + t +
                      "' matches no GPT-2 module (allowed: c_attn, c_proj, c_fc, attn.c_attn, attn.c_proj, "
                      "mlp.c_fc, mlp.c_proj)");
  }
  std::vector<LoraModule> out;
  for (int i = 0; i < LORA_MODULE_COUNT; ++i)
    if (on[i]) out.push_back((LoraModule)i);
  return out;
}

std::string AdapterBlock::peft_name(int64_t layer) const {
  return "base_model.model.transformer.h." + std::to_string(layer) + "." + module_name + "." + kind + ".weight";
}

const AdapterBlock* AdapterLayout::find(LoraModule m, bool is_b) const {
  for (const auto& b : blocks)
    if (b.module == m && (b.kind == "lora_B") == is_b) return &b;
  return nullptr;
}

AdapterLayout lora_layout(const Gpt2Config& c, const LoraConfig& cfg) {
  AdapterLayout L;
  L.modules = lora_resolve_targets(cfg);
  L.r = cfg.r;
  L.scale = cfg.scale();
  int64_t off = 0;
  for (LoraModule m : L.modules) {
    int64_t in = c.n_embd, out = c.n_embd;
    if (m == LoraModule::C_ATTN) out = 3 * c.n_embd;
    if (m == LoraModule::MLP_C_FC) out = c.n_inner;
    if (m == LoraModule::MLP_C_PROJ) in = c.n_inner;
    AdapterBlock a{m, lora_module_name(m), "lora_A", c.n_layer, cfg.r, in, off};
    off += c.n_layer * cfg.r * in;
    AdapterBlock b{m, lora_module_name(m), "lora_B", c.n_layer, out, cfg.r, off};
    off += c.n_layer * out * cfg.r;
    L.blocks.push_back(a);
    L.blocks.push_back(b);
  }
  L.total = off;
  return L;
}

void lora_init_adapter(const AdapterLayout& layout, uint64_t seed, float* host) {
  for (const AdapterBlock& b : layout.blocks) {
    for (int64_t l = 0; l < b.layers; ++l) {
      float* p = host + b.layer_offset(l);
      const int64_t n = b.rows * b.cols;
      if (b.kind == "lora_B") {
        for (int64_t i = 0; i < n; ++i) p[i] = 0.0f;
        continue;
      }
      const double bound = 1.0 / std::sqrt((double)b.cols);  // b.cols = in
      Rng rng(seed, RngPurpose::LORA_INIT, (uint64_t)l, (uint64_t)b.module);
      for (int64_t i = 0; i < n; ++i) p[i] = (float)((2.0 * rng.uniform_double() - 1.0) * bound);
    }
  }
}

}  // namespace mira
