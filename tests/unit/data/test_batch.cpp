// Batching: layout, response-only loss mask by position (pad == EOS), truncation and counts, the
// per-client cursor (epochs and steps modes, save/restore), fixed-order test batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "data/batch.h"
#include "data/byte_tokenizer.h"
#include "runtime/error.h"

namespace mira {
namespace {
TokenizedExample make(const std::string& p, const std::string& r, int max_len = 1024, ClientCounts* c = nullptr) {
  static ByteTokenizer tok;
  return example_tokenize({p, r, "test"}, tok, max_len, c);
}
}  // namespace

TEST(Example, PromptResponseEos) {
  const TokenizedExample ex = make("ab", "xyz");
  const std::vector<int32_t> ids = {'a', 'b', 'x', 'y', 'z', ByteTokenizer::EOS};
  EXPECT_EQ(ex.ids, ids);
  const std::vector<uint8_t> labels = {0, 0, 1, 1, 1, 1};
  EXPECT_EQ(ex.labels, labels);
  EXPECT_EQ(ex.prompt_len, 2);
  EXPECT_FALSE(ex.response_truncated);
}

TEST(Batch, MaskByPositionKeepsFinalEos) {
  // Two examples of different length; pad == EOS, so a mask built from token ids would get the
  // final EOS (a target) or the padding (not a target) wrong.
  std::vector<TokenizedExample> ex = {make("ab", "xy"), make("abcd", "z")};
  const Batch b = batch_make(ex, {0, 1}, 0, ByteTokenizer::EOS);
  ASSERT_EQ(b.B, 2);
  ASSERT_EQ(b.T, 6);  // longest: a b c d z EOS
  const int E = ByteTokenizer::EOS;
  // Row 0: a b x y EOS | pad. Predicts b (prompt, 0), x, y, EOS (1), nothing (0).
  const std::vector<int32_t> in0 = {'a', 'b', 'x', 'y', E, E};
  const std::vector<int32_t> tg0 = {'b', 'x', 'y', E, E, E};
  const std::vector<float> m0 = {0, 1, 1, 1, 0, 0};
  EXPECT_EQ(std::vector<int32_t>(b.inputs.begin(), b.inputs.begin() + 6), in0);
  EXPECT_EQ(std::vector<int32_t>(b.targets.begin(), b.targets.begin() + 6), tg0);
  EXPECT_EQ(std::vector<float>(b.loss_mask.begin(), b.loss_mask.begin() + 6), m0);
  // Row 1: a b c d z EOS. The target EOS at position 4 keeps mask 1; position 5 predicts nothing.
  const std::vector<float> m1 = {0, 0, 0, 1, 1, 0};
  EXPECT_EQ(std::vector<float>(b.loss_mask.begin() + 6, b.loss_mask.end()), m1);
  EXPECT_EQ(b.targets[6 + 4], E);
  EXPECT_EQ(b.tokens(), 5);
  // Padding to a fixed width adds only mask-0 positions.
  const Batch w = batch_make(ex, {0, 1}, 9, E);
  EXPECT_EQ(w.T, 9);
  EXPECT_EQ(w.tokens(), 5);
  EXPECT_EQ(w.inputs[8], E);
  EXPECT_THROW(batch_make(ex, {0, 1}, 5, E), InternalError);  // 6 tokens do not fit 5
}

TEST(Example, TruncatesPromptFromLeftKeepsOnePromptToken) {
  ClientCounts c;
  const TokenizedExample ex = make("abcdef", "xy", 5, &c);  // 6 + 2 + EOS = 9 > 5: cut 4 from the left
  const std::vector<int32_t> ids = {'e', 'f', 'x', 'y', ByteTokenizer::EOS};
  EXPECT_EQ(ex.ids, ids);
  EXPECT_EQ(ex.prompt_len, 2);
  EXPECT_EQ(c.truncated, 1);
  EXPECT_EQ(c.tokens_cut, 4);
  EXPECT_EQ(c.response_truncated, 0);
  // The response alone does not fit: the prompt keeps one token, the response is cut on the right.
  const TokenizedExample ex2 = make("abc", "vwxyz", 4, &c);
  const std::vector<int32_t> ids2 = {'c', 'v', 'w', 'x'};
  EXPECT_EQ(ex2.ids, ids2);
  EXPECT_TRUE(ex2.response_truncated);
  EXPECT_EQ(c.truncated, 2);
  EXPECT_EQ(c.response_truncated, 1);
  EXPECT_EQ(c.tokens_cut, 4 + 2 + 3);  // 2 prompt tokens, then y, z, EOS
  const Batch b = batch_make({ex2}, {0}, 0, ByteTokenizer::EOS);
  EXPECT_EQ(b.tokens(), 3);  // v, w, x are all predicted, from c, v, w
}

TEST(Batcher, EpochModeCoversEachExampleOnceLastBatchSmaller) {
  std::vector<TokenizedExample> train;
  for (int i = 0; i < 10; ++i) train.push_back(make("p", std::string(1, static_cast<char>('a' + i))));
  ClientBatcher bat(&train, 7, 3, ByteTokenizer::EOS);
  EXPECT_EQ(bat.batches_per_epoch(4), 3);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::multiset<int> seen;
    std::vector<int> sizes;
    for (int i = 0; i < 3; ++i) {
      const Batch b = bat.next_batch(4, 0);
      sizes.push_back(b.B);
      for (int r = 0; r < b.B; ++r) seen.insert(b.example_index[r]);
    }
    EXPECT_EQ(sizes, (std::vector<int>{4, 4, 2}));
    EXPECT_EQ(seen.size(), 10u);
    EXPECT_EQ(std::set<int>(seen.begin(), seen.end()).size(), 10u);
    EXPECT_EQ(bat.cursor().epoch, epoch + 1);
    EXPECT_EQ(bat.cursor().position, 0);
  }
  // Orders differ between epochs and between clients, and depend only on (seed, client, epoch).
  EXPECT_NE(batch_epoch_order(7, 3, 0, 10), batch_epoch_order(7, 3, 1, 10));
  EXPECT_NE(batch_epoch_order(7, 3, 0, 10), batch_epoch_order(7, 4, 0, 10));
  EXPECT_EQ(batch_epoch_order(7, 3, 5, 10), batch_epoch_order(7, 3, 5, 10));
}

