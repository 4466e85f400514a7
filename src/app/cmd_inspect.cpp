// `mira_hpc inspect FILE.h5 | RUN/checkpoints`: a checkpoint summarised on stdout without its
// config: round, algorithm, K, seed, base model, the LoRA settings, every stored tensor with its
// shape, the last recorded metrics per client, each client's adapter norms (A, B, whole) and the
// pairwise cosine similarity of the clients' whole flat adapters (K x K; for K > INSPECT_TABLE_MAX a
// summary plus the table of the first INSPECT_TABLE_MAX clients).
// A missing, corrupt or foreign file is refused with one line and exit code 2 (the checkpoint
// reader validates everything and checks every CRC32C it reads). Any number of ranks: every rank
// opens the file collectively and takes part in every read; rank 0 asks for the slices, does the
// arithmetic and prints, the others select nothing.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>

#include "app/commands.h"
#include "app/ini.h"
#include "io/checkpoint.h"
#include "runtime/agree.h"
#include "runtime/error.h"

namespace mira {
namespace {

// Largest K printed as a full K x K table (16 columns of 7 characters fit a 120-column terminal).
constexpr int64_t INSPECT_TABLE_MAX = 16;
// Memory rank 0 may use for adapters while computing the similarities: clients are read in blocks
// of at most half of it (two blocks are held at a time), so any K works; 512 MiB keeps a login node happy.
constexpr double INSPECT_MEMORY_BYTES = 512.0 * 1024 * 1024;

std::string shape_text(std::initializer_list<int64_t> dims) {
  std::ostringstream s;
  s << '[';
  bool first = true;
  for (auto d : dims) s << (first ? "" : ", ") << d, first = false;
  s << ']';
  return s.str();
}

std::string bytes_text(double b) {
  const char* unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof(buf), u ? "%.1f %s" : "%.0f %s", b, unit[u]);
  return buf;
}

// "rank = 4, alpha = 8, ..." from the [lora] section of the stored config ("" when absent).
std::string lora_settings(const std::string& config_text) {
  try {
    std::string out;
    for (const auto& e : ini_parse(config_text, "config"))
      if (e.section == "lora") out += (out.empty() ? "" : ", ") + e.key + " = " + e.value;
    return out;
  } catch (const UserError& e) {
    return std::string("(stored config does not parse: ") + e.what() + ")";
  }
}

// One client's adapter as per-module pieces, with sum-of-squares helpers. Pieces follow the layout:
// for each module lora_A (L, r, in) then lora_B (L, out, r).
struct Flat {
  std::vector<const std::vector<float>*> a, b;
};

Flat flat_of(const ClientSlices& s) {
  Flat f;
  for (const auto& v : s.lora_A) f.a.push_back(&v);
  for (const auto& v : s.lora_B) f.b.push_back(&v);
  return f;
}

// Sum of x*y in double, in index order (deterministic, independent of threads).
double dot(const std::vector<float>& x, const std::vector<float>& y) {
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += (double)x[i] * (double)y[i];
  return s;
}

// {A part, B part} of the dot product of two flat adapters.
std::pair<double, double> dot_flat(const Flat& x, const Flat& y) {
  double a = 0, b = 0;
  for (size_t i = 0; i < x.a.size(); ++i) a += dot(*x.a[i], *y.a[i]), b += dot(*x.b[i], *y.b[i]);
  return {a, b};
}

struct Similarity {
  std::vector<double> norm_a, norm_b, norm;  // (K)
  std::vector<double> cosine;                // (K, K) of the whole flat adapters; NaN where a norm is 0
  std::vector<double> cosine_b;              // (K, K) of the lora_B parts only
};

// Collective: every rank runs the same block schedule; rank 0 reads the blocks and computes.
Similarity adapter_similarity(CheckpointReader& reader, int rank) {
  const CheckpointLayout& layout = reader.layout();
  const int64_t K = layout.clients;
  double per_client = 0;  // bytes read_clients returns per client (all stored per-client fields)
  for (const auto& m : layout.modules)
    per_client += 4.0 * m.layers * (m.rank * m.in_features + m.out_features * m.rank) * (layout.optimizer ? 5 : 1);
  per_client += 8.0 * ((layout.optimizer ? 1 : 0) + layout.cursor_width);
  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(K, (int64_t)(INSPECT_MEMORY_BYTES / 2 / std::max(per_client, 1.0))));
  auto read_block = [&](int64_t first) {
    std::vector<int64_t> ids;
    if (rank == 0)
      for (int64_t k = first; k < std::min(K, first + block); ++k) ids.push_back(k);
    std::vector<ClientSlices> got;
    mpi_agree(MPI_COMM_WORLD, [&] { got = reader.read_clients(ids); });
    for (auto& s : got) {  // only the adapters are needed
      s.lora_A_exp_avg.clear(), s.lora_A_exp_avg_sq.clear(), s.lora_B_exp_avg.clear(), s.lora_B_exp_avg_sq.clear();
      s.cursor.clear();
    }
    return got;
  };
  Similarity out;
  // (K, K) on rank 0: dot products of the A parts and of the B parts (upper triangle)
  std::vector<double> gram_a(rank == 0 ? (size_t)(K * K) : 0, 0.0), gram_b(gram_a);
  auto put = [&](int64_t i, int64_t j, std::pair<double, double> d) {
    gram_a[i * K + j] = d.first;
    gram_b[i * K + j] = d.second;
  };
  for (int64_t bi = 0; bi < K; bi += block) {
    std::vector<ClientSlices> I = read_block(bi);
    std::vector<Flat> fi;
    for (const auto& s : I) fi.push_back(flat_of(s));
    for (size_t i = 0; i < fi.size(); ++i) {
      for (size_t j = i; j < fi.size(); ++j) put(I[i].client, I[j].client, dot_flat(fi[i], fi[j]));
    }
    for (int64_t bj = bi + block; bj < K; bj += block) {
      std::vector<ClientSlices> J = read_block(bj);
      for (size_t i = 0; i < fi.size(); ++i)
        for (const auto& sj : J) put(I[i].client, sj.client, dot_flat(fi[i], flat_of(sj)));
    }
  }
  if (rank != 0) return out;
  out.norm.resize((size_t)K), out.norm_a.resize((size_t)K), out.norm_b.resize((size_t)K);
  for (int64_t k = 0; k < K; ++k) {
    out.norm_a[k] = std::sqrt(gram_a[k * K + k]);
    out.norm_b[k] = std::sqrt(gram_b[k * K + k]);
    out.norm[k] = std::sqrt(gram_a[k * K + k] + gram_b[k * K + k]);
  }
  out.cosine.assign((size_t)(K * K), NAN);
  out.cosine_b.assign((size_t)(K * K), NAN);
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = i; j < K; ++j) {
      const double d = out.norm[i] * out.norm[j], db = out.norm_b[i] * out.norm_b[j];
      const double c = d > 0 ? (gram_a[i * K + j] + gram_b[i * K + j]) / d : NAN;
      const double cb = db > 0 ? gram_b[i * K + j] / db : NAN;
      out.cosine[i * K + j] = out.cosine[j * K + i] = c;
      out.cosine_b[i * K + j] = out.cosine_b[j * K + i] = cb;
    }
  return out;
}

