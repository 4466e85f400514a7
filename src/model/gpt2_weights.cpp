// GPT-2 parameter table, HF loading and seeded initialisation (see gpt2_weights.h).
#include "model/gpt2_weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "io/safetensors.h"
#include "runtime/error.h"
#include "runtime/rng.h"

namespace mira {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

}  // namespace

std::vector<ParamInfo> gpt2_param_table(const Gpt2Config& c) {
  std::vector<ParamInfo> t;
  const int64_t C = c.n_embd, F = c.n_inner;
  auto add = [&](const std::string& n, std::vector<int64_t> shape) {
    ParamInfo p;
    p.name = n;
    p.shape = std::move(shape);
    p.numel = 1;
    for (int64_t d : p.shape) p.numel *= d;
    p.offset = t.empty() ? 0 : t.back().offset + t.back().numel;
    t.push_back(p);
  };
  add("wte.weight", {c.vocab_size, C});
  add("wpe.weight", {c.n_positions, C});
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    add(h + "ln_1.weight", {C});
    add(h + "ln_1.bias", {C});
    add(h + "attn.c_attn.weight", {C, 3 * C});
    add(h + "attn.c_attn.bias", {3 * C});
    add(h + "attn.c_proj.weight", {C, C});
    add(h + "attn.c_proj.bias", {C});
    add(h + "ln_2.weight", {C});
    add(h + "ln_2.bias", {C});
    add(h + "mlp.c_fc.weight", {C, F});
    add(h + "mlp.c_fc.bias", {F});
    add(h + "mlp.c_proj.weight", {F, C});
    add(h + "mlp.c_proj.bias", {C});
  }
  add("ln_f.weight", {C});
  add("ln_f.bias", {C});
  return t;
}

int64_t gpt2_param_count(const Gpt2Config& c) {
  const auto t = gpt2_param_table(c);
  return t.back().offset + t.back().numel;
}

Gpt2HostModel gpt2_load_hf(const std::string& dir) {
  Gpt2HostModel m;
  m.config = gpt2_config_load(dir + "/config.json");
  m.table = gpt2_param_table(m.config);
  m.weights.assign((size_t)gpt2_param_count(m.config), 0.0f);
  const std::string file = dir + "/model.safetensors";
  if (!file_exists(file)) {
    if (file_exists(dir + "/model.safetensors.index.json"))
      throw UserError(file + ": sharded checkpoints (model.safetensors.index.json) are not supported; "
                             "save the model as one file (save_pretrained(max_shard_size=\"100GB\"))");
    throw UserError("model weights not found: " + file + " (a Hugging Face folder needs model.safetensors)");
  }
  const SafetensorsFile st = SafetensorsFile::open(file);
  for (const ParamInfo& p : m.table) {
    std::string name = "transformer." + p.name;
    const SafetensorsEntry* e = st.find(name);
    if (!e) {
      name = p.name;
      e = st.find(name);
    }
    if (!e) throw UserError(file + ": missing tensor 'transformer." + p.name + "' (or '" + p.name + "')");
    if (e->shape != p.shape)
      throw UserError(file + ": tensor '" + name + "' has shape " + shape_str(e->shape) + ", expected " +
                      shape_str(p.shape) + " for " + m.config.source);
    const std::vector<float> v = st.read_f32(name);
    std::memcpy(m.weights.data() + p.offset, v.data(), sizeof(float) * v.size());
  }
  // A tied LM head may be stored; accept it only when it equals wte (we always tie).
  for (const char* lm : {"lm_head.weight", "transformer.lm_head.weight"}) {
    if (!st.find(lm)) continue;
    const SafetensorsEntry* e = st.find(lm);
    const ParamInfo& wte = m.table[0];
    if (e->shape != wte.shape)
      throw UserError(file + ": tensor '" + std::string(lm) + "' has shape " + shape_str(e->shape) + ", expected " +
                      shape_str(wte.shape) + " (it must equal the tied wte)");
    const std::vector<float> v = st.read_f32(lm);
    if (std::memcmp(v.data(), m.weights.data() + wte.offset, sizeof(float) * v.size()) != 0)
      throw UserError(file + ": '" + std::string(lm) +
                      "' differs from wte; only GPT-2 with the LM head tied to wte is supported");
  }
  return m;
}

