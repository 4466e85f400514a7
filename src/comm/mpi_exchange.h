// The MPI implementation of AdapterExchange (comm/exchange.h states the rules): a distributed-graph
// communicator built once from the client graph, neighbour exchange with MPI_Neighbor_alltoallv,
// point-to-point moves to workers and back, MPI_Allgatherv for FedIT.
#pragma once
#include <mpi.h>

#include <memory>
#include <vector>

#include "comm/exchange.h"

namespace mira {

// Rule 2 as a pure function: the peer ranks of `rank` (ascending) and, if asked, the number of
// linked client pairs with each (the MPI edge weights: placement hints).
std::vector<int> comm_rank_peers(const std::vector<int>& owner, const std::vector<std::vector<int>>& adjacency,
                                 int rank, std::vector<int>* pair_counts = nullptr);

// The checks and the rank-level layout every AdapterExchange implementation shares (the MPI one
// here, the NCCL and host-staged ones in comm/nccl_exchange.h), so they build the same rank graph.
// owner: (K) rank of each client in 0..size-1; adjacency: (K) ascending, symmetric, no self-links;
// 1 <= P <= INT_MAX. Throws InternalError naming the first fault.
void comm_check_client_graph(const std::vector<int>& owner, const std::vector<std::vector<int>>& adjacency,
                             int size, size_t P);

struct CommLayout {
  std::vector<int> peers;                      // comm_rank_peers: ascending, sources == destinations
  std::vector<int> weights;                    // linked client pairs per peer (placement hints)
  std::vector<std::vector<int>> peer_clients;  // (peers, n) clients owned by each peer, ascending
  std::vector<int> my_clients;                 // clients owned by `rank`, ascending
};
CommLayout comm_layout_build(const std::vector<int>& owner, const std::vector<std::vector<int>>& adjacency, int rank);

// One round's traffic (rules 3, 5, 6): per peer (layout order), the owned clients this rank sends
// and the peer's clients it receives, each ascending; empty lists are zero counts.
struct CommRoundPlan {
  std::vector<std::vector<int>> send;  // (peers, n)
  std::vector<std::vector<int>> recv;  // (peers, n)
};
CommRoundPlan comm_plan_round(const CommLayout& layout, const std::vector<int>& owner,
                              const std::vector<std::vector<int>>& adjacency, int rank,
                              const std::vector<char>& receiver, const std::vector<char>& provider);

class MpiAdapterExchange final : public AdapterExchange {
 public:
  // Collective over `comm`. owner: (K) rank of each client; adjacency: (K) ascending linked client
  // ids, symmetric, no self-links (fed::Graph::neighbours); P: floats per adapter (<= INT_MAX).
  MpiAdapterExchange(MPI_Comm comm, std::vector<int> owner, std::vector<std::vector<int>> adjacency, size_t P);
  ~MpiAdapterExchange() override;
  MpiAdapterExchange(const MpiAdapterExchange&) = delete;
  MpiAdapterExchange& operator=(const MpiAdapterExchange&) = delete;

  size_t adapter_floats() const override { return P_; }
  int clients() const override { return static_cast<int>(owner_.size()); }
  int rank() const override { return rank_; }
  bool owns(int client) const override { return owner_[client] == rank_; }

  void move(const std::vector<ClientMove>& moves, const AdapterLookup& buffer, size_t count) override;
  void exchange(const std::vector<char>& receiver, const std::vector<char>& provider,
                const AdapterLookup& owned) override;
  const float* neighbour(int client) const override;
  void gather(const std::vector<int>& clients, const AdapterLookup& owned, float* out) override;
  ExchangeStats last_stats() const override { return stats_; }

  const std::vector<int>& peers() const { return layout_.peers; }
  MPI_Comm graph_comm() const { return graph_; }

 private:
  MPI_Comm base_ = MPI_COMM_NULL;   // duplicate of the caller's communicator (moves, gather)
  MPI_Comm graph_ = MPI_COMM_NULL;  // distributed-graph communicator (neighbour exchange)
  MPI_Datatype adapter_type_ = MPI_DATATYPE_NULL;  // P contiguous floats
  int rank_ = 0, size_ = 1;
  size_t P_ = 0;
  std::vector<int> owner_;                       // (K)
  std::vector<std::vector<int>> adjacency_;      // (K, deg)
  CommLayout layout_;                            // peers (ascending, sources == destinations), their clients, mine
  std::vector<float> send_buf_, recv_buf_;       // (adapters, P)
  std::vector<int64_t> recv_slot_;               // (K) adapter index in recv_buf_, -1 if absent
  AdapterLookup owned_;                          // from the last exchange
  ExchangeStats stats_;
};

}  // namespace mira
