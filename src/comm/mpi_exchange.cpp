// MPI adapter exchange (mpi_exchange.h; the rules are at the top of comm/exchange.h).
#include "comm/mpi_exchange.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

#include "runtime/check_mpi.h"
#include "runtime/error.h"

namespace mira {

namespace {
constexpr int MOVE_TAG = 7101;  // any fixed tag: moves are matched by posting order (rule 7)

// MPI wants non-null arrays even when a rank has no neighbour.
template <typename T>
T* nonnull(std::vector<T>& v) {
  if (v.empty()) v.reserve(1);
  return v.data();
}
}  // namespace

std::vector<int> comm_rank_peers(const std::vector<int>& owner, const std::vector<std::vector<int>>& adjacency,
                                 int rank, std::vector<int>* pair_counts) {
  std::vector<int> count_by_rank;
  for (size_t k = 0; k < owner.size(); ++k) {
    if (owner[k] != rank) continue;
    for (int l : adjacency[k]) {
      const int q = owner[l];
      if (q == rank) continue;  // rule 4: same-rank pairs never go through MPI
      if (static_cast<int>(count_by_rank.size()) <= q) count_by_rank.resize(q + 1, 0);
      ++count_by_rank[q];
    }
  }
  std::vector<int> peers;
  if (pair_counts) pair_counts->clear();
  for (int q = 0; q < static_cast<int>(count_by_rank.size()); ++q)
    if (count_by_rank[q] > 0) {
      peers.push_back(q);
      if (pair_counts) pair_counts->push_back(count_by_rank[q]);
    }
  return peers;
}

void comm_check_client_graph(const std::vector<int>& owner, const std::vector<std::vector<int>>& adjacency,
                             int size, size_t P) {
  const int K = static_cast<int>(owner.size());
  MIRA_CHECK(P >= 1 && P <= static_cast<size_t>(INT_MAX), "adapter floats P=" + std::to_string(P));
  MIRA_CHECK(static_cast<int>(adjacency.size()) == K,
             "adjacency has " + std::to_string(adjacency.size()) + " lists for K=" + std::to_string(K));
  for (int k = 0; k < K; ++k) {
    MIRA_CHECK(owner[k] >= 0 && owner[k] < size, "owner of client " + std::to_string(k) + " = " + std::to_string(owner[k]));
    for (size_t i = 0; i < adjacency[k].size(); ++i) {
      const int l = adjacency[k][i];
      MIRA_CHECK(l >= 0 && l < K && l != k, "client " + std::to_string(k) + " linked to " + std::to_string(l));
      MIRA_CHECK(i == 0 || adjacency[k][i - 1] < l, "adjacency of client " + std::to_string(k) + " not ascending");
      MIRA_CHECK(std::binary_search(adjacency[l].begin(), adjacency[l].end(), k),
                 "adjacency not symmetric: " + std::to_string(k) + " -> " + std::to_string(l));
    }
  }
}

CommLayout comm_layout_build(const std::vector<int>& owner, const std::vector<std::vector<int>>& adjacency, int rank) {
  const int K = static_cast<int>(owner.size());
  CommLayout lay;
  for (int k = 0; k < K; ++k)
    if (owner[k] == rank) lay.my_clients.push_back(k);
  lay.peers = comm_rank_peers(owner, adjacency, rank, &lay.weights);
  for (int q : lay.peers) {
    lay.peer_clients.emplace_back();
    for (int k = 0; k < K; ++k)
      if (owner[k] == q) lay.peer_clients.back().push_back(k);
  }
  return lay;
}

CommRoundPlan comm_plan_round(const CommLayout& layout, const std::vector<int>& owner,
                              const std::vector<std::vector<int>>& adjacency, int rank,
                              const std::vector<char>& receiver, const std::vector<char>& provider) {
  const int K = static_cast<int>(owner.size());
  MIRA_CHECK(static_cast<int>(receiver.size()) == K && static_cast<int>(provider.size()) == K,
             "receiver/provider masks must have K=" + std::to_string(K) + " entries");
  // Does client l (a provider) have a receiver neighbour owned by rank q?
  auto wanted_by = [&](int l, int q) {
    if (!provider[l]) return false;
    for (int k : adjacency[l])
      if (owner[k] == q && receiver[k]) return true;
    return false;
  };
  CommRoundPlan plan;
  plan.send.resize(layout.peers.size());
  plan.recv.resize(layout.peers.size());
  for (size_t i = 0; i < layout.peers.size(); ++i) {
    for (int l : layout.my_clients)  // ascending client id (rule 6)
      if (wanted_by(l, layout.peers[i])) plan.send[i].push_back(l);
    for (int l : layout.peer_clients[i])
      if (wanted_by(l, rank)) plan.recv[i].push_back(l);
  }
  return plan;
}

MpiAdapterExchange::MpiAdapterExchange(MPI_Comm comm, std::vector<int> owner, std::vector<std::vector<int>> adjacency,
                                       size_t P)
    : P_(P), owner_(std::move(owner)), adjacency_(std::move(adjacency)) {
  MIRA_CHECK_MPI(MPI_Comm_rank(comm, &rank_));
  MIRA_CHECK_MPI(MPI_Comm_size(comm, &size_));
  const int K = static_cast<int>(owner_.size());
  comm_check_client_graph(owner_, adjacency_, size_, P_);
  layout_ = comm_layout_build(owner_, adjacency_, rank_);
  std::vector<int>& peers = layout_.peers;
  std::vector<int>& weights = layout_.weights;
  MIRA_CHECK_MPI(MPI_Comm_dup(comm, &base_));
  const int degree = static_cast<int>(peers.size());
  MIRA_CHECK_MPI(MPI_Dist_graph_create_adjacent(base_, degree, nonnull(peers), nonnull(weights), degree,
                                                nonnull(peers), nonnull(weights), MPI_INFO_NULL, /*reorder=*/0,
                                                &graph_));
  MIRA_CHECK_MPI(MPI_Type_contiguous(static_cast<int>(P_), MPI_FLOAT, &adapter_type_));
  MIRA_CHECK_MPI(MPI_Type_commit(&adapter_type_));
  recv_slot_.assign(K, -1);
}

MpiAdapterExchange::~MpiAdapterExchange() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (adapter_type_ != MPI_DATATYPE_NULL) MPI_Type_free(&adapter_type_);
  if (graph_ != MPI_COMM_NULL) MPI_Comm_free(&graph_);
  if (base_ != MPI_COMM_NULL) MPI_Comm_free(&base_);
}

