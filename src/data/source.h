// What each dataset reader hands to FederatedDataset: per client its task, family, split sizes and
// drops (for every client: cheap metadata), and its examples (only for the clients this rank
// needs). Internal to src/data; users go through federated_dataset.h.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "data/example.h"
#include "data/options.h"

namespace mira {

struct SourceClient {
  std::string task;
  int family = 0;
  int64_t n_train = 0, n_test = 0, dropped = 0;
  bool loaded = false;                           // examples below are filled
  std::vector<TextExample> train_text, test_text;
  bool pretokenized = false;                     // examples come as tokens (train_tok/test_tok)
  std::vector<TokenizedExample> train_tok, test_tok;
};

struct SourceData {
  std::vector<SourceClient> clients;
  std::vector<std::string> family_names;  // index = family id
  int64_t tokens_read = 0;  // pretokenized: elements read from /tokens (and as many from /labels)
};

// Train share of n examples: floor(train_fraction * n) as Python's int() gives, clamped so that a
// client with >= 2 examples has at least one train and one test example.
int64_t source_train_count(int64_t n, double train_fraction);
// Shuffles `all` with Rng(seed, DATA_SPLIT, client) and cuts it into train (first) and test.
template <typename T>
void source_split(std::vector<T> all, uint64_t seed, int client, double train_fraction, std::vector<T>* train,
                  std::vector<T>* test);

SourceData source_load_synthetic(const DataOptions& opts, const std::set<int>& needed);
SourceData source_load_jsonl(const DataOptions& opts, const std::set<int>& needed);  // dolly and jsonl
SourceData source_load_pretokenized(const DataOptions& opts, const std::set<int>& needed);
// A pre-tokenised file's vocab_size and eos_id attributes (format and version checked first).
// UserError naming the file unless 1 <= vocab_size <= 2^31 and 0 <= eos_id < vocab_size.
struct PretokenizedVocab {
  int64_t vocab_size = 0;
  int32_t eos_id = 0;
};
PretokenizedVocab source_pretokenized_vocab(const std::string& path);

}  // namespace mira

#include "runtime/rng.h"

namespace mira {
template <typename T>
void source_split(std::vector<T> all, uint64_t seed, int client, double train_fraction, std::vector<T>* train,
                  std::vector<T>* test) {
  Rng rng(seed, RngPurpose::DATA_SPLIT, static_cast<uint64_t>(client));
  rng.shuffle(all);
  const int64_t nt = source_train_count(static_cast<int64_t>(all.size()), train_fraction);
  train->assign(std::make_move_iterator(all.begin()), std::make_move_iterator(all.begin() + nt));
  test->assign(std::make_move_iterator(all.begin() + nt), std::make_move_iterator(all.end()));
}
}  // namespace mira
