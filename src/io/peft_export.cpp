// PEFT adapter folders: config JSON, atomic folder write, read-back (see peft_export.h).
#include "io/peft_export.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/fs_atomic.h"
#include "runtime/error.h"

namespace mira {
namespace {

namespace fs = std::filesystem;

// A number as Python's json would write it from PEFT's LoraConfig: lora_alpha is an int there when
// it is integral (the usual case), the dropout always a float.
nlohmann::json integral_or_double(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9.0e15) return static_cast<int64_t>(v);
  return v;
}

void write_text_file(const std::string& path, const std::string& text) {
  FILE* fp = std::fopen(path.c_str(), "wb");
  MIRA_CHECK_ERRNO(fp != nullptr, path);
  bool ok = std::fwrite(text.data(), 1, text.size(), fp) == text.size();
  ok = (std::fclose(fp) == 0) && ok;
  MIRA_CHECK_ERRNO(ok, path);
}

bool dir_is_empty(const std::string& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw UserError("export: cannot list the output folder " + dir + ": " + ec.message());
  return it == fs::directory_iterator();
}

std::string parent_of(const std::string& path) {
  fs::path p = fs::path(path).lexically_normal();
  if (p.has_filename() == false) p = p.parent_path();  // "out/" -> "out"
  fs::path parent = p.parent_path();
  return parent.empty() ? "." : parent.string();
}

std::string base_name_of(const std::string& path) {
  fs::path p = fs::path(path).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  return p.filename().string();
}

}  // namespace

std::string peft_tensor_name(int64_t layer, const std::string& module_path, bool is_b) {
  return "base_model.model.transformer.h." + std::to_string(layer) + "." + module_path +
         (is_b ? ".lora_B.weight" : ".lora_A.weight");
}

std::string peft_adapter_config_json(const PeftLoraConfig& cfg) {
  using nlohmann::json;
  // Every key peft 0.21.2's LoraConfig.save_pretrained writes, with its default unless set by us
  // (checked against a real save by scripts/make_export_fixture.py -> peft_saved_config.json).
  json j = json::object();
  j["alora_invocation_tokens"] = nullptr;
  j["alpha_pattern"] = json::object();
  j["arrow_config"] = nullptr;
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] = cfg.base_model_name_or_path;
  j["bias"] = "none";
  j["corda_config"] = nullptr;
  j["ensure_weight_tying"] = false;
  j["eva_config"] = nullptr;
  j["exclude_modules"] = nullptr;
  j["fan_in_fan_out"] = cfg.fan_in_fan_out;
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  j["kasa_config"] = nullptr;
  j["layer_replication"] = nullptr;
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = nullptr;
  j["loftq_config"] = json::object();
  j["lora_alpha"] = integral_or_double(cfg.lora_alpha);
  j["lora_bias"] = false;
  j["lora_dropout"] = cfg.lora_dropout;
  j["lora_ga_config"] = nullptr;
  j["megatron_config"] = nullptr;
  j["megatron_core"] = "megatron.core";
  j["modules_to_save"] = nullptr;
  j["monteclora_config"] = nullptr;
  j["peft_type"] = "LORA";
  j["qalora_group_size"] = 16;
  j["r"] = cfg.r;
  j["rank_pattern"] = json::object();
  j["revision"] = nullptr;
  j["target_modules"] = cfg.target_modules;
  j["target_parameters"] = nullptr;
  j["task_type"] = "CAUSAL_LM";
  j["trainable_token_indices"] = nullptr;
  j["use_bdlora"] = nullptr;
  j["use_dora"] = false;
  j["use_qalora"] = false;
  j["use_rslora"] = false;
  j["velora_config"] = nullptr;
  return j.dump(2) + "\n";  // nlohmann's object is a sorted map: keys come out sorted, as PEFT's
}

