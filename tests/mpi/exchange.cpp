// MPI tests of the adapter exchange (src/comm, rules at the top of comm/exchange.h) and of the
// distributed aggregation (src/fed/aggregate.h), run by ctest under 1, 2, 3 and 4 ranks:
// the dist-graph topology (peers, order, symmetry, weights), the two-rank ring where both ring
// neighbours are one peer, neighbour contents and zero counts under sampling, moves to workers and
// back, and whole rounds of MIRA and FedIT compared bitwise with a single-process reference
// computed here. Adapters are integer-valued (and steps dyadic where stated) so sums are exact.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/mpi_exchange.h"
#include "fed/aggregate.h"
#include "fed/assignment.h"
#include "fed/graph.h"
#include "fed/sampler.h"

namespace mira {
namespace {

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

// Integer-valued adapter element i of client c, in [-30, 30].
float init_value(int c, size_t i) { return static_cast<float>(static_cast<int>((c * 131 + i * 17) % 61) - 30); }

// Local training stand-in: adds an integer depending on (client, round, i).
void fake_train(float* x, int c, int64_t round, size_t P) {
  for (size_t i = 0; i < P; ++i) x[i] += static_cast<float>(static_cast<int>((c * 7 + round * 3 + i) % 5) - 2);
}

// The graphs every test runs over (a mix of dense, sparse, weighted and disconnected).
std::vector<std::pair<std::string, Graph>> test_graphs(int K) {
  std::vector<std::pair<std::string, Graph>> g;
  g.emplace_back("ring", graph_ring(K));
  g.emplace_back("complete", graph_complete(K));
  g.emplace_back("random", graph_random(K, 42));
  std::vector<int> family(K);
  for (int k = 0; k < K; ++k) family[k] = k % 3;
  g.emplace_back("task", graph_task(family, 1.0, 0.0));
  return g;
}

// One rank's adapters: owned clients plus worker slots for clients it trains but does not own.
struct RankStore {
  std::map<int, std::vector<float>> owned, slots;
  AdapterLookup owned_lookup() {
    return [this](int c) -> float* {
      auto it = owned.find(c);
      return it == owned.end() ? nullptr : it->second.data();
    };
  }
  AdapterLookup any_lookup(size_t P) {  // owned buffer, else a (created) worker slot
    return [this, P](int c) -> float* {
      auto it = owned.find(c);
      if (it != owned.end()) return it->second.data();
      auto& s = slots[c];
      s.resize(P);
      return s.data();
    };
  }
};

RankStore make_store(const std::vector<int>& owner, size_t P) {
  RankStore st;
  for (int c = 0; c < static_cast<int>(owner.size()); ++c)
    if (owner[c] == world_rank()) {
      auto& v = st.owned[c];
      v.resize(P);
      for (size_t i = 0; i < P; ++i) v[i] = init_value(c, i);
    }
  return st;
}

// Every client's adapter on every rank (raw byte movement, no arithmetic), (K, P).
std::vector<float> allgather_adapters(RankStore& st, const std::vector<int>& owner, size_t P) {
  const int K = static_cast<int>(owner.size());
  std::vector<float> all(static_cast<size_t>(K) * P), mine(static_cast<size_t>(K) * P, 0.0f);
  for (auto& [c, v] : st.owned) std::memcpy(&mine[static_cast<size_t>(c) * P], v.data(), P * sizeof(float));
  // Each client's block comes from its owner: exchange (K*P) buffers, keep the owner's block.
  std::vector<float> gathered(static_cast<size_t>(world_size()) * K * P);
  MPI_Allgather(mine.data(), K * static_cast<int>(P), MPI_FLOAT, gathered.data(), K * static_cast<int>(P), MPI_FLOAT,
                MPI_COMM_WORLD);
  for (int c = 0; c < K; ++c)
    std::memcpy(&all[static_cast<size_t>(c) * P], &gathered[(static_cast<size_t>(owner[c]) * K + c) * P], P * sizeof(float));
  return all;
}

TEST(ExchangeMpi, DistGraphTopologyFollowsTheRules) {
  const int R = world_size(), me = world_rank();
  for (int K : {1, 2, 3, 5, 7, 9}) {
    const std::vector<int> owner = assignment_owners(K, R);
    for (auto& [name, g] : test_graphs(K)) {
      MpiAdapterExchange ex(MPI_COMM_WORLD, owner, g.neighbours, 4);
      // Expected peers and pair counts by brute force over the weight matrix.
      std::vector<int> expect_peers, expect_w;
      for (int q = 0; q < R; ++q) {
        if (q == me) continue;
        int pairs = 0;
        for (int k = 0; k < K; ++k)
          for (int l = 0; l < K; ++l)
            if (owner[k] == me && owner[l] == q && g.weight(k, l) > 0) ++pairs;
        if (pairs) {
          expect_peers.push_back(q);
          expect_w.push_back(pairs);
        }
      }
      int indeg = -1, outdeg = -1, weighted = -1;
      MPI_Dist_graph_neighbors_count(ex.graph_comm(), &indeg, &outdeg, &weighted);
      EXPECT_EQ(indeg, static_cast<int>(expect_peers.size())) << name << " K=" << K;
      EXPECT_EQ(outdeg, indeg);
      std::vector<int> src(indeg + 1), sw(indeg + 1), dst(outdeg + 1), dw(outdeg + 1);
      MPI_Dist_graph_neighbors(ex.graph_comm(), indeg, src.data(), sw.data(), outdeg, dst.data(), dw.data());
      src.resize(indeg);
      dst.resize(outdeg);
      sw.resize(indeg);
      EXPECT_EQ(src, expect_peers) << name << " K=" << K << ": sources, ascending, each peer once";
      EXPECT_EQ(dst, expect_peers) << name << " K=" << K << ": destinations == sources";
      EXPECT_EQ(sw, expect_w) << name << " K=" << K << ": weights = linked pairs (hints)";
      EXPECT_EQ(ex.peers(), expect_peers);
      // Symmetric across ranks: r lists q iff q lists r.
      std::vector<int> row(R, 0), all(static_cast<size_t>(R) * R);
      for (int q : src) row[q] = 1;
      MPI_Allgather(row.data(), R, MPI_INT, all.data(), R, MPI_INT, MPI_COMM_WORLD);
      for (int a = 0; a < R; ++a)
        for (int b = 0; b < R; ++b) EXPECT_EQ(all[a * R + b], all[b * R + a]) << name << " ranks " << a << "," << b;
    }
  }
}

TEST(ExchangeMpi, TwoRanksRingBothNeighboursOnePeer) {
  if (world_size() != 2) GTEST_SKIP() << "needs exactly 2 ranks (runs in the np2 case)";
  const int me = world_rank(), other = 1 - me;
  for (int K : {2, 3, 4}) {  // K=2: client 0's left and right neighbour is client 1, on the peer
    const Graph g = graph_ring(K);
    const std::vector<int> owner = assignment_owners(K, 2);
    const size_t P = 3;
    MpiAdapterExchange ex(MPI_COMM_WORLD, owner, g.neighbours, P);
    EXPECT_EQ(ex.peers(), std::vector<int>{other}) << "K=" << K;
    RankStore st = make_store(owner, P);
    ex.exchange(std::vector<char>(K, 1), std::vector<char>(K, 1), st.owned_lookup());
    // Each remote neighbour arrives exactly once however many of our clients link to it.
    int remote_needed = 0;
    for (int l = 0; l < K; ++l) {
      if (owner[l] == me) continue;
      bool needed = false;
      for (int k : g.neighbours[l]) needed = needed || owner[k] == me;
      remote_needed += needed;
      const float* p = ex.neighbour(l);
      EXPECT_EQ(p != nullptr, needed) << "K=" << K << " client " << l;
      for (size_t i = 0; p && i < P; ++i) EXPECT_EQ(p[i], init_value(l, i));
    }
    EXPECT_EQ(ex.last_stats().adapters_received, remote_needed);
    EXPECT_EQ(ex.last_stats().bytes_received, static_cast<int64_t>(remote_needed * P * sizeof(float)));
  }
}

TEST(ExchangeMpi, NeighbourContentsAndZeroCountsUnderSampling) {
  const int R = world_size(), me = world_rank();
  const size_t P = 5;
  for (int K : {1, 2, 3, 5, 7, 9})
    for (auto& [name, g] : test_graphs(K)) {
      const std::vector<int> owner = assignment_owners(K, R);
      MpiAdapterExchange ex(MPI_COMM_WORLD, owner, g.neighbours, P);  // built once, all rounds
      RankStore st = make_store(owner, P);
      for (double f : {1.0, 0.4})
        for (NeighbourMode mode : {NeighbourMode::SAMPLED, NeighbourMode::ALL_LATEST})
          for (int64_t round = 0; round < 4; ++round) {
            const std::vector<int> s = sampler_sample(3, round, K, sampler_count(K, f));
            std::vector<char> recv(K, 0);
            for (int k : s) recv[k] = 1;
            const std::vector<char> prov = mode == NeighbourMode::SAMPLED ? recv : std::vector<char>(K, 1);
            ex.exchange(recv, prov, st.owned_lookup());
            int64_t expect_recv = 0;
            for (int l = 0; l < K; ++l) {
              bool needed = false;  // l is a provider linked to a receiver we own
              for (int k : g.neighbours[l]) needed = needed || (owner[k] == me && recv[k] && prov[l]);
              const float* p = ex.neighbour(l);
              if (owner[l] == me) {
                EXPECT_EQ(p, st.owned[l].data()) << "same-rank pairs use the owner's buffer";
                continue;
              }
              expect_recv += needed;
              EXPECT_EQ(p != nullptr, needed) << name << " K=" << K << " f=" << f << " round " << round << " client " << l;
              for (size_t i = 0; p && i < P; ++i) EXPECT_EQ(p[i], init_value(l, i));
            }
            EXPECT_EQ(ex.last_stats().adapters_received, expect_recv);
          }
    }
}

// Whole rounds: sample -> assign -> move to workers -> train -> move back -> MIRA eq. (8), against
// the same rounds on all K adapters in one process.
void run_mira_rounds(const Graph& g, const std::string& name, double f, NeighbourMode mode, double eta_lambda) {
  const int R = world_size(), K = g.K;
  const size_t P = 6;
  const std::vector<int> owner = assignment_owners(K, R);
  MpiAdapterExchange ex(MPI_COMM_WORLD, owner, g.neighbours, P);
  RankStore st = make_store(owner, P);
  std::vector<std::vector<float>> ref(K, std::vector<float>(P));
  std::vector<float*> ref_ptr(K);
  for (int c = 0; c < K; ++c) {
    for (size_t i = 0; i < P; ++i) ref[c][i] = init_value(c, i);
    ref_ptr[c] = ref[c].data();
  }
  const int m = sampler_count(K, f);
  for (int64_t round = 0; round < 5; ++round) {
    const std::vector<int> s = sampler_sample(9, round, K, m);
    const Assignment a = assignment_plan(s, K, R);
    ex.move(a.to_workers, st.any_lookup(P), P);
    for (int c : a.by_rank[world_rank()]) {
      float* x = st.any_lookup(P)(c);
      if (!st.owned.count(c)) {  // the worker slot holds the owner's exact adapter
        for (size_t i = 0; i < P; ++i) EXPECT_EQ(x[i], ref[c][i]) << name << " moved client " << c;
      }
      fake_train(x, c, round, P);
    }
    ex.move(a.to_owners, st.any_lookup(P), P);
    mira_step(ex, g, s, mode, eta_lambda, st.owned_lookup());
    for (int c : s) fake_train(ref[c].data(), c, round, P);
    mira_step_serial(g, s, mode, eta_lambda, ref_ptr, P);
  }
  const std::vector<float> all = allgather_adapters(st, owner, P);
  for (int c = 0; c < K; ++c)
    EXPECT_EQ(std::memcmp(&all[static_cast<size_t>(c) * P], ref[c].data(), P * sizeof(float)), 0)
        << name << " K=" << K << " f=" << f << " mode " << fed_neighbour_mode_name(mode) << " eta*lambda=" << eta_lambda
        << ": client " << c << " differs from the single-process reference";
}

TEST(ExchangeMpi, MiraRoundsBitwiseEqualSerial) {
  for (int K : {1, 2, 3, 5, 7, 10})
    for (auto& [name, g] : test_graphs(K))
      for (double f : {1.0, 0.5})
        for (NeighbourMode mode : {NeighbourMode::SAMPLED, NeighbourMode::ALL_LATEST}) {
          run_mira_rounds(g, name, f, mode, 0.125);   // dyadic step: exact on integer-valued ring/complete/task
          run_mira_rounds(g, name, f, mode, 7.5e-4);  // authors' NI eta*lambda: same order, same bits
        }
}

TEST(ExchangeMpi, MovesRoundTripWithoutOwnerChange) {
  const int R = world_size(), K = 9;
  const size_t P = 4;
  const std::vector<int> owner = assignment_owners(K, R);
  MpiAdapterExchange ex(MPI_COMM_WORLD, owner, graph_ring(K).neighbours, P);
  RankStore st = make_store(owner, P);
  const Assignment a = assignment_plan({0, 1, 2, 3, 4}, K, R);  // all on the first ranks: forces moves
  ex.move(a.to_workers, st.any_lookup(P), P);
  for (auto& [c, v] : st.slots)
    for (size_t i = 0; i < P; ++i) EXPECT_EQ(v[i], init_value(c, i)) << "client " << c;
  int64_t expect_in = 0;
  for (const ClientMove& mv : a.to_workers) expect_in += mv.to == world_rank();
  EXPECT_EQ(ex.last_stats().adapters_received, expect_in);
  for (auto& [c, v] : st.slots) v.assign(P, static_cast<float>(100 + c));  // "trained" on the worker
  ex.move(a.to_owners, st.any_lookup(P), P);
  for (const ClientMove& mv : a.to_owners)
    if (mv.to == world_rank()) {
      EXPECT_EQ(st.owned[mv.client], std::vector<float>(P, static_cast<float>(100 + mv.client)));
    }
}

TEST(ExchangeMpi, FeditAverageBitwiseEqualSerial) {
  const int R = world_size();
  const size_t P = 7;
  for (int K : {1, 3, 5, 8})
    for (double f : {1.0, 0.4}) {
      const std::vector<int> owner = assignment_owners(K, R);
      MpiAdapterExchange ex(MPI_COMM_WORLD, owner, graph_complete(K).neighbours, P);
      RankStore st = make_store(owner, P);
      std::vector<int64_t> size(K);
      for (int k = 0; k < K; ++k) size[k] = 10 + 13 * k;  // uneven client data sizes
      const std::vector<int> s = sampler_sample(5, 1, K, sampler_count(K, f));
      std::vector<float> global(P);
      fedit_step(ex, s, size, st.owned_lookup(), global.data());
      std::vector<std::vector<float>> x;
      std::vector<const float*> ptr;
      std::vector<double> w;
      for (int c : s) {
        x.emplace_back(P);
        for (size_t i = 0; i < P; ++i) x.back()[i] = init_value(c, i);
        w.push_back(static_cast<double>(size[c]));
      }
      for (auto& v : x) ptr.push_back(v.data());
      std::vector<float> ref(P);
      fedit_average(ref.data(), ptr.data(), w.data(), static_cast<int>(s.size()), P);
      EXPECT_EQ(std::memcmp(global.data(), ref.data(), P * sizeof(float)), 0) << "K=" << K << " f=" << f;
      // Every rank holds the same global adapter.
      std::vector<float> all(static_cast<size_t>(R) * P);
      MPI_Allgather(global.data(), static_cast<int>(P), MPI_FLOAT, all.data(), static_cast<int>(P), MPI_FLOAT,
                    MPI_COMM_WORLD);
      for (int r = 0; r < R; ++r) EXPECT_EQ(std::memcmp(&all[static_cast<size_t>(r) * P], ref.data(), P * sizeof(float)), 0);
    }
}

}  // namespace
}  // namespace mira