TEST(Batcher, CursorSaveRestoreGivesSameBatches) {
  std::vector<TokenizedExample> train;
  for (int i = 0; i < 7; ++i) train.push_back(make("q", std::string(i + 1, 'r')));
  ClientBatcher a(&train, 1, 0, ByteTokenizer::EOS);
  a.next_batch_full(3, 0);
  a.next_batch_full(3, 0);  // 6 of 7 used
  const DataCursor saved = a.cursor();
  EXPECT_EQ(saved.epoch, 0);
  EXPECT_EQ(saved.position, 6);
  const Batch next_a = a.next_batch_full(3, 0);  // wraps: 1 from epoch 0, 2 from epoch 1
  EXPECT_EQ(next_a.B, 3);
  EXPECT_EQ(a.cursor().epoch, 1);
  EXPECT_EQ(a.cursor().position, 2);
  ClientBatcher b(&train, 1, 0, ByteTokenizer::EOS);
  b.set_cursor(saved);
  const Batch next_b = b.next_batch_full(3, 0);
  EXPECT_EQ(next_a.inputs, next_b.inputs);
  EXPECT_EQ(next_a.example_index, next_b.example_index);
  EXPECT_EQ(next_b.example_index[0], batch_epoch_order(1, 0, 0, 7)[6]);
  EXPECT_EQ(next_b.example_index[1], batch_epoch_order(1, 0, 1, 7)[0]);
  EXPECT_THROW(b.set_cursor({0, 7}), InternalError);
}

TEST(Batch, FixedOrderTestBatches) {
  std::vector<TokenizedExample> test;
  for (int i = 0; i < 5; ++i) test.push_back(make("t", std::string(1, static_cast<char>('0' + i))));
  EXPECT_EQ(batch_count(5, 2), 3);
  const Batch b = batch_fixed(test, 2, 2, 0, ByteTokenizer::EOS);
  EXPECT_EQ(b.B, 1);
  EXPECT_EQ(b.example_index[0], 4);
  EXPECT_EQ(b.inputs[1], '4');
}

}  // namespace mira