// Last finite value of column k of a (rows, cols) table and its 1-based row; row 0 when none.
std::pair<double, int64_t> last_finite(const MetricTable& t, int64_t k) {
  for (int64_t r = t.rows - 1; r >= 0; --r) {
    double v = t.values[(size_t)(r * t.cols + k)];
    if (std::isfinite(v)) return {v, r + 1};
  }
  return {NAN, 0};
}

// Summary (mean, min, max over pairs) and the table of the first `shown` clients of a (K, K) cosine
// matrix; 4 decimals, because adapters sharing their initial A differ in the third or fourth.
void print_cosine(const std::vector<double>& cos, int64_t K) {
  double sum = 0, lo = INFINITY, hi = -INFINITY;
  int64_t n = 0, lo_i = -1, lo_j = -1, hi_i = -1, hi_j = -1;
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = i + 1; j < K; ++j) {
      const double c = cos[i * K + j];
      if (!std::isfinite(c)) continue;
      sum += c, ++n;
      if (c < lo) lo = c, lo_i = i, lo_j = j;
      if (c > hi) hi = c, hi_i = i, hi_j = j;
    }
  if (n > 0)
    std::printf("pairs: %lld; mean %.4f; min %.4f (clients %lld, %lld); max %.4f (clients %lld, %lld)\n", (long long)n,
                sum / n, lo, (long long)lo_i, (long long)lo_j, hi, (long long)hi_i, (long long)hi_j);
  else
    std::printf("pairs: none with two non-zero adapters\n");
  const int64_t shown = std::min(K, INSPECT_TABLE_MAX);
  if (shown < K) std::printf("table truncated to the first %lld of %lld clients\n", (long long)shown, (long long)K);
  std::printf("%6s", "");
  for (int64_t j = 0; j < shown; ++j) std::printf(" %7lld", (long long)j);
  std::printf("%s\n", shown < K ? "  ..." : "");
  for (int64_t i = 0; i < shown; ++i) {
    std::printf("%6lld", (long long)i);
    for (int64_t j = 0; j < shown; ++j) {
      const double c = cos[i * K + j];
      if (std::isfinite(c)) std::printf(" %7.4f", c);
      else std::printf(" %7s", "-");
    }
    std::printf("%s\n", shown < K ? "  ..." : "");
  }
  if (shown < K) std::printf("   ...  (%lld more rows and columns)\n", (long long)(K - shown));
}

