// Benchmark driver (not a test): time of one neighbour-exchange round of our MpiAdapterExchange
// (comm/mpi_exchange.h: dist-graph communicator built once, MPI_Neighbor_alltoallv, packing
// included) with one client per rank, on a ring and on a k-regular circulant graph, beside
// MPI_Allgather of every rank's adapter (what a method that ships all K adapters to everyone moves).
// From the ring figures it fits the cost model t(round) = deg * (alpha + bytes / beta) (alpha from the
// smallest size, beta from the sizes >= --fit-min), reports how well it predicts the k-regular
// round, and the modelled crossover degree above which Allgather (K - 1 adapters received per rank)
// becomes cheaper than the neighbourhood exchange (deg adapters). Modelled figures say so.
// Run under mpirun by bench/exchange.sh; rank 0 prints one JSON line per figure on stdout and
// human text on stderr. Times: median over iterations of the slowest rank's time of one round.
//   bench_exchange [--sizes 1024,65536,262144,1048576,4194304,8388608] [--degree 4] [--min-iters 5] [--max-iters 200]
//                  [--budget 0.4] [--fit-min 1048576] [--note oversubscribed]
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_timing.h"
#include "comm/mpi_exchange.h"
#include "fed/assignment.h"
#include "fed/graph.h"
#include "runtime/check_mpi.h"
#include "runtime/error.h"
#include "bench/bench_main.h"

namespace {

using namespace mira;

struct Options {
  // adapter bytes; 1 KiB anchors the latency term of the fit, 8 MiB is about a GPT-2 124M r16 adapter
  std::vector<int64_t> sizes{1 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 8 << 20};
  int degree = 4;                                           // k of the k-regular graph
  int min_iters = 5, max_iters = 200;
  double budget = 0.4;  // seconds of measured calls per method and size, once min_iters are done
  int64_t fit_min = 1 << 20;  // smallest size in the bandwidth fit (bytes)
  std::string note;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) throw UserError("bench_exchange: " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--sizes") {
      o.sizes.clear();
      std::string s = val();
      size_t p = 0;
      while (p <= s.size()) {
        size_t q = s.find(',', p);
        if (q == std::string::npos) q = s.size();
        o.sizes.push_back(std::stoll(s.substr(p, q - p)));
        p = q + 1;
      }
    } else if (a == "--degree") o.degree = std::stoi(val());
    else if (a == "--min-iters") o.min_iters = std::stoi(val());
    else if (a == "--max-iters") o.max_iters = std::stoi(val());
    else if (a == "--budget") o.budget = std::stod(val());
    else if (a == "--note") o.note = val();
    else if (a == "--fit-min") o.fit_min = std::stoll(val());
    else throw UserError("bench_exchange: unknown option " + a +
                         " (allowed: --sizes --degree --min-iters --max-iters --budget --fit-min --note)");
  }
  for (int64_t b : o.sizes)
    if (b < 4 || b % 4 != 0) throw UserError("bench_exchange: --sizes are bytes, multiples of 4 (float adapters)");
  if (o.degree < 2 || o.degree % 2 != 0) throw UserError("bench_exchange: --degree must be even and >= 2");
  return o;
}

// k-regular circulant graph: client i linked to i +- 1 .. i +- k/2 (mod K). With K <= k + 1 every
// pair is linked (the complete graph, degree K - 1).
Graph graph_circulant(int K, int k) {
  std::vector<double> w(size_t(K) * K, 0.0);
  for (int i = 0; i < K; ++i)
    for (int d = 1; d <= k / 2; ++d) {
      const int j = (i + d) % K;
      if (j == i) continue;
      w[size_t(i) * K + j] = w[size_t(j) * K + i] = 1.0;
    }
  return graph_from_weights(K, std::move(w), "circulant k=" + std::to_string(k));
}

std::vector<double> time_interleaved(MPI_Comm comm, const Options& o, const std::vector<std::function<void()>>& methods) {
  return mira::time_interleaved(comm, o.min_iters, o.max_iters, o.budget, methods);  // bench/bench_timing.h
}

std::string size_name(int64_t b) {
  if (b % (1 << 20) == 0) return std::to_string(b >> 20) + "MiB";
  if (b % (1 << 10) == 0) return std::to_string(b >> 10) + "KiB";
  return std::to_string(b) + "B";
}

