// Which rank owns each client (block distribution) and which rank trains each sampled client in a
// round (balanced, deterministic, owner preferred), with the adapter moves that implement it.
// Everything here is a pure function of (K, ranks, sampled set): every rank computes the same plan
// without communication; comm/exchange.h executes the moves.
#pragma once
#include <vector>

#include "comm/exchange.h"

namespace mira {

// Block distribution: the first K % R ranks own ceil(K/R) consecutive clients, the others
// floor(K/R); with K < R the last R - K ranks own none.
int assignment_owner(int K, int ranks, int client);
int assignment_first_client(int K, int ranks, int rank);  // owned block is [first(r), first(r+1))
std::vector<int> assignment_owners(int K, int ranks);      // (K) owner rank of each client

struct Assignment {
  std::vector<int> clients;               // (m) the sampled clients, ascending
  std::vector<int> worker;                // (m) rank that trains clients[i]
  std::vector<std::vector<int>> by_rank;  // (R, n_r) clients each rank trains, ascending
  std::vector<ClientMove> to_workers;     // owner -> worker, for clients trained off their owner
  std::vector<ClientMove> to_owners;      // the same moves reversed (after training)
};

// Balanced: every rank trains floor(m/R) or ceil(m/R) clients (so no rank idles while another trains
// two or more, and with m <= R nobody trains two). Owners keep their own clients when balance
// allows, and the number of moves is the least possible: rank r keeps min(c_r, cap_r) of its c_r
// sampled clients (the smallest ids), where the m % R larger capacities go first to ranks whose
// surplus would otherwise move (ascending rank), then to the lowest ranks; the surplus (largest ids
// first moved) fills free capacity in ascending rank order. `sampled` must be ascending and unique.
Assignment assignment_plan(const std::vector<int>& sampled, int K, int ranks);

}  // namespace mira
