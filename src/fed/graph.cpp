// Graph kinds, validation, the per-round edge report and the eq. (8) numerical check (graph.h).
#include "fed/graph.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "runtime/error.h"
#include "runtime/log.h"

namespace mira {

namespace {

std::string fmt_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string list_ids(const std::vector<int>& ids, size_t max_shown = 20) {
  std::string s;
  for (size_t i = 0; i < ids.size() && i < max_shown; ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  if (ids.size() > max_shown) s += " ... (" + std::to_string(ids.size()) + " in all)";
  return s;
}

void require_weight(double w, const std::string& what) {
  if (!std::isfinite(w) || w < 0.0)
    throw UserError(what + " = " + fmt_double(w) + ": graph weights must be finite and >= 0");
}

void require_K(int K, const char* kind) {
  if (K < 1) throw UserError(std::string("graph ") + kind + ": the client count must be >= 1, got " + std::to_string(K));
}

}  // namespace

const char* graph_kind_name(GraphKind kind) {
  switch (kind) {
    case GraphKind::RANDOM: return "random";
    case GraphKind::TASK: return "task";
    case GraphKind::RING: return "ring";
    case GraphKind::KNN: return "knn";
    case GraphKind::COMPLETE: return "complete";
    case GraphKind::FILE: return "file";
  }
  return "?";
}

GraphSpec graph_parse_spec(const std::string& text, const std::string& key) {
  const std::string allowed = "allowed: random (paper), task, ring, knn:N (N >= 1), complete, file:PATH";
  GraphSpec spec;
  if (text == "random") {
    spec.kind = GraphKind::RANDOM;
  } else if (text == "task") {
    spec.kind = GraphKind::TASK;
  } else if (text == "ring") {
    spec.kind = GraphKind::RING;
  } else if (text == "complete") {
    spec.kind = GraphKind::COMPLETE;
  } else if (text.rfind("knn:", 0) == 0) {
    const std::string n = text.substr(4);
    char* end = nullptr;
    errno = 0;
    const long v = n.empty() ? 0 : std::strtol(n.c_str(), &end, 10);
    if (n.empty() || *end != '\0' || errno != 0 || v < 1 || v > 1000000)
      throw UserError(key + " = '" + text + "': the neighbour count after 'knn:' must be an integer >= 1; " + allowed);
    spec.kind = GraphKind::KNN;
    spec.knn_k = static_cast<int>(v);
  } else if (text.rfind("file:", 0) == 0) {
    spec.kind = GraphKind::FILE;
    spec.path = text.substr(5);
    if (spec.path.empty()) throw UserError(key + " = '" + text + "': 'file:' needs a path; " + allowed);
  } else {
    throw UserError(key + " = '" + text + "': unknown graph kind; " + allowed);
  }
  return spec;
}

double Graph::degree(int k) const {
  double d = 0.0;
  for (int l : neighbours[k]) d += weight(k, l);  // ascending l: a fixed order
  return d;
}

int64_t Graph::edge_count() const {
  int64_t n = 0;
  for (int k = 0; k < K; ++k)
    for (int l : neighbours[k])
      if (l > k) ++n;
  return n;
}

Graph graph_from_weights(int K, std::vector<double> weights, const std::string& description) {
  MIRA_CHECK(K >= 1, "K=" + std::to_string(K));
  MIRA_CHECK(weights.size() == static_cast<size_t>(K) * K,
             "weights has " + std::to_string(weights.size()) + " entries for K=" + std::to_string(K));
  Graph g;
  g.K = K;
  g.description = description;
  for (int k = 0; k < K; ++k) weights[static_cast<size_t>(k) * K + k] = 0.0;  // diagonal ignored
  for (int k = 0; k < K; ++k)
    for (int l = 0; l < K; ++l) {
      const double w = weights[static_cast<size_t>(k) * K + l];
      MIRA_CHECK(std::isfinite(w) && w >= 0.0, "a[" + std::to_string(k) + "][" + std::to_string(l) + "]=" + fmt_double(w));
      MIRA_CHECK(w == weights[static_cast<size_t>(l) * K + k],
                 "graph not symmetric at (" + std::to_string(k) + ", " + std::to_string(l) + ")");
    }
  g.weights = std::move(weights);
  g.neighbours.assign(K, {});
  for (int k = 0; k < K; ++k)
    for (int l = 0; l < K; ++l)
      if (g.linked(k, l)) g.neighbours[k].push_back(l);
  return g;
}

Graph graph_random(int K, uint64_t seed) {
  require_K(K, "random");
  if (seed > 0xFFFFFFFFull)
    throw UserError("graph random: seed " + std::to_string(seed) +
                    " does not fit numpy's legacy 32-bit seed (allowed: 0 .. 4294967295)");
  // numpy's RandomState.seed(int) runs MT19937 init_genrand(seed), which is what std::mt19937's
  // constructor does; random_sample takes two 32-bit draws a, b and returns
  // ((a >> 5) * 2^26 + (b >> 6)) / 2^53 (53 random bits). U is drawn row by row, as rand(K, K).
  std::mt19937 mt(static_cast<std::mt19937::result_type>(seed));
  std::vector<double> u(static_cast<size_t>(K) * K);
  for (double& x : u) {
    const uint64_t a = mt() >> 5, b = mt() >> 6;
    x = static_cast<double>(a * 67108864ull + b) / 9007199254740992.0;
  }
  std::vector<double> w(u.size());
  for (int k = 0; k < K; ++k)
    for (int l = 0; l < K; ++l) {
      const double v = (u[static_cast<size_t>(k) * K + l] + u[static_cast<size_t>(l) * K + k]) / 2.0;
      w[static_cast<size_t>(k) * K + l] = v < 0.25 ? 0.0 : v;  // authors' code: a[a < 0.25] = 0
    }
  return graph_from_weights(K, std::move(w), "random (paper recipe, numpy seed " + std::to_string(seed) + ")");
}

Graph graph_task(const std::vector<int>& family, double w_same, double w_other) {
  const int K = static_cast<int>(family.size());
  require_K(K, "task");
  require_weight(w_same, "graph task w_same");
  require_weight(w_other, "graph task w_other");
  std::vector<double> w(static_cast<size_t>(K) * K);
  for (int k = 0; k < K; ++k)
    for (int l = 0; l < K; ++l) w[static_cast<size_t>(k) * K + l] = family[k] == family[l] ? w_same : w_other;
  return graph_from_weights(K, std::move(w),
                            "task (extension: same family " + fmt_double(w_same) + ", other " + fmt_double(w_other) + ")");
}

Graph graph_ring(int K, double weight) {
  require_K(K, "ring");
  require_weight(weight, "graph ring weight");
  std::vector<double> w(static_cast<size_t>(K) * K, 0.0);
  for (int k = 0; k < K; ++k) {
    w[static_cast<size_t>(k) * K + (k + 1) % K] = weight;
    w[static_cast<size_t>(k) * K + (k + K - 1) % K] = weight;
  }
  return graph_from_weights(K, std::move(w), "ring (extension, weight " + fmt_double(weight) + ")");
}

Graph graph_complete(int K, double weight) {
  require_K(K, "complete");
  require_weight(weight, "graph complete weight");
  std::vector<double> w(static_cast<size_t>(K) * K, weight);
  return graph_from_weights(K, std::move(w), "complete (extension, weight " + fmt_double(weight) + ")");
}

Graph graph_knn(const std::vector<double>& similarity, int K, int n) {
  require_K(K, "knn");
  if (similarity.size() != static_cast<size_t>(K) * K)
    throw UserError("graph knn: the similarity matrix has " + std::to_string(similarity.size()) +
                    " entries, expected K*K = " + std::to_string(static_cast<size_t>(K) * K));
  if (n < 1) throw UserError("graph knn: the neighbour count must be >= 1, got " + std::to_string(n));
  for (int k = 0; k < K; ++k)
    for (int l = 0; l < K; ++l) {
      if (k == l) continue;
      const double s = similarity[static_cast<size_t>(k) * K + l];
      require_weight(s, "graph knn similarity[" + std::to_string(k) + "][" + std::to_string(l) + "]");
      if (s != similarity[static_cast<size_t>(l) * K + k])
        throw UserError("graph knn: the similarity matrix must be symmetric; it differs at (" + std::to_string(k) +
                        ", " + std::to_string(l) + ")");
    }
  std::vector<double> w(static_cast<size_t>(K) * K, 0.0);
  std::vector<int> order;
  for (int k = 0; k < K; ++k) {
    order.clear();
    for (int l = 0; l < K; ++l)
      if (l != k && similarity[static_cast<size_t>(k) * K + l] > 0.0) order.push_back(l);
    // Most similar first; equal similarity: the smaller id first (deterministic).
    std::stable_sort(order.begin(), order.end(), [&](int x, int y) {
      return similarity[static_cast<size_t>(k) * K + x] > similarity[static_cast<size_t>(k) * K + y];
    });
    for (size_t i = 0; i < order.size() && i < static_cast<size_t>(n); ++i) {
      const int l = order[i];
      const double s = similarity[static_cast<size_t>(k) * K + l];
      w[static_cast<size_t>(k) * K + l] = s;  // union: set both directions
      w[static_cast<size_t>(l) * K + k] = s;
    }
  }
  return graph_from_weights(K, std::move(w),
                            "knn:" + std::to_string(n) + " (extension, union-symmetrised, weight = similarity)");
}

std::vector<double> graph_cosine_similarity(const std::vector<double>& features, int K, int D) {
  MIRA_CHECK(K >= 1 && D >= 1 && features.size() == static_cast<size_t>(K) * D,
             "features size " + std::to_string(features.size()) + " for K=" + std::to_string(K) + " D=" + std::to_string(D));
  std::vector<double> norm(K, 0.0);
  for (int k = 0; k < K; ++k) {
    for (int d = 0; d < D; ++d) norm[k] += features[static_cast<size_t>(k) * D + d] * features[static_cast<size_t>(k) * D + d];
    norm[k] = std::sqrt(norm[k]);
  }
  std::vector<double> s(static_cast<size_t>(K) * K, 0.0);
  for (int k = 0; k < K; ++k)
    for (int l = k + 1; l < K; ++l) {
      if (norm[k] == 0.0 || norm[l] == 0.0) continue;
      double dot = 0.0;
      for (int d = 0; d < D; ++d) dot += features[static_cast<size_t>(k) * D + d] * features[static_cast<size_t>(l) * D + d];
      const double c = std::max(0.0, dot / (norm[k] * norm[l]));
      s[static_cast<size_t>(k) * K + l] = s[static_cast<size_t>(l) * K + k] = c;
    }
  return s;
}

Graph graph_read_csv(const std::string& path, int expected_K) {
  std::ifstream in(path);
  if (!in) throw UserError(path + ": cannot open the graph weight file (graph = file:PATH)");
  struct Cell {
    double value;
    int line, column;
  };
  std::vector<std::vector<Cell>> rows;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;  // blank line or comment
    std::vector<Cell> row;
    size_t pos = 0;
    while (true) {
      const size_t comma = line.find(',', pos);
      const size_t end = comma == std::string::npos ? line.size() : comma;
      size_t b = pos, e = end;
      while (b < e && (line[b] == ' ' || line[b] == '\t')) ++b;
      while (e > b && (line[e - 1] == ' ' || line[e - 1] == '\t')) --e;
      const std::string field = line.substr(b, e - b);
      const int column = static_cast<int>(b) + 1;
      const std::string where = path + ":" + std::to_string(line_no) + ":" + std::to_string(column) + ": ";
      if (field.empty()) throw UserError(where + "empty weight (allowed: finite decimal numbers >= 0, comma-separated)");
      char* stop = nullptr;
      errno = 0;
      const double v = std::strtod(field.c_str(), &stop);
      if (*stop != '\0')
        throw UserError(where + "weight '" + field + "' is not a number (allowed: finite decimal numbers >= 0)");
      if (!std::isfinite(v) || (errno == ERANGE && std::fabs(v) >= 1.0))  // underflow to ~0 is fine
        throw UserError(where + "weight '" + field + "' is not finite (allowed: finite decimal numbers >= 0)");
      if (v < 0.0) throw UserError(where + "weight " + field + " is negative (allowed: finite decimal numbers >= 0)");
      row.push_back({v, line_no, column});
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    if (!rows.empty() && row.size() != rows[0].size())
      throw UserError(path + ":" + std::to_string(line_no) + ":1: row has " + std::to_string(row.size()) +
                      " weights, the first row has " + std::to_string(rows[0].size()) + " (the matrix must be K x K)");
    rows.push_back(std::move(row));
  }
  if (rows.empty()) throw UserError(path + ":1:1: no weights found (expected a K x K comma-separated matrix)");
  const int K = static_cast<int>(rows.size());
  if (rows[0].size() != rows.size())
    throw UserError(path + ":" + std::to_string(rows.back()[0].line) + ":1: the matrix has " + std::to_string(rows.size()) +
                    " rows of " + std::to_string(rows[0].size()) + " weights; it must be square (K x K)");
  if (expected_K >= 0 && K != expected_K)
    throw UserError(path + ":" + std::to_string(rows[0][0].line) + ":1: the matrix is " + std::to_string(K) + " x " +
                    std::to_string(K) + " but the run has " + std::to_string(expected_K) + " clients");
  // Symmetry tolerance: files written with 7 significant digits (single-precision printing) of a
  // symmetric matrix differ by at most 1 unit in the 7th digit, so 1e-6 relative (plus 1e-12
  // absolute for values printed as 0 vs a tiny number) accepts them and refuses real asymmetry.
  // The stored weight is the mean of the pair, so the graph is exactly symmetric.
  const double rel_tol = 1e-6, abs_tol = 1e-12;
  std::vector<double> w(static_cast<size_t>(K) * K);
  std::vector<int> nonzero_diagonal;
  for (int k = 0; k < K; ++k)
    for (int l = 0; l < K; ++l) {
      const Cell& c = rows[k][l];
      if (k == l) {
        if (c.value != 0.0) nonzero_diagonal.push_back(k);
        w[static_cast<size_t>(k) * K + l] = 0.0;
        continue;
      }
      const Cell& m = rows[l][k];
      if (std::fabs(c.value - m.value) > abs_tol + rel_tol * std::max(std::fabs(c.value), std::fabs(m.value)))
        throw UserError(path + ":" + std::to_string(c.line) + ":" + std::to_string(c.column) + ": a[" +
                        std::to_string(k) + "][" + std::to_string(l) + "] = " + fmt_double(c.value) +
                        " differs from its mirror a[" + std::to_string(l) + "][" + std::to_string(k) + "] = " +
                        fmt_double(m.value) + " at " + std::to_string(m.line) + ":" + std::to_string(m.column) +
                        " (0-based client ids; the matrix must be symmetric within 1e-6 relative)");
      // Addition commutes, so a_kl == a_lk. Near DBL_MAX the sum overflows: then the halves are added
      // (not always: halving first would round subnormal weights, changing their bits).
      const double sum = c.value + m.value;
      w[static_cast<size_t>(k) * K + l] = std::isfinite(sum) ? sum / 2.0 : c.value / 2.0 + m.value / 2.0;
    }
  if (!nonzero_diagonal.empty())
    log_warn("%s: non-zero diagonal weights ignored for clients %s (a client is not its own neighbour)", path.c_str(),
             list_ids(nonzero_diagonal).c_str());
  return graph_from_weights(K, std::move(w), "file:" + path + " (extension)");
}

Graph graph_build(const GraphSpec& spec, const GraphInputs& in, const std::string& key) {
  Graph g;
  switch (spec.kind) {
    case GraphKind::RANDOM: g = graph_random(in.K, in.seed); break;
    case GraphKind::TASK:
      if (static_cast<int>(in.family.size()) != in.K)
        throw UserError(key + " = task: needs one task family per client (" + std::to_string(in.K) + "), got " +
                        std::to_string(in.family.size()));
      g = graph_task(in.family, in.w_same, in.w_other);
      break;
    case GraphKind::RING: g = graph_ring(in.K, in.w_same); break;
    case GraphKind::COMPLETE: g = graph_complete(in.K, in.w_same); break;
    case GraphKind::KNN:
      if (in.similarity.size() != static_cast<size_t>(in.K) * in.K)
        throw UserError(key + " = knn:" + std::to_string(spec.knn_k) + ": needs a K x K client similarity matrix (K = " +
                        std::to_string(in.K) + ")");
      g = graph_knn(in.similarity, in.K, spec.knn_k);
      break;
    case GraphKind::FILE: g = graph_read_csv(spec.path, in.K); break;
  }
  const std::vector<int> isolated = graph_isolated_clients(g);
  if (!isolated.empty())
    log_warn("%s: clients with no neighbour (MIRA eq. (8) never changes them; they train locally): %s", key.c_str(),
             list_ids(isolated).c_str());
  return g;
}

std::vector<int> graph_isolated_clients(const Graph& g) {
  std::vector<int> out;
  for (int k = 0; k < g.K; ++k)
    if (g.neighbours[k].empty()) out.push_back(k);
  return out;
}

GraphRoundEdges graph_round_edges(const Graph& g, const std::vector<int>& sampled) {
  GraphRoundEdges r;
  for (size_t i = 0; i < sampled.size(); ++i) {
    bool any = false;
    for (size_t j = 0; j < sampled.size(); ++j) {
      if (i == j || !g.linked(sampled[i], sampled[j])) continue;
      any = true;
      if (j > i) ++r.active_edges;
    }
    if (!any) r.isolated.push_back(sampled[i]);
  }
  std::sort(r.isolated.begin(), r.isolated.end());
  return r;
}

void graph_log_round(const Graph& g, const std::vector<int>& sampled, int64_t round) {
  const GraphRoundEdges r = graph_round_edges(g, sampled);
  log_debug("round %lld: %lld active graph edges among %zu sampled clients", static_cast<long long>(round),
           static_cast<long long>(r.active_edges), sampled.size());
  if (!r.isolated.empty())
    log_debug("round %lld: sampled clients with no sampled neighbour (kept as trained): %s", static_cast<long long>(round),
             list_ids(r.isolated).c_str());
}

double graph_laplacian_max_eigenvalue(const Graph& g) {
  const int n = g.K;
  if (n == 1) return 0.0;
  std::vector<double> a(static_cast<size_t>(n) * n);  // (K, K) L = D - M
  for (int k = 0; k < n; ++k) {
    for (int l = 0; l < n; ++l) a[static_cast<size_t>(k) * n + l] = -g.weight(k, l);
    a[static_cast<size_t>(k) * n + k] = g.degree(k);
  }
  auto A = [&](int r, int c) -> double& { return a[static_cast<size_t>(r) * n + c]; };
  double fro2 = 0.0;
  for (double v : a) fro2 += v * v;
  // Cyclic Jacobi: stop when the off-diagonal mass is below 1e-24 of the total (eigenvalue error
  // is of the order of the off-diagonal norm, so about 1e-12 relative: ample for a warning figure).
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0.0;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) off += 2.0 * A(p, q) * A(p, q);
    if (off <= 1e-24 * fro2) break;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        const double apq = A(p, q);
        if (apq == 0.0) continue;
        const double app = A(p, p), aqq = A(q, q);
        const double theta = (aqq - app) / (2.0 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
        for (int r = 0; r < n; ++r) {
          if (r == p || r == q) continue;
          const double arp = A(r, p), arq = A(r, q);
          A(r, p) = A(p, r) = c * arp - s * arq;
          A(r, q) = A(q, r) = s * arp + c * arq;
        }
        A(p, p) = app - t * apq;
        A(q, q) = aqq + t * apq;
        A(p, q) = A(q, p) = 0.0;
      }
  }
  double mx = A(0, 0);
  for (int k = 1; k < n; ++k) mx = std::max(mx, A(k, k));
  return mx;
}

