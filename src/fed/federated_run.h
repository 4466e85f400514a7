// The round loop of a federated run (MIRA Algorithm 1 without a server): sample S(t), assign the
// sampled clients to ranks (balanced), move adapters to their workers, train R local epochs or
// steps, move them back, aggregate (MIRA eq. (8) over the graph exchange | FedIT average | local),
// evaluate every client with its own adapter on its own test split, write metrics. Runs on every
// rank of `comm`; results are bitwise identical whatever the rank and thread counts (CPU backend).
// Client states live in a ClientStateStore (fed/client_state_store.h): host memory with the MPI
// exchange (CPU backend, fed/host_store.h) or, when FederatedRunOptions::placement names a device
// (CUDA backend), GPU memory with the NCCL or host-staged exchange and the aggregation kernels
// (fed/device_store.h); with fp32 base weights a CUDA run is then bitwise identical across rank
// counts too.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/exchange.h"
#include "data/batch.h"
#include "data/federated_dataset.h"
#include "fed/aggregate.h"
#include "fed/client_state_store.h"
#include "fed/graph.h"
#include "model/gpt2_model.h"

namespace mira {

// The model's view of a data batch (no copy; valid while `b` lives).
BatchView batch_view(const Batch& b);

struct FederatedRunOptions {
  Algorithm algorithm = Algorithm::MIRA;
  int rounds = 1;
  uint64_t seed = 0;
  int clients = 0;               // K
  int sampled_per_round = 1;     // m
  NeighbourMode neighbours = NeighbourMode::SAMPLED;
  double eta = 0, lambda = 0;    // MIRA eq. (8): step eta * lambda
  bool steps_mode = false;       // R = local_steps optimiser steps, else R = local_epochs epochs
  int local_epochs = 1;
  int local_steps = 1;
  bool keep_optimizer = false;   // Adam moments persist per client across rounds (else re-created)
  int batch_size = 8;
  int eval_every = 1;
  bool global_matrix = false;    // also evaluate every adapter on every client's test split
  int wait_for_signal_after_round = -1;  // testing: after round N (1-based) wait for a stop signal
  std::string metrics_path;      // JSONL written by rank 0 ("" = none)
  std::string csv_path;          // CSV, one row per (round, client), rewritten each round ("" = none)
  std::vector<std::string> client_task, client_family;  // (K) labels for the CSV
  std::string header_json;       // extra fields for the metrics header line (a JSON object's body)
  // federation.reproducible: FedIT by gather + ordered sum (true); false lets the NCCL exchange sum
  // with ncclAllReduce (not bitwise reproducible across rank counts); ignored (log line) elsewhere.
  bool reproducible = true;
  // Where the owned states live: host memory + MPI exchange (device < 0, the CPU backend,
  // fed/host_store.h), or the GPU's memory + NCCL / host-staged exchange (fed/device_store.h); set
  // by setup_backend.
  AdapterPlacement placement;
};

// Per-round figures (rank 0 has the full vectors; other ranks the scalars).
struct RoundRecord {
  int64_t round = 0;                 // 0-based
  std::vector<int> sampled;          // S(t), ascending
  int64_t active_edges = 0;          // graph edges among the sampled clients
  std::vector<int> isolated;         // sampled clients with no sampled neighbour
  double train_loss = 0;             // token-weighted mean over the sampled clients' local steps
  std::vector<double> client_train_loss;  // (K) NaN for clients not sampled
  bool evaluated = false;
  std::vector<double> client_test_loss;   // (K) own adapter on own test split (FedIT: the global one)
  double test_loss = 0;              // mean over clients of client_test_loss
  // With global_matrix (rank 0): loss_matrix[k * K + l] = token-mean loss of client k's adapter (FedIT:
  // the global one) on client l's test split; client_global_loss[k] = its token-pooled loss over
  // all test splits; global_loss = mean over k of client_global_loss.
  std::vector<double> loss_matrix;
  std::vector<double> client_global_loss;
  double global_loss = 0;
  int64_t tokens = 0;                // loss tokens trained this round (all ranks)
  double seconds = 0;                // wall time of the round
  int64_t comm_bytes = 0;            // bytes sent by all ranks this round (moves + exchange)
  // Wall seconds per phase, min and max over ranks: train, exchange (moves + aggregation),
  // eval, checkpoint. A large max/min gap means load imbalance or waiting.
  double phase_min[4] = {0, 0, 0, 0};
  double phase_max[4] = {0, 0, 0, 0};
};
inline const char* const kRoundPhases[4] = {"train", "exchange", "eval", "checkpoint"};

// How run() ended.
struct RunResult {
  int64_t rounds_done = 0;  // rounds completed (the state held now is the state after them)
  bool stopped = false;     // a stop signal ended the run early; the unfinished round was abandoned
  int signal = 0;
};

// Called on every rank after each completed round with the number of rounds done (collective:
// checkpoints are written from here).
using RoundHook = std::function<void(int64_t rounds_done)>;

class FederatedRun {
 public:
  FederatedRun(const FederatedRunOptions& opts, MPI_Comm comm, Gpt2Model& model, const FederatedDataset& data,
               const Graph& graph, int32_t pad_id);
  ~FederatedRun();

