// Adapter exchange between ranks: the abstract interface the round loop uses (so an NCCL
// implementation can replace the MPI one), independent of the model and of the graph kinds. An
// adapter is ONE contiguous buffer of P floats per client (all lora_A and lora_B tensors
// concatenated in the model's order). comm sees clients only as ids 0..K-1, their owner ranks and
// their adjacency lists.
//
// Rules (each one has a test in tests/mpi/exchange_*.cpp):
//  1. Ownership: owner[k] is the rank that keeps client k's adapter between rounds (fed/assignment.h
//     gives the block distribution). Several clients per rank, uneven blocks and ranks owning no
//     client are all allowed.
//  2. The rank graph is built ONCE from the client graph: ranks r != q are neighbours iff some client
//     owned by r is linked to some client owned by q. It is symmetric, so every rank's sources and
//     destinations are the same list, each peer listed once (two ranks where both ring neighbours
//     of a client are the one other rank: one entry), in ascending rank order. It is created with
//     MPI_Dist_graph_create_adjacent, reorder = 0, so neighbourhood-collective blocks are in exactly
//     that order. The MPI edge weights passed are the number of linked client pairs between the two
//     ranks: a placement hint only; the weights a_kl stay in our memory (fed/graph.h).
//  3. Direction: client l's adapter goes to client k's owner iff l and k are linked (a_kl > 0),
//     k is a receiver this round and l is a provider this round. Receivers are the clients that
//     apply MIRA eq. (8) (the sampled ones); providers are the sampled ones (authors' code) or all
//     clients (`all-latest`). Every rank derives both sets from the sample without communication.
//  4. Pairs of clients on one rank never go through MPI: neighbour() returns the owner's buffer.
//  5. One communicator serves every round: pairs not needed this round get send count 0, so the
//     per-round sample never forces a rebuild. Each needed adapter crosses a rank pair once per
//     round, however many of the receiver rank's clients are linked to it.
//  6. Blocks: one block per peer, holding the needed adapters in ascending client id, each adapter
//     one MPI datatype of P contiguous floats (so counts are adapter counts and never overflow an
//     int for large P). Data moves with MPI_Neighbor_alltoallv.
//  7. Moves to workers and back (load balancing under sampling) are point-to-point on a duplicate
//     of the base communicator, posted in plan order with one tag (MPI keeps the order per pair).
//  8. gather() (FedIT) collects the listed adapters on every rank in list order with
//     MPI_Allgatherv; the caller sums them in client-id order (never an MPI_Allreduce of floats).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace mira {

// One adapter transfer: client's buffer goes from rank `from` to rank `to`.
struct ClientMove {
  int client = -1;
  int from = -1;
  int to = -1;
  bool operator==(const ClientMove& o) const { return client == o.client && from == o.from && to == o.to; }
};

// The buffer of P floats holding `client`'s adapter on this rank (its owner's storage, or the
// worker's slot during training); nullptr when this rank holds none.
using AdapterLookup = std::function<float*(int client)>;

// Bytes moved by the last call, this rank only (for the metrics: comm bytes per round).
struct ExchangeStats {
  int64_t bytes_sent = 0;
  int64_t bytes_received = 0;
  int64_t adapters_sent = 0;
  int64_t adapters_received = 0;
};

class AdapterExchange {
 public:
  virtual ~AdapterExchange() = default;

  virtual size_t adapter_floats() const = 0;  // P
  virtual int clients() const = 0;            // K
  virtual int rank() const = 0;               // this rank in the base communicator
  virtual bool owns(int client) const = 0;

  // Executes `moves` (every rank passes the same list): this rank sends `buffer(client)` for moves
  // with from == rank() and receives into `buffer(client)` for moves with to == rank().
  // `count` floats per client: P for adapters; other per-client state may ride the same way.
  virtual void move(const std::vector<ClientMove>& moves, const AdapterLookup& buffer, size_t count) = 0;

  // Neighbour exchange (rule 3). receiver and provider are (K) masks, identical on every rank;
  // `owned` gives this rank's adapters. Afterwards neighbour(l) is valid for every l linked to an
  // owned receiver with provider[l] set, until the next exchange.
  virtual void exchange(const std::vector<char>& receiver, const std::vector<char>& provider,
                        const AdapterLookup& owned) = 0;
  // Client l's adapter as of the last exchange: the owner's buffer when l is owned here, the
  // received copy otherwise, nullptr when it was not needed (not sent) this round.
  virtual const float* neighbour(int client) const = 0;

  // Every rank gets the adapters of `clients` (same list on every rank, each owned by its owner),
  // in list order: out is (clients.size(), P).
  virtual void gather(const std::vector<int>& clients, const AdapterLookup& owned, float* out) = 0;

  virtual ExchangeStats last_stats() const = 0;
};

}  // namespace mira
