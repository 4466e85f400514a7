// Unit tests of the aggregation algorithms on flat adapters (src/fed/aggregate.h): MIRA eq. (8) on
// hand-computed examples (sampled and all-latest neighbours, pre-update states, unsampled clients
// unchanged), FedIT's weighted average, the name parsers.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "fed/aggregate.h"
#include "runtime/error.h"

namespace mira {
namespace {

// a01 = 1, a02 = 0.5, a12 = 0.
Graph three_clients() { return graph_from_weights(3, {0, 1, 0.5, 1, 0, 0, 0.5, 0, 0}, "test"); }

struct Adapters {
  std::vector<std::vector<float>> x = {{1, 2}, {3, 0}, {5, 4}};  // (K=3, P=2)
  std::vector<float*> ptr() {
    std::vector<float*> p;
    for (auto& v : x) p.push_back(v.data());
    return p;
  }
};

// Expected values are computed in double by hand (below) and rounded to float once, as the code
// does; EXPECT_FLOAT_EQ (4 ulp) only absorbs the decimal spelling of the hand values.
TEST(FedAggregate, MiraAllSampledHandComputed) {
  Adapters a;
  mira_step_serial(three_clients(), {0, 1, 2}, NeighbourMode::SAMPLED, 0.1, a.ptr(), 2);
  // x0' = x0 - 0.1 (1 (x0 - x1) + 0.5 (x0 - x2)) = (1, 2) - 0.1 ((-2, 2) + (-2, -1)) = (1.4, 1.9)
  EXPECT_FLOAT_EQ(a.x[0][0], 1.4f);
  EXPECT_FLOAT_EQ(a.x[0][1], 1.9f);
  // x1' = x1 - 0.1 (x1 - x0) = (3, 0) - 0.1 (2, -2) = (2.8, 0.2)   (uses x0 BEFORE its update)
  EXPECT_FLOAT_EQ(a.x[1][0], 2.8f);
  EXPECT_FLOAT_EQ(a.x[1][1], 0.2f);
  // x2' = x2 - 0.1 * 0.5 (x2 - x0) = (5, 4) - 0.05 (4, 2) = (4.8, 3.9)
  EXPECT_FLOAT_EQ(a.x[2][0], 4.8f);
  EXPECT_FLOAT_EQ(a.x[2][1], 3.9f);
}

TEST(FedAggregate, MiraSampledSubset) {
  Adapters a;
  mira_step_serial(three_clients(), {0, 1}, NeighbourMode::SAMPLED, 0.1, a.ptr(), 2);
  // x0' = x0 - 0.1 (x0 - x1) = (1.2, 1.8): client 2 is not sampled, so not a neighbour this round.
  EXPECT_FLOAT_EQ(a.x[0][0], 1.2f);
  EXPECT_FLOAT_EQ(a.x[0][1], 1.8f);
  EXPECT_FLOAT_EQ(a.x[1][0], 2.8f);
  EXPECT_FLOAT_EQ(a.x[1][1], 0.2f);
  EXPECT_EQ(a.x[2], (std::vector<float>{5, 4}));  // eq. (9): unchanged, bitwise
}

TEST(FedAggregate, MiraAllLatestUsesUnsampledNeighbours) {
  Adapters a;
  mira_step_serial(three_clients(), {0, 1}, NeighbourMode::ALL_LATEST, 0.1, a.ptr(), 2);
  EXPECT_FLOAT_EQ(a.x[0][0], 1.4f);  // as if 2 were sampled, for the sampled client 0
  EXPECT_FLOAT_EQ(a.x[0][1], 1.9f);
  EXPECT_EQ(a.x[2], (std::vector<float>{5, 4}));  // still unchanged itself
}

TEST(FedAggregate, MiraZeroStepAndIsolatedAreIdentity) {
  Adapters a;
  const auto before = a.x;
  mira_step_serial(three_clients(), {0, 1, 2}, NeighbourMode::SAMPLED, 0.0, a.ptr(), 2);
  EXPECT_EQ(a.x, before);
  Adapters b;
  mira_step_serial(three_clients(), {1, 2}, NeighbourMode::SAMPLED, 0.1, b.ptr(), 2);  // a12 = 0
  EXPECT_EQ(b.x, before);
}

TEST(FedAggregate, MiraUpdateClientAliasAndOrder) {
  // out aliasing self is allowed; the sum follows the given order (exact here: integer values).
  std::vector<float> self = {4, -2, 8}, n1 = {0, 2, 8}, n2 = {2, -2, 0};
  const float* nbr[] = {n1.data(), n2.data()};
  const double w[] = {0.5, 0.25};
  mira_update_client(self.data(), self.data(), nbr, w, 2, 3, 0.5);
  // i=0: 4 - 0.5 (0.5*4 + 0.25*2) = 2.75; i=1: -2 - 0.5 (0.5*-4 + 0) = -1; i=2: 8 - 0.5 (0 + 0.25*8) = 7
  EXPECT_EQ(self, (std::vector<float>{2.75f, -1.0f, 7.0f}));
}

TEST(FedAggregate, FeditWeightedAverage) {
  std::vector<float> a = {0, 4, -8}, b = {4, 8, 8}, out(3);
  const float* in[] = {a.data(), b.data()};
  const double size[] = {1, 3};
  fedit_average(out.data(), in, size, 2, 3);
  EXPECT_EQ(out, (std::vector<float>{3, 7, 4}));  // 0.25 a + 0.75 b, exact in binary
  const double zero[] = {0, 0};
  EXPECT_THROW(fedit_average(out.data(), in, zero, 2, 3), InternalError);
}

TEST(FedAggregate, ThreadCountInvariant) {
  // Non-integer values and weights so any change of summation order would show in the bits.
  const size_t P = 100003;  // odd, so static chunks differ between 1, 2 and 3 threads
  const int n = 5;
  std::vector<std::vector<float>> x(n + 1, std::vector<float>(P));
  for (int j = 0; j <= n; ++j)
    for (size_t i = 0; i < P; ++i) x[j][i] = static_cast<float>(std::sin(0.001 * (i + 1) * (j + 1)));
  std::vector<const float*> nbr;
  for (int j = 1; j <= n; ++j) nbr.push_back(x[j].data());
  const double w[] = {0.31, 0.7, 0.25, 1.3, 0.61};
  std::vector<std::vector<float>> out(3, std::vector<float>(P)), avg(3, std::vector<float>(P));
  const int saved = omp_get_max_threads();
  for (int t = 1; t <= 3; ++t) {
    omp_set_num_threads(t);
    mira_update_client(out[t - 1].data(), x[0].data(), nbr.data(), w, n, P, 0.0123);
    fedit_average(avg[t - 1].data(), nbr.data(), w, n, P);
  }
  omp_set_num_threads(saved);
  for (int t = 1; t < 3; ++t) {
    EXPECT_EQ(std::memcmp(out[0].data(), out[t].data(), P * sizeof(float)), 0) << t + 1 << " threads";
    EXPECT_EQ(std::memcmp(avg[0].data(), avg[t].data(), P * sizeof(float)), 0) << t + 1 << " threads";
  }
}

TEST(FedAggregate, Parsers) {
  EXPECT_EQ(fed_parse_algorithm("mira", "k"), Algorithm::MIRA);
  EXPECT_EQ(fed_parse_algorithm("fedit", "k"), Algorithm::FEDIT);
  EXPECT_EQ(fed_parse_algorithm("local", "k"), Algorithm::LOCAL);
  EXPECT_THROW(fed_parse_algorithm("fedavg", "k"), UserError);
  EXPECT_EQ(fed_parse_neighbour_mode("sampled", "k"), NeighbourMode::SAMPLED);
  EXPECT_EQ(fed_parse_neighbour_mode("all-latest", "k"), NeighbourMode::ALL_LATEST);
  EXPECT_THROW(fed_parse_neighbour_mode("all", "k"), UserError);
}

}  // namespace
}  // namespace mira
