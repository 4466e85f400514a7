// PEFT export (io/peft_export.h): the folder writer's refusals and atomicity, adapter_config.json
// against the keys peft 0.21 writes, and the peer check: our model with the adapter exported from
// the committed checkpoint (tests/fixtures/export, written and verified with Hugging Face PEFT by
// scripts/make_export_fixture.py) gives PEFT's logits. The re-export of that checkpoint by the
// binary is compared with the committed folder in tests/tools/export.sh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "backend/backend.h"
#include "io/peft_export.h"
#include "model/gpt2_model.h"
#include "model/gpt2_weights.h"
#include "model/lora.h"
#include "runtime/error.h"

using namespace mira;
namespace fs = std::filesystem;

namespace {

const std::string kFixture = std::string(MIRA_FIXTURES_DIR) + "/export";
const std::string kModel = std::string(MIRA_FIXTURES_DIR) + "/model/gpt2_tiny_fp32";

// Tolerance of the logits against PEFT. Both sides compute the same float32 forward with different
// summation orders (OpenBLAS vs torch's kernels); measured here: 2.4e-7 abs with the adapter, 1.5e-7
// without, so 1e-4 leaves over two orders of magnitude of margin for other BLAS builds and CPUs. The adapter moves the logits by
// ~1.1 (reference.json: adapter_effect_max_abs), so a wrong name, transposition, scale or a lost
// module would fail by orders of magnitude more than the tolerance.
constexpr double LOGIT_TOL = 1e-4;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/mira_peft_test_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, (double)std::fabs(a[i] - b[i]));
  return m;
}

std::vector<std::string> sorted_entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST(PeftExport, TensorNamesFollowPeft) {
  EXPECT_EQ(peft_tensor_name(0, "attn.c_attn", false), "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight");
  EXPECT_EQ(peft_tensor_name(11, "mlp.c_proj", true), "base_model.model.transformer.h.11.mlp.c_proj.lora_B.weight");
  // The same names as the model's own mapping (model/lora.h), which the logits test relies on.
  Gpt2Config c = gpt2_load_hf(kModel).config;
  LoraConfig lc;
  lc.r = 4;
  lc.target_modules = {"c_attn", "c_proj", "c_fc"};
  AdapterLayout layout = lora_layout(c, lc);
  ASSERT_EQ(layout.blocks.size(), 8u);
  for (const auto& b : layout.blocks)
    EXPECT_EQ(b.peft_name(1), peft_tensor_name(1, b.module_name, b.kind == "lora_B"));
}

TEST(PeftExport, ConfigHasTheKeysPeftWrites) {
  PeftLoraConfig cfg;
  cfg.r = 4;
  cfg.lora_alpha = 16;
  cfg.lora_dropout = 0.05;
  cfg.target_modules = {"c_attn", "c_proj", "c_fc"};
  cfg.base_model_name_or_path = "tests/fixtures/model/gpt2_tiny_fp32";
  const auto ours = nlohmann::json::parse(peft_adapter_config_json(cfg));
  // peft_saved_config.json: PEFT's own save_pretrained of the model that loaded our export.
  const auto peft = nlohmann::json::parse(read_text(kFixture + "/peft_saved_config.json"));
  for (auto it = peft.begin(); it != peft.end(); ++it) {
    if (it.key() == "peft_version") continue;  // the PEFT release that wrote the file; we are not PEFT
    ASSERT_TRUE(ours.contains(it.key())) << "missing key " << it.key();
    if (it.key() == "target_modules") {  // PEFT stores a set: its order is arbitrary
      auto a = ours[it.key()].get<std::vector<std::string>>(), b = it.value().get<std::vector<std::string>>();
      std::sort(a.begin(), a.end()), std::sort(b.begin(), b.end());
      EXPECT_EQ(a, b);
    } else {
      EXPECT_EQ(ours[it.key()], it.value()) << it.key();
    }
  }
  for (auto it = ours.begin(); it != ours.end(); ++it) EXPECT_TRUE(peft.contains(it.key())) << "extra key " << it.key();
  EXPECT_TRUE(ours["lora_alpha"].is_number_integer());  // PEFT's LoraConfig has an int lora_alpha
  cfg.lora_alpha = 2.5;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(peft_adapter_config_json(cfg))["lora_alpha"].get<double>(), 2.5);
}

