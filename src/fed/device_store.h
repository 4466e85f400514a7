// Device-resident client states for the federated round loop on the CUDA backend (issue #7): every
// owned client's state (its adapter, then Adam's two moments with optim.keep_state; S floats) lives
// in the GPU memory of its owner rank, and so do the slots of clients trained here for another
// owner, the FedIT global adapter and the signal-rollback snapshot. The model trains on them by
// device-to-device copies (Gpt2Model::set_adapter(DFloat) ...), the exchange moves them with NCCL
// (ranks on distinct GPUs) or host-staged MPI (run.share_devices put ranks on one GPU;
// comm/nccl_exchange.h), and the aggregation runs as CUDA kernels (fed/aggregate_device.h), all in
// the backend's stream order with no host synchronisation in the round (except host staging).
// Host copies are made only for checkpoints (download_owned) and come back on resume (upload).
//
// This header is CUDA-free (the round loop, compiled in every build, holds the store through it);
// the implementation exists only with the CUDA backend (device_store.cpp; elsewhere
// device_store_create throws InternalError, and the app never asks: AdapterPlacement::device < 0).
#pragma once
#include <mpi.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/exchange.h"
#include "fed/aggregate.h"
#include "fed/graph.h"
#include "model/gpt2_model.h"

namespace mira {

// Where the round loop keeps the owned clients' states (filled by setup_backend, app/run_setup.h).
struct AdapterPlacement {
  int device = -1;         // >= 0: the CUDA backend runs on this CUDA device: states in its memory
  bool shared = false;     // some rank shares its GPU (the same on every rank): host-staged exchange
  void* stream = nullptr;  // the backend's stream (a cudaStream_t, backend_cuda_stream)
};

class DeviceAdapterStore {
 public:
  virtual ~DeviceAdapterStore() = default;
  virtual AdapterExchange& exchange() = 0;
  virtual std::string exchange_name() const = 0;  // "NCCL" | "host-staged MPI"

  // Owned client k's state (device, S floats), nullptr when k is not owned here.
  virtual float* owned(int k) = 0;
  // Owned state or, for another owner's client, a slot of S floats (kept until clear_visiting).
  virtual float* slot(int k) = 0;
  virtual void clear_visiting() = 0;
  virtual float* global() = 0;  // FedIT's global adapter (P floats; device); nullptr otherwise
  // The first P floats of each listed owned client's state := the global adapter.
  virtual void global_to_owned(const std::vector<int>& clients) = 0;

  // The model's adapter from / to a device buffer of P floats; Adam's moments from / to a state
  // (its floats P..3P).
  virtual void load_adapter(Gpt2Model& m, const float* adapter) = 0;
  virtual void save_adapter(Gpt2Model& m, float* adapter) = 0;
  virtual void load_optimizer(Gpt2Model& m, const float* state, int64_t step) = 0;
  virtual void save_optimizer(Gpt2Model& m, float* state) = 0;

  // Aggregation (collective): aggregate_device.h on the owned states.
  virtual void mira_step(const Graph& g, const std::vector<int>& sampled, NeighbourMode mode, double eta_lambda) = 0;
  virtual void fedit_step(const std::vector<int>& sampled, const std::vector<int64_t>& data_size) = 0;
  // Client k's adapter on every rank (collective gather of one; device, P floats, valid until the next call).
  virtual const float* gather_one(int k) = 0;

  // Host copies (checkpoints) and their way back (resume); both complete on return.
  virtual std::map<int, std::vector<float>> download_owned() = 0;
  virtual std::vector<float> download_global() = 0;
  virtual void upload(const std::map<int, std::vector<float>>& owned, const std::vector<float>& global) = 0;
  // The state after the last completed round, kept in device memory for a signal's rollback.
  virtual void snapshot() = 0;
  virtual void rollback() = 0;
};

// Collective over `comm`: allocates the owned states (each := init, S host floats), the exchange
// (NCCL unless where.shared) over `comm` with the graph's adjacency. fedit: a global adapter too
// (:= the first P floats of init). reproducible: FedIT by gather + ordered sum (else ncclAllReduce
// where the exchange is NCCL; see fedit_step_device).
std::unique_ptr<DeviceAdapterStore> device_store_create(MPI_Comm comm, const AdapterPlacement& where,
                                                        const std::vector<int>& owner, const Graph& graph, size_t P,
                                                        size_t S, bool fedit, bool reproducible, const float* init);

}  // namespace mira
