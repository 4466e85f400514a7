// Dolly-15k and generic JSONL readers on committed fixtures: client layout, verbatim templates,
// seeded assignment independent of the clients loaded, and bad input named by file:line.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "data/byte_tokenizer.h"
#include "data/federated_dataset.h"
#include "data/templates.h"
#include "runtime/error.h"

namespace mira {
namespace {
const std::string kDir = std::string(MIRA_FIXTURES_DIR) + "/data";

DataOptions dolly_options() {
  DataOptions o;
  o.source = DataSource::DOLLY;
  o.path = kDir + "/dolly_small.jsonl";
  o.clients_per_category = 2;
  return o;
}

std::string temp_file(const std::string& name, const std::string& content) {
  const std::string p = testing::TempDir() + "/" + name;
  std::ofstream(p, std::ios::binary) << content;
  return p;
}

std::string error_of(const DataOptions& o) {
  ByteTokenizer tok;
  try {
    FederatedDataset d(o, tok, {0});
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

const char* kLine = R"({"instruction": "Q?", "context": "", "response": "A.", "category": "open_qa"})";
}  // namespace

TEST(Dolly, TemplatesAreVerbatim) {
  EXPECT_EQ(template_dolly("Do X", "ctx"),
            "Below is an instruction that describes a task, paired with an input that provides further context. "
            "Write a response for the task request.\n\n### Instruction:\nDo X\n\n### Input:\nctx\n\n### Response:");
  EXPECT_EQ(template_dolly("Do X", ""),
            "Below is an instruction that describes a task. Write a response for the task request.\n\n"
            "### Instruction:\nDo X\n\n### Response:");
}

TEST(Dolly, ClientsCategoriesSplitsAndRankIndependence) {
  ByteTokenizer tok;
  const DataOptions o = dolly_options();
  std::vector<int> all;
  for (int k = 0; k < 16; ++k) all.push_back(k);
  FederatedDataset full(o, tok, all);
  FederatedDataset part(o, tok, {5, 11});
  ASSERT_EQ(full.num_clients(), 16);  // 8 categories x 2
  EXPECT_EQ(full.num_families(), 8);
  EXPECT_EQ(full.family_name(0), "brainstorming");
  std::set<std::string> responses;
  for (int k = 0; k < 16; ++k) {
    const ClientInfo& c = full.client(k);
    EXPECT_EQ(c.family, k / 2);
    EXPECT_EQ(c.counts.train, 2);  // 6 lines per category / 2 clients = 3, int(0.8 * 3) = 2
    EXPECT_EQ(c.counts.test, 1);
    EXPECT_EQ(part.client(k).counts.train, 2);
    for (const auto* split : {&full.train(k), &full.test(k)})
      for (const auto& ex : *split) {
        // Every example of client k belongs to its category (the fixture names it in the response).
        const std::string text = tok.decode(ex.ids);
        EXPECT_NE(text.find("about " + full.family_name(c.family)), std::string::npos) << text;
        EXPECT_EQ(text.rfind("Below is an instruction", 0), 0u);
        responses.insert(text);
      }
  }
  EXPECT_EQ(responses.size(), 48u);  // each line used exactly once
  for (int k : {5, 11})
    for (size_t i = 0; i < 2; ++i) EXPECT_EQ(part.train(k)[i].ids, full.train(k)[i].ids);
  // Another seed deals the lines differently.
  DataOptions o2 = o;
  o2.seed = 7;
  FederatedDataset other(o2, tok, {0});
  std::set<std::string> a, b;
  for (const auto& ex : full.train(0)) a.insert(tok.decode(ex.ids));
  for (const auto& ex : other.train(0)) b.insert(tok.decode(ex.ids));
  EXPECT_NE(a, b);
}

TEST(Dolly, BadInputNamesFileAndLine) {
  DataOptions o = dolly_options();
  o.clients_per_category = 1;
  o.path = temp_file("bad1.jsonl", std::string(kLine) + "\n{\"instruction\": \n");
  EXPECT_NE(error_of(o).find("bad1.jsonl:2: malformed JSON"), std::string::npos) << error_of(o);
  o.path = temp_file("bad2.jsonl", std::string(kLine) + "\n" + R"({"instruction": "Q", "context": "", "category": "open_qa"})");
  EXPECT_NE(error_of(o).find("bad2.jsonl:2: missing field 'response'"), std::string::npos) << error_of(o);
  o.path = temp_file("bad3.jsonl", R"({"instruction": "Q", "context": "", "response": "A", "category": "poetry"})");
  EXPECT_NE(error_of(o).find("bad3.jsonl:1: unknown Dolly category 'poetry'"), std::string::npos) << error_of(o);
  o.path = temp_file("bad4.jsonl", std::string(kLine) + "\n\n" + "{\"instruction\": \"Q\xFF\", \"context\": \"\", \"response\": \"A\", \"category\": \"open_qa\"}");
  EXPECT_NE(error_of(o).find("bad4.jsonl:3: invalid UTF-8"), std::string::npos) << error_of(o);
  // All other categories empty: their clients have no data.
  o.path = temp_file("bad5.jsonl", std::string(kLine) + "\n");
  EXPECT_NE(error_of(o).find("has no train examples"), std::string::npos) << error_of(o);
  o.path = kDir + "/no_such.jsonl";
  EXPECT_NE(error_of(o).find("cannot open"), std::string::npos);
}

TEST(Dolly, EmptyResponsesAreDroppedAndCounted) {
  std::string text;
  for (const char* cat : {"brainstorming", "classification", "closed_qa", "creative_writing", "general_qa",
                          "information_extraction", "open_qa", "summarization"})
    for (int i = 0; i < 3; ++i)
      text += std::string(R"({"instruction": "Q", "context": "", "response": ")") + (i == 0 && cat[0] == 'o' ? " " : "A") +
              R"(", "category": ")" + cat + "\"}\n";
  DataOptions o = dolly_options();
  o.clients_per_category = 1;
  o.path = temp_file("empty_resp.jsonl", text);
  ByteTokenizer tok;
  FederatedDataset d(o, tok, {6});
  EXPECT_EQ(d.client(6).task, "open_qa/0");
  EXPECT_EQ(d.client(6).counts.dropped, 1);
  EXPECT_EQ(d.client(6).counts.train + d.client(6).counts.test, 2);
  EXPECT_EQ(d.client(5).counts.dropped, 0);
  // A byte-order mark and CRLF line ends (files saved on Windows) are accepted.
  o.path = temp_file("bom_crlf.jsonl", "\xEF\xBB\xBF" + text.substr(0, text.find('\n')) + "\r\n" +
                                           text.substr(text.find('\n') + 1));
  ByteTokenizer tok2;
  FederatedDataset e(o, tok2, {0});
  EXPECT_EQ(e.client(0).counts.train + e.client(0).counts.test, 3);
}

TEST(GenericJsonl, ConfigurableFieldsRawTemplate) {
  DataOptions o;
  o.source = DataSource::JSONL;
  o.path = kDir + "/generic_small.jsonl";
  o.prompt_field = "prompt";
  o.input_field = "";
  o.response_field = "answer";
  o.client_field = "task";
  o.prompt_template = PromptTemplate::RAW;
  o.clients_per_category = 1;
  ByteTokenizer tok;
  FederatedDataset d(o, tok, {0, 1, 2});
  ASSERT_EQ(d.num_clients(), 3);
  EXPECT_EQ(d.client(0).task, "echo/0");  // groups sorted by name
  EXPECT_EQ(d.client(2).task, "spell/0");
  EXPECT_EQ(d.client(1).counts.train, 4);
  EXPECT_EQ(d.client(1).counts.test, 1);
  const auto& ex = d.train(2)[0];
  const std::string prompt = tok.decode(std::vector<int32_t>(ex.ids.begin(), ex.ids.begin() + ex.prompt_len));
  EXPECT_EQ(prompt.rfind("spell the word w", 0), 0u);
  EXPECT_EQ(prompt.size(), 17u);  // "spell the word wN", no template
  DataOptions bad = o;
  bad.response_field = "output";
  EXPECT_NE(error_of(bad).find("generic_small.jsonl:1: missing field 'output'"), std::string::npos);
  bad = o;
  bad.num_clients = 5;
  EXPECT_NE(error_of(bad).find("run.clients = 5 but "), std::string::npos);  // the key users set
}

}  // namespace mira