  // Runs rounds [rounds_done(), opts.rounds). A stop signal (runtime/signals.h) abandons the
  // round in progress: the ranks agree at its end, restore the state of the last completed round
  // and return with stopped = true.
  RunResult run(const RoundHook& after_round);
  int64_t rounds_done() const { return rounds_done_; }
  // Records of every completed round (rank 0 holds the per-client vectors).
  const std::vector<RoundRecord>& records() const { return records_; }
  const std::vector<std::vector<int>>& sample_history() const { return sample_history_; }
  const std::vector<int>& owners() const { return owner_; }
  const FederatedRunOptions& options() const { return opts_; }
  // Resume: the state after `rounds_done` rounds (owned adapters; FedIT: the global adapter; the
  // records of those rounds).
  void restore(int64_t rounds_done, std::map<int, std::vector<float>> owned, std::vector<float> global,
               std::vector<RoundRecord> records);
  std::vector<float> global_adapter() const { return store_->global_adapter(); }  // FedIT (host copy)

  // Owned client states by client id: the adapter (P floats), followed, with keep_optimizer, by
  // Adam's first and second moments (P each): a host copy for checkpoints and export (downloaded
  // from the GPU when the states are device-resident).
  std::map<int, std::vector<float>> owned_states() const { return store_->owned_states(); }
  const std::vector<int>& owned_clients() const { return owned_ids_; }  // ascending
  // The clients a rank needs data for over the whole run (owned + trained anywhere): for loading.
  static std::vector<int> clients_needed(const FederatedRunOptions& opts, int ranks, int rank);
  size_t adapter_floats() const { return P_; }
  size_t state_floats() const { return S_; }  // P, or 3P with keep_optimizer
  // Adam steps client k has taken after `rounds` rounds (keep_optimizer: the bias-correction count).
  int64_t optimizer_step(int k, int64_t rounds) const;

 private:
  RoundRecord run_round(int64_t t);
  // Client k's state (held here) into the model, its R local epochs or steps of round t, the state
  // back into the store; adds the loss sum and token count of its steps.
  void train_client(int k, int64_t t, double* loss_sum, double* tokens);
  int64_t steps_per_round(int k) const;
  bool agree_stop();  // collective: did any rank receive a stop signal?
  int64_t times_trained_before(int k, int64_t t) const;
  std::vector<double> evaluate_owned();
  LossSum evaluate_split(int client);  // the model's current adapter on client's test split
  void evaluate_global_matrix(RoundRecord& rec);             // collective; fills rec on rank 0
  std::vector<double> gather_by_client(const std::vector<double>& mine);  // owned values -> (K) on rank 0
  void write_metrics(const RoundRecord& rec);
  void write_csv();
  void reduce_phases(RoundRecord& rec, const double* mine, int first, int count);

  FederatedRunOptions opts_;
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  Gpt2Model& model_;
  const FederatedDataset& data_;
  const Graph& graph_;
  int32_t pad_id_;
  size_t P_;                                     // adapter floats
  size_t S_;                                     // state floats per client (P or 3P)
  std::vector<int> owner_;                       // (K)
  std::vector<int> owned_ids_;                   // owned clients, ascending
  std::unique_ptr<ClientStateStore> store_;      // the client states with their exchange (host or device)
  std::vector<std::vector<int>> sample_history_; // (rounds) S(t) of every round of the run
  std::vector<RoundRecord> records_;             // completed rounds
  int64_t rounds_done_ = 0;
};

}  // namespace mira
