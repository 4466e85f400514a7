// gpt2_save_hf (what `pretrain` writes): config.json keeps the saved model's own settings (dropout
// rates, LayerNorm epsilon, n_inner) instead of GPT-2's defaults, and the folder reads back.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "model/gpt2_weights.h"

using namespace mira;

namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::string tmpdir(const std::string& name) {
  const std::string d = std::string("/tmp/mira_model_test_") + name;
  ::mkdir(d.c_str(), 0755);
  return d;
}

TEST(SaveHf, ConfigKeepsTheModelsDropoutRatesAndEpsilon) {
  Gpt2HostModel m = gpt2_load_hf(std::string(MIRA_FIXTURES_DIR) + "/model/gpt2_tiny_fp32");
  m.config.embd_pdrop = 0.0;
  m.config.attn_pdrop = 0.25;
  m.config.resid_pdrop = 0.05;
  m.config.layer_norm_epsilon = 1e-3;
  const std::string out = tmpdir("save_hf_pdrop");
  gpt2_save_hf(out, m);
  const nlohmann::json j = read_json(out + "/config.json");
  EXPECT_EQ(j["embd_pdrop"].get<double>(), 0.0);
  EXPECT_EQ(j["attn_pdrop"].get<double>(), 0.25);
  EXPECT_EQ(j["resid_pdrop"].get<double>(), 0.05);
  EXPECT_EQ(j["layer_norm_epsilon"].get<double>(), 1e-3);
  const Gpt2HostModel back = gpt2_load_hf(out);
  EXPECT_EQ(back.config.embd_pdrop, 0.0);
  EXPECT_EQ(back.config.attn_pdrop, 0.25);
  EXPECT_EQ(back.config.resid_pdrop, 0.05);
  EXPECT_EQ(back.weights, m.weights);
}

TEST(SaveHf, PresetWritesGpt2DefaultDropout) {
  const Gpt2HostModel m = gpt2_init_preset(gpt2_config_preset("tiny", 257), 1);
  const std::string out = tmpdir("save_hf_preset");
  gpt2_save_hf(out, m);
  const nlohmann::json j = read_json(out + "/config.json");
  for (const char* k : {"embd_pdrop", "attn_pdrop", "resid_pdrop"}) EXPECT_EQ(j[k].get<double>(), 0.1) << k;
}

}  // namespace
