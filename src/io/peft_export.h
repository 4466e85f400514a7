// Hugging Face PEFT adapter folders (LoRA), as peft 0.21's save_pretrained writes them:
//   adapter_model.safetensors  float32 tensors named
//                              base_model.model.transformer.h.<layer>.<module_path>.lora_A.weight (r, in)
//                              base_model.model.transformer.h.<layer>.<module_path>.lora_B.weight (out, r)
//                              with the metadata {"format": "pt"};
//   adapter_config.json        LoraConfig: every key peft 0.21.2 writes (sorted, indent 2), except
//                              peft_version, which names the PEFT release that wrote a file.
// The writer creates the folder atomically (a temporary sibling folder, renamed into place), so a
// failed export leaves nothing behind, and it never overwrites: an existing non-empty folder is
// refused. The reader loads such a folder back (our tests, and anyone mapping PEFT names to ours).
// GPT-2 only: the block prefix is transformer.h (docs/checkpoint-format.md, Mapping to PEFT names).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace mira {

inline constexpr const char* PEFT_CONFIG_FILE = "adapter_config.json";
inline constexpr const char* PEFT_WEIGHTS_FILE = "adapter_model.safetensors";

// The LoraConfig fields a LoRA adapter of ours sets; all other keys get peft 0.21's defaults.
struct PeftLoraConfig {
  int64_t r = 0;
  double lora_alpha = 0;
  double lora_dropout = 0;
  std::vector<std::string> target_modules;  // as the run's lora.targets named them
  bool fan_in_fan_out = true;               // GPT-2's Conv1D stores weights (in, out)
  std::string base_model_name_or_path;
};

// "base_model.model.transformer.h.<layer>.<module_path>.lora_A.weight" (lora_B when is_b).
std::string peft_tensor_name(int64_t layer, const std::string& module_path, bool is_b);

// adapter_config.json's text (ends with a newline).
std::string peft_adapter_config_json(const PeftLoraConfig& cfg);

// UserError naming `out_dir` unless it can receive an export: it does not exist, or it is an empty
// directory. Call before expensive work; peft_export_write checks again (and atomically).
void peft_export_check_target(const std::string& out_dir);

// Writes the folder: adapter_model.safetensors (tensors sorted by name) and adapter_config.json into
// <parent>/.<name>.tmp-<pid>, fsynced, then renamed to out_dir (parents created as needed). UserError
// when out_dir exists and is not an empty directory; on any failure the temporary folder is removed
// and out_dir is untouched.
void peft_export_write(const std::string& out_dir, const PeftLoraConfig& cfg,
                       const std::vector<SafetensorsTensorOut>& tensors);

// A PEFT LoRA folder read back: the config fields above and the tensors. UserError (naming the file
// and the key) for a missing file, malformed JSON, peft_type other than LORA, or a missing field.
struct PeftAdapter {
  PeftLoraConfig config;
  std::vector<std::string> config_keys;  // every key of adapter_config.json, sorted
  SafetensorsFile weights;
};
PeftAdapter peft_adapter_read(const std::string& dir);

}  // namespace mira
