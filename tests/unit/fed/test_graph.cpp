// Unit tests of the client graph (src/fed/graph.h): every kind's formula, symmetry, the paper's
// random recipe against numpy (committed fixtures), CSV errors and their messages, the per-round
// edge report, the Laplacian eigenvalue and the eq. (8) numerical check.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "fed/graph.h"
#include "runtime/error.h"

namespace mira {
namespace {

std::string fixture(const std::string& name) { return std::string(MIRA_FIXTURES_DIR) + "/fed/" + name; }

// Raw numpy matrix from the fixture (diagonal as numpy gave it), parsed independently of graph.cpp.
std::vector<double> read_raw(const std::string& path, int K) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::vector<double> v;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) v.push_back(std::strtod(cell.c_str(), nullptr));
  }
  EXPECT_EQ(v.size(), static_cast<size_t>(K) * K);
  return v;
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "mira_fed_" + name;
  std::ofstream(path) << text;
  return path;
}

// Runs f, expects a UserError whose message contains every piece.
template <typename F>
void expect_user_error(F f, const std::vector<std::string>& pieces) {
  try {
    f();
    ADD_FAILURE() << "no UserError";
  } catch (const UserError& e) {
    for (const auto& p : pieces) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

void expect_valid(const Graph& g) {
  for (int k = 0; k < g.K; ++k) {
    EXPECT_EQ(g.weight(k, k), 0.0);
    for (int l = 0; l < g.K; ++l) {
      EXPECT_EQ(g.weight(k, l), g.weight(l, k));
      EXPECT_GE(g.weight(k, l), 0.0);
    }
    std::vector<int> expect;
    for (int l = 0; l < g.K; ++l)
      if (l != k && g.weight(k, l) > 0) expect.push_back(l);
    EXPECT_EQ(g.neighbours[k], expect);
  }
}

TEST(FedGraph, RandomEqualsNumpyFixtureBitwise) {
  for (int K : {8, 80}) {
    const std::vector<double> raw = read_raw(fixture("random_graph_K" + std::to_string(K) + "_seed42.csv"), K);
    const Graph g = graph_random(K, 42);
    expect_valid(g);
    int64_t nonzero = 0;
    for (int k = 0; k < K; ++k)
      for (int l = 0; l < K; ++l) {
        if (k == l) continue;
        EXPECT_EQ(g.weight(k, l), raw[static_cast<size_t>(k) * K + l]) << "K=" << K << " (" << k << "," << l << ")";
        if (g.weight(k, l) > 0) {
          EXPECT_GE(g.weight(k, l), 0.25);
          ++nonzero;
        }
      }
    if (K == 80) {  // MIRA.md: about 87% of pairs linked (P[(u+v)/2 >= 0.25] = 1 - 1/8 = 0.875)
      const double frac = static_cast<double>(nonzero) / (K * (K - 1));
      EXPECT_NEAR(frac, 0.875, 0.03);  // 3160 pairs: binomial sd ~0.006, 5 sd
    }
  }
}

TEST(FedGraph, FixtureReadAsFileEqualsRandom) {
  const Graph f = graph_read_csv(fixture("random_graph_K8_seed42.csv"), 8);  // warns: numpy diagonal
  const Graph g = graph_random(8, 42);
  EXPECT_EQ(f.weights, g.weights);
  EXPECT_EQ(f.neighbours, g.neighbours);
}

TEST(FedGraph, RandomSeedMattersAndIsChecked) {
  EXPECT_NE(graph_random(8, 42).weights, graph_random(8, 43).weights);
  EXPECT_EQ(graph_random(8, 7).weights, graph_random(8, 7).weights);
  expect_user_error([] { graph_random(8, 1ull << 32); }, {"seed", "4294967295"});
  expect_user_error([] { graph_random(0, 42); }, {"client count"});
}

TEST(FedGraph, Ring) {
  const Graph g = graph_ring(5, 0.5);
  expect_valid(g);
  EXPECT_EQ(g.neighbours[0], (std::vector<int>{1, 4}));
  EXPECT_EQ(g.neighbours[2], (std::vector<int>{1, 3}));
  EXPECT_EQ(g.weight(0, 4), 0.5);
  EXPECT_EQ(g.weight(0, 2), 0.0);
  EXPECT_EQ(g.edge_count(), 5);
  const Graph two = graph_ring(2);  // both ring neighbours are the same client: one link, weight 1
  EXPECT_EQ(two.neighbours[0], std::vector<int>{1});
  EXPECT_EQ(two.weight(0, 1), 1.0);
  EXPECT_EQ(two.degree(0), 1.0);
  const Graph one = graph_ring(1);
  EXPECT_TRUE(one.neighbours[0].empty());
}

TEST(FedGraph, CompleteAndTask) {
  const Graph c = graph_complete(4, 2.0);
  expect_valid(c);
  EXPECT_EQ(c.edge_count(), 6);
  EXPECT_EQ(c.degree(3), 6.0);
  const Graph t = graph_task({0, 0, 1, 1, 1}, 1.0, 0.25);
  expect_valid(t);
  EXPECT_EQ(t.weight(0, 1), 1.0);
  EXPECT_EQ(t.weight(2, 4), 1.0);
  EXPECT_EQ(t.weight(1, 2), 0.25);
  const Graph t0 = graph_task({3, 1, 3, 1}, 1.0, 0.0);  // default: families disconnected
  EXPECT_EQ(t0.neighbours[0], std::vector<int>{2});
  EXPECT_EQ(t0.neighbours[1], std::vector<int>{3});
  expect_user_error([] { graph_task({0, 1}, -1.0, 0.0); }, {"w_same", ">= 0"});
}

TEST(FedGraph, KnnUnionSymmetrised) {
  // 0's nearest is 1; 1's nearest is 0; 2's nearest is 1; 3's nearest is 0 (ties: smaller id).
  const std::vector<double> s = {0, .9, .2, .5,  //
                                 .9, 0, .8, .1,  //
                                 .2, .8, 0, .3,  //
                                 .5, .1, .3, 0};
  const Graph g = graph_knn(s, 4, 1);
  expect_valid(g);
  EXPECT_EQ(g.neighbours[0], (std::vector<int>{1, 3}));  // chose 1, chosen by 3: union
  EXPECT_EQ(g.neighbours[1], (std::vector<int>{0, 2}));
  EXPECT_EQ(g.neighbours[2], std::vector<int>{1});
  EXPECT_EQ(g.neighbours[3], std::vector<int>{0});
  EXPECT_EQ(g.weight(0, 3), 0.5);
  EXPECT_EQ(g.weight(1, 2), 0.8);
  const Graph g2 = graph_knn(s, 4, 2);
  EXPECT_EQ(g2.neighbours[3], (std::vector<int>{0, 2}));
  // Ties: equal similarity keeps the smaller id.
  const std::vector<double> tie = {0, 1, 1, 1, 0, 1, 1, 1, 0};
  EXPECT_EQ(graph_knn(tie, 3, 1).neighbours[2], (std::vector<int>{0}));
  std::vector<double> asym = s;
  asym[1] = 0.7;
  expect_user_error([&] { graph_knn(asym, 4, 1); }, {"symmetric", "(0, 1)"});
  expect_user_error([&] { graph_knn(s, 3, 1); }, {"K*K"});
}

TEST(FedGraph, CosineSimilarity) {
  const std::vector<double> f = {1, 0, 1, 1, 0, 0, -1, 0};  // (4, 2)
  const std::vector<double> s = graph_cosine_similarity(f, 4, 2);
  EXPECT_NEAR(s[0 * 4 + 1], 1.0 / std::sqrt(2.0), 1e-15);  // 1e-15: one rounding of a square root
  EXPECT_EQ(s[0 * 4 + 2], 0.0);                            // zero row
  EXPECT_EQ(s[0 * 4 + 3], 0.0);                            // cos = -1 clipped
  EXPECT_EQ(s[1 * 4 + 0], s[0 * 4 + 1]);
}

TEST(FedGraph, ParseSpec) {
  EXPECT_EQ(graph_parse_spec("random", "k").kind, GraphKind::RANDOM);
  EXPECT_EQ(graph_parse_spec("ring", "k").kind, GraphKind::RING);
  EXPECT_EQ(graph_parse_spec("task", "k").kind, GraphKind::TASK);
  EXPECT_EQ(graph_parse_spec("complete", "k").kind, GraphKind::COMPLETE);
  const GraphSpec knn = graph_parse_spec("knn:5", "k");
  EXPECT_EQ(knn.kind, GraphKind::KNN);
  EXPECT_EQ(knn.knn_k, 5);
  const GraphSpec f = graph_parse_spec("file:/a/b.csv", "k");
  EXPECT_EQ(f.kind, GraphKind::FILE);
  EXPECT_EQ(f.path, "/a/b.csv");
  expect_user_error([] { graph_parse_spec("knn:0", "fed.graph"); }, {"fed.graph", "knn:0", ">= 1"});
  expect_user_error([] { graph_parse_spec("knn:x", "fed.graph"); }, {"fed.graph"});
  expect_user_error([] { graph_parse_spec("file:", "fed.graph"); }, {"path"});
  expect_user_error([] { graph_parse_spec("star", "fed.graph"); }, {"fed.graph", "star", "random"});
}

TEST(FedGraph, CsvGood) {
  const std::string p = write_temp("good.csv",
                                   "# weights\n"
                                   "0, 1.5, 0\r\n"
                                   "\n"
                                   "1.5,0,2e-1\n"
                                   "0 ,0.2000001, 0\n");  // within 1e-6 relative of 0.2
  const Graph g = graph_read_csv(p, 3);
  expect_valid(g);
  EXPECT_EQ(g.weight(0, 1), 1.5);
  EXPECT_EQ(g.weight(1, 2), (0.2 + 0.2000001) / 2);  // the pair's mean
  EXPECT_EQ(g.neighbours[0], std::vector<int>{1});
  const Graph diag = graph_read_csv(write_temp("diag.csv", "3,1\n1,4\n"));  // diagonal ignored (warning)
  const Graph tiny = graph_read_csv(write_temp("tiny.csv", "0,1e-400\n1e-400,0\n"));  // underflows to 0
  EXPECT_TRUE(tiny.neighbours[0].empty());
  const std::string huge = write_temp("huge.csv", "0,1e400\n1e400,0\n");
  expect_user_error([&] { graph_read_csv(huge); }, {huge + ":1:3:", "not finite"});
  EXPECT_EQ(diag.weight(0, 0), 0.0);
  EXPECT_EQ(diag.weight(0, 1), 1.0);
}

TEST(FedGraph, CsvErrorsNameFileLineColumn) {
  const std::string nan = write_temp("nan.csv", "0,1\n1,abc\n");
  expect_user_error([&] { graph_read_csv(nan); }, {nan + ":2:3:", "'abc'", "not a number"});
  const std::string inf = write_temp("inf.csv", "0,inf\ninf,0\n");
  expect_user_error([&] { graph_read_csv(inf); }, {inf + ":1:3:", "not finite"});
  const std::string neg = write_temp("neg.csv", "0, -1\n-1, 0\n");
  expect_user_error([&] { graph_read_csv(neg); }, {neg + ":1:4:", "negative"});
  const std::string empty_field = write_temp("emptyf.csv", "0,,1\n");
  expect_user_error([&] { graph_read_csv(empty_field); }, {empty_field + ":1:3:", "empty"});
  const std::string ragged = write_temp("ragged.csv", "0,1,1\n1,0\n1,1,0\n");
  expect_user_error([&] { graph_read_csv(ragged); }, {ragged + ":2:1:", "2 weights", "3"});
  const std::string rect = write_temp("rect.csv", "0,1,1\n1,0,1\n");
  expect_user_error([&] { graph_read_csv(rect); }, {rect + ":2:1:", "square"});
  const std::string asym = write_temp("asym.csv", "0,1,0\n1,0,0.5\n0,0.4,0\n");
  expect_user_error([&] { graph_read_csv(asym); }, {asym + ":2:5:", "a[1][2] = 0.5", "a[2][1] = 0.4", "3:3", "symmetric", "1e-6"});
  const std::string ok = write_temp("ok.csv", "0,1\n1,0\n");
  expect_user_error([&] { graph_read_csv(ok, 3); }, {ok + ":1:1:", "2 x 2", "3 clients"});
  const std::string none = write_temp("none.csv", "# nothing\n\n");
  expect_user_error([&] { graph_read_csv(none); }, {none + ":1:1:", "no weights"});
  expect_user_error([] { graph_read_csv("/nonexistent/mira_graph.csv"); }, {"/nonexistent/mira_graph.csv", "cannot open"});
}

TEST(FedGraph, BuildChecksInputs) {
  GraphInputs in;
  in.K = 4;
  expect_user_error([&] { graph_build(graph_parse_spec("task", "g"), in, "fed.graph"); }, {"fed.graph", "family"});
  expect_user_error([&] { graph_build(graph_parse_spec("knn:2", "g"), in, "fed.graph"); }, {"fed.graph", "similarity"});
  in.family = {0, 1, 0, 1};
  EXPECT_EQ(graph_build(graph_parse_spec("task", "g"), in, "fed.graph").neighbours[0], std::vector<int>{2});
  EXPECT_EQ(graph_build(graph_parse_spec("random", "g"), in, "fed.graph").weights, graph_random(4, 42).weights);
  EXPECT_EQ(graph_build(graph_parse_spec("ring", "g"), in, "fed.graph").edge_count(), 4);
}

TEST(FedGraph, RoundEdgesAndIsolated) {
  const Graph g = graph_ring(6);
  const GraphRoundEdges r = graph_round_edges(g, {0, 1, 3});
  EXPECT_EQ(r.active_edges, 1);
  EXPECT_EQ(r.isolated, std::vector<int>{3});
  const GraphRoundEdges all = graph_round_edges(g, {0, 1, 2, 3, 4, 5});
  EXPECT_EQ(all.active_edges, 6);
  EXPECT_TRUE(all.isolated.empty());
  EXPECT_EQ(graph_isolated_clients(graph_task({0, 1, 1}, 1.0, 0.0)), std::vector<int>{0});
}

TEST(FedGraph, LaplacianMaxEigenvalue) {
  // Known spectra: complete graph K_n with weight w: n*w; even ring: 4w; single edge: 2w.
  // 1e-10: Jacobi converges to ~1e-12 relative (graph.cpp), well inside.
  EXPECT_NEAR(graph_laplacian_max_eigenvalue(graph_complete(7, 0.5)), 3.5, 1e-10);
  EXPECT_NEAR(graph_laplacian_max_eigenvalue(graph_ring(10, 1.0)), 4.0, 1e-10);
  EXPECT_NEAR(graph_laplacian_max_eigenvalue(graph_ring(2, 3.0)), 6.0, 1e-10);
  // Odd ring: 2 - 2 cos(2 pi floor(n/2) / n).
  EXPECT_NEAR(graph_laplacian_max_eigenvalue(graph_ring(5)), 2.0 - 2.0 * std::cos(2.0 * M_PI * 2 / 5), 1e-10);
  EXPECT_EQ(graph_laplacian_max_eigenvalue(graph_ring(1)), 0.0);
  // The paper random graph against numpy.linalg.eigvalsh (fixture).
  std::ifstream in(fixture("random_graph_laplacian_max.txt"));
  ASSERT_TRUE(in.good());
  std::string line;
  int checked = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    int K = 0;
    double ref = 0;
    std::stringstream(line) >> K >> ref;
    EXPECT_NEAR(graph_laplacian_max_eigenvalue(graph_random(K, 42)), ref, 1e-9 * ref) << "K=" << K;
    ++checked;
  }
  EXPECT_EQ(checked, 2);
}

TEST(FedGraph, NumericsCheck) {
  const Graph g = graph_complete(4, 1.0);  // degree 3, lambda_max 4
  const GraphNumerics a = graph_check_numerics(g, 0.3, 2);
  EXPECT_DOUBLE_EQ(a.max_degree, 3.0);
  EXPECT_NEAR(a.laplacian_max, 4.0, 1e-10);
  EXPECT_NEAR(a.max_pull, 0.9, 1e-15);
  EXPECT_NEAR(a.expected_pull, 0.3 * 3.0 / 3.0, 1e-15);  // (m-1)/(K-1) = 1/3 of the neighbours
  EXPECT_FALSE(a.overshoots);
  EXPECT_FALSE(a.may_diverge);
  EXPECT_NE(a.explanation.find("eta*lambda"), std::string::npos);
  const GraphNumerics b = graph_check_numerics(g, 0.4, 4);  // pull 1.2, 1.6 <= 2
  EXPECT_TRUE(b.overshoots);
  EXPECT_FALSE(b.may_diverge);
  EXPECT_NE(b.explanation.find("OVERSHOOTS"), std::string::npos);
  const GraphNumerics c = graph_check_numerics(g, 0.6, 4);  // 2.4 > 2
  EXPECT_TRUE(c.may_diverge);
  EXPECT_NE(c.explanation.find("MAY DIVERGE"), std::string::npos);
  // Authors' NI setting: eta = 1.5e-3, lambda = 0.5 on the K = 80 random graph, 8 sampled.
  const GraphNumerics ni = graph_check_numerics(graph_random(80, 42), 1.5e-3 * 0.5, 8);
  EXPECT_FALSE(ni.overshoots);
  EXPECT_LT(ni.expected_pull, 0.01);  // MIRA.md: "about 0.25% per round"
  EXPECT_GT(ni.expected_pull, 0.001);
}

// A pair's mean must not overflow for weights near DBL_MAX ((a + b) / 2 gave inf, an internal error
// in graph_from_weights); subnormal weights keep their bits (halving them first would round the
// smallest one to 0 and drop the edge).
TEST(FedGraph, CsvMeanOfExtremeWeights) {
  const Graph big =
      graph_read_csv(write_temp("dblmax.csv", "0,1.7e308,1.7e308\n1.7e308,0,1.7e308\n1.7e308,1.7e308,0\n"), 3);
  expect_valid(big);
  EXPECT_EQ(big.weight(0, 1), 1.7e308);
  const Graph pair = graph_read_csv(write_temp("dblmax2.csv", "0,1.7976931348623157e308\n1.797693e308,0\n"));
  EXPECT_EQ(pair.weight(0, 1), 1.7976931348623157e308 / 2 + 1.797693e308 / 2);
  EXPECT_TRUE(std::isfinite(pair.weight(0, 1)));
  // The eq. (8) check then refuses such a graph for mira (its degrees overflow), as a user error.
  EXPECT_TRUE(graph_check_numerics(big, 1e-3, 3).may_diverge);
  const double smallest = std::numeric_limits<double>::denorm_min();
  const Graph sub = graph_read_csv(write_temp("denorm.csv", "0,4.9406564584124654e-324\n4.9406564584124654e-324,0\n"));
  EXPECT_EQ(sub.weight(0, 1), smallest);
  EXPECT_EQ(sub.neighbours[0], std::vector<int>{1});
  const Graph odd = graph_read_csv(write_temp("denorm3.csv", "0,1.5e-323\n1.5e-323,0\n"));  // 3 x denorm_min
  EXPECT_EQ(odd.weight(0, 1), 3 * smallest);
}

}  // namespace
}  // namespace mira
