// FederatedDataset: runs the reader of data.source, tokenises the clients this rank needs, checks
// that no client is left without data, and keeps the counts (see federated_dataset.h).
#include "data/federated_dataset.h"

#include <set>

#include "data/ni.h"
#include "data/source.h"
#include "runtime/check_mpi.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace mira {

DataVocab data_vocab(const DataOptions& opts, const Tokenizer& tok) {
  opts.validate();
  DataVocab v;
  if (opts.source == DataSource::PRETOKENIZED) {
    const PretokenizedVocab f = source_pretokenized_vocab(opts.path);
    v.vocab_size = f.vocab_size;
    v.pad_id = f.eos_id;
    v.pretokenized = true;
  } else {
    v.vocab_size = tok.vocab_size();
    v.pad_id = tok.pad_id();
  }
  return v;
}

FederatedDataset::FederatedDataset(const DataOptions& opts, const Tokenizer& tok, const std::vector<int>& clients,
                                   const NiManifest* ni_manifest) {
  opts.validate();
  const std::set<int> needed(clients.begin(), clients.end());
  SourceData d;
  switch (opts.source) {
    case DataSource::SYNTHETIC: d = source_load_synthetic(opts, needed); break;
    case DataSource::DOLLY:
    case DataSource::JSONL: d = source_load_jsonl(opts, needed); break;
    case DataSource::NI: {
      if (ni_manifest) {
        d = source_load_ni(opts, needed, *ni_manifest);
      } else {
        const NiManifest m = ni_build_manifest(opts);
        d = source_load_ni(opts, needed, m);
      }
      break;
    }
    case DataSource::PRETOKENIZED: d = source_load_pretokenized(opts, needed); break;
  }
  family_names_ = d.family_names;
  const int k_total = static_cast<int>(d.clients.size());
  for (int k : needed)
    if (k < 0 || k >= k_total)
      throw UserError("client " + std::to_string(k) + " requested but " + std::string(data_source_name(opts.source)) +
                      " data has " + std::to_string(k_total) + " clients (run.clients)");
  info_.resize(k_total);
  for (int k = 0; k < k_total; ++k) {
    SourceClient& c = d.clients[k];
    ClientInfo& ci = info_[k];
    ci.task = c.task;
    ci.family = c.family;
    ci.counts.train = c.n_train;
    ci.counts.test = c.n_test;
    ci.counts.dropped = c.dropped;
    if (c.n_train == 0)
      throw UserError(std::string("data.source = ") + data_source_name(opts.source) + ": client " +
                      std::to_string(k) + " (task " + c.task + ") has no train examples after filtering" +
                      (opts.path.empty() ? "" : " (" + opts.path + ")"));
    if (c.n_test == 0)
      log_warn("data: client %d (task %s) has no test example (train %lld): its test loss is not defined", k,
               c.task.c_str(), (long long)c.n_train);
    if (!c.loaded) continue;
    ci.loaded = true;
    auto& tr = train_[k];
    auto& te = test_[k];
    if (c.pretokenized) {
      tr = std::move(c.train_tok);
      te = std::move(c.test_tok);
      for (auto& ex : tr) example_fit(&ex, opts.max_length, &ci.counts);
      for (auto& ex : te) example_fit(&ex, opts.max_length, &ci.counts);
    } else {
      for (const TextExample& ex : c.train_text) tr.push_back(example_tokenize(ex, tok, opts.max_length, &ci.counts));
      for (const TextExample& ex : c.test_text) te.push_back(example_tokenize(ex, tok, opts.max_length, &ci.counts));
    }
    MIRA_CHECK(static_cast<int64_t>(tr.size()) == c.n_train && static_cast<int64_t>(te.size()) == c.n_test,
               "client " + std::to_string(k) + " split sizes disagree with the metadata");
  }
}

const ClientInfo& FederatedDataset::client(int k) const {
  MIRA_CHECK(k >= 0 && k < num_clients(), "client " + std::to_string(k));
  return info_[k];
}

const std::vector<TokenizedExample>& FederatedDataset::train(int k) const {
  auto it = train_.find(k);
  MIRA_CHECK(it != train_.end(), "client " + std::to_string(k) + " not loaded on this rank");
  return it->second;
}

const std::vector<TokenizedExample>& FederatedDataset::test(int k) const {
  auto it = test_.find(k);
  MIRA_CHECK(it != test_.end(), "client " + std::to_string(k) + " not loaded on this rank");
  return it->second;
}

std::vector<float> FederatedDataset::family_similarity() const {
  const int k = num_clients();
  std::vector<float> s(static_cast<size_t>(k) * k, 0.0f);
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) s[static_cast<size_t>(i) * k + j] = info_[i].family == info_[j].family ? 1.0f : 0.0f;
  return s;
}

void FederatedDataset::log_counts(MPI_Comm comm) const {
  // Per client: loaded somewhere, truncated, response_truncated, tokens_cut (max over ranks).
  const int k_total = num_clients();
  std::vector<int64_t> cut(static_cast<size_t>(k_total) * 4, 0);
  for (int k = 0; k < k_total; ++k) {
    const ClientInfo& c = info_[k];
    if (!c.loaded) continue;
    int64_t* row = &cut[static_cast<size_t>(k) * 4];
    row[0] = 1;
    row[1] = c.counts.truncated;
    row[2] = c.counts.response_truncated;
    row[3] = c.counts.tokens_cut;
  }
  int initialized = 0, finalized = 0;
  MIRA_CHECK_MPI(MPI_Initialized(&initialized));
  MIRA_CHECK_MPI(MPI_Finalized(&finalized));
  if (initialized && !finalized && !cut.empty())
    MIRA_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, cut.data(), static_cast<int>(cut.size()), MPI_INT64_T, MPI_MAX, comm));

  ClientCounts total;
  int64_t unloaded = 0;
  for (int k = 0; k < k_total; ++k) {
    const ClientInfo& c = info_[k];
    const int64_t* row = &cut[static_cast<size_t>(k) * 4];
    if (row[0])
      log_info("data: client %d task %s family %s: train %lld test %lld truncated %lld (response cut %lld, "
               "%lld tokens) dropped %lld", k, c.task.c_str(), family_names_.at(c.family).c_str(),
               (long long)c.counts.train, (long long)c.counts.test, (long long)row[1], (long long)row[2],
               (long long)row[3], (long long)c.counts.dropped);
    else
      log_info("data: client %d task %s family %s: train %lld test %lld dropped %lld (not loaded: truncation not "
               "counted)", k, c.task.c_str(), family_names_.at(c.family).c_str(), (long long)c.counts.train,
               (long long)c.counts.test, (long long)c.counts.dropped);
    unloaded += row[0] ? 0 : 1;
    total.train += c.counts.train;
    total.test += c.counts.test;
    total.truncated += row[1];
    total.response_truncated += row[2];
    total.dropped += c.counts.dropped;
  }
  if (total.truncated || total.response_truncated || total.dropped)
    log_warn("data: %lld examples had their prompt truncated, %lld their response, %lld were dropped by filters "
             "(per-client counts above%s)", (long long)total.truncated, (long long)total.response_truncated,
             (long long)total.dropped, unloaded ? "; truncation only of the clients some rank loaded" : "");
}

}  // namespace mira