void MpiAdapterExchange::move(const std::vector<ClientMove>& moves, const AdapterLookup& buffer, size_t count) {
  MIRA_CHECK(count >= 1 && count <= static_cast<size_t>(INT_MAX), "move count=" + std::to_string(count));
  stats_ = ExchangeStats{};
  std::vector<MPI_Request> requests;
  for (const ClientMove& m : moves) {
    MIRA_CHECK(m.client >= 0 && m.client < clients() && m.from >= 0 && m.from < size_ && m.to >= 0 && m.to < size_ &&
                   m.from != m.to,
               "move of client " + std::to_string(m.client) + " from " + std::to_string(m.from) + " to " +
                   std::to_string(m.to));
    if (m.from != rank_ && m.to != rank_) continue;
    float* buf = buffer(m.client);
    MIRA_CHECK(buf != nullptr, "no buffer for client " + std::to_string(m.client) + " on rank " + std::to_string(rank_));
    requests.emplace_back();
    if (m.to == rank_) {
      MIRA_CHECK_MPI(MPI_Irecv(buf, static_cast<int>(count), MPI_FLOAT, m.from, MOVE_TAG, base_, &requests.back()));
      stats_.adapters_received += 1;
      stats_.bytes_received += static_cast<int64_t>(count * sizeof(float));
    } else {
      MIRA_CHECK_MPI(MPI_Isend(buf, static_cast<int>(count), MPI_FLOAT, m.to, MOVE_TAG, base_, &requests.back()));
      stats_.adapters_sent += 1;
      stats_.bytes_sent += static_cast<int64_t>(count * sizeof(float));
    }
  }
  if (!requests.empty())
    MIRA_CHECK_MPI(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE));
}

