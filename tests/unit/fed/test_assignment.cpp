// Unit tests of client ownership and per-round worker assignment (src/fed/assignment.h): block
// distribution, balance, owner preference with the least moves, determinism, uneven K.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "fed/assignment.h"
#include "fed/sampler.h"

namespace mira {
namespace {

TEST(FedAssignment, BlockOwners) {
  EXPECT_EQ(assignment_owners(10, 3), (std::vector<int>{0, 0, 0, 0, 1, 1, 1, 2, 2, 2}));
  EXPECT_EQ(assignment_owners(2, 4), (std::vector<int>{0, 1}));  // ranks 2, 3 own nothing
  EXPECT_EQ(assignment_owners(4, 1), (std::vector<int>{0, 0, 0, 0}));
  for (int K = 1; K <= 13; ++K)
    for (int R = 1; R <= 6; ++R) {
      EXPECT_EQ(assignment_first_client(K, R, 0), 0);
      EXPECT_EQ(assignment_first_client(K, R, R), K);
      for (int r = 0; r < R; ++r) {
        const int a = assignment_first_client(K, R, r), b = assignment_first_client(K, R, r + 1);
        EXPECT_LE(b - a, (K + R - 1) / R);
        EXPECT_GE(b - a, K / R);
        for (int k = a; k < b; ++k) EXPECT_EQ(assignment_owner(K, R, k), r);
      }
    }
}

TEST(FedAssignment, HandExample) {
  // K = 8 on 2 ranks (0-3 | 4-7); sampled {0, 1, 2, 5}: rank 0 would train 3, so client 2 moves.
  const Assignment a = assignment_plan({0, 1, 2, 5}, 8, 2);
  EXPECT_EQ(a.by_rank[0], (std::vector<int>{0, 1}));
  EXPECT_EQ(a.by_rank[1], (std::vector<int>{2, 5}));
  EXPECT_EQ(a.worker, (std::vector<int>{0, 0, 1, 1}));
  ASSERT_EQ(a.to_workers.size(), 1u);
  EXPECT_EQ(a.to_workers[0], (ClientMove{2, 0, 1}));
  EXPECT_EQ(a.to_owners[0], (ClientMove{2, 1, 0}));
  // m = 3 on 2 ranks, all owned by rank 0: rank 0 keeps 2 (it gets the larger capacity).
  const Assignment b = assignment_plan({0, 1, 3}, 8, 2);
  EXPECT_EQ(b.by_rank[0], (std::vector<int>{0, 1}));
  EXPECT_EQ(b.by_rank[1], (std::vector<int>{3}));
  // Fewer sampled than ranks: nobody trains two.
  const Assignment c = assignment_plan({0, 1}, 8, 4);  // both owned by rank 0
  EXPECT_EQ(c.by_rank[0], std::vector<int>{0});
  EXPECT_EQ(c.by_rank[1], std::vector<int>{1});
  EXPECT_TRUE(c.by_rank[2].empty());
}

TEST(FedAssignment, BalancedMinimalDeterministic) {
  for (int K : {1, 2, 5, 7, 16, 80})
    for (int R : {1, 2, 3, 4, 7})
      for (double f : {0.1, 0.3, 0.5, 1.0})
        for (int64_t round = 0; round < 10; ++round) {
          const int m = sampler_count(K, f);
          const std::vector<int> s = sampler_sample(11, round, K, m);
          const Assignment a = assignment_plan(s, K, R);
          EXPECT_EQ(a.clients, s);
          // Balance: loads are floor(m/R) or ceil(m/R).
          std::vector<int> load(R, 0), owned(R, 0);
          for (int r = 0; r < R; ++r) {
            load[r] = static_cast<int>(a.by_rank[r].size());
            EXPECT_GE(load[r], m / R);
            EXPECT_LE(load[r], (m + R - 1) / R);
            EXPECT_TRUE(std::is_sorted(a.by_rank[r].begin(), a.by_rank[r].end()));
          }
          // Each sampled client trained once; moves exactly for worker != owner, reverse paired.
          int moves = 0;
          for (size_t i = 0; i < s.size(); ++i) {
            const int o = assignment_owner(K, R, s[i]);
            ++owned[o];
            EXPECT_EQ(std::count(a.by_rank[a.worker[i]].begin(), a.by_rank[a.worker[i]].end(), s[i]), 1);
            if (a.worker[i] != o) {
              EXPECT_EQ(a.to_workers[moves], (ClientMove{s[i], o, a.worker[i]}));
              EXPECT_EQ(a.to_owners[moves], (ClientMove{s[i], a.worker[i], o}));
              ++moves;
            }
          }
          EXPECT_EQ(static_cast<int>(a.to_workers.size()), moves);
          // Least moves: sum_r max(0, c_r - base) minus the larger capacities given to such ranks.
          int over = 0, over_ranks = 0;
          for (int r = 0; r < R; ++r)
            if (owned[r] > m / R) { over += owned[r] - m / R; ++over_ranks; }
          EXPECT_EQ(moves, over - std::min(m % R, over_ranks)) << "K=" << K << " R=" << R << " m=" << m;
          const Assignment again = assignment_plan(s, K, R);
          EXPECT_EQ(again.worker, a.worker);
          EXPECT_EQ(again.to_workers, a.to_workers);
        }
}

}  // namespace
}  // namespace mira
