// Device-resident client states for the federated round loop on the CUDA backend (issue #7): the
// ClientStateStore (fed/client_state_store.h) that keeps every owned client's state (its adapter,
// then Adam's two moments with optim.keep_state; S floats) in the GPU memory of its owner rank, as
// do the slots of clients trained here for another owner, the FedIT global adapter and the
// signal-rollback snapshot. The model trains on them by device-to-device copies
// (Gpt2Model::set_adapter(DFloat) ...), the exchange moves them with NCCL (ranks on distinct GPUs)
// or host-staged MPI (run.share_devices put ranks on one GPU; comm/nccl_exchange.h), and the
// aggregation runs as CUDA kernels (fed/aggregate_device.h), all in the backend's stream order with
// no host synchronisation in the round (except host staging). Host copies are made only for
// checkpoints (owned_states) and come back on resume (restore).
//
// This header is CUDA-free; the implementation exists only with the CUDA backend (device_store.cpp;
// elsewhere device_store_create throws InternalError, and the app never asks:
// AdapterPlacement::device < 0).
#pragma once
#include <mpi.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "fed/client_state_store.h"
#include "fed/graph.h"

namespace mira {

// Collective over `comm`: allocates the owned states (each := init, S host floats), the exchange
// (NCCL unless where.shared) over `comm` with the graph's adjacency. fedit: a global adapter too
// (:= the first P floats of init). reproducible: FedIT by gather + ordered sum (else ncclAllReduce
// where the exchange is NCCL; see fedit_step_device). Logs which exchange it uses.
std::unique_ptr<ClientStateStore> device_store_create(MPI_Comm comm, const AdapterPlacement& where,
                                                      const std::vector<int>& owner, const Graph& graph, size_t P,
                                                      size_t S, bool fedit, bool reproducible, const float* init);

}  // namespace mira
