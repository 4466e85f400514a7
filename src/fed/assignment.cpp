// Client ownership and per-round worker assignment (assignment.h).
#include "fed/assignment.h"

#include <algorithm>
#include <string>

#include "runtime/error.h"

namespace mira {

int assignment_first_client(int K, int ranks, int rank) {
  MIRA_CHECK(K >= 1 && ranks >= 1 && rank >= 0 && rank <= ranks,
             "K=" + std::to_string(K) + " ranks=" + std::to_string(ranks) + " rank=" + std::to_string(rank));
  const int base = K / ranks, extra = K % ranks;
  return rank * base + std::min(rank, extra);
}

int assignment_owner(int K, int ranks, int client) {
  MIRA_CHECK(client >= 0 && client < K, "client " + std::to_string(client) + " of K=" + std::to_string(K));
  const int base = K / ranks, extra = K % ranks;
  const int big = extra * (base + 1);  // clients held by the first `extra` ranks
  if (client < big) return client / (base + 1);
  return extra + (client - big) / base;  // base >= 1 here: client >= big implies K > extra
}

std::vector<int> assignment_owners(int K, int ranks) {
  std::vector<int> owner(K);
  for (int k = 0; k < K; ++k) owner[k] = assignment_owner(K, ranks, k);
  return owner;
}

Assignment assignment_plan(const std::vector<int>& sampled, int K, int ranks) {
  MIRA_CHECK(ranks >= 1, "ranks=" + std::to_string(ranks));
  for (size_t i = 0; i < sampled.size(); ++i)
    MIRA_CHECK(sampled[i] >= 0 && sampled[i] < K && (i == 0 || sampled[i - 1] < sampled[i]),
               "sampled clients must be ascending, unique, in [0, K)");
  const int m = static_cast<int>(sampled.size());
  Assignment a;
  a.clients = sampled;
  a.worker.assign(m, -1);
  a.by_rank.assign(ranks, {});
  std::vector<std::vector<int>> own(ranks);  // sampled clients by owner, ascending
  for (int i = 0; i < m; ++i) own[assignment_owner(K, ranks, sampled[i])].push_back(i);
  const int base = m / ranks;
  int extra = m % ranks;
  std::vector<int> cap(ranks, base);
  // Larger capacities: first to ranks that would otherwise send one away, then lowest ranks.
  for (int r = 0; r < ranks && extra > 0; ++r)
    if (static_cast<int>(own[r].size()) > base) { cap[r] = base + 1; --extra; }
  for (int r = 0; r < ranks && extra > 0; ++r)
    if (cap[r] == base) { cap[r] = base + 1; --extra; }
  std::vector<int> surplus;  // sampled indices that must move, ascending client id
  for (int r = 0; r < ranks; ++r)
    for (size_t j = 0; j < own[r].size(); ++j) {
      if (static_cast<int>(j) < cap[r]) a.worker[own[r][j]] = r;
      else surplus.push_back(own[r][j]);
    }
  std::sort(surplus.begin(), surplus.end());
  std::vector<int> load(ranks, 0);
  for (int i = 0; i < m; ++i)
    if (a.worker[i] >= 0) ++load[a.worker[i]];
  int r = 0;
  for (int i : surplus) {
    while (load[r] >= cap[r]) ++r;  // total capacity is m, so a free slot exists
    a.worker[i] = r;
    ++load[r];
  }
  for (int i = 0; i < m; ++i) {
    const int c = sampled[i], w = a.worker[i], o = assignment_owner(K, ranks, c);
    a.by_rank[w].push_back(c);
    if (w != o) {
      a.to_workers.push_back({c, o, w});
      a.to_owners.push_back({c, w, o});
    }
  }
  return a;
}

}  // namespace mira
