// PEFT adapter folder export (see lora_peft_export.h).
#include "model/lora_peft_export.h"

#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "io/safetensors.h"
#include "runtime/error.h"

namespace mira {

void lora_export_peft(const std::string& dir, const AdapterLayout& layout, const LoraConfig& cfg, const float* flat,
                      const std::string& base_model) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) throw UserError("cannot create directory " + dir);
  nlohmann::json targets = nlohmann::json::array();
  for (LoraModule m : layout.modules) targets.push_back(lora_module_name(m));
  const nlohmann::json j = {{"peft_type", "LORA"},
                            {"task_type", "CAUSAL_LM"},
                            {"base_model_name_or_path", base_model},
                            {"r", cfg.r},
                            {"lora_alpha", cfg.alpha},
                            {"lora_dropout", cfg.dropout},
                            {"target_modules", targets},
                            {"fan_in_fan_out", true},
                            {"bias", "none"},
                            {"use_rslora", false},
                            {"modules_to_save", nullptr},
                            {"init_lora_weights", true},
                            {"inference_mode", true}};
  const std::string cfg_path = dir + "/adapter_config.json";
  {
    std::ofstream out(cfg_path);
    out << j.dump(2) << "\n";
    if (!out) throw UserError("cannot write " + cfg_path);
  }
  std::vector<SafetensorsTensorOut> t;
  for (const AdapterBlock& b : layout.blocks)
    for (int64_t l = 0; l < b.layers; ++l) t.push_back({b.peft_name(l), {b.rows, b.cols}, flat + b.layer_offset(l), nullptr});
  safetensors_write(dir + "/adapter_model.safetensors", t, {{"format", "pt"}});
}

}  // namespace mira
