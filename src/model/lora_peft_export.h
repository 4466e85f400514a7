// Export of one client's adapter as a Hugging Face PEFT folder: adapter_config.json +
// adapter_model.safetensors (F32, PEFT's saved names base_model.model.transformer.h.{l}.<module>.
// lora_{A,B}.weight), loadable with peft.PeftModel.from_pretrained(base_model, dir).
#pragma once
#include <string>

#include "model/lora.h"

namespace mira {

// dir is created if missing (its parent must exist). base_model goes into
// base_model_name_or_path (e.g. the HF folder the model was loaded from). target_modules lists the
// enabled modules by their full suffix ("attn.c_attn", ...), which PEFT matches to exactly our set.
void lora_export_peft(const std::string& dir, const AdapterLayout& layout, const LoraConfig& cfg, const float* flat,
                      const std::string& base_model);

}  // namespace mira
