// GPT-2 config loading, validation and presets (see gpt2_config.h).
#include "model/gpt2_config.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace mira {

namespace {

int64_t get_int(const nlohmann::json& j, const std::string& key, const std::string& path) {
  if (!j.contains(key)) throw UserError(path + ": missing key '" + key + "'");
  if (!j[key].is_number_integer()) throw UserError(path + ": key '" + key + "' must be an integer");
  return j[key].get<int64_t>();
}

void refuse_bool(const nlohmann::json& j, const std::string& key, bool supported, const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return;
  if (!j[key].is_boolean()) throw UserError(path + ": key '" + key + "' must be true or false");
  if (j[key].get<bool>() != supported)
    throw UserError(path + ": " + key + "=" + (supported ? "false" : "true") + " is not supported (only " +
                    (supported ? "true" : "false") + ")");
}

}  // namespace

void gpt2_config_validate(const Gpt2Config& c) {
  auto pos = [&](int64_t v, const char* k) {
    if (v <= 0) throw UserError(c.source + ": " + k + " must be positive, got " + std::to_string(v));
  };
  pos(c.n_layer, "n_layer");
  pos(c.n_head, "n_head");
  pos(c.n_embd, "n_embd");
  pos(c.n_positions, "n_positions");
  pos(c.vocab_size, "vocab_size");
  pos(c.n_inner, "n_inner");
  if (c.n_embd % c.n_head != 0)
    throw UserError(c.source + ": n_embd (" + std::to_string(c.n_embd) + ") must be divisible by n_head (" +
                    std::to_string(c.n_head) + ")");
  if (!(c.layer_norm_epsilon > 0)) throw UserError(c.source + ": layer_norm_epsilon must be positive");
}

Gpt2Config gpt2_config_load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UserError("cannot open model config " + path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw UserError(path + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw UserError(path + ": not a JSON object");
  if (j.contains("model_type") && j["model_type"] != "gpt2")
    throw UserError(path + ": model_type=" + j["model_type"].dump() + " is not supported (only \"gpt2\")");
  if (j.contains("activation_function")) {
    const auto& a = j["activation_function"];
    if (!a.is_string() || (a != "gelu_new" && a != "gelu_pytorch_tanh"))
      throw UserError(path + ": activation_function=" + a.dump() +
                      " is not supported (only \"gelu_new\" / \"gelu_pytorch_tanh\", the tanh GELU)");
  }
  refuse_bool(j, "scale_attn_by_inverse_layer_idx", false, path);
  refuse_bool(j, "reorder_and_upcast_attn", false, path);
  refuse_bool(j, "scale_attn_weights", true, path);
  refuse_bool(j, "tie_word_embeddings", true, path);
  refuse_bool(j, "add_cross_attention", false, path);
  Gpt2Config c;
  c.source = path;
  c.n_layer = get_int(j, "n_layer", path);
  c.n_head = get_int(j, "n_head", path);
  c.n_embd = get_int(j, "n_embd", path);
  c.n_positions = get_int(j, "n_positions", path);
  c.vocab_size = get_int(j, "vocab_size", path);
  c.n_inner = (!j.contains("n_inner") || j["n_inner"].is_null()) ? 4 * c.n_embd : get_int(j, "n_inner", path);
  if (j.contains("layer_norm_epsilon")) {
    if (!j["layer_norm_epsilon"].is_number()) throw UserError(path + ": layer_norm_epsilon must be a number");
    c.layer_norm_epsilon = j["layer_norm_epsilon"].get<double>();
  }
  for (auto [key, dst] : {std::pair<const char*, double*>{"embd_pdrop", &c.embd_pdrop},
                           {"attn_pdrop", &c.attn_pdrop}, {"resid_pdrop", &c.resid_pdrop}}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    if (!j[key].is_number() || j[key].get<double>() < 0 || j[key].get<double>() >= 1)
      throw UserError(path + ": " + key + " must be a number in [0, 1)");
    *dst = j[key].get<double>();
  }
  gpt2_config_validate(c);
  return c;
}

Gpt2Config gpt2_config_preset(const std::string& name, int64_t vocab_size) {
  Gpt2Config c;
  c.source = "preset:" + name;
  if (name == "tiny") {
    c.n_layer = 2, c.n_head = 4, c.n_embd = 64, c.n_positions = 128;
  } else if (name == "gpt2-124m-shape") {
    c.n_layer = 12, c.n_head = 12, c.n_embd = 768, c.n_positions = 1024;
  } else {
    throw UserError("unknown model preset '" + name + "' (allowed: tiny, gpt2-124m-shape)");
  }
  c.vocab_size = vocab_size;
  c.n_inner = 4 * c.n_embd;
  gpt2_config_validate(c);
  return c;
}

}  // namespace mira
