// FederatedDataset: the clients of a run and their data. Built from DataOptions and the list of
// clients this rank works on; holds metadata (task, family, counts) for every client and the
// tokenised train/test splits for the listed ones. Every split depends only on (seed, client), so
// it is the same whatever the rank count.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/example.h"
#include "data/options.h"
#include "data/tokenizer.h"

namespace mira {

struct NiManifest;

// The token ids the data will hold, for checking them against the model before any work.
// Pre-tokenised data brings its own: the file's vocab_size attribute, padded with its eos_id (the
// tokenizer is not used to read it). Every other source is tokenised by `tok`: its vocabulary and
// pad id. UserError naming the file when a pre-tokenised file's attributes are missing or bad.
struct DataVocab {
  int64_t vocab_size = 0;
  int32_t pad_id = 0;         // right padding of batches (an id inside the vocabulary)
  bool pretokenized = false;  // the ids come from data.path, not from the tokenizer
};
DataVocab data_vocab(const DataOptions& opts, const Tokenizer& tok);

struct ClientInfo {
  std::string task;         // task name (synthetic task, Dolly category, NI task, JSONL group)
  int family = 0;           // task-family id, for task-aware graphs
  ClientCounts counts;      // train/test/dropped for all; truncation counts only when loaded
  bool loaded = false;      // this rank holds the examples (truncation counts are filled)
};

class FederatedDataset {
 public:
  // clients: the ids this rank needs (others get metadata only). For data.source = ni pass the
  // manifest that rank 0 built (ni_manifest_broadcast); nullptr makes this rank build it itself.
  FederatedDataset(const DataOptions& opts, const Tokenizer& tok, const std::vector<int>& clients,
                   const NiManifest* ni_manifest = nullptr);

  int num_clients() const { return static_cast<int>(info_.size()); }
  const ClientInfo& client(int k) const;
  // Tokenised splits; InternalError for a client this rank did not load.
  const std::vector<TokenizedExample>& train(int k) const;
  const std::vector<TokenizedExample>& test(int k) const;

  int num_families() const { return static_cast<int>(family_names_.size()); }
  const std::string& family_name(int f) const { return family_names_.at(f); }
  // (K, K) row-major: 1 where two clients share a task family (diagonal included), else 0.
  std::vector<float> family_similarity() const;

  // One log line per client (rank 0): task, family, train/test, truncated, dropped; a warning
  // with the totals when anything was truncated or dropped. Collective on `comm` once MPI is
  // initialised (every rank calls it): the truncation counts of every client are taken from the
  // ranks that loaded it (MPI_Allreduce, max: ranks that load the same client count the same), so
  // rank 0's lines cover all clients, not only its own. Clients no rank loaded show no truncation
  // counts. Before MPI_Init (unit tests) it logs this process's counts.
  void log_counts(MPI_Comm comm = MPI_COMM_WORLD) const;

 private:
  std::vector<ClientInfo> info_;
  std::vector<std::string> family_names_;
  std::map<int, std::vector<TokenizedExample>> train_, test_;
};

}  // namespace mira
