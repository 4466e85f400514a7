// Where the federated round loop (fed/federated_run.h) keeps its client states, as one interface:
// ClientStateStore holds every owned client's state (its adapter, P floats, then Adam's two moments
// with optim.keep_state: S = P or 3P floats), the slots of clients trained here for another owner,
// FedIT's global adapter and the snapshot for a signal's rollback, together with the adapter
// exchange that moves them between ranks and the aggregation step that runs on them. The round loop
// talks to the store only by client id, so it is one path for both implementations:
//   - host memory + MpiAdapterExchange + fed/aggregate.h (the CPU backend): fed/host_store.h;
//   - GPU memory + NCCL or host-staged exchange + the aggregation kernels (the CUDA backend):
//     fed/device_store.h.
// Both give bitwise the same states for the same inputs (the aggregation does the same
// double-precision operations in the same order; docs/cuda.md).
//
// This header is CUDA-free: the round loop, compiled in every build, holds a store through it.
#pragma once
#include <cstdint>
#include <map>
#include <vector>

#include "comm/exchange.h"
#include "fed/aggregate.h"
#include "fed/graph.h"
#include "model/gpt2_model.h"

namespace mira {

// Which store the round loop uses (filled by setup_backend, app/run_setup.h).
struct AdapterPlacement {
  int device = -1;         // >= 0: the CUDA backend runs on this CUDA device: states in its memory
  bool shared = false;     // some rank shares its GPU (the same on every rank): host-staged exchange
  void* stream = nullptr;  // the backend's stream (a cudaStream_t, backend_cuda_stream)
};

// Collective calls are marked; every rank makes them in the same order with the same arguments.
// "Held" clients are the owned ones plus, between move() to the workers and clear_visiting(), the
// ones received for training.
class ClientStateStore {
 public:
  virtual ~ClientStateStore() = default;

  // Collective: moves the S floats of each listed client's state between ranks (every rank passes
  // the same list; a received state gets a visiting slot). Returns the bytes this rank sent.
  virtual int64_t move(const std::vector<ClientMove>& moves) = 0;
  // Releases the visiting slots (their states went back to the owners).
  virtual void clear_visiting() = 0;

  // Model <-> held client k's state: the adapter (P floats) and, with keep_state, Adam's moments
  // and step count.
  virtual void load_adapter(Gpt2Model& m, int k) = 0;
  virtual void save_adapter(Gpt2Model& m, int k) = 0;
  virtual void load_optimizer(Gpt2Model& m, int k, int64_t step) = 0;
  virtual void save_optimizer(Gpt2Model& m, int k) = 0;

  // FedIT: the model's adapter := the global adapter; the adapters of the listed clients owned
  // here := the global adapter (clients owned elsewhere are skipped).
  virtual void load_global_adapter(Gpt2Model& m) = 0;
  virtual void copy_global_to_owned(const std::vector<int>& clients) = 0;

  // Collective: the model's adapter := client k's adapter, on every rank (gathered from its owner).
  virtual void load_gathered_adapter(Gpt2Model& m, int k) = 0;

  // Collective aggregation of the owned states (their states must be back with their owners):
  // MIRA eq. (8) of the sampled clients (mira_step) and the FedIT average of the sampled clients
  // into the global adapter (fedit_step; data_size: (K) training examples per client). Both return
  // the bytes this rank sent.
  virtual int64_t mira_step(const Graph& g, const std::vector<int>& sampled, NeighbourMode mode,
                            double eta_lambda) = 0;
  virtual int64_t fedit_step(const std::vector<int>& sampled, const std::vector<int64_t>& data_size) = 0;

  // Host copies of the owned states (client id -> S floats) and of the global adapter (P floats;
  // empty unless FedIT), for checkpoints; restore() puts states read from a checkpoint back (the
  // global adapter only with FedIT). All complete on return.
  virtual std::map<int, std::vector<float>> owned_states() const = 0;
  virtual std::vector<float> global_adapter() const = 0;
  virtual void restore(std::map<int, std::vector<float>> owned, std::vector<float> global) = 0;

  // The owned states and the global adapter as they are now, kept for rollback() (a stop signal
  // abandons the round in progress).
  virtual void snapshot() = 0;
  virtual void rollback() = 0;
};

}  // namespace mira
