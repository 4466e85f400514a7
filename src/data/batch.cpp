// Batch assembly, epoch permutations and the per-client batcher (see batch.h).
#include "data/batch.h"

#include <algorithm>
#include <numeric>

#include "runtime/error.h"
#include "runtime/rng.h"

namespace mira {

int64_t Batch::tokens() const {
  int64_t n = 0;
  for (float m : loss_mask) n += m != 0.0f;
  return n;
}

Batch batch_make(const std::vector<TokenizedExample>& examples, const std::vector<int64_t>& index, int pad_to,
                 int32_t pad_id) {
  MIRA_CHECK(!index.empty(), "empty batch");
  int longest = 0;
  for (int64_t i : index) {
    MIRA_CHECK(i >= 0 && i < static_cast<int64_t>(examples.size()), "example index " + std::to_string(i));
    longest = std::max(longest, static_cast<int>(examples[i].ids.size()));
  }
  Batch b;
  b.B = static_cast<int>(index.size());
  b.T = pad_to > 0 ? pad_to : longest;
  MIRA_CHECK(longest <= b.T, "example of " + std::to_string(longest) + " tokens does not fit pad_to " +
                                 std::to_string(pad_to) + " (data.max_length is larger than the batch width)");
  const size_t bt = static_cast<size_t>(b.B) * b.T;
  b.inputs.assign(bt, pad_id);
  b.targets.assign(bt, pad_id);
  b.loss_mask.assign(bt, 0.0f);
  b.example_index.assign(index.begin(), index.end());
  for (int r = 0; r < b.B; ++r) {
    const TokenizedExample& ex = examples[index[r]];
    const int n = static_cast<int>(ex.ids.size());
    int32_t* in = b.inputs.data() + static_cast<size_t>(r) * b.T;
    int32_t* tg = b.targets.data() + static_cast<size_t>(r) * b.T;
    float* m = b.loss_mask.data() + static_cast<size_t>(r) * b.T;
    for (int t = 0; t < n; ++t) in[t] = ex.ids[t];
    for (int t = 0; t + 1 < n; ++t) {
      tg[t] = ex.ids[t + 1];
      m[t] = ex.labels[t + 1] ? 1.0f : 0.0f;  // by position: the label of the predicted token
    }
  }
  return b;
}

std::vector<int64_t> batch_epoch_order(uint64_t seed, int client, int64_t epoch, int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  Rng rng(seed, RngPurpose::DATA_SHUFFLE, static_cast<uint64_t>(client), static_cast<uint64_t>(epoch));
  rng.shuffle(order);
  return order;
}

ClientBatcher::ClientBatcher(const std::vector<TokenizedExample>* train, uint64_t seed, int client, int32_t pad_id)
    : train_(train), seed_(seed), client_(client), pad_id_(pad_id) {
  MIRA_CHECK(train_ != nullptr, "null train split");
}

const std::vector<int64_t>& ClientBatcher::order(int64_t epoch) {
  if (order_epoch_ != epoch) {
    order_ = batch_epoch_order(seed_, client_, epoch, size());
    order_epoch_ = epoch;
  }
  return order_;
}

Batch ClientBatcher::next_batch(int batch_size, int pad_to) {
  MIRA_CHECK(batch_size > 0, "batch_size " + std::to_string(batch_size));
  MIRA_CHECK(size() > 0, "client " + std::to_string(client_) + " has no train examples");
  const std::vector<int64_t>& ord = order(cursor_.epoch);
  const int64_t take = std::min<int64_t>(batch_size, size() - cursor_.position);
  std::vector<int64_t> idx(ord.begin() + cursor_.position, ord.begin() + cursor_.position + take);
  cursor_.position += take;
  if (cursor_.position == size()) cursor_ = {cursor_.epoch + 1, 0};
  return batch_make(*train_, idx, pad_to, pad_id_);
}

Batch ClientBatcher::next_batch_full(int batch_size, int pad_to) {
  MIRA_CHECK(batch_size > 0, "batch_size " + std::to_string(batch_size));
  MIRA_CHECK(size() > 0, "client " + std::to_string(client_) + " has no train examples");
  std::vector<int64_t> idx;
  idx.reserve(batch_size);
  while (static_cast<int>(idx.size()) < batch_size) {
    const std::vector<int64_t>& ord = order(cursor_.epoch);
    idx.push_back(ord[cursor_.position]);
    if (++cursor_.position == size()) cursor_ = {cursor_.epoch + 1, 0};
  }
  return batch_make(*train_, idx, pad_to, pad_id_);
}

int64_t ClientBatcher::batches_per_epoch(int batch_size) const { return batch_count(size(), batch_size); }

void ClientBatcher::set_cursor(const DataCursor& c) {
  MIRA_CHECK(c.epoch >= 0 && c.position >= 0 && c.position < std::max<int64_t>(size(), 1),
             "cursor (" + std::to_string(c.epoch) + ", " + std::to_string(c.position) + ") outside a split of " +
                 std::to_string(size()) + " examples");
  cursor_ = c;
}

int64_t batch_count(int64_t n, int batch_size) {
  MIRA_CHECK(batch_size > 0, "batch_size " + std::to_string(batch_size));
  return (n + batch_size - 1) / batch_size;
}

Batch batch_fixed(const std::vector<TokenizedExample>& examples, int64_t i, int batch_size, int pad_to,
                  int32_t pad_id) {
  const int64_t n = static_cast<int64_t>(examples.size());
  MIRA_CHECK(i >= 0 && i < batch_count(n, batch_size), "batch " + std::to_string(i));
  std::vector<int64_t> idx;
  for (int64_t k = i * batch_size; k < std::min(n, (i + 1) * batch_size); ++k) idx.push_back(k);
  return batch_make(examples, idx, pad_to, pad_id);
}

}  // namespace mira
