// The client graph of MIRA (MIRA.md, Graph weights): a symmetric, non-negative K x K weight matrix
// a_kl with a zero diagonal, its neighbour lists, the graph kinds that build it (the paper's
// `random` recipe and labelled extensions), the per-round active-edge report and the numerical
// check of MIRA eq. (8) (overshoot / divergence figures). Formulas: docs/federation.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mira {

enum class GraphKind {
  RANDOM,    // paper recipe (authors' code): (U + U^T)/2, entries < 0.25 dropped
  TASK,      // extension: w_same within a task family, w_other across families
  RING,      // extension: k linked to k-1 and k+1 (mod K), weight w_same
  KNN,       // extension: k nearest neighbours on a similarity matrix, union-symmetrised
  COMPLETE,  // extension: every pair linked, weight w_same
  FILE,      // extension: weights read from a CSV file
};

// A parsed graph kind string: "random", "task", "ring", "knn:N", "complete", "file:PATH".
struct GraphSpec {
  GraphKind kind = GraphKind::RANDOM;
  int knn_k = 0;     // KNN: neighbours kept per client
  std::string path;  // FILE: the CSV path
};

// Parses a kind string; throws UserError naming `key` and listing what is allowed.
GraphSpec graph_parse_spec(const std::string& text, const std::string& key);
const char* graph_kind_name(GraphKind kind);

struct Graph {
  int K = 0;
  std::vector<double> weights;               // (K, K) row-major; symmetric, >= 0, zero diagonal
  std::vector<std::vector<int>> neighbours;  // (K, deg_k) ascending client ids l with a_kl > 0
  std::string description;                   // one line, e.g. "random (paper recipe, seed 42)"

  double weight(int k, int l) const { return weights[static_cast<size_t>(k) * K + l]; }
  bool linked(int k, int l) const { return k != l && weight(k, l) > 0.0; }
  double degree(int k) const;  // d_k = sum_l a_kl
  int64_t edge_count() const;  // undirected linked pairs
};

// Validates (square, finite, >= 0, exactly symmetric; the diagonal is zeroed) and builds the
// neighbour lists. Throws InternalError on a violated invariant: builders and the CSV reader
// check user input themselves.
Graph graph_from_weights(int K, std::vector<double> weights, const std::string& description);

// Paper recipe (authors' code): numpy's legacy `np.random.seed(seed); U = np.random.rand(K, K)`
// reproduced bit for bit with MT19937, a = (U + U^T)/2, a[a < 0.25] = 0, diagonal zeroed. The seed
// must fit numpy's 32-bit legacy seed (UserError otherwise).
Graph graph_random(int K, uint64_t seed = 42);
// Extension: a_kl = w_same if family[k] == family[l] else w_other (k != l).
Graph graph_task(const std::vector<int>& family, double w_same = 1.0, double w_other = 0.0);
// Extension: a_kl = w for l = k +- 1 (mod K). K = 2 gives one link of weight w (not 2w).
Graph graph_ring(int K, double w = 1.0);
// Extension: a_kl = w for every k != l.
Graph graph_complete(int K, double w = 1.0);
// Extension: `similarity` (K, K) symmetric, finite, >= 0 (diagonal ignored). Each client keeps its
// n most similar other clients (ties: the smaller id first; zero similarity is never an edge); the
// edge set is the UNION of these choices (so a degree can exceed n); a_kl = similarity[k][l].
Graph graph_knn(const std::vector<double>& similarity, int K, int n);
// Cosine similarity of client feature rows, (K, D) row-major, negative values clipped to 0: a
// similarity matrix for graph_knn. A zero feature row has similarity 0 to every client.
std::vector<double> graph_cosine_similarity(const std::vector<double>& features, int K, int D);
// Extension: a CSV file of K x K weights (see docs/federation.md for the format). expected_K < 0
// accepts any size. Every mistake is a UserError "path:line:column: what, what is allowed".
Graph graph_read_csv(const std::string& path, int expected_K = -1);

// Everything graph_build may need; fields not used by the kind are ignored.
struct GraphInputs {
  int K = 0;
  uint64_t seed = 42;                // RANDOM
  std::vector<int> family;           // TASK: (K) task family id per client
  double w_same = 1.0;               // TASK, RING, COMPLETE
  double w_other = 0.0;              // TASK
  std::vector<double> similarity;    // KNN: (K, K)
};
// Builds the graph a spec names; throws UserError when an input it needs is missing or the wrong
// size (`key` names the config key in the message). Warns (rank 0) about isolated clients.
Graph graph_build(const GraphSpec& spec, const GraphInputs& in, const std::string& key);

// Active edges of one round: linked pairs (k, l), k < l, with both k and l sampled; and the
// sampled clients with no sampled neighbour (eq. (8) leaves them as trained).
struct GraphRoundEdges {
  int64_t active_edges = 0;
  std::vector<int> isolated;  // ascending
};
GraphRoundEdges graph_round_edges(const Graph& g, const std::vector<int>& sampled);
// Logs "round t: E active edges among m sampled clients" and the isolated ones (debug level: every
// round's figures are also in the metrics file).
void graph_log_round(const Graph& g, const std::vector<int>& sampled, int64_t round);
// Clients with no neighbour at all in the graph (ascending).
std::vector<int> graph_isolated_clients(const Graph& g);

// Largest eigenvalue of the graph Laplacian L = D - M, in double, by cyclic Jacobi (O(K^3) per
// sweep; about a second for K = 1000).
double graph_laplacian_max_eigenvalue(const Graph& g);

// Figures for the start-up check of MIRA eq. (8) with step s = eta * lambda (MIRA.md, Numerical
// notes). Over the full graph (an upper bound for every sampled subgraph: a sampled client's
// degree is at most its full degree, and by Cauchy interlacing the largest Laplacian eigenvalue of
// the sampled subgraph is at most that of the full graph).
struct GraphNumerics {
  double step = 0.0;            // eta * lambda
  double max_degree = 0.0;      // max_k d_k
  int max_degree_client = -1;
  double mean_degree = 0.0;
  double laplacian_max = 0.0;   // largest eigenvalue of L
  double max_pull = 0.0;        // step * max_degree: fraction of the way to the neighbours' mean
  double expected_pull = 0.0;   // step * mean_degree * (m - 1)/(K - 1): the mean client, sampled
  bool overshoots = false;      // step * max_degree > 1
  bool may_diverge = false;     // step * laplacian_max > 2
  std::string explanation;      // one line for the log
};
GraphNumerics graph_check_numerics(const Graph& g, double eta_lambda, int sampled_per_round);

}  // namespace mira
