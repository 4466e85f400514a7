// Batches for causal-LM training with response-only loss, and the per-client batcher that walks a
// client's shuffled train split with a resumable cursor (epoch, position).
//
// Layout (contract with src/model): an example of n tokens s[0..n) fills row b as
//   inputs[b*T+t]  = s[t]            for t < n, pad after (right padding: GPT-2 takes positions
//                                    from the index, so no attention-mask shift is needed)
//   targets[b*T+t] = s[t+1]          for t < n-1, pad after
//   loss_mask[b*T+t] = labels[t+1]   for t < n-1, 0 after
// The mask comes from positions and lengths, never from token ids: pad == EOS, and the final EOS of
// the target keeps mask 1. Loss = sum(mask * CE) / sum(mask), which equals Hugging Face's shifted
// loss with labels = -100 on prompt and padding.
#pragma once
#include <cstdint>
#include <vector>

#include "data/example.h"

namespace mira {

struct Batch {
  int B = 0;  // rows (examples)
  int T = 0;  // positions per row
  std::vector<int32_t> inputs;    // (B, T)
  std::vector<int32_t> targets;   // (B, T)  next token at each position
  std::vector<float> loss_mask;   // (B, T)  1 = counted in the loss
  std::vector<int32_t> example_index;  // (B) index of each row's example in its split
  int64_t tokens() const;         // sum of loss_mask: the number of predicted tokens
};

// Builds one batch of examples[index[0..count)]. T = pad_to if pad_to > 0 (InternalError if an
// example is longer), else the longest example of the batch.
Batch batch_make(const std::vector<TokenizedExample>& examples, const std::vector<int64_t>& index, int pad_to,
                 int32_t pad_id);

// Where a client's batcher stands; saved in checkpoints (/data/cursor) and restored.
struct DataCursor {
  int64_t epoch = 0;
  int64_t position = 0;  // examples of this epoch's permutation already used
};

// Walks one client's train split. The order of epoch e is a permutation drawn from
// Rng(seed, DATA_SHUFFLE, client, e): it depends on nothing else, so any rank can pick up any client.
class ClientBatcher {
 public:
  ClientBatcher(const std::vector<TokenizedExample>* train, uint64_t seed, int client, int32_t pad_id);

  // Epochs mode: the next min(batch_size, left in epoch) examples; after the last batch of an
  // epoch the cursor moves to (epoch + 1, 0). batches_per_epoch() calls make one epoch.
  Batch next_batch(int batch_size, int pad_to);
  // Steps mode: always batch_size examples, continuing into the next epoch's order when one ends.
  Batch next_batch_full(int batch_size, int pad_to);
  int64_t batches_per_epoch(int batch_size) const;

  DataCursor cursor() const { return cursor_; }
  // InternalError if the position is outside the split (a checkpoint that does not fit the data).
  void set_cursor(const DataCursor& c);
  int64_t size() const { return static_cast<int64_t>(train_->size()); }

 private:
  const std::vector<int64_t>& order(int64_t epoch);
  const std::vector<TokenizedExample>* train_;
  uint64_t seed_;
  int client_;
  int32_t pad_id_;
  DataCursor cursor_;
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;
};

// The permutation of epoch `epoch` of `n` examples for `client` (exposed for tests and tools).
std::vector<int64_t> batch_epoch_order(uint64_t seed, int client, int64_t epoch, int64_t n);

// Test split in fixed order: batch i holds examples [i*batch_size, min(n, (i+1)*batch_size)).
int64_t batch_count(int64_t n, int batch_size);
Batch batch_fixed(const std::vector<TokenizedExample>& examples, int64_t i, int batch_size, int pad_to,
                  int32_t pad_id);

}  // namespace mira
