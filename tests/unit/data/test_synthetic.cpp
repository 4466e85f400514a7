// Synthetic suite: codes and answers, lengths that fit tiny models, determinism, family structure,
// the pretraining corpus kept apart from the tasks, and splits that do not depend on which
// clients a rank loads.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "data/byte_tokenizer.h"
#include "data/federated_dataset.h"
#include "data/synthetic.h"
#include "runtime/error.h"

namespace mira {

TEST(Synthetic, CodesFamiliesAndAnswers) {
  // Family a's code is efchabdg; member 0 swaps the images of a and b, member 3 those of g and h.
  EXPECT_EQ(synth_task(0).code, "fechabdg");
  EXPECT_EQ(synth_task(3).code, "efchabgd");
  EXPECT_EQ(synth_task(0).name, "code_a.v0");
  EXPECT_EQ(synth_task(7).name, "code_b.v3");
  EXPECT_EQ(synth_task(7).family, 1);
  EXPECT_EQ(synth_answer(0, "abch"), "fecg");
  EXPECT_EQ(synth_answer(1, "abch"), "efhg");
  EXPECT_EQ(synth_answer(4, "abch"), "achf");  // family b: cahdbegf, member 0 swaps a, b: achdbegf
  EXPECT_THROW(synth_answer(0, "abcz"), InternalError);
  // Members of a family agree on 6 of 8 letters with the family code and on 4 of 8 pairwise;
  // every task is a permutation of a..h.
  for (int t = 0; t < SYNTH_NUM_TASKS; ++t) {
    std::string sorted = synth_task(t).code;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, "abcdefgh");
    for (int u = 0; u < SYNTH_NUM_TASKS; ++u) {
      if (u == t || synth_task(u).family != synth_task(t).family) continue;
      int agree = 0;
      for (int i = 0; i < 8; ++i) agree += synth_task(t).code[i] == synth_task(u).code[i];
      EXPECT_EQ(agree, 4);
    }
  }
}

TEST(Synthetic, ExamplesAreShortDeterministicAndFollowTheTemplate) {
  ByteTokenizer tok;
  std::set<std::string> words;
  for (int k = 0; k < SYNTH_NUM_TASKS; ++k) {
    for (int i = 0; i < 50; ++i) {
      const TextExample ex = synth_example(42, k, i);
      const TokenizedExample t = example_tokenize(ex, tok, 1024, nullptr);
      EXPECT_EQ(t.ids.size(), 71u);  // "well under 128 bytes" (issue 4): prompt 66 + word 4 + EOS
      EXPECT_EQ(ex.prompt.substr(0, 46), "### Instruction:\nEncode the word.\n\n### Input:\n");
      EXPECT_EQ(ex.prompt.substr(50), "\n\n### Response:\n");
      const std::string word = ex.prompt.substr(46, 4);
      words.insert(word);
      EXPECT_EQ(ex.response, synth_answer(synth_client_task(k), word));
    }
  }
  EXPECT_GT(words.size(), 700u);  // 1000 draws from 4096 words: mostly distinct
  EXPECT_EQ(synth_example(42, 3, 7).prompt, synth_example(42, 3, 7).prompt);
  EXPECT_NE(synth_example(42, 3, 7).prompt, synth_example(43, 3, 7).prompt);
  EXPECT_NE(synth_example(42, 3, 7).prompt, synth_example(42, 3, 8).prompt);
  // Client 23 repeats task 3 with its own examples.
  EXPECT_EQ(synth_client_task(23), 3);
  EXPECT_NE(synth_example(42, 23, 7).prompt, synth_example(42, 3, 7).prompt);
}

TEST(Synthetic, PretrainCorpusIsDisjointFromTasks) {
  const auto docs = synth_pretrain_corpus(42, 500);
  ASSERT_EQ(docs.size(), 500u);
  std::set<std::string> distinct(docs.begin(), docs.end());
  EXPECT_GT(distinct.size(), 400u);  // a grammar of ~10^6 sentences: few repeats in 500
  for (const auto& d : docs) {
    EXPECT_EQ(d.find("###"), std::string::npos);
    EXPECT_EQ(d.find(synth_task(0).instruction), std::string::npos);
  }
  ByteTokenizer tok;
  ClientCounts c;
  const auto ex = synth_pretrain_examples(42, 20, tok, 1024, &c);
  ASSERT_EQ(ex.size(), 20u);
  EXPECT_EQ(ex[0].ids.front(), tok.eos_id());
  EXPECT_EQ(ex[0].labels.front(), 0);
  EXPECT_EQ(ex[0].ids.back(), tok.eos_id());
  EXPECT_EQ(ex[0].labels.back(), 1);
  EXPECT_EQ(tok.decode(std::vector<int32_t>(ex[0].ids.begin() + 1, ex[0].ids.end() - 1)), docs[0]);
  EXPECT_EQ(c.train, 20);
}

TEST(FederatedDataset, SyntheticCountsFamiliesAndRankIndependentSplits) {
  ByteTokenizer tok;
  DataOptions o;
  o.max_length = 128;
  std::vector<int> all;
  for (int k = 0; k < 20; ++k) all.push_back(k);
  FederatedDataset full(o, tok, all);
  FederatedDataset one(o, tok, {7});
  ASSERT_EQ(full.num_clients(), 20);
  ASSERT_EQ(one.num_clients(), 20);
  EXPECT_EQ(full.num_families(), 5);
  for (int k = 0; k < 20; ++k) {
    EXPECT_EQ(full.client(k).counts.train, 32);  // 40 examples, 80/20
    EXPECT_EQ(full.client(k).counts.test, 8);
    EXPECT_EQ(full.train(k).size(), 32u);
    EXPECT_EQ(full.client(k).family, k / 4);
    EXPECT_EQ(one.client(k).counts.train, 32);  // metadata for every client
  }
  EXPECT_TRUE(one.client(7).loaded);
  EXPECT_FALSE(one.client(8).loaded);
  EXPECT_THROW(one.train(8), InternalError);
  for (size_t i = 0; i < 32; ++i) EXPECT_EQ(one.train(7)[i].ids, full.train(7)[i].ids);
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(one.test(7)[i].ids, full.test(7)[i].ids);
  // Train and test are disjoint slices of the client's 40 examples.
  std::set<std::vector<int32_t>> tr;
  for (const auto& e : full.train(7)) tr.insert(e.ids);
  for (const auto& e : full.test(7)) EXPECT_EQ(tr.count(e.ids), 0u);
  const auto s = full.family_similarity();
  ASSERT_EQ(s.size(), 400u);
  EXPECT_EQ(s[0 * 20 + 3], 1.0f);   // same family (code_a)
  EXPECT_EQ(s[0 * 20 + 4], 0.0f);   // code_a vs code_b
  EXPECT_EQ(s[5 * 20 + 5], 1.0f);
  EXPECT_EQ(full.client(0).task, "code_a.v0");
  EXPECT_THROW(FederatedDataset(o, tok, {20}), UserError);
  DataOptions big = o;
  big.num_clients = 40;
  FederatedDataset more(big, tok, {25});
  EXPECT_EQ(more.num_clients(), 40);
  EXPECT_EQ(more.client(25).task, "code_b.v1");
}

}  // namespace mira
