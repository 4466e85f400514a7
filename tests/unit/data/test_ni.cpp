// Natural Instructions on a committed fixture: the order of steps of MIRA.md (length filter,
// >= 20, keep 20%, 80/20), the NI template, categories as families, the manifest round trip.
#include <gtest/gtest.h>

#include "data/byte_tokenizer.h"
#include "data/federated_dataset.h"
#include "data/ni.h"
#include "data/templates.h"
#include "runtime/error.h"

namespace mira {
namespace {
DataOptions ni_options() {
  DataOptions o;
  o.source = DataSource::NI;
  o.path = std::string(MIRA_FIXTURES_DIR) + "/data/ni/tasks";
  o.task_list = std::string(MIRA_FIXTURES_DIR) + "/data/ni/train_tasks.txt";
  return o;
}
}  // namespace

TEST(NaturalInstructions, ManifestFollowsThePaperOrder) {
  const NiManifest m = ni_build_manifest(ni_options());
  ASSERT_EQ(m.tasks.size(), 3u);
  // task001: 30 instances, 2 inputs of exactly 1024 chars dropped -> 28, int(0.2 * 28) = 5.
  EXPECT_EQ(m.tasks[0].name, "task001_qa_demo");
  EXPECT_EQ(m.tasks[0].total, 30);
  EXPECT_EQ(m.tasks[0].filtered, 28);
  EXPECT_EQ(m.tasks[0].kept, 5);
  // task002: 21 - 3 long = 18 < 20: skipped.
  ASSERT_EQ(m.skipped.size(), 1u);
  EXPECT_EQ(m.skipped[0], "task002_short_demo");
  EXPECT_EQ(m.tasks[1].kept, 8);  // 40 -> 8
  EXPECT_EQ(m.tasks[2].kept, 5);  // 25 -> 5
  EXPECT_EQ(m.categories, (std::vector<std::string>{"Question Answering", "Sentiment Analysis"}));
  const NiManifest back = ni_manifest_from_json(ni_manifest_to_json(m));
  EXPECT_EQ(ni_manifest_to_json(back), ni_manifest_to_json(m));
  DataOptions capped = ni_options();
  capped.num_clients = 2;
  EXPECT_EQ(ni_build_manifest(capped).tasks.size(), 2u);
}

TEST(NaturalInstructions, DatasetSplitsTemplateAndFamilies) {
  ByteTokenizer tok;
  const DataOptions o = ni_options();
  const NiManifest m = ni_build_manifest(o);
  FederatedDataset d(o, tok, {0, 1, 2}, &m);
  ASSERT_EQ(d.num_clients(), 3);
  EXPECT_EQ(d.client(0).counts.train, 4);  // int(0.8 * 5)
  EXPECT_EQ(d.client(0).counts.test, 1);
  EXPECT_EQ(d.client(0).counts.dropped, 2);
  EXPECT_EQ(d.client(1).counts.train, 6);
  EXPECT_EQ(d.client(0).family, d.client(2).family);  // both Question Answering
  EXPECT_NE(d.client(0).family, d.client(1).family);
  const auto& ex = d.train(1)[0];
  const std::string text = tok.decode(ex.ids);
  const std::string prompt = tok.decode(std::vector<int32_t>(ex.ids.begin(), ex.ids.begin() + ex.prompt_len));
  const std::string full = template_ni("Answer the question of task003_sentiment_demo.", "@");
  const size_t at = full.find('@');
  EXPECT_EQ(prompt.substr(0, at), full.substr(0, at)) << prompt;  // Definition[0], not [1]
  EXPECT_EQ(prompt.substr(at, 13), "Input number ");
  EXPECT_EQ(prompt.substr(prompt.size() - (full.size() - at - 1)), full.substr(at + 1));
  EXPECT_NE(text.find("### Response:answer "), std::string::npos);  // output[0], not output[1]
  EXPECT_EQ(ex.ids.back(), tok.eos_id());
  FederatedDataset one(o, tok, {1}, &m);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(one.train(1)[i].ids, d.train(1)[i].ids);
  DataOptions bad = ni_options();
  bad.ni_min_instances = 100;
  EXPECT_THROW(ni_build_manifest(bad), UserError);
  bad = ni_options();
  bad.path = "/nonexistent";
  EXPECT_THROW(ni_build_manifest(bad), UserError);
}

}  // namespace mira