void MpiAdapterExchange::exchange(const std::vector<char>& receiver, const std::vector<char>& provider,
                                  const AdapterLookup& owned) {
  const CommRoundPlan plan = comm_plan_round(layout_, owner_, adjacency_, rank_, receiver, provider);
  owned_ = owned;
  stats_ = ExchangeStats{};
  const size_t npeers = layout_.peers.size();
  std::vector<int> scount(npeers, 0), sdispl(npeers, 0), rcount(npeers, 0), rdispl(npeers, 0);
  std::vector<const float*> to_pack;
  std::fill(recv_slot_.begin(), recv_slot_.end(), -1);
  int nsend = 0, nrecv = 0;
  for (size_t i = 0; i < npeers; ++i) {
    sdispl[i] = nsend;
    for (int l : plan.send[i]) {
      const float* p = owned(l);
      MIRA_CHECK(p != nullptr, "no buffer for owned client " + std::to_string(l));
      to_pack.push_back(p);
      ++nsend;
    }
    scount[i] = nsend - sdispl[i];
    rdispl[i] = nrecv;
    for (int l : plan.recv[i]) recv_slot_[l] = nrecv++;
    rcount[i] = nrecv - rdispl[i];
  }
  send_buf_.resize(static_cast<size_t>(nsend) * P_);
  recv_buf_.resize(static_cast<size_t>(nrecv) * P_);
  for (size_t j = 0; j < to_pack.size(); ++j) std::memcpy(&send_buf_[j * P_], to_pack[j], P_ * sizeof(float));
  MIRA_CHECK_MPI(MPI_Neighbor_alltoallv(nonnull(send_buf_), nonnull(scount), nonnull(sdispl), adapter_type_,
                                        nonnull(recv_buf_), nonnull(rcount), nonnull(rdispl), adapter_type_, graph_));
  stats_.adapters_sent = nsend;
  stats_.adapters_received = nrecv;
  stats_.bytes_sent = static_cast<int64_t>(nsend) * static_cast<int64_t>(P_ * sizeof(float));
  stats_.bytes_received = static_cast<int64_t>(nrecv) * static_cast<int64_t>(P_ * sizeof(float));
}

const float* MpiAdapterExchange::neighbour(int client) const {
  MIRA_CHECK(client >= 0 && client < clients(), "client " + std::to_string(client));
  if (owner_[client] == rank_) return owned_ ? owned_(client) : nullptr;
  const int64_t slot = recv_slot_[client];
  return slot < 0 ? nullptr : &recv_buf_[static_cast<size_t>(slot) * P_];
}

void MpiAdapterExchange::gather(const std::vector<int>& clients_list, const AdapterLookup& owned, float* out) {
  stats_ = ExchangeStats{};
  const size_t n = clients_list.size();
  // Contributions grouped by owner rank (rank order, list order within a rank), then put in list
  // order: allgatherv needs each rank's part contiguous.
  std::vector<int> counts(size_, 0), displs(size_, 0);
  for (int c : clients_list) {
    MIRA_CHECK(c >= 0 && c < clients(), "client " + std::to_string(c));
    ++counts[owner_[c]];
  }
  for (int q = 1; q < size_; ++q) displs[q] = displs[q - 1] + counts[q - 1];
  std::vector<float> mine(static_cast<size_t>(counts[rank_]) * P_);
  size_t j = 0;
  for (int c : clients_list)
    if (owner_[c] == rank_) {
      const float* p = owned(c);
      MIRA_CHECK(p != nullptr, "no buffer for owned client " + std::to_string(c));
      std::memcpy(&mine[j++ * P_], p, P_ * sizeof(float));
    }
  std::vector<float> all(n * P_);
  MIRA_CHECK_MPI(MPI_Allgatherv(nonnull(mine), counts[rank_], adapter_type_, nonnull(all), counts.data(), displs.data(),
                                adapter_type_, base_));
  std::vector<int> next = displs;
  for (size_t i = 0; i < n; ++i) {
    const int slot = next[owner_[clients_list[i]]]++;
    std::memcpy(out + i * P_, &all[static_cast<size_t>(slot) * P_], P_ * sizeof(float));
  }
  stats_.adapters_sent = counts[rank_];
  stats_.adapters_received = static_cast<int64_t>(n) - counts[rank_];
  stats_.bytes_sent = stats_.adapters_sent * static_cast<int64_t>(P_ * sizeof(float));
  stats_.bytes_received = stats_.adapters_received * static_cast<int64_t>(P_ * sizeof(float));
}

}  // namespace mira