TEST(PeftExport, WritesAtomicallyAndNeverOverwrites) {
  TempDir t;
  const std::vector<float> a{1, 2, 3, 4, 5, 6}, b{-1.5f, 0.25f};
  std::vector<SafetensorsTensorOut> tensors{{peft_tensor_name(0, "attn.c_attn", false), {2, 3}, a.data(), nullptr},
                                            {peft_tensor_name(0, "attn.c_attn", true), {1, 2}, b.data(), nullptr}};
  PeftLoraConfig cfg;
  cfg.r = 2;
  cfg.lora_alpha = 4;
  cfg.target_modules = {"c_attn"};
  cfg.base_model_name_or_path = "/models/gpt2";

  const std::string out = t.path + "/nested/adapter";  // parents are created
  peft_export_write(out, cfg, tensors);
  EXPECT_EQ(sorted_entries(out), (std::vector<std::string>{PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE}));
  EXPECT_EQ(sorted_entries(t.path + "/nested"), std::vector<std::string>{"adapter"});  // no temporary left
  PeftAdapter back = peft_adapter_read(out);
  EXPECT_EQ(back.config.r, 2);
  EXPECT_EQ(back.config.lora_alpha, 4);
  EXPECT_TRUE(back.config.fan_in_fan_out);
  EXPECT_EQ(back.config.target_modules, cfg.target_modules);
  EXPECT_EQ(back.config.base_model_name_or_path, "/models/gpt2");
  EXPECT_EQ(back.weights.read_f32(tensors[0].name), a);
  EXPECT_EQ(back.weights.read_f32(tensors[1].name), b);
  EXPECT_EQ(back.weights.find(tensors[1].name)->shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(back.weights.metadata().at("format"), "pt");

  // A second export into the same folder is refused and changes nothing.
  const std::string before = read_text(out + "/" + PEFT_WEIGHTS_FILE);
  const std::vector<float> other{9, 9, 9, 9, 9, 9};
  std::vector<SafetensorsTensorOut> changed = tensors;
  changed[0].f32 = other.data();
  EXPECT_THROW(peft_export_check_target(out), UserError);
  EXPECT_THROW(peft_export_write(out, cfg, changed), UserError);
  EXPECT_EQ(read_text(out + "/" + PEFT_WEIGHTS_FILE), before);

  // An existing empty folder is fine; a file in its place is not.
  fs::create_directory(t.path + "/empty");
  peft_export_write(t.path + "/empty", cfg, tensors);
  EXPECT_EQ(sorted_entries(t.path + "/empty").size(), 2u);
  std::ofstream(t.path + "/file") << "x";
  EXPECT_THROW(peft_export_write(t.path + "/file", cfg, tensors), UserError);
  EXPECT_EQ(read_text(t.path + "/file"), "x");

  // A failure while writing leaves neither the folder nor a temporary one behind.
  std::vector<SafetensorsTensorOut> broken = tensors;
  broken[1].f32 = nullptr;  // no data pointer: the safetensors writer refuses it mid-way
  EXPECT_ANY_THROW(peft_export_write(t.path + "/failed", cfg, broken));
  EXPECT_FALSE(fs::exists(t.path + "/failed"));
  for (const auto& name : sorted_entries(t.path)) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
}

TEST(PeftExport, ReaderRefusesForeignFolders) {
  TempDir t;
  EXPECT_THROW(peft_adapter_read(t.path), UserError);  // no adapter_config.json
  std::ofstream(t.path + "/" + PEFT_CONFIG_FILE) << R"({"peft_type": "IA3", "r": 4})";
  EXPECT_THROW(peft_adapter_read(t.path), UserError);
  std::ofstream(t.path + "/" + PEFT_CONFIG_FILE) << "{not json";
  EXPECT_THROW(peft_adapter_read(t.path), UserError);
}

// The committed export loads in our model and gives the logits PEFT computed from the same folder.
TEST(PeftExport, ExportedAdapterGivesPeftLogitsInOurModel) {
  const PeftAdapter adapter = peft_adapter_read(kFixture + "/peft_client1");
  ASSERT_TRUE(adapter.config.fan_in_fan_out);
  const SafetensorsFile ref = SafetensorsFile::open(kFixture + "/reference_logits.safetensors");
  const std::vector<int32_t> ids = ref.read_i32("input_ids");  // (B, T)
  const std::vector<int64_t> shape = ref.find("logits")->shape;  // (B, T, V)
  ASSERT_EQ(shape.size(), 3u);
  const int64_t B = shape[0], T = shape[1], V = shape[2];

  auto be = backend_create_cpu();
  Gpt2HostModel host = gpt2_load_hf(kModel);
  ASSERT_EQ(host.config.vocab_size, V);
  LoraConfig lc;
  lc.r = adapter.config.r;
  lc.alpha = adapter.config.lora_alpha;
  lc.dropout = adapter.config.lora_dropout;
  lc.target_modules = adapter.config.target_modules;
  OptimConfig oc;
  Gpt2Model model(*be, host, lc, oc, 1);
  const AdapterLayout& layout = model.adapter_layout();

  // PEFT tensors -> our flat layout: every block of every layer by its PEFT name, every file tensor used.
  std::vector<float> flat((size_t)layout.total, NAN);
  size_t used = 0;
  for (const AdapterBlock& b : layout.blocks)
    for (int64_t l = 0; l < b.layers; ++l) {
      const std::string name = b.peft_name(l);
      const SafetensorsEntry* e = adapter.weights.find(name);
      ASSERT_NE(e, nullptr) << name;
      ASSERT_EQ(e->shape, (std::vector<int64_t>{b.rows, b.cols})) << name;
      std::vector<float> v = adapter.weights.read_f32(name);
      std::copy(v.begin(), v.end(), flat.begin() + b.layer_offset(l));
      ++used;
    }
  EXPECT_EQ(used, adapter.weights.entries().size());
  for (float x : flat) ASSERT_TRUE(std::isfinite(x));

  std::vector<int32_t> targets(ids.size(), 0);
  std::vector<float> mask(ids.size(), 1.0f);
  BatchView batch;
  batch.B = B, batch.T = T, batch.inputs = ids.data(), batch.targets = targets.data(), batch.loss_mask = mask.data();
  std::vector<float> logits((size_t)(B * T * V));
  model.set_adapter(flat.data());
  model.forward_logits(batch, logits.data());
  const std::vector<float> want = ref.read_f32("logits"), base = ref.read_f32("base_logits");
  EXPECT_LE(max_abs_diff(logits, want), LOGIT_TOL);
  // The adapter matters: without it PEFT's logits are far away (so the check above can fail).
  EXPECT_GT(max_abs_diff(want, base), 1000 * LOGIT_TOL);
  std::vector<float> no_adapter(flat.size(), 0.0f), plain(logits.size());
  model.set_adapter(no_adapter.data());
  model.forward_logits(batch, plain.data());
  EXPECT_LE(max_abs_diff(plain, base), LOGIT_TOL);
}