GraphNumerics graph_check_numerics(const Graph& g, double eta_lambda, int sampled_per_round) {
  GraphNumerics r;
  r.step = eta_lambda;
  double sum = 0.0;
  for (int k = 0; k < g.K; ++k) {
    const double d = g.degree(k);
    sum += d;
    if (d > r.max_degree || r.max_degree_client < 0) {
      r.max_degree = d;
      r.max_degree_client = k;
    }
  }
  r.mean_degree = sum / g.K;
  r.laplacian_max = graph_laplacian_max_eigenvalue(g);
  r.max_pull = eta_lambda * r.max_degree;
  // A sampled client sees each other client sampled with probability (m - 1)/(K - 1).
  const double frac = g.K > 1 ? static_cast<double>(std::max(1, sampled_per_round) - 1) / (g.K - 1) : 0.0;
  r.expected_pull = eta_lambda * r.mean_degree * frac;
  r.overshoots = r.max_pull > 1.0;
  r.may_diverge = eta_lambda * r.laplacian_max > 2.0;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "MIRA eq. (8): eta*lambda = %.4g; a sampled client moves eta*lambda*d_k of the way towards the weighted "
                "mean of its sampled neighbours: about %.3g%% per round on average (mean degree %.4g, %d sampled of %d), "
                "at most %.3g%% (max degree %.4g, client %d)%s; eta*lambda*lambda_max(L) = %.4g%s",
                eta_lambda, 100.0 * r.expected_pull, r.mean_degree, sampled_per_round, g.K, 100.0 * r.max_pull,
                r.max_degree, r.max_degree_client, r.overshoots ? " > 100%: OVERSHOOTS" : "",
                eta_lambda * r.laplacian_max, r.may_diverge ? " > 2: MAY DIVERGE" : " (<= 2: stable)");
  r.explanation = buf;
  return r;
}

}  // namespace mira