void gpt2_save_hf(const std::string& dir, const Gpt2HostModel& m) {
  const Gpt2Config& c = m.config;
  nlohmann::json j = {{"architectures", {"GPT2LMHeadModel"}},
                      {"model_type", "gpt2"},
                      {"activation_function", "gelu_new"},
                      {"n_layer", c.n_layer},
                      {"n_head", c.n_head},
                      {"n_embd", c.n_embd},
                      {"n_positions", c.n_positions},
                      {"n_ctx", c.n_positions},
                      {"vocab_size", c.vocab_size},
                      {"layer_norm_epsilon", c.layer_norm_epsilon},
                      {"scale_attn_weights", true},
                      {"scale_attn_by_inverse_layer_idx", false},
                      {"reorder_and_upcast_attn", false},
                      {"tie_word_embeddings", true},
                      {"initializer_range", 0.02},
                      {"resid_pdrop", c.resid_pdrop},  // the loaded model's own rates (preset: GPT-2's 0.1)
                      {"embd_pdrop", c.embd_pdrop},
                      {"attn_pdrop", c.attn_pdrop}};
  j["n_inner"] = c.n_inner == 4 * c.n_embd ? nlohmann::json() : nlohmann::json(c.n_inner);
  const std::string cfg_path = dir + "/config.json";
  {
    std::ofstream out(cfg_path);
    out << j.dump(2) << "\n";
    if (!out) throw UserError("cannot write " + cfg_path);
  }
  std::vector<SafetensorsTensorOut> t;
  for (const ParamInfo& p : m.table) t.push_back({"transformer." + p.name, p.shape, m.weights.data() + p.offset, nullptr});
  safetensors_write(dir + "/model.safetensors", t, {{"format", "pt"}});
}

Gpt2HostModel gpt2_init_preset(const Gpt2Config& cfg, uint64_t seed) {
  Gpt2HostModel m;
  m.config = cfg;
  m.table = gpt2_param_table(cfg);
  m.weights.assign((size_t)gpt2_param_count(cfg), 0.0f);
  const double std_w = 0.02;                                            // GPT-2 initializer_range
  const double std_proj = 0.02 / std::sqrt(2.0 * (double)cfg.n_layer);  // GPT-2 scaled residual init
  for (size_t idx = 0; idx < m.table.size(); ++idx) {
    const ParamInfo& p = m.table[idx];
    float* w = m.weights.data() + p.offset;
    const bool is_ln = p.name.find("ln_") != std::string::npos;
    const bool is_bias = p.name.size() >= 5 && p.name.compare(p.name.size() - 5, 5, ".bias") == 0;
    if (is_bias) continue;  // zero
    if (is_ln) {
      for (int64_t i = 0; i < p.numel; ++i) w[i] = 1.0f;
      continue;
    }
    const bool proj = p.name.find("c_proj.weight") != std::string::npos;
    const double sd = proj ? std_proj : std_w;
    const uint64_t stream = rng_stream(seed, RngPurpose::MODEL_INIT, idx);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < p.numel; ++i) {
      // Element i uses draws 2i and 2i+1 of the tensor's stream (Rng::normal), so it is a pure
      // function of (seed, tensor, i) whatever the thread count.
      const double u1 = std::max(rng_uniform_double(rng_at(stream, 2 * (uint64_t)i)), 1e-300);
      const double u2 = rng_uniform_double(rng_at(stream, 2 * (uint64_t)i + 1));
      w[i] = (float)(sd * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
  }
  return m;
}

}  // namespace mira