void print_report(const CheckpointReader& reader, const CheckpointGlobals& g, const Similarity& s) {
  const CheckpointMeta& meta = reader.meta();
  const CheckpointLayout& layout = reader.layout();
  const int64_t K = layout.clients;
  std::printf("checkpoint   %s\n", reader.path().c_str());
  std::printf("format       %s version %lld\n", CHECKPOINT_FORMAT_NAME, (long long)CHECKPOINT_FORMAT_VERSION);
  std::printf("round        %lld (rounds completed; a resumed run starts with round %lld)\n", (long long)meta.round,
              (long long)meta.round + 1);
  std::printf("algorithm    %s\n", meta.algorithm.c_str());
  std::printf("clients      %lld\n", (long long)K);
  std::printf("seed         %lld\n", (long long)meta.seed);
  std::printf("base model   %s%s%s\n", meta.base_model_path.c_str(), meta.base_model_sha256.empty() ? "" : "  sha256 ",
              meta.base_model_sha256.c_str());
  std::printf("lora         %s\n", lora_settings(meta.config_text).c_str());
  const std::string prov = meta.provenance.substr(0, meta.provenance.find('\n'));
  std::printf("written by   %s\n", prov.c_str());

  std::printf("\ntensors\n");
  int64_t P = 0;
  auto row = [](const std::string& name, const std::string& shape, const char* type) {
    std::printf("  %-44s %-20s %s\n", name.c_str(), shape.c_str(), type);
  };
  for (const auto& m : layout.modules) {
    row("/adapters/" + m.name + "/lora_A", shape_text({K, m.layers, m.rank, m.in_features}), "float32");
    row("/adapters/" + m.name + "/lora_B", shape_text({K, m.layers, m.out_features, m.rank}), "float32");
    P += m.layers * m.rank * (m.in_features + m.out_features);
  }
  if (layout.optimizer) {
    for (const auto& m : layout.modules) {
      for (const char* t : {"lora_A_exp_avg", "lora_A_exp_avg_sq"})
        row("/optimizer/" + m.name + "/" + t, shape_text({K, m.layers, m.rank, m.in_features}), "float32");
      for (const char* t : {"lora_B_exp_avg", "lora_B_exp_avg_sq"})
        row("/optimizer/" + m.name + "/" + t, shape_text({K, m.layers, m.out_features, m.rank}), "float32");
    }
    row("/optimizer/step", shape_text({K}), "int64");
  }
  if (layout.cursor_width > 0) row("/data/cursor", shape_text({K, layout.cursor_width}), "int64");
  row("/graph/weights", shape_text({K, K}), "float64");
  const int64_t m = g.sampled_per_round;
  const int64_t sampled_rounds = m > 0 ? (int64_t)g.sampling.size() / m : 0;
  row("/sampling", shape_text({sampled_rounds, m}), "int64");
  row("/rng/counters", shape_text({(int64_t)g.rng_counters.size()}), "uint64");
  for (const auto& t : g.metrics) row("/metrics/" + t.name, shape_text({t.rows, t.cols}), "float64");
  std::printf("adapter: %lld floats per client (%s), %lld modules x %lld layers%s\n", (long long)P,
              bytes_text(4.0 * P).c_str(), (long long)layout.modules.size(),
              (long long)(layout.modules.empty() ? 0 : layout.modules[0].layers),
              layout.optimizer ? "; Adam moments stored" : "");

  int64_t edges = 0;
  double wmin = INFINITY, wmax = -INFINITY;
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j)
      if (i != j && g.graph_weights[i * K + j] != 0) {
        ++edges;
        wmin = std::min(wmin, g.graph_weights[i * K + j]);
        wmax = std::max(wmax, g.graph_weights[i * K + j]);
      }
  if (edges) std::printf("graph: %lld directed edges (a_kl != 0), weights in [%.4g, %.4g]\n", (long long)edges, wmin, wmax);
  else std::printf("graph: no edges\n");
  std::printf("sampling: %lld of %lld clients in each of %lld recorded rounds\n", (long long)m, (long long)K,
              (long long)sampled_rounds);

  // Run-wide metrics of the last round.
  std::vector<const MetricTable*> per_client;
  std::string last;
  for (const auto& t : g.metrics) {
    if (t.cols == K && t.rows == sampled_rounds && t.name != "global_loss") per_client.push_back(&t);
    else if (t.cols == 1 && t.rows > 0) {
      char buf[96];
      std::snprintf(buf, sizeof(buf), "%s%s = %.6g", last.empty() ? "" : ", ", t.name.c_str(), t.values[t.rows - 1]);
      last += buf;
    }
  }
  if (!last.empty()) std::printf("last round: %s\n", last.c_str());

  std::vector<int64_t> times((size_t)K, 0);
  for (int64_t id : g.sampling)
    if (id >= 0 && id < K) ++times[id];
  std::printf("\nclients (metrics: last finite value and its round; norms: Frobenius of the whole flat adapter)\n");
  std::printf("%6s %7s", "client", "sampled");
  for (const auto* t : per_client) std::printf(" %18s", t->name.c_str());
  std::printf(" %10s %10s %10s  %s\n", "|A|", "|B|", "|adapter|", "most similar (cosine)");
  for (int64_t k = 0; k < K; ++k) {
    std::printf("%6lld %7lld", (long long)k, (long long)times[k]);
    for (const auto* t : per_client) {
      auto [v, r] = last_finite(*t, k);
      char cell[40];
      if (r > 0) std::snprintf(cell, sizeof(cell), "%.4f (r%lld)", v, (long long)r);
      else std::snprintf(cell, sizeof(cell), "-");
      std::printf(" %18s", cell);
    }
    int64_t best = -1;
    for (int64_t j = 0; j < K; ++j)
      if (j != k && std::isfinite(s.cosine[k * K + j]) && (best < 0 || s.cosine[k * K + j] > s.cosine[k * K + best]))
        best = j;
    std::printf(" %10.4g %10.4g %10.4g  ", s.norm_a[k], s.norm_b[k], s.norm[k]);
    if (best >= 0) std::printf("%lld (%.4f)\n", (long long)best, s.cosine[k * K + best]);
    else std::printf("-\n");
  }

  std::printf("\ncosine similarity of the clients' whole flat adapters (A and B of every module and layer)\n");
  print_cosine(s.cosine, K);
  std::printf("\ncosine similarity of the lora_B parts only (B starts at zero: what training and aggregation added)\n");
  print_cosine(s.cosine_b, K);
  std::fflush(stdout);
}

}  // namespace

int command_inspect(const AppContext& ctx) {
  const std::string& path = ctx.config.tool.checkpoint;
  CheckpointLayout layout;
  mpi_agree(MPI_COMM_WORLD, [&] { layout = checkpoint_read_layout(MPI_COMM_WORLD, path); });
  std::unique_ptr<CheckpointReader> reader;
  mpi_agree(MPI_COMM_WORLD, [&] { reader = std::make_unique<CheckpointReader>(MPI_COMM_WORLD, path, layout); });
  CheckpointGlobals globals;
  mpi_agree(MPI_COMM_WORLD, [&] { globals = reader->read_globals(); });
  Similarity sim = adapter_similarity(*reader, ctx.env.rank);
  reader->close();
  if (ctx.env.rank == 0) print_report(*reader, globals, sim);
  return 0;
}

}  // namespace mira
