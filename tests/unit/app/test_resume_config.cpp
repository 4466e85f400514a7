// Resume: the checkpoint's stored configuration against this run's (app/resume_config.h). Keys that
// change the results are refused, all of them listed with both values; run length, output, backend,
// logging, checkpoint.* and eval.* and the keys checked by their effect may differ; data paths warn.
#include <gtest/gtest.h>

#include "app/config_schema.h"
#include "app/resume_config.h"
#include "runtime/error.h"

using namespace mira;

namespace {

Config defaults() {
  Config c;
  config_apply_defaults(c);
  return c;
}

std::string ini(const Config& c) { return config_to_ini(c, false); }

// The config text with `key` set to `value` (through the key table, as the command line does).
std::string with(std::vector<std::pair<std::string, std::string>> changes) {
  Config c = defaults();
  for (const auto& [k, v] : changes) config_find_key(k)->set(c, v);
  return ini(c);
}

std::vector<std::string> keys_of(const std::vector<ResumeConfigDiff>& d) {
  std::vector<std::string> out;
  for (const auto& x : d) out.push_back(x.key);
  return out;
}

}  // namespace

TEST(ResumeConfig, SameConfigFits) {
  const auto r = resume_config_compare(ini(defaults()), ini(defaults()));
  EXPECT_TRUE(r.refused.empty());
  EXPECT_TRUE(r.warned.empty());
}

TEST(ResumeConfig, KeysThatChangeTheResultsAreAllListedInTableOrder) {
  const std::string stored = ini(defaults());
  const std::string now = with({{"train.local_steps", "400"}, {"lora.alpha", "16"}, {"optim.lr", "0.01"},
                                {"lora.targets", "c_attn"}, {"optim.keep_state", "true"},
                                {"data.examples_per_client", "12"}, {"mira.eta", "0.015"}, {"mira.lambda", "2"}});
  const auto r = resume_config_compare(stored, now);
  EXPECT_EQ(keys_of(r.refused), (std::vector<std::string>{"lora.alpha", "lora.targets", "optim.lr", "optim.keep_state",
                                                          "train.local_steps", "data.examples_per_client",
                                                          "mira.lambda", "mira.eta"}));
  ASSERT_FALSE(r.refused.empty());
  EXPECT_EQ(r.refused[0].stored, "8");
  EXPECT_EQ(r.refused[0].now, "16");
  const std::string msg = resume_config_refusal(r.refused);
  EXPECT_NE(msg.find("differs in 8 key(s) that change the results: lora.alpha = '8' there, '16' here; "
                     "lora.targets = 'c_attn,c_proj' there, 'c_attn' here;"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("resume with the checkpoint's values"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);  // one line
}

TEST(ResumeConfig, RunLengthPlacementOutputAndBookkeepingMayChange) {
  const std::string now =
      with({{"run.rounds", "50"}, {"run.output", "elsewhere"}, {"run.backend", "cpu"}, {"run.threads", "3"},
            {"run.log_level", "debug"}, {"run.resume", "auto"}, {"run.clients", "20"},
            {"run.wait_for_signal_after_round", "2"}, {"run.share_devices", "true"}, {"run.fail_on_rank", "5"},
            {"model.base_precision", "bf16"}, {"model.path", "/models/x"}, {"federation.reproducible", "false"},
            {"federation.graph", "ring"}, {"federation.graph_seed", "7"}, {"federation.sample_fraction", "0.5"},
            {"checkpoint.every", "5"}, {"checkpoint.keep", "1"}, {"eval.every", "3"}, {"eval.global_matrix", "true"},
            {"pretrain.steps", "10"}, {"pretrain.out", "o"}, {"data.pretrain_documents", "5"}});
  const auto r = resume_config_compare(ini(defaults()), now);
  EXPECT_TRUE(r.refused.empty()) << resume_config_refusal(r.refused);
  EXPECT_TRUE(r.warned.empty());
  for (const char* k : {"run.rounds", "checkpoint.keep", "eval.every", "pretrain.lr", "federation.graph"})
    EXPECT_TRUE(resume_config_may_change(k)) << k;
  for (const char* k : {"lora.rank", "optim.lr", "train.batch_size", "data.max_length", "mira.neighbours"})
    EXPECT_FALSE(resume_config_may_change(k)) << k;
}

TEST(ResumeConfig, DataPathsWarnInsteadOfRefusing) {
  const std::string stored = with({{"data.source", "jsonl"}, {"data.path", "data/x.jsonl"}});
  const std::string now = with({{"data.source", "jsonl"}, {"data.path", "/scratch/data/x.jsonl"}});
  const auto r = resume_config_compare(stored, now);
  EXPECT_TRUE(r.refused.empty());
  ASSERT_EQ(r.warned.size(), 1u);
  EXPECT_EQ(r.warned[0].key, "data.path");
  EXPECT_EQ(r.warned[0].stored, "data/x.jsonl");
  EXPECT_EQ(r.warned[0].now, "/scratch/data/x.jsonl");
}

TEST(ResumeConfig, ValuesAreComparedAsTheirTypeAndUnknownOrMissingKeysAreSkipped) {
  // A stored text from another version: a number spelled differently, a key this binary does not
  // know, and a key it lacks (added later: its default is assumed).
  std::string stored = ini(defaults());
  const std::string lr = "lr = " + config_find_key("optim.lr")->get(defaults()) + "\n";
  ASSERT_NE(stored.find(lr), std::string::npos);
  stored.replace(stored.find(lr), lr.size(), "lr = 3.0e-4\nold_key = 1\n");
  const std::string beta = "beta1 = " + config_find_key("optim.beta1")->get(defaults()) + "\n";
  ASSERT_NE(stored.find(beta), std::string::npos);
  stored.erase(stored.find(beta), beta.size());
  const auto r = resume_config_compare(stored, with({{"optim.beta1", "0.5"}}));
  EXPECT_TRUE(r.refused.empty()) << resume_config_refusal(r.refused);
}

TEST(ResumeConfig, AStoredTextThatDoesNotParseIsAUserError) {
  EXPECT_THROW(resume_config_compare("[run]\nrounds\n", ini(defaults())), UserError);
}
