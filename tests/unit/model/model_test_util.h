// Shared helpers for the model unit tests: fixture paths, the golden fixtures written by
// scripts/make_model_fixtures.py (HF transformers + PEFT), and small numeric comparisons.
#pragma once
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/gpt2_model.h"

namespace mira_test {

inline std::string model_fixture(const std::string& name) {
  return std::string(MIRA_FIXTURES_DIR) + "/model/" + name;
}

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, (double)std::fabs(a[i] - b[i]));
  return m;
}

inline double rel_l2(const float* a, const float* ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
    den += (double)ref[i] * ref[i];
  }
  return std::sqrt(num) / std::sqrt(den);
}

// A golden fixture: the HF folder, its reference tensors and settings.
struct Golden {
  std::string dir;
  nlohmann::json ref;
  mira::SafetensorsFile st;
  mira::LoraConfig lora;
  mira::OptimConfig optim;
  std::vector<int32_t> inputs, targets;
  std::vector<float> mask;
  int64_t B = 0, T = 0;

  explicit Golden(const std::string& name)
      : dir(model_fixture(name)), ref(read_json(dir + "/ref.json")), st(mira::SafetensorsFile::open(dir + "/ref.safetensors")) {
    lora.r = ref["r"].get<int64_t>();
    lora.alpha = ref["alpha"].get<double>();
    lora.dropout = 0.0;
    lora.target_modules = ref["targets"].get<std::vector<std::string>>();
    optim.kind = ref["optimizer"] == "adamw" ? mira::OptimKind::ADAMW : mira::OptimKind::ADAM;
    optim.lr = ref["lr"].get<double>();
    optim.weight_decay = ref["weight_decay"].get<double>();
    optim.clip = ref["clip"].get<double>();
    B = ref["B"].get<int64_t>();
    T = ref["T"].get<int64_t>();
    inputs = st.read_i32("input_ids");
    targets = st.read_i32("targets");
    mask = st.read_f32("loss_mask");
  }
  mira::BatchView batch() const {
    mira::BatchView b;
    b.B = B, b.T = T, b.inputs = inputs.data(), b.targets = targets.data(), b.loss_mask = mask.data();
    return b;
  }
  // The flat adapter assembled from PEFT-named tensors (prefix "" = initial, "grad." or "final.").
  std::vector<float> flat(const mira::AdapterLayout& layout, const std::string& prefix) const {
    std::vector<float> out((size_t)layout.total);
    for (const auto& blk : layout.blocks)
      for (int64_t l = 0; l < blk.layers; ++l) {
        const std::vector<float> v = st.read_f32(prefix + blk.peft_name(l));
        std::copy(v.begin(), v.end(), out.begin() + blk.layer_offset(l));
      }
    return out;
  }
};

}  // namespace mira_test
