// Host-resident client states for the federated round loop on the CPU backend: the
// ClientStateStore (fed/client_state_store.h) that keeps every owned client's state, the visiting
// slots, FedIT's global adapter and the rollback snapshot in host memory, moves them with
// MpiAdapterExchange (comm/mpi_exchange.h) and aggregates them with mira_step / fedit_step
// (fed/aggregate.h).
#pragma once
#include <mpi.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "fed/client_state_store.h"
#include "fed/graph.h"

namespace mira {

// Collective over `comm` (the exchange's communicators): the owned states (each := init, S floats)
// of the clients `owner` gives this rank, the MPI exchange with the graph's adjacency, and with
// fedit a global adapter (:= the first P floats of init). FedIT on the host is always gather +
// ordered sum: reproducible = false is ignored here (one log line says so).
std::unique_ptr<ClientStateStore> host_store_create(MPI_Comm comm, const std::vector<int>& owner, const Graph& graph,
                                                    size_t P, size_t S, bool fedit, bool reproducible,
                                                    const float* init);

}  // namespace mira