void json(const std::string& metric, double value, const char* unit, const char* peer, double peer_value, double ratio,
          const std::string& config, bool modelled) {
  std::string pv = peer ? ("\"" + std::string(peer) + "\"") : "null";
  char num[64], pnum[64], rnum[64];
  std::snprintf(num, sizeof num, "%.6g", value);
  std::snprintf(pnum, sizeof pnum, "%.6g", peer_value);
  std::snprintf(rnum, sizeof rnum, "%.3f", ratio);
  std::printf("{\"bench\":\"exchange\",\"metric\":\"%s\",\"value\":%s,\"unit\":\"%s\",\"peer\":%s,\"peer_value\":%s,"
              "\"ratio\":%s,\"config\":\"%s\"%s}\n",
              metric.c_str(), num, unit, pv.c_str(), peer ? pnum : "null", peer ? rnum : "null", config.c_str(),
              modelled ? ",\"modelled\":true" : "");
  std::fflush(stdout);
}

struct Row {
  int64_t bytes;
  double ring_s, kreg_s, allgather_s;
};

int run(int argc, char** argv) {
  MPI_Comm comm = MPI_COMM_WORLD;
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const Options o = parse(argc, argv);
  const int K = size;  // one client per rank
  const std::vector<int> owner = assignment_owners(K, size);
  const Graph ring = graph_ring(K);
  const Graph kreg = graph_circulant(K, o.degree);
  // Degree of a rank = peers it receives from (one client per rank: the client's degree).
  const int deg_ring = (int)ring.neighbours[0].size();
  const int deg_kreg = (int)kreg.neighbours[0].size();
  const std::vector<char> all(K, 1);  // every client sampled: receiver and provider

  std::vector<Row> rows;
  for (int64_t bytes : o.sizes) {
    const size_t P = size_t(bytes / 4);
    std::vector<float> mine(P, float(rank));
    AdapterLookup owned = [&](int c) -> float* { return c == rank ? mine.data() : nullptr; };
    Row row{bytes, 0, 0, 0};
    MpiAdapterExchange ex_ring(comm, owner, ring.neighbours, P);  // built once, as in a run
    MpiAdapterExchange ex_kreg(comm, owner, kreg.neighbours, P);
    std::vector<float> gathered(size_t(K) * P);
    const std::vector<double> t = time_interleaved(
        comm, o,
        {[&] { ex_ring.exchange(all, all, owned); }, [&] { ex_kreg.exchange(all, all, owned); },
         [&] { MIRA_CHECK_MPI(MPI_Allgather(mine.data(), int(P), MPI_FLOAT, gathered.data(), int(P), MPI_FLOAT, comm)); }});
    row.ring_s = t[0], row.kreg_s = t[1], row.allgather_s = t[2];
    for (int g = 0; g < 2; ++g) {  // the data really arrived
      const MpiAdapterExchange& ex = g == 0 ? ex_ring : ex_kreg;
      for (int l : (g == 0 ? ring : kreg).neighbours[rank])
        MIRA_CHECK(ex.neighbour(l) != nullptr && ex.neighbour(l)[P - 1] == float(l), "neighbour " + std::to_string(l));
    }
    MIRA_CHECK(gathered[size_t(K - 1) * P] == float(K - 1), "allgather contents");
    rows.push_back(row);
  }
  if (rank != 0) return 0;

  const std::string base = "np" + std::to_string(size) + " K" + std::to_string(K) + " one-client-per-rank" +
                           (o.note.empty() ? "" : " " + o.note);
  auto mbps = [](double bytes, double s) { return bytes / s / 1e6; };
  for (const Row& r : rows) {
    const std::string sz = size_name(r.bytes);
    const double recv_ag = double(K - 1) * double(r.bytes);  // bytes each rank receives
    for (int g = 0; g < 2; ++g) {
      const double t = g == 0 ? r.ring_s : r.kreg_s;
      const int deg = g == 0 ? deg_ring : deg_kreg;
      const std::string cfg = base + " " + (g == 0 ? "ring" : "circulant-k" + std::to_string(o.degree)) + " deg" +
                              std::to_string(deg) + " " + sz;
      std::fprintf(stderr, "exchange %s: round %.3f ms (%.1f MB/s per rank received); MPI_Allgather %.3f ms (%.1f MB/s)\n",
                   cfg.c_str(), t * 1e3, mbps(deg * double(r.bytes), t), r.allgather_s * 1e3, mbps(recv_ag, r.allgather_s));
      // Time of a round: lower is better, so ratio = peer / ours (higher is better for us).
      json("round_ms", t * 1e3, "ms", "MPI_Allgather", r.allgather_s * 1e3, r.allgather_s / t, cfg, false);
      // Received bytes per second per rank (neighbours' adapters vs the K - 1 others' adapters).
      if (K > 1)
        json("recv_MBps", mbps(deg * double(r.bytes), t), "MB/s", "MPI_Allgather", mbps(recv_ag, r.allgather_s),
             mbps(deg * double(r.bytes), t) / mbps(recv_ag, r.allgather_s), cfg, false);
    }
  }
  if (K < 2 || rows.size() < 2) return 0;

  // Fit t/deg = alpha + bytes/beta on the ring rows. alpha: the per-neighbour time of the smallest
  // size (latency-bound). beta: least squares of the RELATIVE error over the sizes >= --fit-min
  // (bandwidth-bound; real adapters are MBs), with alpha fixed. One straight line through every size
  // fits badly on shared memory: messages that stay in cache move several times faster than those
  // that do not, so small and large sizes follow different lines.
  const Row& smallest = *std::min_element(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.bytes < b.bytes; });
  const double alpha = smallest.ring_s / deg_ring;
  double num = 0, den = 0;
  std::string sizes_txt;
  for (const Row& r : rows) {
    if (r.bytes < o.fit_min) continue;
    const double x = double(r.bytes), y = r.ring_s / deg_ring;
    num += x * (y - alpha) / (y * y), den += x * x / (y * y);
    sizes_txt += (sizes_txt.empty() ? "" : ",") + size_name(r.bytes);
  }
  if (den == 0) {
    std::fprintf(stderr, "model: no size >= --fit-min %lld bytes; no fit\n", (long long)o.fit_min);
    return 0;
  }
  const double beta = den / num;  // bytes per second
  const std::string mcfg = base + " fit on ring deg" + std::to_string(deg_ring) + " alpha@" + size_name(smallest.bytes) +
                           " beta@";
  std::fprintf(stderr, "model (ring fit, %s): alpha %.1f us, beta %.1f MB/s per neighbour\n", base.c_str(), alpha * 1e6,
               beta / 1e6);
  json("model_alpha_us", alpha * 1e6, "us", nullptr, 0, 0, mcfg + sizes_txt + " modelled", true);
  json("model_beta_MBps", beta / 1e6, "MB/s", nullptr, 0, 0, mcfg + sizes_txt + " modelled", true);
  for (const Row& r : rows) {
    const double per = alpha + double(r.bytes) / beta;  // modelled cost of one neighbour's adapter
    const double pred = deg_kreg * per;
    const std::string sz = size_name(r.bytes);
    const std::string cfg = base + " circulant-k" + std::to_string(o.degree) + " deg" + std::to_string(deg_kreg) + " " + sz;
    // Predicted vs measured k-regular round: value = modelled ms, peer = measured ms, ratio = model / measured.
    json("model_kreg_round_ms", pred * 1e3, "ms", "measured", r.kreg_s * 1e3, pred / r.kreg_s, cfg + " modelled", true);
    // Measured degree scaling at this size (no fit): (t_kreg / t_ring) / (deg_kreg / deg_ring); 1 means
    // the round time grows linearly with the degree, as the model assumes.
    const double scaling = (r.kreg_s / r.ring_s) / (double(deg_kreg) / double(deg_ring));
    if (deg_kreg != deg_ring)
      json("degree_scaling", scaling, "x", nullptr, 0, 0,
           base + " " + sz + " (t_deg" + std::to_string(deg_kreg) + "/t_deg" + std::to_string(deg_ring) + ")/(" +
               std::to_string(deg_kreg) + "/" + std::to_string(deg_ring) + ") measured, 1 = linear in degree",
           false);
    // Crossover: the neighbourhood exchange costs deg * c(bytes); Allgather costs what was measured for
    // the K - 1 other adapters. Allgather wins once deg > t_allgather / c. Two estimates of c: the
    // fitted line (alpha + bytes/beta) and the ring's own per-neighbour time at this size.
    const double d_fit = r.allgather_s / per;
    const double d_size = r.allgather_s / (r.ring_s / deg_ring);
    json("model_crossover_degree", d_fit, "neighbours", nullptr, 0, 0,
         base + " " + sz + " c=alpha+bytes/beta; Allgather of K-1=" + std::to_string(K - 1) +
             " adapters wins above this degree; modelled",
         true);
    json("model_crossover_degree_ring_at_size", d_size, "neighbours", nullptr, 0, 0,
         base + " " + sz + " c=t_ring/deg_ring at this size; Allgather of K-1=" + std::to_string(K - 1) +
             " adapters wins above this degree; modelled",
         true);
    std::fprintf(stderr,
                 "model %s: k-regular deg %d predicted %.3f ms, measured %.3f ms (model/measured %.2f); measured degree "
                 "scaling %.2f; crossover [modelled]: Allgather wins above degree %.2f (fit) / %.2f (ring at this "
                 "size) of K-1 = %d\n",
                 sz.c_str(), deg_kreg, pred * 1e3, r.kreg_s * 1e3, pred / r.kreg_s, scaling, d_fit, d_size, K - 1);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return mira::bench_main(argc, argv, "bench_exchange", run); }