void peft_export_check_target(const std::string& out_dir) {
  if (out_dir.empty()) throw UserError("export: --out is empty");
  std::error_code ec;
  fs::file_status st = fs::symlink_status(out_dir, ec);
  if (!fs::exists(st)) return;
  if (!fs::is_directory(st))
    throw UserError("export: --out " + out_dir + " exists and is not a directory; nothing was written");
  if (!dir_is_empty(out_dir))
    throw UserError("export: --out " + out_dir + " exists and is not empty; nothing was overwritten (choose a new folder)");
}

void peft_export_write(const std::string& out_dir, const PeftLoraConfig& cfg,
                       const std::vector<SafetensorsTensorOut>& tensors) {
  peft_export_check_target(out_dir);
  const std::string parent = parent_of(out_dir);
  fs_make_dirs(parent);
  const std::string tmp = parent + "/." + base_name_of(out_dir) + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);  // a leftover of an earlier export by a process with the same id
  if (::mkdir(tmp.c_str(), 0755) != 0)
    throw UserError("export: cannot create the temporary folder " + tmp + ": " + std::strerror(errno));
  try {
    const std::string weights = tmp + "/" + PEFT_WEIGHTS_FILE, config = tmp + "/" + PEFT_CONFIG_FILE;
    safetensors_write(weights, tensors, {{"format", "pt"}});
    write_text_file(config, peft_adapter_config_json(cfg));
    fs_fsync_file(weights);
    fs_fsync_file(config);
    fs_fsync_dir(tmp);
    // rename(2) replaces an empty directory and fails with ENOTEMPTY/EEXIST on a non-empty one, so a
    // folder that filled up since the check above is still never overwritten.
    if (::rename(tmp.c_str(), out_dir.c_str()) != 0) {
      const int err = errno;
      if (err == ENOTEMPTY || err == EEXIST || err == ENOTDIR || err == EISDIR)
        throw UserError("export: --out " + out_dir + " exists and is not an empty folder; nothing was overwritten");
      throw UserError("export: cannot move " + tmp + " to " + out_dir + ": " + std::strerror(err));
    }
    fs_fsync_dir(parent);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

PeftAdapter peft_adapter_read(const std::string& dir) {
  using nlohmann::json;
  const std::string path = dir + "/" + PEFT_CONFIG_FILE;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("PEFT adapter: cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw UserError("PEFT adapter: " + path + " is not a JSON object");
  auto need = [&](const char* key) -> const json& {
    if (!j.contains(key)) throw UserError("PEFT adapter: " + path + " has no key '" + key + "'");
    return j.at(key);
  };
  PeftAdapter a;
  for (auto it = j.begin(); it != j.end(); ++it) a.config_keys.push_back(it.key());
  if (!need("peft_type").is_string() || j["peft_type"] != "LORA")
    throw UserError("PEFT adapter: " + path + ": peft_type is " + j["peft_type"].dump() + ", expected \"LORA\"");
  if (!need("r").is_number_integer() || j["r"].get<int64_t>() <= 0)
    throw UserError("PEFT adapter: " + path + ": r must be a positive integer");
  if (!need("lora_alpha").is_number()) throw UserError("PEFT adapter: " + path + ": lora_alpha must be a number");
  a.config.r = j["r"].get<int64_t>();
  a.config.lora_alpha = j["lora_alpha"].get<double>();
  a.config.lora_dropout = j.contains("lora_dropout") && j["lora_dropout"].is_number() ? j["lora_dropout"].get<double>() : 0.0;
  const json& t = need("target_modules");
  if (t.is_string()) {
    a.config.target_modules.push_back(t.get<std::string>());
  } else if (t.is_array()) {
    for (const auto& x : t) {
      if (!x.is_string()) throw UserError("PEFT adapter: " + path + ": target_modules must hold strings");
      a.config.target_modules.push_back(x.get<std::string>());
    }
  } else {
    throw UserError("PEFT adapter: " + path + ": target_modules must be a list of names");
  }
  a.config.fan_in_fan_out = j.value("fan_in_fan_out", false);
  if (j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
    a.config.base_model_name_or_path = j["base_model_name_or_path"].get<std::string>();
  a.weights = SafetensorsFile::open(dir + "/" + PEFT_WEIGHTS_FILE);
  return a;
}

}  // namespace mira
